// CPU metric suite (docs/metrics.md). Everything accumulates in double; parallel loops run
// over rows or over classes with each unit's result stored separately and reduced in a fixed
// order, so results do not depend on the number of threads.
#include "host/metrics/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include <fmt/format.h>

#include "common/error.hpp"

namespace calibench {
namespace {

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

/// Classes gathered into contiguous columns at a time: each row contributes this many
/// adjacent doubles (512 bytes), which keeps the strided column gather cache-friendly.
constexpr std::int64_t k_class_block = 64;

/// Indices 0..n-1 ordered by `key` ascending, ties by index ascending.
std::vector<std::int64_t> ascending_order(std::span<const double> key) {
  std::vector<std::int64_t> order(key.size());
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return key[a] < key[b] || (key[a] == key[b] && a < b);
  });
  return order;
}

/// Indices ordered by `key` descending, ties by index ascending.
std::vector<std::int64_t> descending_order(std::span<const double> key) {
  std::vector<std::int64_t> order(key.size());
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return key[a] > key[b] || (key[a] == key[b] && a < b);
  });
  return order;
}

/// Per-class results, reduced in class order after the parallel loop.
struct class_result {
  double ece = 0, under = 0, over = 0;  // classwise equal-width ECE and its split
  double ace_sum = 0;                   // sum over non-empty equal-mass groups of |A - C|
  std::int64_t ace_groups = 0;
  double auroc = k_nan;  // NaN when the class has no positives or no negatives
};

/// Classwise metrics of one class from its column of probabilities.
class_result classwise_one(std::span<const double> column, std::span<const std::int32_t> labels, std::int32_t cls,
                           const metric_options& options, std::vector<bin_stats>& bins,
                           std::vector<std::pair<double, std::int64_t>>& sorted) {
  const auto n = static_cast<std::int64_t>(column.size());
  const std::int32_t m = options.num_bins;
  const binning rule = options.classwise_binning();
  class_result r;

  std::fill(bins.begin(), bins.end(), bin_stats{});
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t slot = bin_index(rule, column[i], m);
    if (slot < 0) continue;  // guo-strict: p = 0 is in no bin but counts in N
    auto& b = bins[static_cast<std::size_t>(slot)];
    b.count += 1;
    b.sum_confidence += column[i];
    b.sum_correct += labels[i] == cls ? 1.0 : 0.0;
  }
  for (const auto& b : bins) {
    const double gap = b.sum_correct - b.sum_confidence;
    r.ece += std::fabs(gap);
    r.under += std::max(0.0, gap);
    r.over += std::max(0.0, -gap);
  }
  r.ece /= static_cast<double>(n);
  r.under /= static_cast<double>(n);
  r.over /= static_cast<double>(n);

  sorted.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) sorted[i] = {column[i], i};
  std::sort(sorted.begin(), sorted.end());  // value ascending, ties by index: a stable order

  // ACE: equal-mass groups of the sorted column.
  std::int64_t pos = 0;
  for (std::int64_t g = 0; g < m; ++g) {
    const std::int64_t size = array_split_size(n, m, g);
    if (size == 0) continue;
    double sum_p = 0, sum_y = 0;
    for (std::int64_t i = pos; i < pos + size; ++i) {
      sum_p += sorted[i].first;
      sum_y += labels[sorted[i].second] == cls ? 1.0 : 0.0;
    }
    r.ace_sum += std::fabs(sum_y / static_cast<double>(size) - sum_p / static_cast<double>(size));
    r.ace_groups += 1;
    pos += size;
  }

  // AUROC: Mann-Whitney with average ranks over tie groups.
  std::int64_t positives = 0;
  double rank_sum = 0;
  for (std::int64_t a = 0; a < n;) {
    std::int64_t b = a;
    std::int64_t group_positives = 0;
    while (b < n && sorted[b].first == sorted[a].first) {
      group_positives += labels[sorted[b].second] == cls ? 1 : 0;
      ++b;
    }
    const double average_rank = 0.5 * static_cast<double>(a + 1 + b);  // ranks a+1..b
    rank_sum += average_rank * static_cast<double>(group_positives);
    positives += group_positives;
    a = b;
  }
  const std::int64_t negatives = n - positives;
  if (positives > 0 && negatives > 0) {
    const double p = static_cast<double>(positives);
    r.auroc = (rank_sum - p * (p + 1.0) / 2.0) / (p * static_cast<double>(negatives));
  }
  return r;
}

