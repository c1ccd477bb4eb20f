// Seeded logit sets the C++ tests share (unit tests of the CPU backend, GPU tests of the CUDA
// backend against it): normal logits of scale 3 and, on request, the adversarial rows of
// ../shared/STYLE.md "Tests" (ties, all-equal rows, duplicates, +-100 entries).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/rng.hpp"
#include "host/sweep/backend.hpp"

namespace calibench::test_support {

/// float32 logits and labels as the sweeps read them.
struct dataset {
  std::int64_t n, k;
  std::vector<float> logits;
  std::vector<std::int32_t> labels;
  logit_set view() const { return {logits, labels, n, k}; }
};

/// Normal logits of scale 3, uniform labels; `adversarial` adds rows with +-100 entries (scaled
/// by 1/T = 10 they are 2000 apart: sums relative to the wrong maximum underflow), tied top
/// logits, all-equal rows and duplicated rows.
inline dataset make_dataset(std::int64_t n, std::int64_t k, std::uint64_t seed, bool adversarial) {
  auto rng = make_stream(seed, 0);
  dataset d{n, k, std::vector<float>(static_cast<std::size_t>(n * k)),
            std::vector<std::int32_t>(static_cast<std::size_t>(n))};
  for (auto& v : d.logits) v = static_cast<float>(3.0 * rng.normal());
  for (auto& y : d.labels) y = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(k)));
  if (adversarial) {
    for (std::int64_t i = 3; i < n; i += 4)
      for (std::int64_t j = 0; j < k; ++j)
        if (rng.uniform() < 0.2) d.logits[i * k + j] = rng.uniform() < 0.5 ? 100.0f : -100.0f;
    for (std::int64_t i = 0; i < n; i += 3) d.logits[i * k + (k - 1)] = d.logits[i * k];
    for (std::int64_t i = 1; i < n; i += 7)
      for (std::int64_t j = 0; j < k; ++j) d.logits[i * k + j] = 0.5f;
    for (std::int64_t i = 2; i + 1 < n; i += 5)
      for (std::int64_t j = 0; j < k; ++j) d.logits[(i + 1) * k + j] = d.logits[i * k + j];
  }
  return d;
}

/// The base seed of seeded tests: CALIBENCH_TEST_SEED when set (printed on failure), else fixed.
inline std::uint64_t base_seed() {
  if (const char* s = std::getenv("CALIBENCH_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  return 20240611;
}

}  // namespace calibench::test_support
