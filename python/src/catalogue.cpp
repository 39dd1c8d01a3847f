// The catalogue (raw item ids <-> dense ids) and raw-id recall: the Python edge translates
// through the library's Catalogue, once, as the CLI and mindrec-serve do.
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <vector>

#include "core.hpp"
#include "mindrec/catalogue.hpp"
#include "mindrec/model.hpp"
#include "mindrec/retriever.hpp"
#include "mindrec/train.hpp"
#include "mindrec/weights.hpp"

namespace mindrec::py {

void bind_catalogue(nb::module_& m) {
  nb::enum_<ItemStatus>(m, "ItemStatus").value("active", ItemStatus::active).value("retired", ItemStatus::retired);
  nb::class_<Catalogue>(m, "Catalogue",
                        "A shop's raw item ids (SKUs, strings of up to 256 bytes, or int64 numbers) against mindrec's "
                        "dense ids: the catalogue.csv that `mindrec prepare` writes and `mindrec train` copies "
                        "beside its weights (include/mindrec/catalogue.hpp).")
      .def(nb::init<bool>(), nb::arg("numeric") = false, "An empty catalogue; `numeric`: raw ids are int64 numbers.")
      .def_static("load", [](const std::string& path) {
        nb::gil_scoped_release unlocked;
        return Catalogue::load(path);
      }, nb::arg("path"), "Reads a catalogue file (FormatError naming the line and field of bad input).")
      .def("save", [](const Catalogue& c, const std::string& path) {
        nb::gil_scoped_release unlocked;
        c.save(path);
      }, nb::arg("path"), "Writes the file atomically.")
      .def("add", &Catalogue::add, nb::arg("raw_id"), nb::arg("status") = ItemStatus::active, nb::arg("clicks") = 0,
           "Adds an item with the next dense id and returns it.")
      .def("to_dense", [](const Catalogue& c, const std::string& raw) { return c.to_dense(raw); }, nb::arg("raw_id"),
           "The dense id of a raw id, 0 if unknown.")
      .def("to_dense", [](const Catalogue& c, int64_t raw) { return c.to_dense(std::to_string(raw)); }, nb::arg("raw_id"),
           "The dense id of a raw id given as an integer (its decimal text), 0 if unknown.")
      .def("to_dense", [](const Catalogue& c, const std::vector<std::string>& raws) {
        std::vector<std::string_view> views(raws.begin(), raws.end());
        std::vector<int64_t> ids(raws.size());
        c.to_dense(views.data(), views.size(), ids.data());
        return to_numpy(std::move(ids), {raws.size()});
      }, nb::arg("raw_ids"), "The dense ids of a list of raw ids (int64 array, 0 for unknown ones).")
      .def("to_raw", [](const Catalogue& c, int64_t id) { return std::string(c.to_raw(id)); }, nb::arg("id"),
           "The raw id of a dense id (InvalidArgument if it has no row).")
      .def("to_raw", [](const Catalogue& c, const In<int64_t>& ids) {
        std::vector<std::string> out;
        out.reserve(ids.size());
        for (size_t i = 0; i < ids.size(); ++i) out.emplace_back(c.to_raw(ids.data()[i]));
        return out;
      }, nb::arg("ids"), "The raw ids of an int64 array of dense ids.")
      .def("to_raw", [](const Catalogue& c, const std::vector<int64_t>& ids) {
        std::vector<std::string> out;
        out.reserve(ids.size());
        for (const int64_t id : ids) out.emplace_back(c.to_raw(id));
        return out;
      }, nb::arg("ids"), "The raw ids of a list of dense ids.")
      .def("__repr__", [](const Catalogue& c) {
        return "Catalogue(" + std::to_string(c.size()) + " items, " + std::to_string(c.active_count()) +
               " active, item_count=" + std::to_string(c.item_count()) + (c.numeric() ? ", numeric" : "") +
               (c.source().empty() ? "" : ", from '" + c.source() + "'") + ")";
      })
      .def("status", [](const Catalogue& c, int64_t id) { return std::string(c.status(id) == ItemStatus::active ? "active" : "retired"); },
           nb::arg("id"))
      .def("clicks", &Catalogue::clicks, nb::arg("id"))
      .def("has_id", &Catalogue::has_id, nb::arg("id"))
      .def("__len__", &Catalogue::size)
      .def("__contains__", [](const Catalogue& c, const std::string& raw) { return c.contains(raw); })
      .def_prop_ro("item_count", &Catalogue::item_count, "The largest dense id + 1 (the model's item_count).")
      .def_prop_ro("active_count", &Catalogue::active_count)
      .def_prop_ro("numeric", &Catalogue::numeric)
      .def_prop_ro("source", &Catalogue::source)
      .def("fingerprint", &Catalogue::fingerprint, nb::arg("below") = -1);

  m.def("load_weights_catalogue", [](const std::string& weights_path, const MindWeights& w, const std::string& path,
                                     bool allow_mismatch, bool required) {
    nb::gil_scoped_release unlocked;
    return load_weights_catalogue(weights_path, w, path, allow_mismatch, required);
  }, nb::arg("weights_path"), nb::arg("weights"), nb::arg("path"), nb::arg("allow_mismatch"), nb::arg("required"));

  m.def("_to_dense_histories", [](const Catalogue& c, const std::vector<std::vector<std::string>>& h, int64_t item_count) {
    DenseHistories d = to_dense_histories(c, h, item_count);
    return std::make_tuple(std::move(d.dense), std::move(d.unknown));
  });
}

}  // namespace mindrec::py