std::vector<class_result> classwise_all(const scored_split& s, const metric_options& options) {
  const std::int64_t n = s.num_samples;
  const std::int64_t k = s.num_classes;
  std::vector<class_result> results(static_cast<std::size_t>(k));
  const std::int64_t num_blocks = (k + k_class_block - 1) / k_class_block;
#pragma omp parallel
  {
    std::vector<double> columns;
    std::vector<bin_stats> bins(static_cast<std::size_t>(bin_slots(options.classwise_binning(), options.num_bins)));
    std::vector<std::pair<double, std::int64_t>> sorted;
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t block = 0; block < num_blocks; ++block) {
      const std::int64_t j0 = block * k_class_block;
      const std::int64_t width = std::min(k_class_block, k - j0);
      columns.resize(static_cast<std::size_t>(width * n));
      for (std::int64_t i = 0; i < n; ++i) {
        const double* row = s.probs.data() + i * k + j0;
        for (std::int64_t c = 0; c < width; ++c) columns[c * n + i] = row[c];
      }
      for (std::int64_t c = 0; c < width; ++c) {
        results[static_cast<std::size_t>(j0 + c)] =
            classwise_one(std::span<const double>(columns.data() + c * n, static_cast<std::size_t>(n)), s.labels,
                          static_cast<std::int32_t>(j0 + c), options, bins, sorted);
      }
    }
  }
  return results;
}

/// Counts pairs i < j with v[i] > v[j] (strict) in v[lo, hi), sorting it; `tmp` is scratch.
std::int64_t count_inversions(std::vector<double>& v, std::vector<double>& tmp, std::int64_t lo, std::int64_t hi) {
  if (hi - lo < 2) return 0;
  const std::int64_t mid = lo + (hi - lo) / 2;
  std::int64_t count = count_inversions(v, tmp, lo, mid) + count_inversions(v, tmp, mid, hi);
  std::int64_t i = lo, j = mid, out = lo;
  while (i < mid && j < hi) {
    if (v[j] < v[i]) {  // strict: equal values are not inversions
      count += mid - i;
      tmp[out++] = v[j++];
    } else {
      tmp[out++] = v[i++];
    }
  }
  while (i < mid) tmp[out++] = v[i++];
  while (j < hi) tmp[out++] = v[j++];
  std::copy(tmp.begin() + lo, tmp.begin() + hi, v.begin() + lo);
  return count;
}

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

/// numpy.quantile(sorted, q) with the default linear method, in numpy's arithmetic
/// (virtual index n q + (1 - q) - 1, and _lerp's two-sided form).
double numpy_quantile(const std::vector<double>& sorted, double q) {
  const auto n = static_cast<std::int64_t>(sorted.size());
  const double vi = static_cast<double>(n) * q + (1.0 + q * -1.0) - 1.0;
  if (vi >= static_cast<double>(n - 1)) return sorted[static_cast<std::size_t>(n - 1)];
  if (vi < 0) return sorted[0];
  const double prev = std::floor(vi);
  const double t = vi - prev;
  const double a = sorted[static_cast<std::size_t>(prev)], b = sorted[static_cast<std::size_t>(prev) + 1];
  const double diff = b - a;
  return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

}  // namespace

