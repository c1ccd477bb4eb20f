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
#include "host/metrics/skce.hpp"

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
      {"ks_error", &metric_set::ks_error, true},
      {"ece_sweep", &metric_set::ece_sweep, true},
      {"aurc", &metric_set::aurc, true},
      {"eaurc", &metric_set::eaurc, true},
      {"brier_reliability", &metric_set::brier_reliability, false},
      {"brier_resolution", &metric_set::brier_resolution, false},
      {"brier_uncertainty", &metric_set::brier_uncertainty, false},
      {"skce", &metric_set::skce, false, true},
      {"skce_pvalue", &metric_set::skce_pvalue, false, true},
  };
  static_assert(std::size(fields) <= 32, "metric_selection holds one bit per field");
  return fields;
}

std::uint32_t default_metric_bits() {
  static const std::uint32_t bits = [] {
    std::uint32_t b = 0;
    const auto fields = metric_fields();
    for (std::size_t i = 0; i < fields.size(); ++i)
      if (!fields[i].on_request) b |= std::uint32_t{1} << static_cast<std::uint32_t>(i);
    return b;
  }();
  return bits;
}

metric_selection metric_selection::parse(std::string_view names) {
  if (names == "all") return all();
  metric_selection out{0};
  std::size_t pos = 0;
  while (pos <= names.size()) {
    const std::size_t end = std::min(names.find(',', pos), names.size());
    const std::string_view name = names.substr(pos, end - pos);
    pos = end + 1;
    const auto fields = metric_fields();
    const auto it = std::find_if(fields.begin(), fields.end(), [&](const metric_field& f) { return f.name == name; });
    if (it == fields.end()) {
      std::string valid;
      for (const auto& f : fields) valid += fmt::format("{}{}", valid.empty() ? "" : ", ", f.name);
      throw input_error(fmt::format("unknown metric '{}' in '{}' (metrics: {}; or all)", name, names, valid));
    }
    out.bits |= std::uint32_t{1} << static_cast<std::uint32_t>(it - fields.begin());
  }
  return out;
}

metric_selection metric_selection::of(std::initializer_list<std::string_view> names) {
  metric_selection out{0};
  const auto fields = metric_fields();
  for (const auto name : names) {
    const auto it = std::find_if(fields.begin(), fields.end(), [&](const metric_field& f) { return f.name == name; });
    CALIBENCH_EXPECTS(it != fields.end(), "unknown metric field");
    out.bits |= std::uint32_t{1} << static_cast<std::uint32_t>(it - fields.begin());
  }
  return out;
}

bool metric_selection::has(std::string_view name) const {
  const auto fields = metric_fields();
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].name == name) return has(i);
  }
  CALIBENCH_EXPECTS(false, "unknown metric field");
  return false;
}

bool metric_selection::any(std::initializer_list<std::string_view> names) const {
  return std::any_of(names.begin(), names.end(), [&](std::string_view name) { return has(name); });
}

metric_set compute_metrics(const scored_split& s, const metric_options& options) {
  CALIBENCH_EXPECTS(options.num_bins >= 1, "need at least one bin");
  CALIBENCH_EXPECTS(s.num_samples >= 1 && s.num_classes >= 2, "need N >= 1 and K >= 2");
  CALIBENCH_EXPECTS(options.nll_clip >= 0 && options.nll_clip < 0.5, "nll clip outside [0, 0.5)");
  const metric_selection& sel = options.selected;
  metric_set m;
  m.n = s.num_samples;
  m.k = s.num_classes;
  // Each family runs when one of its fields is asked for; `correct` feeds the top-label ones.
  const std::vector<double> correct =
      sel.any({"accuracy", "nll", "brier", "ece", "mce", "rmsce", "rmsce_debiased", "ace_unweighted", "adaece", "smece",
               "kde_ece", "r_auc", "ks_error", "ece_sweep", "aurc", "eaurc"})
          ? detail::proper_scores(s, options, m)
          : std::vector<double>();
  if (sel.any({"ece", "mce", "rmsce", "rmsce_debiased", "ace_unweighted", "brier_reliability", "brier_resolution",
               "brier_uncertainty"}))
    detail::binned_top_label(s, options, m);
  detail::sorted_top_label(s, correct, options, m);
  if (sel.has("adaece")) m.adaece = adaptive_ece(s.confidence, correct, options);
  if (sel.has("smece")) m.smece = smooth_ece(s.confidence, correct);
  if (sel.has("kde_ece")) m.kde_ece = kde_ece(s.confidence, correct);
  if (sel.has("r_auc")) m.r_auc = detail::retention_auc(s, correct);
  if (sel.any({"sce", "ace", "auroc"})) detail::classwise_metrics(s, options, m);
  if (sel.any({"precision", "recall", "f1"})) detail::macro_prf(s, m);
  if (sel.any({"skce", "skce_pvalue"})) {
    const skce_result r = compute_skce(s.probs, s.labels, s.num_classes, sel.has("skce_pvalue"));
    m.skce = r.skce;
    m.skce_pvalue = r.pvalue;
  }
  const auto fields = metric_fields();
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (!sel.has(i)) m.*(fields[i].member) = detail::k_nan;
  }
  return m;
}

}  // namespace calibench
