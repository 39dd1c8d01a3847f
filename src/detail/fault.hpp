// Private: hooks for tests of "a failed call changes nothing" and of what searches can do
// while a write prepares. Library code marks the places where an allocation or a dependency
// could fail mid-operation, or where a long preparation runs, with fault_point("site"); a test
// arms one site to throw std::bad_alloc on its n-th pass, or to run a function there. Unarmed,
// a fault point is one relaxed atomic load.
#pragma once

#include <atomic>
#include <functional>
#include <string>

namespace mindrec::detail {

namespace fault {
extern std::atomic<bool> armed;
void hit(const char* site);
}  // namespace fault

inline void fault_point(const char* site) {
  if (fault::armed.load(std::memory_order_relaxed)) fault::hit(site);
}

/// Arms `site` to throw std::bad_alloc on its `nth` pass (1 = the next one); disarms others.
void arm_fault(const std::string& site, int nth = 1);
/// Arms `site` to call `fn` on every pass (fn may throw); disarms others.
void arm_hook(const std::string& site, std::function<void()> fn);
/// Disarms; returns how many times the armed site was passed.
int disarm_fault();

}  // namespace mindrec::detail
