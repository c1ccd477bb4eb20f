// `cws --follow code`: class-wise weight scaling as the weight-scaling authors' code computes it
// (liorfrenkel1992/calibration @ 01ea29b, temperature_scaling.py set_temperature4, l.1756-2034,
// applied by bins_temperature_scale_test4; tests/reference/frenkel_code_ref.py cws_code and
// cws_apply_code; docs/calibrators.md, "cws --follow code").
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "host/calibrators/registry.hpp"

namespace calibench {

fitted fit_cws_code(const fit_input& in);

/// The map of a `cws --follow code` fit from its JSON `params` (edges B + 1, weights B).
std::shared_ptr<const calibration_map> load_cws_code(const nlohmann::json& params, const std::string& where);

}  // namespace calibench
