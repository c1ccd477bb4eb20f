// Bridges from a loaded split to the sweeps: float32 logits (probabilities become log p)
// and equal-mass calibration bins of the uncalibrated confidences.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "host/io/dump.hpp"
#include "host/sweep/backend.hpp"

namespace calibench {

/// Logits and labels owned for a sweep; `view()` is what backends read.
struct sweep_input {
  std::int64_t num_samples = 0;
  std::int64_t num_classes = 0;
  std::vector<float> logits;
  std::vector<std::int32_t> labels;
  logit_set view() const { return {logits, labels, num_samples, num_classes}; }
};

/// float32 logits of a split (probabilities p become log p; temperature scaling of log p
/// equals temperature scaling of the original logits up to a per-row constant).
sweep_input to_sweep_input(const split_data& split);

/// Calibration bin of every sample: equal-mass groups of `confidence` sorted ascending
/// (stable), sized like numpy.array_split into `num_bins` groups.
std::vector<std::int32_t> equal_mass_assignment(std::span<const double> confidence, std::int32_t num_bins);

}  // namespace calibench
