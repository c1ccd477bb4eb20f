// Loss-trained calibrators of `calibench fit` (docs/calibrators.md
// "Loss-trained calibrators"): a base map (ts, ets, ets_sctl, cts_nll, pts, pts_sctl) trained
// with a loss (ce, ls, fl, lsplus, sctl; pts's own mse) by the optimisers the class-wise loss
// scaling code uses: torch's L-BFGS without line search (one step(closure) call per stage) for
// the temperature maps, full-batch Adam for the networks, with the ls/fl learning-rate schedule.
// Float64 on the host; row sums in fixed chunks added in order: bit-reproducible for any thread
// count.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/calibrators/trained/lsplus.hpp"
#include "host/calibrators/trained/sctl.hpp"
#include "host/io/dump.hpp"

namespace calibench {

/// The base maps. ts: z / t. ets: w1 softmax(z / t) + w2 softmax(z) + w3 / K on the simplex
/// (Zhang 2020; t trained as ts, then w by SLSQP). ets_sctl: softmax(w0 z / t + w1 z + w2 / K),
/// w unconstrained (the loss-scaling code's ETS; t, then w). cts_nll: z / T_j. pts: an MLP on the
/// sorted top-s logits of clip(z, -100, 100) gives t(x), T = clip(|t|, 1e-12, 1e12) (Tomani 2022's
/// code). pts_sctl: the loss-scaling code's PTS, T = t(x) of a fixed s-2-2-2-2-1 ReLU MLP on the
/// top s = min(--pts-top-k 10, K) sorted logits, no clamp.
enum class trained_base : std::int32_t { ts, ets, ets_sctl, cts_nll, pts, pts_sctl };

/// The training losses (means over samples except sctl): ce; ls (label smoothing, torch's
/// label_smoothing semantics); fl (focal); lsplus (LS+: (1 - a) CE + a KL(v^y || p)); sctl (sum
/// over classes of (1 + w_i) L_i, host/calibrators/trained/sctl.hpp); mse (mean over samples and classes of
/// (p - onehot)^2: pts's own loss, Keras MeanSquaredError).
enum class trained_loss : std::int32_t { ce, ls, fl, lsplus, sctl, mse };

struct trained_method {
  trained_base base = trained_base::ts;
  trained_loss loss = trained_loss::ce;
};

/// "ts+sctl", "cts_nll+fl", "ets_sctl" (= ets_sctl+ce), "pts_sctl" (= pts_sctl+ce), "pts" (= its mse
/// loss), ...; std::nullopt for any other name (plain ts, ets, cts_nll are the converged fits of
/// host/calibrators/calibrator.cpp).
std::optional<trained_method> parse_trained_method(std::string_view name);
/// Every name parse_trained_method accepts, in a fixed order (the aliases ets_sctl+ce,
/// pts_sctl+ce and pts+mse of the plain names included).
const std::vector<std::string>& trained_method_names();
std::string trained_method_name(const trained_method& m);
const char* trained_base_name(trained_base b);
const char* trained_loss_name(trained_loss l);

/// The ls/fl learning-rate schedule: auto (on for ls and fl), on, off.
enum class train_schedule : std::int32_t { automatic, on, off };
const char* train_schedule_name(train_schedule schedule);

/// Options of the training (docs/calibrators.md gives the defaults and their sources); the
/// request parser (host/calibrators/request.cpp) sets them from the fit options.
struct train_options {
  double ls_alpha = 0.05;       ///< ls: label-smoothing weight
  double fl_gamma = 3.0;        ///< fl: focusing parameter
  bool focal_detached = false;  ///< fl: treat (1 - p_y)^gamma as a constant in the gradient (the SCTL code)
  double lsplus_weight = 0.5;   ///< lsplus: a in (1 - a) CE + a KL
  lsplus_perfect lsplus_rule = lsplus_perfect::uniform;
  sctl_fit_options sctl;         ///< sctl: normalisation, grid, solver
  double lr = -1;                ///< -1: 0.02 (one stage), or the ls/fl schedule
  std::int64_t iterations = -1;  ///< L-BFGS max_iter / Adam steps of one stage (-1: 1000)
  train_schedule schedule = train_schedule::automatic;
  double tolerance_grad = 1e-7;    ///< L-BFGS: stop when max |g| <= this (torch's default)
  double tolerance_change = 1e-9;  ///< L-BFGS: stop when the loss or the step moves by less (torch's default)
  std::uint64_t seed = 1;          ///< pts, pts_sctl: initial network weights
  std::int64_t pts_top_k = 10;     ///< pts: sorted logits fed to the network (pts_sctl: always 10)
  std::int64_t pts_layers = 2;     ///< pts: hidden layers
  std::int64_t pts_nodes = 5;      ///< pts: units per hidden layer
  double weight_decay = -1;        ///< Adam's L2 term (-1: 0.002 for pts, 0 for pts_sctl)
  std::string pts_init;            ///< JSON file with the initial network ({"layers": [...]}); empty: seeded
};

/// One fully connected layer, torch's layout: weight[out][in] row-major, bias[out].
struct mlp_layer {
  std::int64_t in = 0, out = 0;
  std::vector<double> weight, bias;
};

/// One optimiser run (one torch optimizer object of the authors' code).
struct training_stage {
  std::string parameters;  ///< "t", "T", "w", "network"
  std::string optimizer;   ///< "lbfgs" | "adam" | "slsqp"
  double lr = 0;
  std::int64_t iterations = 0;  ///< max_iter (L-BFGS), steps (Adam), max evaluations (SLSQP)
  std::int64_t iterations_run = 0;
  std::int64_t evaluations = 0;  ///< loss evaluations (closure calls)
  double loss_before = 0, loss_after = 0;
  std::string stop;  ///< why it ended
};

/// A trained calibrator: its parameters, how they were trained, and the loss-scaling fit.
struct trained_model {
  trained_method method;
  std::int64_t num_classes = 0;
  double temperature = 1.0;                      ///< ts, ets, ets_sctl
  std::vector<double> temperatures;              ///< cts_nll
  std::array<double, 3> weights{1.0, 0.0, 0.0};  ///< ets, ets_sctl
  std::vector<mlp_layer> network;                ///< pts, pts_sctl
  std::int64_t top_k = 0;                        ///< pts, pts_sctl: network inputs (min(s, K))
  // How it was trained (reported, not needed to apply).
  std::vector<training_stage> stages;
  double final_loss = 0;  ///< the training loss at the parameters
  double ls_alpha = 0, fl_gamma = 0, lsplus_weight = 0, weight_decay = 0;
  bool focal_detached = false;
  std::vector<double> lsplus_prior;     ///< lsplus: prior_true per class
  std::optional<sctl_fit_result> sctl;  ///< sctl: the (alpha, beta) fit (absent if never reached)
  sctl_norm sctl_normalisation = sctl_norm::nd;
  std::string sctl_solver;
  std::vector<std::int64_t> sctl_classes;            ///< sctl: the classes present in the validation split
  std::int64_t nonpositive_temperatures = 0;         ///< pts_sctl: validation samples with t(x) <= 0; cts_nll: T_j < 0
  std::array<double, 3> temperature_range{0, 0, 0};  ///< pts, pts_sctl: min, median, max of T(x) on val

