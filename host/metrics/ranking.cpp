// Ranking metrics (docs/metrics.md): the retention curve and its area, order inversions
// between two confidence vectors, per-class accuracy, macro precision / recall / F1.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "common/error.hpp"
#include "host/metrics/families.hpp"

namespace calibench {
namespace {

using detail::k_nan;

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

}  // namespace

namespace detail {

/// Indices ordered by `key` descending, ties by index ascending.
std::vector<std::int64_t> descending_order(std::span<const double> key) {
  std::vector<std::int64_t> order(key.size());
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::int64_t a, std::int64_t b) { return key[a] > key[b] || (key[a] == key[b] && a < b); });
  return order;
}

double retention_auc(const scored_split& s, std::span<const double> correct) {
  const std::int64_t n = s.num_samples;
  const double nd = static_cast<double>(n);
  // Keep the k most confident, count the rest as correct.
  const auto order = descending_order(s.confidence);
  double kept_correct = 0, previous = 1.0, area = 0;
  for (std::int64_t kept = 1; kept <= n; ++kept) {
    kept_correct += correct[order[kept - 1]];
    const double accuracy = (kept_correct + static_cast<double>(n - kept)) / nd;
    area += 0.5 * (previous + accuracy);
    previous = accuracy;
  }
  return area / nd;
}

void macro_prf(const scored_split& s, metric_set& m) {
  const std::int64_t n = s.num_samples;
  const std::int64_t k = s.num_classes;
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

}  // namespace detail

std::vector<double> retention_curve(const scored_split& s, std::int64_t points) {
  CALIBENCH_EXPECTS(points >= 2, "a retention curve needs at least two points");
  const std::int64_t n = s.num_samples;
  const auto order = detail::descending_order(s.confidence);
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
