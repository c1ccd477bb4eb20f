// Scoring helpers shared by the calibrator families (host/calibrators/scoring.hpp).
#include "host/calibrators/scoring.hpp"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/error.hpp"

namespace calibench {

double log_odds_against_rest(const double* row, std::int64_t k, std::int64_t j) {
  double m = -std::numeric_limits<double>::infinity();
  for (std::int64_t c = 0; c < k; ++c) {
    if (c != j) m = std::max(m, row[c]);
  }
  if (m == -std::numeric_limits<double>::infinity()) return std::numeric_limits<double>::infinity();  // p_j = 1
  double rest = 0;
  for (std::int64_t c = 0; c < k; ++c) {
    if (c != j) rest += std::exp(row[c] - m);
  }
  return row[j] - (m + std::log(rest));
}

std::vector<double> logits_of(const split_data& s) {
  if (!s.is_probs) return s.values;
  std::vector<double> z(s.values.size());
  for (std::size_t i = 0; i < z.size(); ++i) z[i] = std::log(s.values[i]);
  return z;
}

std::vector<double> finite_logits(std::vector<double> z, const split_data& split, const std::string& method) {
  for (std::size_t i = 0; i < z.size(); ++i) {
    if (!std::isfinite(z[i]))
      throw input_error(
          fmt::format("{}: {}: non-finite logit (log of a probability 0?) at row {}: {} needs "
                      "finite logits",
                      split.file, split.values_path(), i / static_cast<std::size_t>(split.num_classes), method));
  }
  return z;
}

scored_split uncalibrated(const split_data& split) {
  split_data copy = split;
  return score_split(std::move(copy));
}

split_data derived(const split_data& split, std::vector<double> values, bool is_probs) {
  split_data out;
  out.file = split.file;
  out.name = split.name;
  out.num_samples = split.num_samples;
  out.num_classes = split.num_classes;
  out.labels = split.labels;
  out.is_probs = is_probs;
  out.values = std::move(values);
  return out;
}

scored_split score_scaled(const split_data& s, const std::vector<double>& row_inverse,
                          const std::vector<double>& class_inverse) {
  const std::int64_t n = s.num_samples, k = s.num_classes;
  split_data scaled;
  scaled.num_samples = n;
  scaled.num_classes = k;
  scaled.labels = s.labels;
  scaled.values = logits_of(s);
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    double* row = scaled.values.data() + i * k;
    for (std::int64_t j = 0; j < k; ++j) {
      const double inv = row_inverse.empty() ? class_inverse[j] : row_inverse[i];
      row[j] = row[j] * inv;
    }
  }
  return score_split(std::move(scaled));
}

scored_split score_weighted(const split_data& s, const std::vector<double>& row_weight) {
  scored_split base = uncalibrated(s);
  const std::int64_t n = base.num_samples, k = base.num_classes;
  const double kd = static_cast<double>(k);
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    const double a = row_weight[i], u = (1.0 - a) / kd;
    double* row = base.probs.data() + i * k;
    for (std::int64_t j = 0; j < k; ++j) row[j] = a * row[j] + u;
    base.confidence[i] = row[base.prediction[i]];
    base.log_p_label[i] = std::log(row[base.labels[i]]);
  }
  return base;
}

/// The other classes share 1 - c' as p_j (1 - c')/(1 - c), computed as (p_j / r)(1 - c') with
/// r = sum of the other classes' probabilities (= 1 - c for a normalised row, without 1 - c's
/// cancellation; K = 2 then gives exactly 1 - c'). r = 0 (c = 1) spreads 1 - c' evenly.
scored_split rescale_top_label(scored_split base, const std::vector<double>& top) {
  const std::int64_t n = base.num_samples, k = base.num_classes;
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    const double calibrated = top[i], rest_mass = 1.0 - calibrated;
    const std::int32_t pred = base.prediction[i];
    double* row = base.probs.data() + i * k;
    double rest = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      if (j != pred) rest += row[j];
    }
    for (std::int64_t j = 0; j < k; ++j) {
      row[j] = rest > 0 ? row[j] / rest * rest_mass : rest_mass / static_cast<double>(k - 1);
    }
    row[pred] = calibrated;
    base.confidence[i] = calibrated;
    base.log_p_label[i] = std::log(row[base.labels[i]]);
  }
  return base;
}

}  // namespace calibench
