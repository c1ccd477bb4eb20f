// Percentile bootstrap intervals for the metric suite (docs/metrics.md, "Bootstrap").
#pragma once

#include <cstdint>
#include <vector>

#include "host/metrics/metrics.hpp"

namespace calibench {

struct bootstrap_options {
  std::int64_t resamples = 0;  ///< B
  std::uint64_t seed = 0;
  double level = 0.95;  ///< central coverage of the interval, a fraction
};

struct interval {
  double low = 0;
  double high = 0;
};

/// One interval per entry of metric_fields() (same order); NaN bounds where a metric is
/// undefined on every resample.
struct bootstrap_result {
  bootstrap_options options;
  std::vector<interval> intervals;
  std::vector<metric_set> values;  ///< every resample's metrics, in resample order (paired comparisons)
};

/// Resample indices of resample `b` (N draws with replacement), reproducible by any
/// implementation of the generator in docs/metrics.md.
std::vector<std::int64_t> bootstrap_indices(std::int64_t num_samples, std::uint64_t seed, std::int64_t b);

/// Quantile q of sorted values with numpy's default linear interpolation.
double linear_quantile(const std::vector<double>& sorted, double q);

/// Runs B resamples in parallel (results independent of the thread count).
bootstrap_result bootstrap_metrics(const scored_split& s, const metric_options& metrics,
                                   const bootstrap_options& options);

}  // namespace calibench