double adaptive_ece(std::span<const double> confidence, std::span<const double> correct, const metric_options& options) {
  const auto n = static_cast<std::int64_t>(confidence.size());
  const std::int32_t m = options.num_bins;
  CALIBENCH_EXPECTS(n >= 1 && m >= 1 && correct.size() == confidence.size(), "bad adaptive ECE input");
  const auto order = ascending_order(confidence);
  std::vector<double> sorted(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) sorted[i] = confidence[order[i]];
  std::vector<double> edges(static_cast<std::size_t>(m) + 1);

  switch (options.adaptive) {
    case adaptive_rule::split: {  // DESIGN: array_split groups, unweighted mean over groups
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
    case adaptive_rule::interp: {  // focal_calibration AdaptiveECELoss: np.interp(linspace(0, N, M+1), arange(N), sort(c))
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
      return edges_ece(confidence, correct, order, edges, true);
    }
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

std::int64_t array_split_size(std::int64_t num_items, std::int64_t num_groups, std::int64_t group) {
  return num_items / num_groups + (group < num_items % num_groups ? 1 : 0);
}

std::span<const metric_field> metric_fields() {
  static const metric_field fields[] = {
      {"accuracy", &metric_set::accuracy, true}, {"ece", &metric_set::ece, true},
      {"mce", &metric_set::mce, true},           {"adaece", &metric_set::adaece, true},
      {"sce", &metric_set::sce, true},           {"sce_under", &metric_set::sce_under, true},
      {"sce_over", &metric_set::sce_over, true}, {"ace", &metric_set::ace, true},
      {"nll", &metric_set::nll, false},          {"brier", &metric_set::brier, false},
      {"auroc", &metric_set::auroc, true},       {"precision", &metric_set::precision, true},
      {"recall", &metric_set::recall, true},     {"f1", &metric_set::f1, true},
      {"r_auc", &metric_set::r_auc, true},       {"rmsce", &metric_set::rmsce, true},
      {"rmsce_debiased", &metric_set::rmsce_debiased, true}, {"ace_unweighted", &metric_set::ace_unweighted, true},
      {"smece", &metric_set::smece, true},       {"kde_ece", &metric_set::kde_ece, true},
  };
  return fields;
}

scored_split score_split(split_data&& split) {
  scored_split s;
  s.num_samples = split.num_samples;
  s.num_classes = split.num_classes;
  s.labels = std::move(split.labels);
  s.probs = std::move(split.values);
  const std::int64_t n = s.num_samples;
  const std::int64_t k = s.num_classes;
  CALIBENCH_EXPECTS(static_cast<std::int64_t>(s.probs.size()) == n * k, "scores and shape disagree");
  // Dumps are validated on reading; this catches a calibrator that produced NaN (the sorts of
  // the equal-mass and classwise metrics need a strict weak order).
  for (std::size_t e = 0; e < s.probs.size(); ++e) {
    if (std::isnan(s.probs[e]) || (split.is_probs && !std::isfinite(s.probs[e])))
      throw input_error(fmt::format("{}: {}: the calibrated {} are not finite at row {} (a degenerate calibrator?)",
                                    split.file, split.name, split.is_probs ? "probabilities" : "logits",
                                    e / static_cast<std::size_t>(k)));
  }
  s.confidence.resize(static_cast<std::size_t>(n));
  s.prediction.resize(static_cast<std::size_t>(n));
  s.log_p_label.resize(static_cast<std::size_t>(n));
  const bool is_probs = split.is_probs;
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    double* row = s.probs.data() + i * k;
    const std::int32_t y = s.labels[i];
    if (is_probs) {
      std::int32_t pred = 0;
      for (std::int64_t j = 1; j < k; ++j) {
        if (row[j] > row[pred]) pred = static_cast<std::int32_t>(j);
      }
      s.confidence[i] = row[pred];
      s.prediction[i] = pred;
      s.log_p_label[i] = std::log(row[y]);
    } else {
      const auto t = softmax_top_label<double>(row, k, y);
      s.confidence[i] = t.confidence;
      s.prediction[i] = t.pred;
      s.log_p_label[i] = t.log_p_label;
      for (std::int64_t j = 0; j < k; ++j) row[j] = std::exp(row[j] - t.max_logit) / t.sum_exp;
    }
  }
  return s;
}

scored_split gather_rows(const scored_split& s, std::span<const std::int64_t> rows) {
  scored_split out;
  const auto n = static_cast<std::int64_t>(rows.size());
  const std::int64_t k = s.num_classes;
  out.num_samples = n;
  out.num_classes = k;
  out.probs.resize(static_cast<std::size_t>(n * k));
  out.labels.resize(static_cast<std::size_t>(n));
  out.confidence.resize(static_cast<std::size_t>(n));
  out.prediction.resize(static_cast<std::size_t>(n));
  out.log_p_label.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t r = rows[i];
    std::copy_n(s.probs.data() + r * k, k, out.probs.data() + i * k);
    out.labels[i] = s.labels[r];
    out.confidence[i] = s.confidence[r];
    out.prediction[i] = s.prediction[r];
    out.log_p_label[i] = s.log_p_label[r];
  }
  return out;
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

metric_set compute_metrics(const scored_split& s, const metric_options& options) {
  CALIBENCH_EXPECTS(options.num_bins >= 1, "need at least one bin");
  CALIBENCH_EXPECTS(s.num_samples >= 1 && s.num_classes >= 2, "need N >= 1 and K >= 2");
  const std::int64_t n = s.num_samples;
  const std::int64_t k = s.num_classes;
  const double nd = static_cast<double>(n);
  metric_set m;
  m.n = n;
  m.k = k;

  CALIBENCH_EXPECTS(options.nll_clip >= 0 && options.nll_clip < 0.5, "nll clip outside [0, 0.5)");
  std::vector<double> correct(static_cast<std::size_t>(n));
  double sum_correct = 0, sum_nll = 0, sum_brier = 0;
  const bool clip = options.nll_clip > 0;
  const double log_lo = clip ? std::log(options.nll_clip) : 0.0;
  const double log_hi = clip ? std::log(1.0 - options.nll_clip) : 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    correct[i] = s.prediction[i] == s.labels[i] ? 1.0 : 0.0;
    sum_correct += correct[i];
    sum_nll -= clip ? std::clamp(s.log_p_label[i], log_lo, log_hi) : s.log_p_label[i];
    if (options.brier == brier_rule::top_label) {
      const double d = s.confidence[i] - correct[i];
      sum_brier += d * d;
      continue;
    }
    const double* row = s.probs.data() + i * k;
    double brier = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      const double d = row[j] - (j == s.labels[i] ? 1.0 : 0.0);
      brier += d * d;
    }
    sum_brier += brier;
  }
  m.accuracy = sum_correct / nd;
  m.nll = sum_nll / nd;
  m.brier = sum_brier / nd;
  if (options.brier == brier_rule::per_class_mean) m.brier /= static_cast<double>(k);

  // Top-label equal-width slots: ECE, MCE, RMSCE and its debiased form, unweighted ACE.
  {
    double squared = 0, debiased = 0, unweighted = 0;
    std::int64_t non_empty = 0;
    for (const auto& b : reliability_bins(s, options)) {
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
  }

  m.adaece = adaptive_ece(s.confidence, correct, options);
  m.smece = smooth_ece(s.confidence, correct);
  m.kde_ece = kde_ece(s.confidence, correct);

  // Retention curve: keep the k most confident, count the rest as correct.
  {
    const auto order = descending_order(s.confidence);
    double kept_correct = 0, previous = 1.0, area = 0;
    for (std::int64_t kept = 1; kept <= n; ++kept) {
      kept_correct += correct[order[kept - 1]];
      const double accuracy = (kept_correct + static_cast<double>(n - kept)) / nd;
      area += 0.5 * (previous + accuracy);
      previous = accuracy;
    }
    m.r_auc = area / nd;
  }

  // Classwise: SCE with its under/over split, ACE, one-vs-rest AUROC.
  {
    const auto per_class = classwise_all(s, options);
    double ace_sum = 0, auroc_sum = 0;
    std::int64_t ace_groups = 0, auroc_classes = 0;
    for (const auto& r : per_class) {
      m.sce += r.ece;
      m.sce_under += r.under;
      m.sce_over += r.over;
      ace_sum += r.ace_sum;
      ace_groups += r.ace_groups;
      if (!std::isnan(r.auroc)) {
        auroc_sum += r.auroc;
        auroc_classes += 1;
      }
    }
    if (options.reduction == classwise_reduction::mean) {
      const double kd = static_cast<double>(k);
      m.sce /= kd;
      m.sce_under /= kd;
      m.sce_over /= kd;
    }
    m.ace = ace_sum / static_cast<double>(ace_groups);
    m.auroc = auroc_classes > 0 ? auroc_sum / static_cast<double>(auroc_classes) : k_nan;
  }

  // Macro precision / recall / F1 over labels present in y or in the predictions.
  {
    std::vector<std::int64_t> tp(static_cast<std::size_t>(k)), predicted(static_cast<std::size_t>(k)),
        actual(static_cast<std::size_t>(k));
    for (std::int64_t i = 0; i < n; ++i) {
      predicted[s.prediction[i]] += 1;
      actual[s.labels[i]] += 1;
      if (s.prediction[i] == s.labels[i]) tp[s.labels[i]] += 1;
    }
    double p_sum = 0, r_sum = 0, f_sum = 0;
    std::int64_t present = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      if (predicted[j] == 0 && actual[j] == 0) continue;
      present += 1;
      const double t = static_cast<double>(tp[j]);
      if (predicted[j] > 0) p_sum += t / static_cast<double>(predicted[j]);
      if (actual[j] > 0) r_sum += t / static_cast<double>(actual[j]);
      f_sum += 2.0 * t / static_cast<double>(predicted[j] + actual[j]);
    }
    const double pd = static_cast<double>(present);
    m.precision = p_sum / pd;
    m.recall = r_sum / pd;
    m.f1 = f_sum / pd;
  }
  return m;
}

