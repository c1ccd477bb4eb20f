// One validated fit request from `key=value` options, for every front end: the CLI flags
// (--calib-bins), the Python keyword arguments (calib_bins=) and the sweep-spec keys
// (calib_bins = ...) are the same names with the same checks and the same error wording.
// Each option is a row of one table (fit_option_table); each method lists the options that
// apply to it (host/calibrators/registry.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/calibrators/logit_map_fit.hpp"
#include "host/calibrators/trained/trained_fit.hpp"
#include "host/metrics/metrics.hpp"
#include "host/sweep/backend.hpp"

namespace calibench {

/// What a fit minimises: ts by NLL, ECE or adaECE; ets's weights by NLL or MSE; the others NLL.
enum class fit_objective : std::int32_t { nll, ece, adaece, mse, tva };
const char* objective_name(fit_objective objective);

/// cts_greedy's search: the paper's exhaustive grid, or the authors' code's nudges.
enum class class_search : std::int32_t { grid, nudge };

/// `--multiclass` of the binary-score calibrators (platt, beta, hist, iso): their default
/// (binary for K = 2 and top-label otherwise for platt and beta; top-label for hist and iso),
/// the top-label confidence, or one calibrator per class as scikit-learn's
/// CalibratedClassifierCV fits them (docs/calibrators.md, "--multiclass one-vs-rest").
enum class multiclass_rule : std::int32_t { automatic, top_label, one_vs_rest };

/// `--calib-bins`: B calibration groups (or "auto": the best of 2..50 by validation adaECE);
/// hist's bins M.
struct calib_bins_option {
  bool automatic = false;
  std::int64_t count = 15;
  std::string text = "15";  ///< as given, for reports
};

struct fit_request {
  std::string method;      ///< a registry name (host/calibrators/registry.hpp)
  metric_options metrics;  ///< evaluation bins and conventions (the objective's bins too)
  backend_choice backend = backend_choice::automatic;
  fit_objective objective = fit_objective::nll;
  std::string grid;  ///< candidates as given; empty: the method's default
  calib_bins_option calib_bins;
  bool follow_code = false;                    ///< ws, cts_greedy: --follow code (the authors' code)
  std::optional<std::int32_t> objective_bins;  ///< given: `metrics.num_bins` of the fit (not of its evaluation)
  std::int32_t evaluation_bins = 15;           ///< the bins the request was parsed with (its results' bins)
  std::optional<std::int64_t> iterations;      ///< none: the method's default
  bool accuracy_constraint = true;             ///< cts_greedy
  class_search search = class_search::grid;
  multiclass_rule multiclass = multiclass_rule::automatic;  ///< platt, beta, hist, iso
  bool platt_smoothed = false;      ///< platt: Platt's targets (N+ + 1)/(N+ + 2), 1/(N- + 2) instead of 1, 0
  std::optional<map_penalty> odir;  ///< ms_odir, dir_odir: fixed (lambda, mu); none: cross-validated
  std::int64_t spline_knots = 6;    ///< spline: knots of the natural cubic spline
  bool spline_authors = false;      ///< spline: the authors' code's swapped interpolation weights
  bool tva_regularisation = true;   ///< vs_tva, ms_odir_tva: the authors' _reg_tva penalty on the diagonal
  std::optional<double> l2_lambda;  ///< dir_l2, dir_diag: fixed L2 weight; none: dir_l2 cross-validated, dir_diag 0
  train_options train;              ///< loss-trained methods; `iterations` sets train.iterations
  std::vector<std::string> given;   ///< the keys that were given, in table order
  bool was_given(std::string_view key) const;
};

/// One option: its key (the spec key and Python keyword; the CLI flag is --key-with-dashes),
/// its help line, and which methods it applies to (for help and for the refusal message).
struct fit_option {
  std::string_view key;
  std::string_view help;
  std::string_view applies_to;
  std::string_view refusal_note = {};  ///< appended to "--key applies to ..., not METHOD"
  bool training = false;               ///< an option of the loss-trained methods
};

/// Every fit option, in the order help and reports list them.
std::span<const fit_option> fit_option_table();

/// "--calib-bins" for "calib_bins".
std::string option_flag(std::string_view key);

/// Options as (key, value text) pairs, in the order given.
using option_list = std::vector<std::pair<std::string, std::string>>;

/// The request for `method` with `options`: input_error for an unknown method or key, a key
/// given twice, a value that does not parse or is out of range, or an option that does not
/// apply to the method, naming the option as its CLI flag (e.g. "--calib-bins must be a
/// positive integer or 'auto' (got '0')").
fit_request parse_fit_request(const std::string& method, const option_list& options, const metric_options& metrics,
                              backend_choice backend = backend_choice::automatic);

/// The options of `request` as `calibench fit --format json` reports them ("options"), the
/// defaults of options that were not given included.
nlohmann::json request_json(const fit_request& request);

}  // namespace calibench
