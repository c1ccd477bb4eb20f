// The metric suite of DESIGN section 3 on the CPU, accumulated in double: top-label,
// classwise and ranking metrics of one split, order inversions between two confidence
// vectors, reliability bins. docs/metrics.md states every definition exactly.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "host/dump.hpp"
#include "kernels/calib_math.hpp"

namespace calibench {

/// Probabilities and per-sample top-label statistics of one split: computed once, shared by
/// every metric and gathered row-wise for bootstrap resamples.
struct scored_split {
  std::int64_t num_samples = 0;
  std::int64_t num_classes = 0;
  std::vector<double> probs;             ///< row-major N x K probabilities
  std::vector<std::int32_t> labels;      ///< N
  std::vector<double> confidence;        ///< N, max_j p_nj
  std::vector<std::int32_t> prediction;  ///< N, argmax (lowest index on ties)
  std::vector<double> log_p_label;       ///< N, log p_{n, y_n}
};

/// Scores a split: softmax of logits (or probabilities as stored). Consumes `split.values`.
scored_split score_split(split_data&& split);

/// The rows `rows[0..]` of `s` in that order (a bootstrap resample).
scored_split gather_rows(const scored_split& s, std::span<const std::int64_t> rows);

struct metric_options {
  std::int32_t num_bins = 15;
  binning bin_rule = binning::right_closed;
};

/// Every metric of `calibench eval`. Undefined values (e.g. auroc with no class having both
/// positives and negatives) are NaN.
struct metric_set {
  std::int64_t n = 0;
  std::int64_t k = 0;
  double accuracy = 0, ece = 0, mce = 0, adaece = 0, sce = 0, sce_under = 0, sce_over = 0, ace = 0;
  double nll = 0, brier = 0, auroc = 0, precision = 0, recall = 0, f1 = 0, r_auc = 0;
};

/// Names of the metric_set fields in the JSON order of docs/metrics.md, with accessors.
struct metric_field {
  const char* name;
  double metric_set::*member;
  bool percent;  ///< printed x100 in tables
};
std::span<const metric_field> metric_fields();

metric_set compute_metrics(const scored_split& s, const metric_options& options);

/// Statistics of one equal-width bin.
struct bin_stats {
  std::int64_t count = 0;
  double sum_confidence = 0;
  double sum_correct = 0;
};

/// Equal-width bin statistics of top-label confidence (the reliability diagram).
std::vector<bin_stats> reliability_bins(const scored_split& s, const metric_options& options);

/// The retention curve (docs/metrics.md, r_auc) at `points` evenly spaced retention fractions
/// f = i / (points - 1): accuracy when the round(f N) most confident predictions are kept and
/// the rest count as correct.
std::vector<double> retention_curve(const scored_split& s, std::int64_t points);

/// Accuracy of the predictions among the samples of each class (recall), NaN for a class
/// without samples.
std::vector<double> class_accuracy(const scored_split& s);

/// Fraction of sample pairs whose confidence order is strictly reversed between `a` and `b`
/// (ties in either are not inversions); O(N log N) by merge counting.
double order_inversions(std::span<const double> a, std::span<const double> b);

/// Group sizes of numpy.array_split(N items, M groups).
std::int64_t array_split_size(std::int64_t num_items, std::int64_t num_groups, std::int64_t group);

}  // namespace calibench
