// Calibration methods of the seed papers (docs/calibrators.md): fitting on a validation split
// with the sweep backends, applying fitted parameters to any split, saving and loading them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/io/dump.hpp"
#include "host/metrics/metrics.hpp"
#include "host/sweep/backend.hpp"
#include "host/calibrators/trained/trained_fit.hpp"

namespace calibench {

/// Options of `calibench fit` (docs/calibrators.md gives the defaults).
struct fit_options {
  std::string method = "ts";
  metric_options metrics;                 ///< evaluation bins M and conventions (the objective's bins too)
  std::string objective = "nll";          ///< ts: nll | ece | adaece; ets: nll | mse
  std::string grid;                       ///< empty: the method's default
  std::string calib_bins = "15";          ///< cws, cts_conf, bts: B or "auto"; hist: M
  std::int64_t iterations = -1;           ///< cts_greedy: cycles (-1: 5 for grid, 1000 for nudge);
                                          ///< vs, ms, cts_nll, ms_odir, dir_odir: L-BFGS iterations at
                                          ///< most per fit (-1: 1000)
  bool accuracy_constraint = true;        ///< cts_greedy
  std::string cts_search = "grid";        ///< cts_greedy: grid | nudge
  double odir_lambda = -1;                ///< ms_odir, dir_odir: fixed lambda (-1: cross-validated)
  double odir_mu = -1;                    ///< ms_odir, dir_odir: fixed mu (-1: cross-validated)
  train_options train;                    ///< loss-trained methods (ts+sctl, pts, ...; host/calibrators/trained/trained_fit.hpp);
                                          ///< `iterations` above sets train.iterations for them
};

/// A fitted calibrator: the method and its parameters (only those the method uses are set).
struct calibrator {
  std::string method;
  double temperature = 1.0;          ///< ts, ets
  double weight = 1.0;               ///< ws
  std::vector<double> edges;         ///< cws, cts_conf, bts: largest validation confidence per group;
                                     ///< hist: the M + 1 bin edges i/M
  std::vector<double> weights;       ///< cws (per group), vs (per class), ets (w1, w2, w3)
  std::vector<double> temperatures;  ///< cts_conf, bts (per group), cts_greedy, cts_nll (per class)
  std::vector<double> biases;        ///< vs, ms, ms_odir, dir_odir (per class)
  std::vector<double> matrix;        ///< ms, ms_odir, dir_odir: K x K, row-major
  double odir_lambda = 0, odir_mu = 0;   ///< ms_odir, dir_odir: the penalty weights used
  double odir_objective = 0;             ///< ms_odir, dir_odir: mean NLL plus penalty at the parameters
  std::vector<double> cv_lambdas, cv_mus, cv_nll;  ///< ms_odir, dir_odir: candidates, mean held-out NLL
                                                    ///< (empty when lambda and mu were given)
  std::vector<double> values;        ///< hist: mean validation correctness per bin (0 when empty)
  std::vector<std::int64_t> counts;  ///< hist: validation samples per bin
  std::vector<double> knots_x, knots_y;  ///< iso: breakpoints of the fitted function (x ascending)
  std::int64_t calib_bins = 0;       ///< cws, cts_conf, bts
  std::int64_t iterations_run = 0;   ///< cts_greedy (cycles); vs, ms, cts_nll, ms_odir, dir_odir (L-BFGS iterations)
  double initial_temperature = 1.0;  ///< cts_greedy
  double final_nll = 0;              ///< vs, ms, cts_nll, ms_odir, dir_odir: mean validation NLL at the parameters
  std::string stop;                  ///< vs, ms, cts_nll, ms_odir, dir_odir: gradient | objective | iterations | line_search
  std::string weight_objective;      ///< ets: what the weights minimise, nll | mse
  double final_objective = 0;        ///< ets: that objective on the validation split at the parameters
  std::optional<trained_model> trained;  ///< loss-trained methods (ts+sctl, pts, ...)

  /// The objective over the grid the fit searched (ts ece/adaece, ws; cts_greedy: its
  /// initial one-temperature grid), for metric-versus-candidate plots; empty otherwise.
  std::string curve_metric;
  std::vector<double> curve_candidates, curve_values;

  /// Parameters as the JSON `params` object of `calibench fit`.
  nlohmann::json params() const;
  /// {"method": ..., "params": ...}; from_json reads it back (throws input_error).
  nlohmann::json to_json() const;
  static calibrator from_json(const nlohmann::json& j, const std::string& where);

  /// The calibrated probabilities of a split, scored for the metric suite.
  scored_split apply(const split_data& split) const;
};

/// Names accepted by --method.
const std::vector<std::string>& method_names();

/// Whether fitting `options` runs on the sweep backend: the grid searches (ts with an ece or
/// adaece objective, ws, cws, cts_conf, bts, cts_greedy). Every other fit runs on the host
/// (vs, ms, ODIR, ets, hist, iso, ts by NLL, the loss-trained methods).
bool fit_uses_backend(const fit_options& options);

/// Fits `options.method` on the validation split with `backend`.
calibrator fit_calibrator(const split_data& val, const fit_options& options, sweep_backend& backend);

/// Uncalibrated scores of a split (softmax of the logits, or the stored probabilities).
scored_split uncalibrated(const split_data& split);

}  // namespace calibench
