// The metric suite (docs/metrics.md): scored splits, the metric fields, and compute_metrics,
// which runs the families of host/metrics/families.hpp in turn. Everything accumulates in
// double; parallel loops run over rows or over classes with each unit's result stored
// separately and reduced in a fixed order, so results do not depend on the number of threads.
#include "host/metrics/metrics.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/metrics/families.hpp"

namespace calibench {

std::int64_t array_split_size(std::int64_t num_items, std::int64_t num_groups, std::int64_t group) {
  return num_items / num_groups + (group < num_items % num_groups ? 1 : 0);
}

std::span<const metric_field> metric_fields() {
  static const metric_field fields[] = {
      {"accuracy", &metric_set::accuracy, true},
      {"ece", &metric_set::ece, true},
      {"mce", &metric_set::mce, true},
      {"adaece", &metric_set::adaece, true},
      {"sce", &metric_set::sce, true},
      {"ace", &metric_set::ace, true},
      {"nll", &metric_set::nll, false},
      {"brier", &metric_set::brier, false},
      {"auroc", &metric_set::auroc, true},
      {"precision", &metric_set::precision, true},
      {"recall", &metric_set::recall, true},
      {"f1", &metric_set::f1, true},
      {"r_auc", &metric_set::r_auc, true},
      {"rmsce", &metric_set::rmsce, true},
      {"rmsce_debiased", &metric_set::rmsce_debiased, true},
      {"ace_unweighted", &metric_set::ace_unweighted, true},
      {"smece", &metric_set::smece, true},
      {"kde_ece", &metric_set::kde_ece, true},
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

metric_set compute_metrics(const scored_split& s, const metric_options& options) {
  CALIBENCH_EXPECTS(options.num_bins >= 1, "need at least one bin");
  CALIBENCH_EXPECTS(s.num_samples >= 1 && s.num_classes >= 2, "need N >= 1 and K >= 2");
  CALIBENCH_EXPECTS(options.nll_clip >= 0 && options.nll_clip < 0.5, "nll clip outside [0, 0.5)");
  metric_set m;
  m.n = s.num_samples;
  m.k = s.num_classes;
  const std::vector<double> correct = detail::proper_scores(s, options, m);
  detail::binned_top_label(s, options, m);
  m.adaece = adaptive_ece(s.confidence, correct, options);
  m.smece = smooth_ece(s.confidence, correct);
  m.kde_ece = kde_ece(s.confidence, correct);
  m.r_auc = detail::retention_auc(s, correct);
  detail::classwise_metrics(s, options, m);
  detail::macro_prf(s, m);
  return m;
}

}  // namespace calibench
