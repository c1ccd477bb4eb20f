// The metric suite of docs/metrics.md on the CPU, accumulated in double: top-label,
// classwise and ranking metrics of one split, order inversions between two confidence
// vectors, reliability bins. docs/metrics.md states every definition exactly.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "host/io/dump.hpp"
#include "kernels/calib_math.hpp"

namespace calibench {

/// Probabilities and per-sample top-label statistics of one split: computed once, shared by
/// every metric and gathered row-wise for bootstrap resamples.
struct scored_split {
  std::int64_t num_samples = 0;
  std::int64_t num_classes = 0;
  std::vector<double> probs;             ///< row-major N x K probabilities; empty when not kept
  std::vector<std::int32_t> labels;      ///< N
  std::vector<double> confidence;        ///< N, max_j p_nj
  std::vector<std::int32_t> prediction;  ///< N, argmax (lowest index on ties)
  std::vector<double> log_p_label;       ///< N, log p_{n, y_n}
  std::vector<double> brier_terms;       ///< N, sum_j (p_nj - [j = y_n])^2 when asked for; else empty
};

/// What a scoring pass keeps besides confidence, prediction and log p_y.
struct score_needs {
  bool probs = true;         ///< the N x K probabilities (classwise metrics, calibrators, `apply`)
  bool brier_terms = false;  ///< each row's Brier term (the Brier score without the probabilities)
};

/// Scores a split: softmax of logits (or probabilities as stored), in place in `split.values`,
/// which it consumes. Throws input_error at a NaN (a degenerate calibrator's output).
///
/// The softmax of docs/metrics.md in double, as tests/reference/calib_ref.py computes it: m =
/// max_j z_j, the terms exp(z_j - m) (std::exp) summed left to right into S, p_j = term_j / S,
/// confidence 1 / S, log p_y = z_y - m - log S. The ranking metrics (AUROC, r_auc, the
/// equal-mass bins, isotonic fits) depend on the exact bits through their ties.
scored_split score_split(split_data&& split, const score_needs& needs = {});

/// Scores that the caller holds (a NumPy array): float32 or float64 rows of `cols` entries,
/// `row_stride` elements apart, read where they lie and checked as a dump split is
/// (check_score_rows, naming `where`). Labels must already be in [0, cols).
template <class In>
struct score_rows {
  const In* data = nullptr;
  std::int64_t rows = 0, cols = 0, row_stride = 0;
};
template <class In>
scored_split score_values(const score_rows<In>& values, std::span<const std::int32_t> labels, bool is_probs,
                          const std::string& where, const score_needs& needs);

/// The rows `rows[0..]` of `s` in that order (a bootstrap resample).
scored_split gather_rows(const scored_split& s, std::span<const std::int64_t> rows);

/// Equal-mass bins of `adaece` (docs/metrics.md, "--adaptive").
enum class adaptive_rule : std::int32_t { split, interp, quantile, midpoint, floor_count };
/// How classwise ECE combines classes.
enum class classwise_reduction : std::int32_t { mean, sum };
/// Which Brier score.
enum class brier_rule : std::int32_t { sum, per_class_mean, top_label };

/// The bits of the metrics computed by default: every metric_fields() entry but those computed
/// only on request (skce, skce_pvalue: quadratic in N).
std::uint32_t default_metric_bits();

/// Which metrics to compute: bit i is metric_fields()[i] (docs/metrics.md, "--metrics"). A
/// family of metrics runs only when one of its fields is selected; the others are left NaN and
/// left out of every report.
struct metric_selection {
  std::uint32_t bits = default_metric_bits();

  /// The default selection: every metric but the on-request ones.
  static metric_selection all() { return {}; }
  /// "ece,nll,..." (metric_fields() names, comma-separated, any order; "all" alone for the
  /// default selection, without the on-request metrics);
  /// throws input_error naming the unknown name and listing the valid ones.
  static metric_selection parse(std::string_view names);
  /// Exactly the given fields (names as metric_fields() spells them; a wrong name is a bug).
  static metric_selection of(std::initializer_list<std::string_view> names);
  bool has(std::size_t field) const { return field < 32 && ((bits >> field) & 1U) != 0; }
  bool has(std::string_view name) const;
  bool any(std::initializer_list<std::string_view> names) const;
};

/// Metric options. The defaults are calibench's own (docs/metrics.md); host/metrics/conventions.hpp builds the other
/// libraries' conventions from their names.
struct metric_options {
  std::int32_t num_bins = 15;
  binning bin_rule = binning::right_closed;
  /// Bins of the classwise metrics; unset: the same as bin_rule.
  std::optional<binning> classwise_rule;
  adaptive_rule adaptive = adaptive_rule::split;
  classwise_reduction reduction = classwise_reduction::mean;
  brier_rule brier = brier_rule::sum;
  double nll_clip = 0;               ///< 0: none, else p_y clipped to [eps, 1 - eps]
  std::string preset = "calibench";  ///< the preset these came from, for reports
  metric_selection selected;         ///< the metrics to compute (default: all)

