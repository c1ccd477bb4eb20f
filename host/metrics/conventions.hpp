// The metric conventions of other libraries as named options and presets (docs/metrics.md,
// "Conventions of other libraries"): parsing of the names the CLI, experiment specs and the
// Python module accept, the presets, and the names printed back.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "host/metrics/metrics.hpp"

namespace calibench {

/// Convention options as the user spelled them; empty strings (and an empty nll_clip) take
/// the preset's value.
struct convention_names {
  std::string preset = "calibench";
  std::string binning;
  std::string classwise_binning;
  std::string adaptive;
  std::string classwise_reduction;
  std::string brier;
  std::optional<double> nll_clip;
};

/// Metric options for `num_bins` bins under the named conventions; input_error naming the
/// option and the accepted names when a name is unknown or nll_clip is outside (0, 0.5).
metric_options resolve_conventions(const convention_names& names, std::int32_t num_bins);

/// The presets in the documented order (calibench first).
std::span<const std::string_view> preset_names();

binning parse_binning(std::string_view name);
adaptive_rule parse_adaptive(std::string_view name);
classwise_reduction parse_classwise_reduction(std::string_view name);
brier_rule parse_brier(std::string_view name);

const char* binning_name(binning rule);
const char* adaptive_name(adaptive_rule rule);
const char* classwise_reduction_name(classwise_reduction rule);
const char* brier_name(brier_rule rule);

/// {"preset", "binning", "classwise_binning", "adaptive", "classwise_reduction", "brier", "nll_clip"}.
nlohmann::json conventions_json(const metric_options& options);

}  // namespace calibench
