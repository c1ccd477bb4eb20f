// What every calibrator family uses to turn its parameters into scored probabilities: the
// logits of a split, softmax of scaled logits, the weight-scaling mixture, the top-label
// rescaling of hist / iso / platt, and splits derived from calibrated values. Float64.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/io/dump.hpp"
#include "host/metrics/metrics.hpp"

namespace calibench {

/// Logits of a split as double: stored logits, or log p for probability dumps.
std::vector<double> logits_of(const split_data& split);

/// `z` when every entry is finite; otherwise input_error naming the file, dataset and row
/// ("`method` needs finite logits").
std::vector<double> finite_logits(std::vector<double> z, const split_data& split, const std::string& method);

/// log(p_j / (1 - p_j)) of one row of logits: z_j - logsumexp of the other K - 1 (the max of
/// the others subtracted, their exponentials summed in class order), without 1 - p_j's
/// cancellation; platt's top-label and one-vs-rest scores.
double log_odds_against_rest(const double* row, std::int64_t k, std::int64_t j);

/// Uncalibrated scores of a split (softmax of the logits, or the stored probabilities).
scored_split uncalibrated(const split_data& split);

/// A split with the labels and names of `split` and new values (calibrated logits or
/// probabilities).
split_data derived(const split_data& split, std::vector<double> values, bool is_probs);

/// Scores softmax(z * inv) where inv is per row (row_inverse, N) or per class (class_inverse,
/// K; row_inverse empty); the prediction is the argmax of the scaled logits, lowest index on ties.
scored_split score_scaled(const split_data& split, const std::vector<double>& row_inverse,
                          const std::vector<double>& class_inverse);

/// Scores a p + (1 - a)/K with a per row; the prediction stays the uncalibrated one.
scored_split score_weighted(const split_data& split, const std::vector<double>& row_weight);

/// Replaces each row's top-label confidence by `top[i]` and scales the other classes to share
/// 1 - c' in proportion to their probabilities; the prediction stays the uncalibrated one.
scored_split rescale_top_label(scored_split base, const std::vector<double>& top);

}  // namespace calibench
