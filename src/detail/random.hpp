// Portable, seedable random numbers. std:: distributions differ between standard libraries,
// so mindrec draws its own from xoshiro256** (seeded through SplitMix64): the same seed gives
// the same weights and samples on every platform.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace mindrec::detail {

__extension__ typedef unsigned __int128 Uint128;

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& s : s_) {
      seed += 0x9E3779B97F4A7C15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      s = z ^ (z >> 31);
    }
  }

  /// Full generator state, for checkpoints: 4 words of xoshiro, the cached normal's bits,
  /// and whether it is valid.
  std::array<uint64_t, 6> state() const {
    uint64_t spare_bits = 0;
    std::memcpy(&spare_bits, &spare_, sizeof spare_bits);
    return {s_[0], s_[1], s_[2], s_[3], spare_bits, has_spare_ ? 1u : 0u};
  }
  void set_state(const std::array<uint64_t, 6>& st) {
    for (int i = 0; i < 4; ++i) s_[i] = st[i];
    std::memcpy(&spare_, &st[4], sizeof spare_);
    has_spare_ = st[5] != 0;
  }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  /// Uniform integer in [0, n) without modulo bias (Lemire's method with rejection).
  uint64_t below(uint64_t n) {
    Uint128 m = static_cast<Uint128>(next()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<Uint128>(next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  /// Standard normal (Box-Muller; the second value of each pair is kept for the next call).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    constexpr double two_pi = 6.283185307179586476925286766559;
    spare_ = r * std::sin(two_pi * u2);
    has_spare_ = true;
    return r * std::cos(two_pi * u2);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace mindrec::detail
