#include "detail/hash.hpp"

#include <algorithm>
#include <cstring>

namespace mindrec::detail {

namespace {
uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
}  // namespace

void WordHash::block(const unsigned char* p) {
  for (int l = 0; l < 4; ++l) {
    uint64_t w;
    std::memcpy(&w, p + 8 * l, 8);
    h_[l] = (h_[l] ^ w) * 0x100000001b3ull;
    h_[l] ^= h_[l] >> 29;
  }
}

void WordHash::update(const void* data, size_t n) {
  if (n == 0) return;  // writers pass (nullptr, 0) for empty arrays; memcpy must never see it
  const auto* p = static_cast<const unsigned char*>(data);
  length_ += n;
  if (carried_) {
    const size_t take = std::min(n, 32 - carried_);
    std::memcpy(carry_ + carried_, p, take);
    carried_ += take;
    p += take;
    n -= take;
    if (carried_ < 32) return;
    block(carry_);
    carried_ = 0;
  }
  for (; n >= 32; p += 32, n -= 32) block(p);
  std::memcpy(carry_, p, n);
  carried_ = n;
}

uint64_t WordHash::digest() const {
  uint64_t h0 = h_[0];
  for (size_t i = 0; i < carried_; ++i) h0 = (h0 ^ carry_[i]) * 1099511628211ull;
  return h0 ^ rotl(h_[1], 16) ^ rotl(h_[2], 32) ^ rotl(h_[3], 48) ^ length_;
}

}  // namespace mindrec::detail
