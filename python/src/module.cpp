// mindrec._core: the C++ library as a Python extension module (nanobind). Argument conversion
// only: every computation is the library's (include/mindrec). The public, documented API is
// the `mindrec` package (python/mindrec/__init__.py), which converts array-likes once and calls
// these functions.
#include <nanobind/stl/string.h>

#include "core.hpp"
#include "mindrec/mindrec.hpp"

NB_MODULE(_core, m) {
  namespace nb = nanobind;
  m.doc() = "mindrec's C++ core (use the `mindrec` package)";
  m.attr("VERSION") = MINDREC_VERSION_STRING;
  mindrec::py::bind_errors(m);
  mindrec::py::bind_config(m);
  mindrec::py::bind_model(m);
  mindrec::py::bind_catalogue(m);
  mindrec::py::bind_store(m);
  mindrec::py::bind_train(m);
  m.def("built_with_cuda", &mindrec::built_with_cuda, "True if this build has mindrec's CUDA kernels.");
  m.def("cuda_device_count", &mindrec::cuda_device_count, "Usable CUDA devices (0 without CUDA, driver or GPU).");
  m.def("default_threads", &mindrec::default_threads, "Threads a `threads=0` argument means (OMP_NUM_THREADS, affinity, cgroup quota).");
  m.def(
      "set_log_level",
      [](const std::string& level) {
        static const std::pair<const char*, mindrec::LogLevel> levels[] = {
            {"debug", mindrec::LogLevel::debug}, {"info", mindrec::LogLevel::info},
            {"warn", mindrec::LogLevel::warn},   {"error", mindrec::LogLevel::error},
            {"off", mindrec::LogLevel::off}};
        for (const auto& [name, value] : levels)
          if (level == name) return mindrec::set_log_level(value);
        throw mindrec::InvalidArgument("set_log_level: '" + level + "' is not one of debug, info, warn, error, off");
      },
      nb::arg("level"), "Messages below `level` (debug, info, warn, error, off) are dropped. Default: warn.");
}
