// Top-label metrics (docs/metrics.md): accuracy, NLL, Brier, the equal-width ECE, MCE, RMSCE
// and unweighted ACE, and adaECE under every --adaptive rule.
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "common/error.hpp"
#include "host/metrics/families.hpp"

namespace calibench {
namespace {

using detail::ascending_order;
using detail::k_nan;

/// Weighted ECE `sum_b n_b/N |A_b - C_b|` of the samples in `order` (ascending confidence)
/// over bins with edges e_0..e_M: right-closed bins (e_j, e_{j+1}] (a sample <= e_0 is in no
/// bin), or numpy-histogram bins [e_j, e_{j+1}) with the last closed.
double edges_ece(std::span<const double> confidence, std::span<const double> correct,
                 std::span<const std::int64_t> order, std::span<const double> edges, bool right_closed) {
  const auto n = static_cast<std::int64_t>(order.size());
  const auto m = static_cast<std::int64_t>(edges.size()) - 1;
  std::vector<double> sum_c(static_cast<std::size_t>(m), 0.0), sum_a(static_cast<std::size_t>(m), 0.0);
  std::vector<std::int64_t> count(static_cast<std::size_t>(m), 0);
  const auto inner = edges.subspan(1, static_cast<std::size_t>(m - 1));
  for (std::int64_t r = 0; r < n; ++r) {
    const std::int64_t i = order[r];
    const double c = confidence[i];
    std::int64_t b = 0;
    if (right_closed) {
      if (!(c > edges[0]) || c > edges[m]) continue;
      b = std::lower_bound(inner.begin(), inner.end(), c) - inner.begin();  // edges < c
    } else {
      if (c < edges[0] || c > edges[m]) continue;
      b = std::upper_bound(inner.begin(), inner.end(), c) - inner.begin();  // edges <= c
    }
    sum_c[b] += c;
    sum_a[b] += correct[i];
    count[b] += 1;
  }
  double total = 0;
  for (std::int64_t b = 0; b < m; ++b) {
    if (count[b] == 0) continue;
    const double cnt = static_cast<double>(count[b]);
    total += cnt / static_cast<double>(n) * std::fabs(sum_a[b] / cnt - sum_c[b] / cnt);
  }
  return total;
}

/// numpy.quantile(sorted, q) with the default linear method, in numpy's arithmetic: virtual
/// index (n - 1) q (numpy's `linear` get_virtual_index, numpy/lib/_function_base_impl.py; the
/// mathematically equal n q + (1 - q) - 1 rounds differently), then _lerp's two-sided form.
double numpy_quantile(const std::vector<double>& sorted, double q) {
  const auto n = static_cast<std::int64_t>(sorted.size());
  const double vi = static_cast<double>(n - 1) * q;
  if (vi >= static_cast<double>(n - 1)) return sorted[static_cast<std::size_t>(n - 1)];
  if (vi < 0) return sorted[0];
  const double prev = std::floor(vi);
  const double t = vi - prev;
  const double a = sorted[static_cast<std::size_t>(prev)], b = sorted[static_cast<std::size_t>(prev) + 1];
  const double diff = b - a;
  return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

}  // namespace

namespace detail {

std::vector<double> interp_edges(std::span<const double> sorted, std::int32_t m) {
  const auto n = static_cast<std::int64_t>(sorted.size());
  std::vector<double> edges(static_cast<std::size_t>(m) + 1);
  const double step = static_cast<double>(n) / static_cast<double>(m);
  for (std::int32_t j = 0; j <= m; ++j) {
    const double x = j == m ? static_cast<double>(n) : static_cast<double>(j) * step;
    if (x >= static_cast<double>(n - 1)) {
      edges[j] = sorted[static_cast<std::size_t>(n - 1)];
    } else {
      const double k = std::floor(x);
      const auto ki = static_cast<std::size_t>(k);
      edges[j] = x == k ? sorted[ki] : (sorted[ki + 1] - sorted[ki]) * (x - k) + sorted[ki];
    }
  }
  return edges;
}

std::vector<double> proper_scores(const scored_split& s, const metric_options& options, metric_set& m) {
  const std::int64_t n = s.num_samples;
  const std::int64_t k = s.num_classes;
  const double nd = static_cast<double>(n);
  std::vector<double> correct(static_cast<std::size_t>(n));
  double sum_correct = 0, sum_nll = 0, sum_brier = 0;
  const bool clip = options.nll_clip > 0;
  const double log_lo = clip ? std::log(options.nll_clip) : 0.0;
  const double log_hi = clip ? std::log(1.0 - options.nll_clip) : 0.0;
  const bool with_brier = options.selected.has("brier");  // the one pass over every class here
  CALIBENCH_EXPECTS(!with_brier || options.brier == brier_rule::top_label || !s.probs.empty() || !s.brier_terms.empty(),
                    "the Brier score needs the probabilities or the Brier terms (score_needs)");
  for (std::int64_t i = 0; i < n; ++i) {
    correct[i] = s.prediction[i] == s.labels[i] ? 1.0 : 0.0;
    sum_correct += correct[i];
    sum_nll -= clip ? std::clamp(s.log_p_label[i], log_lo, log_hi) : s.log_p_label[i];
    if (!with_brier) continue;
    if (options.brier == brier_rule::top_label) {
      const double d = s.confidence[i] - correct[i];
      sum_brier += d * d;
      continue;
    }
    if (!s.brier_terms.empty()) {
      sum_brier += s.brier_terms[i];
      continue;
    }
    const double* row = s.probs.data() + i * k;
    sum_brier += brier_row(k, s.labels[i], [&](std::int64_t j) { return row[j]; });
  }
  m.accuracy = sum_correct / nd;
  m.nll = sum_nll / nd;
  m.brier = sum_brier / nd;
  if (options.brier == brier_rule::per_class_mean) m.brier /= static_cast<double>(k);
  return correct;
}

void binned_top_label(const scored_split& s, const metric_options& options, metric_set& m) {
  const double nd = static_cast<double>(s.num_samples);
  double squared = 0, debiased = 0, unweighted = 0;
  std::int64_t non_empty = 0;
  const std::vector<bin_stats> bins = reliability_bins(s, options);
  for (const auto& b : bins) {
    if (b.count == 0) continue;
    const double cnt = static_cast<double>(b.count);
    const double acc = b.sum_correct / cnt, conf = b.sum_confidence / cnt;
    const double gap = std::fabs(acc - conf);
    m.ece += std::fabs(b.sum_correct - b.sum_confidence);
    m.mce = std::max(m.mce, gap);
    squared += cnt * gap * gap;
    if (b.count >= 2) debiased += cnt * (gap * gap - acc * (1.0 - acc) / (cnt - 1.0));
    unweighted += gap;
    non_empty += 1;
  }
  m.ece /= nd;
  m.rmsce = std::sqrt(squared / nd);
  m.rmsce_debiased = std::sqrt(std::max(0.0, debiased / nd));
  m.ace_unweighted = non_empty > 0 ? unweighted / static_cast<double>(non_empty) : k_nan;
  // Murphy's decomposition of the top-label Brier score over the same slots.
  double hits = 0;
  for (const auto& b : bins) hits += b.sum_correct;
  const double base_rate = hits / nd;
  double reliability = 0, resolution = 0;
  for (const auto& b : bins) {
    if (b.count == 0) continue;
    const double cnt = static_cast<double>(b.count);
    const double acc = b.sum_correct / cnt, conf = b.sum_confidence / cnt;
    reliability += cnt * (conf - acc) * (conf - acc);
    resolution += cnt * (acc - base_rate) * (acc - base_rate);
  }
  m.brier_reliability = reliability / nd;
  m.brier_resolution = resolution / nd;
  m.brier_uncertainty = base_rate * (1.0 - base_rate);
}

}  // namespace detail

double adaptive_ece(std::span<const double> confidence, std::span<const double> correct,
                    const metric_options& options) {
  const auto n = static_cast<std::int64_t>(confidence.size());
  const std::int32_t m = options.num_bins;
  CALIBENCH_EXPECTS(n >= 1 && m >= 1 && correct.size() == confidence.size(), "bad adaptive ECE input");
  const auto order = ascending_order(confidence);
  std::vector<double> sorted(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) sorted[i] = confidence[order[i]];
  std::vector<double> edges(static_cast<std::size_t>(m) + 1);

  switch (options.adaptive) {
    case adaptive_rule::split: {  // calibench: array_split groups, unweighted mean over groups
      std::int64_t pos = 0, groups = 0;
      double total = 0;
      for (std::int64_t g = 0; g < m; ++g) {
        const std::int64_t size = array_split_size(n, m, g);
        if (size == 0) continue;
        double sum_c = 0, sum_a = 0;
        for (std::int64_t i = pos; i < pos + size; ++i) {
          sum_c += sorted[i];
          sum_a += correct[order[i]];
        }
        total += std::fabs(sum_a / static_cast<double>(size) - sum_c / static_cast<double>(size));
        groups += 1;
        pos += size;
      }
      return total / static_cast<double>(groups);
    }
    case adaptive_rule::interp:  // focal_calibration AdaptiveECELoss
      return edges_ece(confidence, correct, order, detail::interp_edges(sorted, m), true);
    case adaptive_rule::quantile: {  // netcal: np.quantile(c, linspace(0, 1, M+1)), ends 0 and 1, histogram bins
      const double step = 1.0 / static_cast<double>(m);
      for (std::int32_t j = 1; j < m; ++j) edges[j] = numpy_quantile(sorted, static_cast<double>(j) * step);
      edges[0] = 0.0;
      edges[m] = 1.0;
      return edges_ece(confidence, correct, order, edges, false);
    }
    case adaptive_rule::midpoint: {  // verified_calibration get_equal_bins: midpoints between array_split groups
      const std::int64_t groups = std::min<std::int64_t>(m, n);
      std::vector<double> upper;
      std::int64_t pos = 0;
      for (std::int64_t g = 0; g + 1 < groups; ++g) {
        pos += array_split_size(n, groups, g);
        upper.push_back((sorted[pos - 1] + sorted[pos]) / 2.0);
      }
      upper.push_back(1.0);
      std::sort(upper.begin(), upper.end());
      upper.erase(std::unique(upper.begin(), upper.end()), upper.end());
      // searchsorted(upper, c, side="left"): bins (u_{b-1}, u_b], c <= u_0 in the first.
      std::vector<double> e(upper.size() + 1);
      e[0] = -std::numeric_limits<double>::infinity();
      std::copy(upper.begin(), upper.end(), e.begin() + 1);
      e.back() = std::numeric_limits<double>::infinity();  // the last upper edge (1.0) closes nothing
      return edges_ece(confidence, correct, order, e, true);
    }
    case adaptive_rule::floor_count: {  // Mix-n-Match ece_hist_binary
      const std::int64_t width = n / m;
      edges[0] = 0.0;
      for (std::int32_t i = 0; i + 1 < m; ++i)
        edges[i + 1] = sorted[static_cast<std::size_t>(std::min<std::int64_t>((i + 1) * width, n - 1))];
      edges[m] = 1.0;
      return edges_ece(confidence, correct, order, edges, true);
    }
  }
  return k_nan;
}

std::vector<bin_stats> reliability_bins(const scored_split& s, const metric_options& options) {
  CALIBENCH_EXPECTS(options.num_bins >= 1, "need at least one bin");
  std::vector<bin_stats> bins(static_cast<std::size_t>(options.slots()));
  for (std::int64_t i = 0; i < s.num_samples; ++i) {
    const std::int32_t slot = bin_index(options.bin_rule, s.confidence[i], options.num_bins);
    if (slot < 0) continue;  // guo-strict: confidence 0 is in no bin but counts in N
    auto& b = bins[static_cast<std::size_t>(slot)];
    b.count += 1;
    b.sum_confidence += s.confidence[i];
    b.sum_correct += s.prediction[i] == s.labels[i] ? 1.0 : 0.0;
  }
  return bins;
}

}  // namespace calibench
