// BBQ (Naeini et al. 2015) and ENIR (Naeini and Cooper 2016) binary calibrators as netcal 1.4.0
// fits and predicts them with its defaults (netcal/binning/BBQ.py, HistogramBinning.py, ENIR.py,
// NearIsotonicRegression.py, AbstractCalibration.py of EFS-OpenSource/calibration-framework @
// 2a3db8d7cb2a557f3b563c98ce00954f43dfe927; spec docs/ports/bbq_enir.md, float64 reference
// tests/reference/netcal_binning_ref.py): one score p in [0, 1] per sample with a 0/1 target.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace calibench {

/// netcal's model score on the float64 log-likelihood: BIC (its default) or AIC.
enum class binning_score { bic, aic };

/// One BBQ candidate, netcal's HistogramBinning: b = values.size() equal-width bins with edges
/// numpy.linspace(0, 1, b + 1) and each bin's fraction of targets 1 (its midpoint when empty).
struct bbq_histogram {
  std::vector<double> edges, values;
};

/// A fitted BBQ: the candidates the elbow kept, best first, and their weights (sum 1).
struct bbq_model {
  binning_score score = binning_score::bic;
  std::int64_t num_samples = 0;
  std::vector<bbq_histogram> models;
  std::vector<double> weights;
};

/// One ENIR candidate as netcal leaves it: group g covers (lower_g, upper_g] ([0, upper_g] when
/// lower_g is 0) with value values_g, 0 outside every group; lambda is the near-isotonic penalty it
/// was recorded at. Its degrees of freedom are values.size().
struct nir_model {
  std::vector<double> lower, upper, values;
  double lambda = 0.0;
};

/// A fitted ENIR: the candidates the elbow kept, best first, and their weights (sum 1).
struct enir_model {
  binning_score score = binning_score::bic;
  bool quick_init = true;
  std::int64_t num_samples = 0;
  std::vector<nir_model> models;
  std::vector<double> weights;
};

/// BBQ's candidate bin counts for N training samples, inclusive: max(1, floor(c / 10)) ..
/// min(ceil(N / 5), ceil(10 c)) with c = pow(N, 1/3) (std::pow as numpy, not cbrt).
std::pair<std::int64_t, std::int64_t> bbq_bin_range(std::int64_t num_samples);

/// BBQ on (p, hit): one histogram per bin count of bbq_bin_range, scored, elbow-selected and
/// weighted as netcal does. input_error naming `where` for no samples, p outside [0, 1] or NaN,
/// or a target other than 0/1 (the first bad index).
bbq_model fit_bbq(std::span<const double> p, std::span<const std::uint8_t> hit, const std::string& where,
                  binning_score score = binning_score::bic);

/// A histogram at p with netcal's transform rule: bin j is (e_j, e_{j+1}], p <= e_1 in the first
/// bin, p > e_{b-1} in the last (NaN too, as numpy's searchsorted sorts it last).
double histogram_at(const bbq_histogram& h, double p);

/// The calibrated probability: the weighted sum of the kept histograms at p, clipped to [0, 1].
double bbq_at(const bbq_model& m, double p);

/// ENIR on (p, hit): p sorted stably (tied p keep their input order, where netcal's unstable
/// numpy argsort is not portable), the quick (default) or standard initial groups, netcal's
/// modified-PAVA path with its in-place aliasing, scored and elbow-selected. input_error naming
/// `where` for the bad inputs of fit_bbq and wherever netcal raises: the path pools all samples
/// into one group (e.g. all targets equal), the sorted targets are already isotonic (no
/// candidate), or a candidate leaves [0, 1] in float32 on a training sample (torch's BCE check).
enir_model fit_enir(std::span<const double> p, std::span<const std::uint8_t> hit, const std::string& where,
                    binning_score score = binning_score::bic, bool quick_init = true);

/// One NIR candidate at p: the value of the last group with lower < p (lower == 0 for p == 0)
/// when p <= its upper bound, else 0 (outside [0, 1], NaN and the gaps left by chain merges).
double nir_at(const nir_model& m, double p);

/// The calibrated probability: the weighted sum of the kept NIR models at p, clipped to [0, 1].
double enir_at(const enir_model& m, double p);

/// {"method": "bbq", "score", "n", "models": [{"bins", "edges", "values"}], "weights"}.
nlohmann::json to_json(const bbq_model& m);

/// {"method": "enir", "score", "quick_init", "n", "models": [{"lower", "upper", "values",
/// "lambda"}], "weights"}.
nlohmann::json to_json(const enir_model& m);

/// A saved BBQ, checked: >= 1 models, each with b >= 1 values in [0, 1] and the b + 1 linspace
/// edges; as many finite weights >= 0 summing to 1. input_error naming `where` otherwise.
bbq_model bbq_from_json(const nlohmann::json& j, const std::string& where);

/// A saved ENIR, checked: >= 1 models, each with n >= 1 finite values and bounds in [0, 1],
/// lower_g <= upper_g, both non-decreasing (nir_at's rule needs it); weights as for BBQ.
/// input_error naming `where` otherwise.
enir_model enir_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace calibench
