#include "detail/fault.hpp"

#include <mutex>
#include <memory>
#include <new>

namespace mindrec::detail {
namespace fault {
std::atomic<bool> armed{false};
namespace {
std::mutex m;
std::string site_name;
std::function<void()> hook;
int passes = 0;
}  // namespace

void hit(const char* site) {
  std::function<void()> fn;
  {
    std::lock_guard<std::mutex> l(m);
    if (site_name != site) return;
    ++passes;
    fn = hook;
  }
  if (fn) fn();  // outside the mutex: a hook may take long or reach other fault points
}
}  // namespace fault

void arm_hook(const std::string& site, std::function<void()> fn) {
  std::lock_guard<std::mutex> l(fault::m);
  fault::site_name = site;
  fault::hook = std::move(fn);
  fault::passes = 0;
  fault::armed.store(true);
}

void arm_fault(const std::string& site, int nth) {
  auto left = std::make_shared<std::atomic<int>>(nth);
  arm_hook(site, [left] {
    if (left->fetch_sub(1) == 1) throw std::bad_alloc();
  });
}

int disarm_fault() {
  std::lock_guard<std::mutex> l(fault::m);
  fault::armed.store(false);
  fault::site_name.clear();
  fault::hook = nullptr;
  return fault::passes;
}

}  // namespace mindrec::detail