std::vector<double> retention_curve(const scored_split& s, std::int64_t points) {
  CALIBENCH_EXPECTS(points >= 2, "a retention curve needs at least two points");
  const std::int64_t n = s.num_samples;
  const auto order = descending_order(s.confidence);
  // Accuracy after keeping k predictions, for every k, then sampled at the requested points.
  std::vector<double> kept_correct(static_cast<std::size_t>(n + 1), 0.0);
  for (std::int64_t k = 1; k <= n; ++k)
    kept_correct[k] = kept_correct[k - 1] + (s.prediction[order[k - 1]] == s.labels[order[k - 1]] ? 1.0 : 0.0);
  std::vector<double> curve(static_cast<std::size_t>(points));
  for (std::int64_t i = 0; i < points; ++i) {
    const auto k = static_cast<std::int64_t>(
        std::llround(static_cast<double>(i) / static_cast<double>(points - 1) * static_cast<double>(n)));
    curve[i] = (kept_correct[k] + static_cast<double>(n - k)) / static_cast<double>(n);
  }
  return curve;
}

std::vector<double> class_accuracy(const scored_split& s) {
  std::vector<double> hits(static_cast<std::size_t>(s.num_classes)), count(static_cast<std::size_t>(s.num_classes));
  for (std::int64_t i = 0; i < s.num_samples; ++i) {
    count[s.labels[i]] += 1;
    hits[s.labels[i]] += s.prediction[i] == s.labels[i] ? 1.0 : 0.0;
  }
  for (std::size_t j = 0; j < hits.size(); ++j) hits[j] = count[j] > 0 ? hits[j] / count[j] : k_nan;
  return hits;
}

double order_inversions(std::span<const double> a, std::span<const double> b) {
  CALIBENCH_EXPECTS(a.size() == b.size(), "confidence vectors differ in length");
  const auto n = static_cast<std::int64_t>(a.size());
  if (n < 2) return 0.0;
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  // Sorted by a, ties by b: pairs tied in a are then never counted as inversions of b.
  std::sort(order.begin(), order.end(),
            [&](std::int64_t x, std::int64_t y) { return a[x] < a[y] || (a[x] == a[y] && b[x] < b[y]); });
  std::vector<double> v(static_cast<std::size_t>(n)), tmp(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[i] = b[order[i]];
  const std::int64_t inversions = count_inversions(v, tmp, 0, n);
  const double pairs = 0.5 * static_cast<double>(n) * static_cast<double>(n - 1);
  return static_cast<double>(inversions) / pairs;
}

}  // namespace calibench
