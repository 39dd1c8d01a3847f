// The thread policy (config.hpp, default_threads): OpenMP's setting on the calling thread,
// and the cgroup CPU quota read from v1 and v2 files (fake file systems here).
#include <doctest/doctest.h>
#include <omp.h>

#include <filesystem>
#include <fstream>

#include "detail/threads.hpp"
#include "mindrec/config.hpp"
#include "test_util.hpp"

using namespace mindrec;

namespace {
void write(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text;
}
}  // namespace

TEST_CASE("default_threads follows omp_set_num_threads on the calling thread - explicit counts win") {
  if (std::getenv("OMP_NUM_THREADS")) {
    MESSAGE("OMP_NUM_THREADS is set: default_threads() is it, checked instead");
    CHECK(default_threads() == omp_get_max_threads());
    return;
  }
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  CHECK(default_threads() == 1);
  CHECK(resolve_threads(0) == 1);
  CHECK(resolve_threads(3) == 3);
  omp_set_num_threads(before);
  CHECK(default_threads() >= 1);
  CHECK(default_threads() <= before);
}

TEST_CASE("cgroup CPU quota: v2 cpu.max - v1 cfs quota/period - nearest limited ancestor - none") {
  test::TempDir tmp;
  const std::filesystem::path root = tmp.path();
  // v2: 150000/100000 -> 2 CPUs (rounded up), found in the process's own group.
  write(root / "v2/app/svc/cpu.max", "150000 100000\n");
  CHECK(detail::cgroup_cpu_quota((root / "v2").string(), "0::/app/svc\n") == 2);
  // "max" there, but a parent group is limited to 1.
  write(root / "v2b/app/svc/cpu.max", "max 100000\n");
  write(root / "v2b/app/cpu.max", "100000 100000\n");
  CHECK(detail::cgroup_cpu_quota((root / "v2b").string(), "0::/app/svc\n") == 1);
  // No limit anywhere.
  write(root / "v2c/cpu.max", "max 100000\n");
  CHECK(detail::cgroup_cpu_quota((root / "v2c").string(), "0::/\n") == 0);
  // v1, controllers mounted together: 400000/100000 -> 4.
  write(root / "v1/cpu,cpuacct/job/cpu.cfs_quota_us", "400000\n");
  write(root / "v1/cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
  CHECK(detail::cgroup_cpu_quota((root / "v1").string(), "4:memory:/job\n2:cpu,cpuacct:/job\n") == 4);
  // v1 without a quota (-1).
  write(root / "v1b/cpu/cpu.cfs_quota_us", "-1\n");
  write(root / "v1b/cpu/cpu.cfs_period_us", "100000\n");
  CHECK(detail::cgroup_cpu_quota((root / "v1b").string(), "1:cpu:/\n") == 0);
  // Nothing readable.
  CHECK(detail::cgroup_cpu_quota((root / "missing").string(), "0::/x\n") == 0);
}