  nlohmann::json params() const;
  /// Reads params() back (apply); throws input_error naming `where`.
  static trained_model from_params(const trained_method& m, const nlohmann::json& p, const std::string& where);
  /// The calibrated probabilities (row-major N x K) of row-major logits `z` (finite); throws
  /// input_error naming `where` when K does not fit the parameters (cts_nll: K temperatures; the
  /// networks: K >= top_k; the others apply to any K) or a probability is not finite.
  std::vector<double> probabilities(const std::vector<double>& z, std::int64_t num_classes,
                                    const std::string& where) const;
};

/// Trains `m` on the validation split (logits, or log p of probability dumps; they must be
/// finite: input_error naming the file, dataset and first bad index otherwise).
trained_model fit_trained(const split_data& val, const trained_method& m, const train_options& o);

/// The training loss of `m` at `model`'s parameters and (when `gradient` is given) its gradient
/// (for the finite-difference tests): in [t] (ts), [t, w0, w1, w2] (ets_sctl), T (cts_nll), the network weights layer
/// by layer, weight row-major then bias (pts, pts_sctl), or the three weights at model.temperature (ets). sctl weighs
/// with the start (alpha, beta) of `o` (no fit: one uncounted evaluation).
double training_loss(const split_data& val, const trained_method& m, const train_options& o, const trained_model& model,
                     std::vector<double>* gradient);

}  // namespace calibench
