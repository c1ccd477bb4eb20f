// Deterministic random numbers that any implementation can reproduce bit for bit
// (docs/metrics.md): SplitMix64 streams, exact bounded integers, uniform doubles, normals.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

namespace calibench {

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, full period, good mixing.
class splitmix64 {
 public:
  explicit splitmix64(std::uint64_t state) : state_(state) {}
  std::uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ULL;
    std::uint64_t x = state_;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
  }
  /// Integer in [0, bound): the top 53 bits scaled exactly, ((x >> 11) * bound) >> 53.
  std::uint64_t below(std::uint64_t bound) {
    __extension__ using u128 = unsigned __int128;  // GCC/Clang extension; exact 53 x 64-bit product
    const u128 x = next() >> 11;
    return static_cast<std::uint64_t>((x * bound) >> 53);
  }
  /// Double in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Standard normal by Box-Muller (uses two uniforms per call; the second value is dropped
  /// so that a stream's i-th normal depends only on its i-th pair of draws).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  std::uint64_t state_;
};

/// Independent stream `stream` of seed `seed` (bootstrap resample b uses stream b).
inline splitmix64 make_stream(std::uint64_t seed, std::uint64_t stream) {
  return splitmix64(seed + (stream + 1) * 0xA0761D6478BD642FULL);
}

}  // namespace calibench
