// Bridges from a loaded split to the sweeps (host/sweep/sweep_input.hpp).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.hpp"
#include "host/metrics/metrics.hpp"
#include "host/sweep/sweep_input.hpp"

namespace calibench {

sweep_input to_sweep_input(const split_data& split) {
  sweep_input in;
  in.num_samples = split.num_samples;
  in.num_classes = split.num_classes;
  in.labels = split.labels;
  in.logits.resize(split.values.size());
  for (std::size_t i = 0; i < split.values.size(); ++i) {
    const double v = split.is_probs ? std::log(split.values[i]) : split.values[i];
    in.logits[i] = static_cast<float>(v);
  }
  return in;
}

std::vector<std::int32_t> equal_mass_assignment(std::span<const double> confidence, std::int32_t num_bins) {
  CALIBENCH_EXPECTS(num_bins >= 1, "need at least one bin");
  const auto n = static_cast<std::int64_t>(confidence.size());
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return confidence[a] < confidence[b]; });
  std::vector<std::int32_t> bin(static_cast<std::size_t>(n));
  std::int64_t pos = 0;
  for (std::int32_t g = 0; g < num_bins; ++g) {
    const std::int64_t size = array_split_size(n, num_bins, g);
    for (std::int64_t i = pos; i < pos + size; ++i) bin[order[i]] = g;
    pos += size;
  }
  return bin;
}

}  // namespace calibench
