// Percentile bootstrap over whole-split resamples; each resample has its own generator
// stream, so the intervals are the same for any thread count.
#include "host/metrics/bootstrap.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.hpp"
#include "common/parallel.hpp"
#include "common/rng.hpp"

namespace calibench {

std::vector<std::int64_t> bootstrap_indices(std::int64_t num_samples, std::uint64_t seed, std::int64_t b) {
  auto rng = make_stream(seed, static_cast<std::uint64_t>(b));
  std::vector<std::int64_t> rows(static_cast<std::size_t>(num_samples));
  for (auto& r : rows) r = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(num_samples)));
  return rows;
}

double linear_quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double h = static_cast<double>(sorted.size() - 1) * q;
  const auto lo = static_cast<std::size_t>(std::floor(h));
  if (lo + 1 >= sorted.size()) return sorted.back();
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[lo + 1] - sorted[lo]);
}

bootstrap_result bootstrap_metrics(const scored_split& s, const metric_options& metrics,
                                   const bootstrap_options& options) {
  if (options.resamples < 1) throw input_error("--bootstrap needs at least 1 resample");
  if (!(options.level > 0.0 && options.level < 1.0)) throw input_error("--level must be a fraction in (0, 1)");
  const auto fields = metric_fields();
  const auto b_count = static_cast<std::size_t>(options.resamples);
  std::vector<metric_set> values(b_count);
  thread_errors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::int64_t b = 0; b < options.resamples; ++b) {
    errors.run([&] {
      const auto rows = bootstrap_indices(s.num_samples, options.seed, b);
      values[static_cast<std::size_t>(b)] = compute_metrics(gather_rows(s, rows), metrics);
    });
  }
  errors.rethrow();
  bootstrap_result out;
  out.options = options;
  const double tail = (1.0 - options.level) / 2.0;
  for (const auto& f : fields) {
    std::vector<double> v;
    v.reserve(b_count);
    for (const auto& m : values) {
      const double x = m.*(f.member);
      if (std::isfinite(x)) v.push_back(x);
    }
    std::sort(v.begin(), v.end());
    out.intervals.push_back({linear_quantile(v, tail), linear_quantile(v, 1.0 - tail)});
  }
  out.values = std::move(values);
  return out;
}

}  // namespace calibench
