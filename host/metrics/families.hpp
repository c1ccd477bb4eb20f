// The metric families of the suite (host/metrics/metrics.hpp), one file each:
// top_label.cpp (accuracy, NLL, Brier and the equal-width and equal-mass top-label ECEs),
// classwise.cpp (SCE, ACE, one-vs-rest AUROC), ranking.cpp (retention, order inversions,
// macro precision / recall / F1), smooth_estimators.cpp (smECE, KDE ECE), sorted_estimators.cpp
// (KS error, ECE sweep, AURC and E-AURC). compute_metrics
// (metrics.cpp) runs them in turn. Internal to host/metrics/.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "host/metrics/metrics.hpp"

namespace calibench::detail {

inline constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

/// One row's Brier term sum_j (p_j - [j = y])^2, summed left to right with one fused
/// multiply-add per class where the target has FMA (std::fma: what the compiler made of
/// `brier += d * d` before, written out so that no inlining context can change it); `p(j)` gives p_j. proper_scores (on
/// kept probabilities) and the scoring pass (on the softmax terms, when the probabilities are not kept) both use it, so
/// the two give the same bits.
template <class Prob>
double brier_row(std::int64_t k, std::int32_t y, Prob p) {
  double brier = 0;
  for (std::int64_t j = 0; j < k; ++j) {
    const double d = p(j) - (j == y ? 1.0 : 0.0);
#if defined(__FMA__)
    brier = std::fma(d, d, brier);
#else
    brier += d * d;  // no FMA unit: software std::fma would be slow, and nothing contracts
#endif
  }
  return brier;
}

/// Correctness of each sample's prediction (1 or 0), and accuracy, NLL and Brier into `m`.
std::vector<double> proper_scores(const scored_split& s, const metric_options& options, metric_set& m);

/// ECE, MCE, RMSCE and its debiased form, unweighted ACE and the Brier decomposition from
/// the equal-width slots.
void binned_top_label(const scored_split& s, const metric_options& options, metric_set& m);

/// SCE, ACE and the macro one-vs-rest AUROC.
void classwise_metrics(const scored_split& s, const metric_options& options, metric_set& m);

/// The area under the retention curve (docs/metrics.md, r_auc).
double retention_auc(const scored_split& s, std::span<const double> correct);

/// Macro precision, recall and F1 over the labels present in y or in the predictions.
void macro_prf(const scored_split& s, metric_set& m);

/// ks_error, ece_sweep (ascending confidence order), aurc and eaurc (descending), as selected.
void sorted_top_label(const scored_split& s, std::span<const double> correct, const metric_options& options,
                      metric_set& m);

/// focal_calibration's equal-mass edges (histedges_equalN, AdaptiveECELoss): np.interp(
/// linspace(0, N, M + 1), arange(N), sorted) of ascending `sorted` (N >= 1): M + 1 edges, the
/// first the minimum, the last the maximum.
std::vector<double> interp_edges(std::span<const double> sorted, std::int32_t m);

/// Indices ordered by `key` ascending, ties by index ascending.
std::vector<std::int64_t> ascending_order(std::span<const double> key);

/// Indices ordered by `key` descending, ties by index ascending.
std::vector<std::int64_t> descending_order(std::span<const double> key);

/// Scratch buffers of sort_values, reused across calls.
struct radix_scratch {
  std::vector<std::uint64_t> keys, keys_out;
  std::vector<std::int64_t> index, index_out;
};

/// The pairs (values[i], i) in ascending (value, index) order into `sorted`: exactly what
/// std::sort of the pairs gives, for non-negative values without NaN (-0 counts as +0). A stable
/// LSD radix sort of the values' bit patterns (which order as the values do), 11-bit digits,
/// passes where every key has the same digit skipped; short inputs use std::sort.
void sort_values(std::span<const double> values, std::vector<std::pair<double, std::int64_t>>& sorted,
                 radix_scratch& scratch);

}  // namespace calibench::detail
