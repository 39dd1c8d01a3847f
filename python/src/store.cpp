// VectorStore (vector_store.hpp) and multi-interest recall (retriever.hpp). Every call that
// searches or writes releases the GIL; the store's own locking makes concurrent searches from
// Python threads safe (one writer at a time).
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <string>

#include "core.hpp"
#include "mindrec/catalogue.hpp"
#include "mindrec/error.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/vector_store.hpp"

namespace mindrec::py {

namespace {

Metric parse_metric(const std::string& s) {
  if (s == "ip" || s == "inner_product") return Metric::inner_product;
  if (s == "l2") return Metric::l2;
  throw InvalidArgument("metric '" + s + "': expected 'ip' (inner product) or 'l2'");
}

// [n, dim] float32 rows for a store of dimension `dim`; returns n.
int64_t rows(const char* what, const In<float>& a, int dim) {
  if (a.ndim() != 2 || a.shape(1) != size_t(dim))
    throw InvalidArgument(std::string(what) + ": expected a [n, " + std::to_string(dim) + "] array (the store's dim)");
  return static_cast<int64_t>(a.shape(0));
}

int64_t ids_for(const char* what, const In<int64_t>& ids, int64_t n) {
  if (ids.ndim() != 1 || (n >= 0 && ids.shape(0) != size_t(n)))
    throw InvalidArgument(std::string(what) + ": expected a 1-d array of " +
                          (n >= 0 ? std::to_string(n) + " ids (one per vector)" : std::string("ids")));
  return static_cast<int64_t>(ids.shape(0));
}

using Params = std::map<std::string, double>;

std::vector<std::pair<std::string, double>> param_list(const Params& p) { return {p.begin(), p.end()}; }

RecallOptions recall_options(int topn, bool exclude_history, int rerank, int threads, const std::string& filter,
                             const Params& params) {
  RecallOptions o;
  o.topn = topn;
  o.exclude_history = exclude_history;
  o.rerank = rerank;
  o.threads = threads;
  o.filter = filter;
  o.search_params = param_list(params);
  return o;
}

}  // namespace

void bind_store(nb::module_& m) {
  nb::class_<VectorStore>(m, "VectorStore")
      .def_prop_ro("dim", &VectorStore::dim)
      .def_prop_ro("metric", [](const VectorStore& s) { return std::string(s.metric() == Metric::l2 ? "l2" : "ip"); })
      .def_prop_ro("backend", &VectorStore::backend)
      .def_prop_ro("source_fingerprint", &VectorStore::source_fingerprint,
                   nb::call_guard<nb::gil_scoped_release>())  // waits behind a queued writer
      .def("size", [](const VectorStore& s) {
        nb::gil_scoped_release unlocked;
        return s.size();
      })
      .def("add", [](VectorStore& s, const In<float>& v, const In<int64_t>& ids) {
        const int64_t n = rows("vectors", v, s.dim());
        ids_for("ids", ids, n);
        nb::gil_scoped_release unlocked;
        s.add(n, v.data(), ids.data());
      }, nb::arg("vectors"), nb::arg("ids"))
      .def("upsert", [](VectorStore& s, const In<float>& v, const In<int64_t>& ids) {
        const int64_t n = rows("vectors", v, s.dim());
        ids_for("ids", ids, n);
        nb::gil_scoped_release unlocked;
        return s.upsert(n, v.data(), ids.data());
      }, nb::arg("vectors"), nb::arg("ids"))
      .def("remove", [](VectorStore& s, const In<int64_t>& ids) {
        const int64_t n = ids_for("ids", ids, -1);
        nb::gil_scoped_release unlocked;
        return s.remove(n, ids.data());
      }, nb::arg("ids"))
      .def("search", [](const VectorStore& s, const In<float>& q, int k, const std::string& filter,
                        const Params& params) {
        const int64_t nq = rows("queries", q, s.dim());
        if (k < 1) throw InvalidArgument("search: k must be >= 1, got " + std::to_string(k));
        Buffer<int64_t> ids(size_t(nq) * size_t(k));
        Buffer<float> scores(size_t(nq) * size_t(k));
        SearchOptions o;
        o.filter = filter;
        o.params = param_list(params);
        {
          nb::gil_scoped_release unlocked;
          s.search(nq, q.data(), k, ids.data(), scores.data(), o);
        }
        return std::make_pair(ids.release({size_t(nq), size_t(k)}), scores.release({size_t(nq), size_t(k)}));
      }, nb::arg("queries"), nb::arg("k"), nb::arg("filter") = "", nb::arg("params") = Params{})
      .def("declare_attributes", [](VectorStore& s, const std::vector<std::pair<std::string, std::string>>& cols) {
        std::vector<AttributeSpec> specs;
        for (const auto& [name, type] : cols) specs.push_back({name, parse_attribute_type(type)});
        nb::gil_scoped_release unlocked;
        s.declare_attributes(specs);
      }, nb::arg("columns"))
      .def("attributes", [](const VectorStore& s) {
        std::vector<std::pair<std::string, std::string>> out;
        std::vector<AttributeSpec> specs;
        {
          nb::gil_scoped_release unlocked;
          specs = s.attributes();
        }
        for (const auto& a : specs) out.emplace_back(a.name, to_string(a.type));
        return out;
      })
      .def("set_attributes", [](VectorStore& s, const In<int64_t>& ids, const std::map<std::string, In<int64_t>>& ints,
                                const std::map<std::string, In<double>>& floats, const std::map<std::string, In<uint8_t>>& bools,
                                const std::map<std::string, std::vector<std::string>>& strings,
                                const std::optional<In<float>>& vectors) {
        const int64_t n = ids_for("ids", ids, -1);
        AttributeBatch b;
        auto col = [&](const std::string& name, const auto& a) {
          if (a.ndim() != 1 || int64_t(a.shape(0)) != n)
            throw InvalidArgument("set_attributes: attribute '" + name + "': expected " + std::to_string(n) + " values (one per id)");
        };
        for (const auto& [name, a] : ints) col(name, a), b.add(name, std::vector<int64_t>(a.data(), a.data() + n));
        for (const auto& [name, a] : floats) col(name, a), b.add(name, std::vector<double>(a.data(), a.data() + n));
        for (const auto& [name, a] : bools) col(name, a), b.add_bool(name, std::vector<uint8_t>(a.data(), a.data() + n));
        for (const auto& [name, v] : strings) b.add(name, v);
        if (vectors) rows("vectors", *vectors, s.dim());
        if (vectors && int64_t(vectors->shape(0)) != n) throw InvalidArgument("upsert: " + std::to_string(n) + " ids for " +
                                                                     std::to_string(vectors->shape(0)) + " vectors");
        nb::gil_scoped_release unlocked;
        if (vectors) return s.upsert(n, vectors->data(), ids.data(), b);
        s.set_attributes(n, ids.data(), b);
        return int64_t(0);
      }, nb::arg("ids"), nb::arg("ints"), nb::arg("floats"), nb::arg("bools"), nb::arg("strings"),
         nb::arg("vectors").none() = nb::none())
      .def("filter_allows", [](const VectorStore& s, const std::string& filter, const In<int64_t>& ids) {
        const int64_t n = ids_for("ids", ids, -1);
        std::vector<uint8_t> ok;
        {
          nb::gil_scoped_release unlocked;
          ok = s.filter_allows(filter, n, ids.data());
        }
        return to_numpy(std::move(ok), {size_t(n)});
      }, nb::arg("filter"), nb::arg("ids"))
      .def_prop_ro("supports_filter", &VectorStore::supports_filter)
      .def("clear", [](VectorStore& s) {
        nb::gil_scoped_release unlocked;
        s.clear();
      })
      .def("save", [](const VectorStore& s, const std::string& path) {
        nb::gil_scoped_release unlocked;
        s.save(path);
      }, nb::arg("path"))
      .def("load", [](VectorStore& s, const std::string& path) {
        nb::gil_scoped_release unlocked;
        s.load(path);
      }, nb::arg("path"))
      // These take the writers' lock: they wait for a write in flight (minutes for a large one).
      .def("set_search_param", &VectorStore::set_search_param, nb::arg("name"), nb::arg("value"),
           nb::call_guard<nb::gil_scoped_release>())
      .def("set_source_fingerprint", &VectorStore::set_source_fingerprint, nb::arg("fingerprint"),
           nb::call_guard<nb::gil_scoped_release>())
      .def_prop_ro("changes", &VectorStore::changes, "Writes that changed the store since it was made (a host saves when it differs from the value at its last save).");

  m.def("make_vector_store", [](const std::string& spec, int dim, const std::string& metric) {
    const Metric mt = parse_metric(metric);
    nb::gil_scoped_release unlocked;  // a remote store connects and may wait for its collection
    return make_vector_store(spec, dim, mt);
  }, nb::arg("spec"), nb::arg("dim"), nb::arg("metric") = "ip");
  m.def("attach_vector_store", [](const std::string& spec, int dim, const std::string& metric) {
    const Metric mt = parse_metric(metric);
    nb::gil_scoped_release unlocked;
    return attach_vector_store(spec, dim, mt);
  }, nb::arg("spec"), nb::arg("dim"), nb::arg("metric") = "ip");
  m.def("load_vector_store", [](const std::string& path, const std::string& spec) {
    nb::gil_scoped_release unlocked;
    return load_vector_store(path, spec);
  }, nb::arg("path"), nb::arg("spec") = "");
  m.def("build_item_store", [](const MindModel& model, const std::string& spec, const std::string& metric,
                               const Catalogue* catalogue) {
    const Metric mt = parse_metric(metric);
    nb::gil_scoped_release unlocked;
    return catalogue ? build_item_store(model, spec, *catalogue, mt) : build_item_store(model, spec, mt);
  }, nb::arg("model"), nb::arg("spec"), nb::arg("metric") = "ip", nb::arg("catalogue").none() = nullptr);
  m.def("upsert_item_vectors", [](const MindModel& model, VectorStore& store) {
    nb::gil_scoped_release unlocked;
    return upsert_item_vectors(model, store);
  }, nb::arg("model"), nb::arg("store"));
  m.def("check_store_pairing", &check_store_pairing, nb::arg("model"), nb::arg("store"), nb::arg("store_name"),
        nb::arg("allow_mismatch") = false, nb::call_guard<nb::gil_scoped_release>());

  m.def("_recall", [](const MindModel& model, const VectorStore& store, const In<int64_t>& hist,
                      const In<int32_t>& lengths, int topn, bool exclude_history, int rerank, int threads,
                      const std::string& filter, const Params& params) {
    const int L = model.config().maxlen;
    if (hist.ndim() != 2 || hist.shape(1) != size_t(L))
      throw InvalidArgument("histories: expected a [B, maxlen=" + std::to_string(L) +
                            "] array of right-padded ids: pad each row with 0 to maxlen and pass lengths=, or pass "
                            "a list of per-user id lists (any lengths)");
    const size_t B = hist.shape(0);
    if (lengths.ndim() != 1 || lengths.shape(0) != B)
      throw InvalidArgument("lengths: expected " + std::to_string(B) + " values (one per user)");
    if (topn < 1) throw InvalidArgument("recall_items: topn must be >= 1, got " + std::to_string(topn));
    Buffer<int64_t> ids(B * size_t(topn));
    Buffer<float> scores(B * size_t(topn));
    Buffer<uint8_t> fallback(B);
    {
      nb::gil_scoped_release unlocked;
      recall_items(model, store, hist.data(), lengths.data(), int64_t(B),
                   recall_options(topn, exclude_history, rerank, threads, filter, params), ids.data(), scores.data(), fallback.data());
    }
    return std::make_tuple(ids.release({B, size_t(topn)}), scores.release({B, size_t(topn)}), fallback.release({B}));
  }, nb::arg("model"), nb::arg("store"), nb::arg("hist"), nb::arg("lengths"), nb::arg("topn"),
     nb::arg("exclude_history"), nb::arg("rerank"), nb::arg("threads"), nb::arg("filter") = "",
     nb::arg("params") = Params{});
  m.def("_recall_lists", [](const MindModel& model, const VectorStore& store,
                            const std::vector<std::vector<int64_t>>& histories, int topn, bool exclude_history,
                            int rerank, int threads, const std::string& filter, const Params& params) {
    RecallResult r;
    {
      nb::gil_scoped_release unlocked;
      r = recall_histories(model, store, histories, recall_options(topn, exclude_history, rerank, threads, filter, params));
    }
    const size_t B = size_t(r.users), N = size_t(r.topn);
    return std::make_tuple(to_numpy(std::move(r.ids), {B, N}), to_numpy(std::move(r.scores), {B, N}),
                           to_numpy(std::move(r.fallback), {B}));
  }, nb::arg("model"), nb::arg("store"), nb::arg("histories"), nb::arg("topn"), nb::arg("exclude_history"),
     nb::arg("rerank"), nb::arg("threads"), nb::arg("filter") = "", nb::arg("params") = Params{});
  m.def("_recall_raw", [](const MindModel& model, const VectorStore& store, const Catalogue& c,
                          const std::vector<std::vector<std::string>>& histories, int topn, bool exclude_history,
                          int rerank, int threads, const std::string& filter, const Params& params) {
    RawRecallResult r;
    {
      nb::gil_scoped_release unlocked;
      r = recall_raw_histories(model, store, c, histories, recall_options(topn, exclude_history, rerank, threads, filter, params));
    }
    std::vector<nb::object> scores;
    for (auto& s : r.scores) {
      const size_t n = s.size();
      scores.push_back(nb::cast(to_numpy(std::move(s), {n})));
    }
    const size_t B = size_t(r.users);
    return std::make_tuple(std::move(r.ids), std::move(scores), to_numpy(std::move(r.fallback), {B}), std::move(r.unknown));
  }, nb::arg("model"), nb::arg("store"), nb::arg("catalogue"), nb::arg("histories"), nb::arg("topn"),
     nb::arg("exclude_history"), nb::arg("rerank"), nb::arg("threads"), nb::arg("filter") = "",
     nb::arg("params") = Params{});
}

}  // namespace mindrec::py
