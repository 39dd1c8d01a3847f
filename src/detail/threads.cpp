// mindrec's thread policy (documented at default_threads in config.hpp).
#include "detail/threads.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "mindrec/config.hpp"

namespace mindrec {
namespace detail {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int ceil_cpus(double quota, double period) {
  return quota > 0 && period > 0 ? static_cast<int>(std::ceil(quota / period)) : 0;
}

// path, then each of its ancestors up to "/".
std::vector<std::string> self_and_ancestors(std::string path) {
  std::vector<std::string> out;
  while (!path.empty() && path != "/") {
    out.push_back(path);
    path = path.substr(0, path.find_last_of('/'));
  }
  out.push_back("");
  return out;
}

}  // namespace

int cgroup_cpu_quota(const std::string& root, const std::string& self_cgroup) {
  std::istringstream lines(self_cgroup);
  int best = 0;
  auto take = [&](int q) {
    if (q > 0 && (best == 0 || q < best)) best = q;
  };
  for (std::string line; std::getline(lines, line);) {
    const size_t c1 = line.find(':'), c2 = line.find(':', c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos) continue;
    const std::string controllers = line.substr(c1 + 1, c2 - c1 - 1), path = line.substr(c2 + 1);
    if (line.compare(0, c1, "0") == 0 && controllers.empty()) {  // cgroup v2
      for (const auto& p : self_and_ancestors(path)) {
        std::istringstream v(read_all(root + p + "/cpu.max"));
        std::string quota;
        double period = 0;
        if (v >> quota >> period && quota != "max") take(ceil_cpus(std::atof(quota.c_str()), period));
      }
      continue;
    }
    std::stringstream names(controllers);
    bool cpu = false;
    for (std::string n; std::getline(names, n, ',');) cpu = cpu || n == "cpu";
    if (!cpu) continue;
    for (const std::string& mount : {root + "/" + controllers, root + "/cpu"})
      for (const auto& p : self_and_ancestors(path)) {
        const std::string q = read_all(mount + p + "/cpu.cfs_quota_us");
        if (q.empty()) continue;
        take(ceil_cpus(std::atof(q.c_str()), std::atof(read_all(mount + p + "/cpu.cfs_period_us").c_str())));
      }
  }
  return best;
}

}  // namespace detail

int default_threads() {
  // omp_get_max_threads() is OMP_NUM_THREADS when set, what the calling thread last passed to
  // omp_set_num_threads, and otherwise the CPUs of the affinity mask (libgomp reads
  // sched_getaffinity). A host that set neither also gets the cgroup's CPU quota as a cap.
  static const int quota = detail::cgroup_cpu_quota("/sys/fs/cgroup", detail::read_all("/proc/self/cgroup"));
  static const bool env = std::getenv("OMP_NUM_THREADS") != nullptr;
  int n = omp_get_max_threads();
  if (!env && quota > 0) n = std::min(n, quota);
  return std::max(1, n);
}

int resolve_threads(int requested) { return requested > 0 ? requested : default_threads(); }

}  // namespace mindrec
