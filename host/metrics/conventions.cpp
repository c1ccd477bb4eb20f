// Convention names and presets (docs/metrics.md, "Conventions of other libraries").
#include "host/metrics/conventions.hpp"

#include <array>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.hpp"

namespace calibench {
namespace {

template <class Enum>
struct named {
  std::string_view name;
  Enum value;
};

constexpr std::array<named<binning>, 5> k_binnings{{{"right-closed", binning::right_closed},
                                                    {"guo-strict", binning::guo_strict},
                                                    {"left-closed", binning::left_closed},
                                                    {"torchmetrics", binning::torchmetrics},
                                                    {"digitize-linspace", binning::digitize_linspace}}};
constexpr std::array<named<adaptive_rule>, 5> k_adaptive{{{"split", adaptive_rule::split},
                                                          {"interp", adaptive_rule::interp},
                                                          {"quantile", adaptive_rule::quantile},
                                                          {"midpoint", adaptive_rule::midpoint},
                                                          {"floor-count", adaptive_rule::floor_count}}};
constexpr std::array<named<classwise_reduction>, 2> k_reductions{
    {{"mean", classwise_reduction::mean}, {"sum", classwise_reduction::sum}}};
constexpr std::array<named<brier_rule>, 3> k_briers{
    {{"sum", brier_rule::sum}, {"per-class-mean", brier_rule::per_class_mean}, {"top-label", brier_rule::top_label}}};

template <class Enum, std::size_t N>
Enum parse(const std::array<named<Enum>, N>& table, std::string_view name, std::string_view option) {
  std::vector<std::string_view> names;
  for (const auto& entry : table) {
    if (entry.name == name) return entry.value;
    names.push_back(entry.name);
  }
  throw input_error(fmt::format("{} '{}' is not a known name (one of: {})", option, name, fmt::join(names, ", ")));
}

template <class Enum, std::size_t N>
const char* name_of(const std::array<named<Enum>, N>& table, Enum value) {
  for (const auto& entry : table) {
    if (entry.value == value) return entry.name.data();
  }
  return "?";
}

/// One preset: the row of the presets table in docs/metrics.md.
struct preset {
  std::string_view name;
  binning bin_rule;
  binning classwise_rule;
  adaptive_rule adaptive;
  classwise_reduction reduction;
  brier_rule brier;
  double nll_clip;
};

constexpr std::array<preset, 8> k_presets{{
    // calibench's own (docs/metrics.md).
    {"calibench", binning::right_closed, binning::right_closed, adaptive_rule::split, classwise_reduction::mean,
     brier_rule::sum, 0.0},
    // torchmetrics 1.9.0 functional/classification/calibration_error.py.
    {"torchmetrics", binning::torchmetrics, binning::torchmetrics, adaptive_rule::split, classwise_reduction::mean,
     brier_rule::sum, 0.0},
    // netcal 1.4.0 metrics/Miscalibration.py (np.histogramdd bins; equal_intervals=False quantiles).
    {"netcal", binning::left_closed, binning::left_closed, adaptive_rule::quantile, classwise_reduction::mean,
     brier_rule::sum, 0.0},
    // torrvision/focal_calibration 475422a Metrics/metrics.py (ECELoss, AdaptiveECELoss, ClasswiseECELoss).
    {"focal", binning::guo_strict, binning::guo_strict, adaptive_rule::interp, classwise_reduction::mean,
     brier_rule::sum, 0.0},
    // markus93/NN_calibration 91f0563 scripts/utility/evaluation.py (ECE, MCE; sklearn log_loss).
    {"guo", binning::guo_strict, binning::guo_strict, adaptive_rule::split, classwise_reduction::mean, brier_rule::sum,
     1e-15},
    // dirichletcal/experiments_dnn scripts/utility/evaluation.py as it produced the NeurIPS'19 tables.
    {"dirichlet", binning::right_closed, binning::digitize_linspace, adaptive_rule::split, classwise_reduction::sum,
     brier_rule::per_class_mean, 1e-15},
    // uncertainty-calibration 0.1.4 calibration/utils.py (get_ece, get_ece_em).
    {"verified-calibration", binning::right_closed, binning::right_closed, adaptive_rule::midpoint,
     classwise_reduction::mean, brier_rule::sum, 0.0},
    // zhang64-llnl/Mix-n-Match-Calibration e41afba util_calibration.py (ece_hist_binary; NLL clip 1e-20).
    {"mixnmatch", binning::right_closed, binning::right_closed, adaptive_rule::floor_count, classwise_reduction::mean,
     brier_rule::sum, 1e-20},
}};

constexpr std::array<std::string_view, k_presets.size()> k_preset_names = [] {
  std::array<std::string_view, k_presets.size()> names{};
  for (std::size_t i = 0; i < k_presets.size(); ++i) names[i] = k_presets[i].name;
  return names;
}();

const preset& find_preset(std::string_view name) {
  for (const auto& p : k_presets) {
    if (p.name == name) return p;
  }
  throw input_error(
      fmt::format("--conventions '{}' is not a known preset (one of: {})", name, fmt::join(k_preset_names, ", ")));
}

}  // namespace

binning parse_binning(std::string_view name) { return parse(k_binnings, name, "--binning"); }
adaptive_rule parse_adaptive(std::string_view name) { return parse(k_adaptive, name, "--adaptive"); }
classwise_reduction parse_classwise_reduction(std::string_view name) {
  return parse(k_reductions, name, "--classwise-reduction");
}
brier_rule parse_brier(std::string_view name) { return parse(k_briers, name, "--brier"); }

const char* binning_name(binning rule) { return name_of(k_binnings, rule); }
const char* adaptive_name(adaptive_rule rule) { return name_of(k_adaptive, rule); }
const char* classwise_reduction_name(classwise_reduction rule) { return name_of(k_reductions, rule); }
const char* brier_name(brier_rule rule) { return name_of(k_briers, rule); }

std::span<const std::string_view> preset_names() { return k_preset_names; }

metric_options resolve_conventions(const convention_names& names, std::int32_t num_bins) {
  if (num_bins < 1) throw input_error(fmt::format("--bins {} must be at least 1", num_bins));
  const preset& p = find_preset(names.preset.empty() ? "calibench" : names.preset);
  metric_options o;
  o.num_bins = num_bins;
  o.preset = std::string(p.name);
  o.bin_rule = names.binning.empty() ? p.bin_rule : parse_binning(names.binning);
  // An explicit --binning also moves the classwise bins when the preset bins both the same
  // way (every preset but dirichlet) and they are not named themselves.
  o.classwise_rule = !names.classwise_binning.empty()                           ? parse_binning(names.classwise_binning)
                     : !names.binning.empty() && p.classwise_rule == p.bin_rule ? o.bin_rule
                                                                                : p.classwise_rule;
  o.adaptive = names.adaptive.empty() ? p.adaptive : parse_adaptive(names.adaptive);
  o.reduction = names.classwise_reduction.empty() ? p.reduction : parse_classwise_reduction(names.classwise_reduction);
  o.brier = names.brier.empty() ? p.brier : parse_brier(names.brier);
  o.nll_clip = p.nll_clip;
  if (names.nll_clip) {
    const double eps = *names.nll_clip;
    if (!std::isfinite(eps) || eps <= 0.0 || eps >= 0.5)
      throw input_error(fmt::format("--nll-clip {} must be in (0, 0.5)", eps));
    o.nll_clip = eps;
  }
  return o;
}

nlohmann::json conventions_json(const metric_options& o) {
  return {{"preset", o.preset},
          {"binning", binning_name(o.bin_rule)},
          {"classwise_binning", binning_name(o.classwise_binning())},
          {"adaptive", adaptive_name(o.adaptive)},
          {"classwise_reduction", classwise_reduction_name(o.reduction)},
          {"brier", brier_name(o.brier)},
          {"nll_clip", o.nll_clip > 0 ? nlohmann::json(o.nll_clip) : nlohmann::json(nullptr)}};
}

}  // namespace calibench
