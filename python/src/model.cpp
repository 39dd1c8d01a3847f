// Weights (weights.hpp) and MindModel (model.hpp). The model's calls release the GIL while
// they compute; inputs are read in place, outputs are NumPy arrays owning the C++ buffers.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <string>

#include <nanobind/stl/map.h>

#include "core.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/data.hpp"
#include "mindrec/error.hpp"
#include "mindrec/model.hpp"
#include "mindrec/paddlerec.hpp"
#include "mindrec/weights.hpp"

namespace mindrec::py {

namespace {

using Self = nb::pointer_and_handle<MindWeights>;

void check_ndim(const char* what, size_t ndim, size_t want) {
  if (ndim != want)
    throw InvalidArgument(std::string(what) + ": expected a " + std::to_string(want) + "-d array, got " +
                          std::to_string(ndim) + "-d");
}

AlignedVector<float> copy_tensor(const In<float>& a) {
  return AlignedVector<float>(a.data(), a.data() + a.size());
}

// Checks hist [B, maxlen] and lengths [B]; returns B.
int64_t check_batch(const MindModel& mm, const In<int64_t>& hist, const In<int32_t>& lengths) {
  check_ndim("hist", hist.ndim(), 2);
  check_ndim("lengths", lengths.ndim(), 1);
  const int L = mm.config().maxlen;
  const size_t B = hist.shape(0);
  if (hist.shape(1) != size_t(L))
    throw InvalidArgument("hist: expected a [B, maxlen=" + std::to_string(L) + "] array of right-padded ids, got [" +
                          std::to_string(B) + ", " + std::to_string(hist.shape(1)) +
                          "]: pad each row with 0 to maxlen and pass lengths=, or pass a list of per-user id lists "
                          "(any lengths)");
  if (lengths.shape(0) != B)
    throw InvalidArgument("lengths: expected " + std::to_string(B) + " values, got " +
                          std::to_string(lengths.shape(0)));
  return static_cast<int64_t>(B);
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::cpu;
  if (s == "cuda") return Device::cuda;
  throw InvalidArgument("device '" + s + "': expected 'cpu' or 'cuda'");
}

}  // namespace

void bind_model(nb::module_& m) {
  nb::class_<MindWeights>(m, "Weights",
                          "MIND's parameters (float32, row-major). The array attributes are views of the C++ "
                          "tensors (writable, no copy) that keep this object alive.")
      .def_prop_ro("config", [](const MindWeights& w) { return w.config; }, "The ModelConfig (a copy).")
      .def_prop_ro("item_emb", [](Self s) {
        const auto& c = s.p->config;
        return view(s.p->item_emb.data(), {size_t(c.item_count), size_t(c.embedding_dim)}, s.h);
      }, "[N, D] item vectors (row 0: padding).")
      .def_prop_ro("bilinear", [](Self s) {
        const auto& c = s.p->config;
        if (s.p->bilinear.empty()) return view(s.p->bilinear.data(), {0, 0}, s.h);
        return view(s.p->bilinear.data(), {size_t(c.embedding_dim), size_t(c.bilinear_columns())}, s.h);
      }, "[D, H] shared bilinear map S ([D, K H], one block of H columns per interest, with "
         "capsule.per_interest_transform; empty with extractor self_attention).")
      .def_prop_ro("routing_logits", [](Self s) {
        const auto& c = s.p->config;
        if (s.p->routing_logits.empty()) return view(s.p->routing_logits.data(), {0, 0, 0}, s.h);
        return view(s.p->routing_logits.data(), {1, size_t(c.capsule.max_k), size_t(c.maxlen)}, s.h);
      }, "[1, K, L] initial routing logits (empty with extractor self_attention).")
      .def_prop_ro("attention", [](Self s) {
        return view(s.p->attention.data(), {s.p->attention.size()}, s.h);
      }, "extractor self_attention: self_attention.w1 [D, A], b1 [A], w2 [A, K] and position [L, D] "
         "back to back, flat (attention_parts() gives each one's offset and shape); empty for capsule.")
      .def("attention_parts", [](const MindWeights& w) {
        std::vector<std::tuple<std::string, std::vector<int64_t>, size_t>> out;
        for (const auto& p : attention_parts(w.config)) out.emplace_back(p.name, p.shape, p.offset);
        return out;
      }, "(name, shape, offset) of each self-attention tensor inside `attention`.")
      .def_prop_ro("relu_weight", [](Self s) {
        const size_t h = s.p->relu_weight.empty() ? 0 : size_t(s.p->config.hidden_size);
        return view(s.p->relu_weight.data(), {h, h}, s.h);
      }, "[H, H] (empty without capsule.relu_layer).")
      .def_prop_ro("relu_bias", [](Self s) {
        return view(s.p->relu_bias.data(), {s.p->relu_bias.size()}, s.h);
      }, "[H] (empty without capsule.relu_layer).")
      .def_rw("popular_items", &MindWeights::popular_items,
              "The training log's most clicked items, most first (mindrec train records them): what a "
              "recall answers a user with no clicks. Empty when unknown.")
      .def_rw("evaluation", &MindWeights::evaluation,
              "The weights' last evaluation as mindrec train records it (recall@50, popularity_recall@50, ...).")
      .def_rw("largest_trained_item", &MindWeights::largest_trained_item,
              "The largest item id of the training log (0 = unknown): rows above it were never trained.")
      .def("fingerprint", [](const MindWeights& w) { return item_fingerprint(w); },
           "64-bit fingerprint of item_emb (what stores record).")
      .def("validate", &MindWeights::validate)
      .def_static(
          "from_arrays",
          [](const ModelConfig& config, const In<float>& item_emb, const In<float>& bilinear,
             const In<float>& routing_logits, const In<float>& relu_weight, const In<float>& relu_bias,
             const std::optional<In<float>>& attention) {
            MindWeights w;
            w.config = config;
            w.item_emb = copy_tensor(item_emb);
            w.bilinear = copy_tensor(bilinear);
            w.routing_logits = copy_tensor(routing_logits);
            w.relu_weight = copy_tensor(relu_weight);
            w.relu_bias = copy_tensor(relu_bias);
            if (attention) w.attention = copy_tensor(*attention);
            w.validate();
            return w;
          },
          nb::arg("config"), nb::arg("item_emb"), nb::arg("bilinear"), nb::arg("routing_logits"),
          nb::arg("relu_weight"), nb::arg("relu_bias"), nb::arg("attention").none() = nb::none(),
          "Weights from arrays (copied, validated): `attention` holds extractor self_attention's "
          "w1, b1, w2 and position flat, back to back (None for capsule routing).");

  // File I/O and computation: the GIL is released (another Python thread goes on meanwhile).
  const auto unlocked = nb::call_guard<nb::gil_scoped_release>();
  m.def("init_weights", &init_weights, nb::arg("config"), nb::arg("seed"), unlocked,
        "Random initial weights, as mind-spec.md's parameter table says (same seed, same weights).");
  m.def("load_weights", nb::overload_cast<const std::string&>(&load_weights), nb::arg("path"), unlocked,
        "Reads and validates a safetensors weights file.");
  m.def("load_weights", nb::overload_cast<const std::string&, const ModelConfig&>(&load_weights),
        nb::arg("path"), nb::arg("expected"), unlocked,
        "Reads a weights file and raises ConfigError if it describes another model than `expected`.");
  m.def("import_paddlerec", &import_paddlerec, nb::arg("pdparams"), nb::arg("config"), unlocked,
        "Weights from a MIND checkpoint trained by PaddleRec (rec.pdparams) and its config's hyper_parameters.");
  m.def("save_weights", nb::overload_cast<const std::string&, const MindWeights&>(&save_weights), nb::arg("path"),
        nb::arg("weights"), unlocked,
        "Writes safetensors with the model config in __metadata__, atomically.");

  nb::class_<MindModel>(m, "MindModel")
      .def(
          "__init__",
          [](MindModel* self, const MindWeights& w, const std::string& device, int64_t max_projection_bytes) {
            ModelOptions o;
            o.max_projection_bytes = max_projection_bytes;
            const Device dev = parse_device(device);
            nb::gil_scoped_release unlocked;  // the copy and the [N, D] x [D, H] projection
            new (self) MindModel(w, dev, o);
          },
          nb::arg("weights"), nb::arg("device") = "cpu", nb::arg("max_projection_bytes") = int64_t(1) << 30)
      .def_static(
          "_from_file",
          [](const std::string& path, const std::string& device, int64_t max_projection_bytes) {
            ModelOptions o;
            o.max_projection_bytes = max_projection_bytes;
            const Device dev = parse_device(device);
            nb::gil_scoped_release unlocked;
            return MindModel(load_weights(path), dev, o);  // the weights moved in: one copy at peak (F27)
          },
          nb::arg("path"), nb::arg("device") = "cpu", nb::arg("max_projection_bytes") = int64_t(1) << 30)
      .def_prop_ro("config", [](const MindModel& mm) { return mm.config(); })
      .def_prop_ro("weights", [](const MindModel& mm) { return mm.weights(); }, "A copy of the weights.")
      .def_prop_ro("device", [](const MindModel& mm) { return std::string(mm.device() == Device::cpu ? "cpu" : "cuda"); })
      .def("item_fingerprint", &MindModel::item_fingerprint)
      .def("interest_count", &MindModel::interest_count, nb::arg("n"),
           "Interests computed for a user with n behaviours (K, or K'_u with dynamic_k).")
      .def(
          "_extract",
          [](const MindModel& mm, const In<int64_t>& hist, const In<int32_t>& lengths, int threads) {
            const int64_t B = check_batch(mm, hist, lengths);
            check_histories(mm, hist.data(), lengths.data(), B, "extract_interests", false);
            const auto& c = mm.config();
            const size_t K = size_t(c.capsule.max_k), H = size_t(c.hidden_size);
            Buffer<float> out(size_t(B) * K * H);
            Buffer<int32_t> counts(static_cast<size_t>(B));
            {
              nb::gil_scoped_release unlocked;
              mm.extract_interests(hist.data(), lengths.data(), B, out.data(), counts.data(), threads);
            }
            return std::make_pair(out.release({size_t(B), K, H}), counts.release({size_t(B)}));
          },
          nb::arg("hist"), nb::arg("lengths"), nb::arg("threads") = 0)
      .def(
          "_extract_into",
          [](const MindModel& mm, const In<int64_t>& hist, const In<int32_t>& lengths, Into<float> out,
             Into<int32_t> counts, int threads) {
            const int64_t B = check_batch(mm, hist, lengths);
            check_histories(mm, hist.data(), lengths.data(), B, "extract_interests", false);
            const auto& c = mm.config();
            const size_t K = size_t(c.capsule.max_k), H = size_t(c.hidden_size);
            if (out.ndim() != 3 || out.shape(0) != size_t(B) || out.shape(1) != K || out.shape(2) != H)
              throw InvalidArgument("out: expected a writable C-contiguous float32 array [" + std::to_string(B) + ", " +
                                    std::to_string(K) + ", " + std::to_string(H) + "]");
            if (counts.ndim() != 1 || counts.shape(0) != size_t(B))
              throw InvalidArgument("out counts: expected a writable int32 array [" + std::to_string(B) + "]");
            nb::gil_scoped_release unlocked;
            mm.extract_interests(hist.data(), lengths.data(), B, out.data(), counts.data(), threads);
          },
          nb::arg("hist"), nb::arg("lengths"), nb::arg("out").noconvert(), nb::arg("counts").noconvert(),
          nb::arg("threads") = 0)
      .def(
          "_extract_lists",
          [](const MindModel& mm, const std::vector<std::vector<int64_t>>& histories, int threads) {
            check_histories(mm, histories, "extract_interests", false);
            const auto& c = mm.config();
            const int64_t B = static_cast<int64_t>(histories.size());
            const int K = c.capsule.max_k, H = c.hidden_size, L = c.maxlen;
            Buffer<float> out(size_t(B) * K * H);
            Buffer<int32_t> counts(static_cast<size_t>(B));
            {
              nb::gil_scoped_release unlocked;
              std::vector<int64_t> hist(size_t(B) * L);
              std::vector<int32_t> lens(static_cast<size_t>(B));
              pack_histories(histories, L, hist.data(), lens.data());
              mm.extract_interests(hist.data(), lens.data(), B, out.data(), counts.data(), threads);
            }
            return std::make_pair(out.release({size_t(B), size_t(K), size_t(H)}), counts.release({size_t(B)}));
          },
          nb::arg("histories"), nb::arg("threads") = 0)
      .def(
          "_attention",
          [](const MindModel& mm, const In<float>& interests, const In<int32_t>& counts, const In<int64_t>& targets) {
            check_ndim("interests", interests.ndim(), 3);
            check_ndim("counts", counts.ndim(), 1);
            check_ndim("targets", targets.ndim(), 1);
            const auto& c = mm.config();
            const size_t B = interests.shape(0), K = size_t(c.capsule.max_k), H = size_t(c.hidden_size);
            if (interests.shape(1) != K || interests.shape(2) != H)
              throw InvalidArgument("interests: expected [B, " + std::to_string(K) + ", " + std::to_string(H) + "]");
            if (counts.shape(0) != B || targets.shape(0) != B)
              throw InvalidArgument("counts and targets: expected " + std::to_string(B) + " values each (one per user)");
            Buffer<float> out(B * H);
            {
              nb::gil_scoped_release unlocked;
              mm.label_aware_attention(interests.data(), counts.data(), targets.data(), int64_t(B), out.data());
            }
            return out.release({B, H});
          },
          nb::arg("interests"), nb::arg("counts"), nb::arg("targets"));
}

}  // namespace mindrec::py
