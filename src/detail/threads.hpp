// Private: the pieces of mindrec's thread policy (config.hpp, default_threads), testable.
#pragma once

#include <string>

namespace mindrec::detail {

/// The CPU quota, in whole CPUs rounded up, of the cgroup named in `self_cgroup` (the text of
/// /proc/self/cgroup) under the cgroup file system mounted at `root`; 0 if there is none.
/// cgroup v2: "0::/path" -> root/path/cpu.max ("max 100000" or "150000 100000");
/// cgroup v1: "N:cpu,cpuacct:/path" -> root/cpu,cpuacct/path/cpu.cfs_quota_us and
/// cpu.cfs_period_us (also under root/cpu/path). The nearest limited ancestor counts.
int cgroup_cpu_quota(const std::string& root, const std::string& self_cgroup);

}  // namespace mindrec::detail
