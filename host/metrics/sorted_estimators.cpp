// Estimators on the confidence order (docs/metrics.md, "Estimators on the confidence order"):
// the KS calibration error (Gupta et al. 2021), the monotone-sweep ECE (Roelofs et al. 2022),
// and the area under the risk-coverage curve with its excess over the optimal order (Geifman
// et al. 2019). Each is one pass over a sorted order; sums run left to right in that order.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "host/metrics/families.hpp"

namespace calibench {
namespace {

/// max_i |h_i| with h_i = (1/N) sum_{j <= i} (correct_j - c_j) over `ascending` (stable order).
double ks_error(std::span<const double> confidence, std::span<const double> correct,
                std::span<const std::int64_t> ascending) {
  double h = 0, worst = 0;
  for (const std::int64_t i : ascending) {
    h += correct[i] - confidence[i];
    worst = std::max(worst, std::fabs(h));
  }
  return worst / static_cast<double>(ascending.size());
}

/// Whether the accuracies of the b array_split groups of `ascending` never decrease; `hits`
/// holds the prefix counts of correct predictions (integers, so group accuracies are exact
/// ratios, computed as the reference computes them: count / size).
bool monotone_groups(std::span<const std::int64_t> hits, std::int64_t b) {
  const auto n = static_cast<std::int64_t>(hits.size()) - 1;
  double previous = -std::numeric_limits<double>::infinity();
  std::int64_t pos = 0;
  for (std::int64_t g = 0; g < b; ++g) {
    const std::int64_t size = array_split_size(n, b, g);
    const double acc = static_cast<double>(hits[pos + size] - hits[pos]) / static_cast<double>(size);
    if (acc < previous) return false;
    previous = acc;
    pos += size;
  }
  return true;
}

/// Roelofs et al.'s ECE_sweep: the largest b before the first b (from 1 up) whose equal-mass
/// group accuracies are not monotone non-decreasing, and the weighted ECE of its b groups.
/// O(N + b*^2) with prefix counts: b* is small unless accuracy rises with confidence almost all
/// the way (a correctness sequence that never decreases is found in O(N) and gives b* = N; one
/// that decreases rarely can still cost about N^2 / 8 steps).
double ece_sweep(std::span<const double> confidence, std::span<const double> correct,
                 std::span<const std::int64_t> ascending) {
  const auto n = static_cast<std::int64_t>(ascending.size());
  std::vector<std::int64_t> hits(static_cast<std::size_t>(n + 1), 0);
  for (std::int64_t r = 0; r < n; ++r) hits[r + 1] = hits[r] + (correct[ascending[r]] != 0 ? 1 : 0);
  // Correctness already non-decreasing in the ascending order (all right, all wrong, or wrong
  // then right) makes every b monotone: b* = N without the quadratic loop.
  bool sorted = true;
  for (std::int64_t r = 1; r < n && sorted; ++r) sorted = correct[ascending[r - 1]] <= correct[ascending[r]];
  std::int64_t b = sorted ? n : 1;
  while (b < n && monotone_groups(hits, b + 1)) ++b;
  double total = 0;
  std::int64_t pos = 0;
  for (std::int64_t g = 0; g < b; ++g) {
    const std::int64_t size = array_split_size(n, b, g);
    double sum_c = 0;
    for (std::int64_t r = pos; r < pos + size; ++r) sum_c += confidence[ascending[r]];
    const double cnt = static_cast<double>(size);
    const double acc = static_cast<double>(hits[pos + size] - hits[pos]) / cnt;
    total += cnt / static_cast<double>(n) * std::fabs(acc - sum_c / cnt);
    pos += size;
  }
  return total;
}

}  // namespace

namespace detail {

std::vector<std::int64_t> ascending_order(std::span<const double> key) {
  std::vector<std::int64_t> order(key.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
  std::sort(order.begin(), order.end(),
            [&](std::int64_t a, std::int64_t b) { return key[a] < key[b] || (key[a] == key[b] && a < b); });
  return order;
}

void sorted_top_label(const scored_split& s, std::span<const double> correct, const metric_options& options,
                      metric_set& m) {
  const metric_selection& sel = options.selected;
  if (sel.any({"ks_error", "ece_sweep"})) {
    const auto ascending = ascending_order(s.confidence);
    if (sel.has("ks_error")) m.ks_error = ks_error(s.confidence, correct, ascending);
    if (sel.has("ece_sweep")) m.ece_sweep = ece_sweep(s.confidence, correct, ascending);
  }
  if (!sel.any({"aurc", "eaurc"})) return;
  // Risk at coverage k/N: the errors among the k most confident (ties by index) over k.
  const auto descending = descending_order(s.confidence);
  const std::int64_t n = s.num_samples;
  double errors = 0, area = 0;
  for (std::int64_t k = 1; k <= n; ++k) {
    errors += 1.0 - correct[descending[k - 1]];
    area += errors / static_cast<double>(k);
  }
  // The optimal order puts the E errors last: risk*_k = max(0, k - (N - E)) / k.
  const auto total_errors = static_cast<std::int64_t>(errors);
  double optimal = 0;
  for (std::int64_t k = n - total_errors + 1; k <= n; ++k)
    optimal += static_cast<double>(k - (n - total_errors)) / static_cast<double>(k);
  const double nd = static_cast<double>(n);
  m.aurc = area / nd;
  m.eaurc = area / nd - optimal / nd;
}

}  // namespace detail
}  // namespace calibench