  /// calibench's conventions with M bins under `rule`.
  static metric_options with_bins(std::int32_t bins, binning rule = binning::right_closed) {
    metric_options o;
    o.num_bins = bins;
    o.bin_rule = rule;
    return o;
  }
  binning classwise_binning() const { return classwise_rule.value_or(bin_rule); }
  std::int32_t slots() const { return bin_slots(bin_rule, num_bins); }
};

/// Every metric of `calibench eval`. Undefined values (e.g. auroc with no class having both
/// positives and negatives) and metrics not selected are NaN.
struct metric_set {
  std::int64_t n = 0;
  std::int64_t k = 0;
  double accuracy = 0, ece = 0, mce = 0, adaece = 0, sce = 0, ace = 0;
  double nll = 0, brier = 0, auroc = 0, precision = 0, recall = 0, f1 = 0, r_auc = 0;
  double rmsce = 0, rmsce_debiased = 0, ace_unweighted = 0, smece = 0, kde_ece = 0;
  double ks_error = 0, ece_sweep = 0, aurc = 0, eaurc = 0;
  double brier_reliability = 0, brier_resolution = 0, brier_uncertainty = 0;
  double skce = 0, skce_pvalue = 0;
};

/// Names of the metric_set fields in the JSON order of docs/metrics.md, with accessors.
struct metric_field {
  const char* name;
  double metric_set::*member;
  bool percent;             ///< printed x100 in tables
  bool on_request = false;  ///< computed only when named (not in the default selection, nor in "all")
};
std::span<const metric_field> metric_fields();

/// What compute_metrics under `options.selected` reads (and breakdown_classwise, if
/// `classwise`): the probabilities only for the classwise metrics.
score_needs needs_of(const metric_options& options, bool classwise = false);

metric_set compute_metrics(const scored_split& s, const metric_options& options);

/// Statistics of one equal-width bin.
struct bin_stats {
  std::int64_t count = 0;
  double sum_confidence = 0;
  double sum_correct = 0;
};

/// Equal-width bin statistics of top-label confidence (the reliability diagram): one entry per
/// slot of options.bin_rule (M, or M + 1 under torchmetrics).
std::vector<bin_stats> reliability_bins(const scored_split& s, const metric_options& options);

/// The retention curve (docs/metrics.md, r_auc) at `points` evenly spaced retention fractions
/// f = i / (points - 1): accuracy when the round(f N) most confident predictions are kept and
/// the rest count as correct.
std::vector<double> retention_curve(const scored_split& s, std::int64_t points);

/// The under/over split of classwise ECE (the class-based TS paper's equations 3-5 and its
/// Figure 1): per class j, ECE_j = sum_i |B_ij|/N |A_ij - C_ij| = under_j + over_j with
/// max(0, A_ij - C_ij) and max(0, C_ij - A_ij); per bin slot i, the same terms summed over the
/// classes and reduced as `sce` is (mean over classes, or their sum), so that
/// sum_i (bin_under_i + bin_over_i) = sce. Summed over classes and bins the under and over
/// parts are equal whenever every row sums to 1 (sum_ij (y_ij - p_ij) = 0), which is why the
/// split is reported per class and per bin only.
struct class_calibration {
  std::int64_t count = 0;  ///< samples with label j
  double accuracy = 0;     ///< fraction of them predicted j (recall); NaN without samples
  double ece = 0, under = 0, over = 0;
};
struct classwise_breakdown {
  std::vector<class_calibration> classes;   ///< K
  std::vector<double> bin_under, bin_over;  ///< one per slot of options.classwise_binning()
};
classwise_breakdown breakdown_classwise(const scored_split& s, const metric_options& options);

/// Accuracy of the predictions among the samples of each class (recall), NaN for a class
/// without samples.
std::vector<double> class_accuracy(const scored_split& s);

/// Fraction of sample pairs whose confidence order is strictly reversed between `a` and `b`
/// (ties in either are not inversions); O(N log N) by merge counting.
double order_inversions(std::span<const double> a, std::span<const double> b);

/// The equal-mass ECE (`adaece`) of (confidence, correct) pairs under options.adaptive with
/// options.num_bins bins (docs/metrics.md, "--adaptive").
double adaptive_ece(std::span<const double> confidence, std::span<const double> correct, const metric_options& options);

/// Smooth ECE of (confidence, correct) pairs, relplot 1.0.3's smECE (docs/metrics.md);
/// `sigma` > 0 evaluates at that bandwidth instead of searching for the fixed point.
double smooth_ece(std::span<const double> confidence, std::span<const double> correct, double sigma = 0);

/// Mix-n-Match's KDE estimate of the top-label ECE (docs/metrics.md); NaN when undefined.
double kde_ece(std::span<const double> confidence, std::span<const double> correct);

/// Group sizes of numpy.array_split(N items, M groups).
std::int64_t array_split_size(std::int64_t num_items, std::int64_t num_groups, std::int64_t group);

}  // namespace calibench
