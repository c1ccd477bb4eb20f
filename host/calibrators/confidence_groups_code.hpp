// `cws --follow code`: class-wise weight scaling as the weight-scaling authors' code computes it,
// and the code's equal-mass bins that `ws --follow code` shares
// (liorfrenkel1992/calibration @ 01ea29b, temperature_scaling.py set_temperature4, l.1756-2034,
// applied by bins_temperature_scale_test4; tests/reference/frenkel_code_ref.py cws_code and
// cws_apply_code; docs/calibrators.md, "cws --follow code").
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/calibrators/registry.hpp"
#include "host/metrics/metrics.hpp"

namespace calibench {

fitted fit_cws_code(const fit_input& in);

/// The code's equal-mass bins (histedges_equalN): edges np.interp(linspace(0, N, B + 1),
/// arange(N), sort(c)), bin b holding edges[b] < c <= edges[b + 1] (the smallest c in none),
/// and per bin the count, the correct predictions of `s` and the sum of c. `c` is one value per
/// row of `s` (its confidences, or capped ones).
struct code_bins {
  std::vector<double> edges, count, hits, sum_confidence;
};
code_bins code_equal_mass_bins(const std::vector<double>& c, const scored_split& s, std::int32_t bins);

/// The code's `mask.float().mean()`: float32(count) / float32(n).
double code_mean_f32(double count, double n);

/// The map of a `cws --follow code` fit from its JSON `params` (edges B + 1, weights B).
std::shared_ptr<const calibration_map> load_cws_code(const nlohmann::json& params, const std::string& where);

}  // namespace calibench
