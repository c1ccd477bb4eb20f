// Class-wise loss scaling (+sctl, docs/calibrators.md): normalisation of a
// class-loss vector, the sigmoid class weights, the (alpha, beta) objective, its fit by a dense
// grid with bounded refinement (NLopt's SLSQP beside it for comparison), and the per-run
// scaling state that a gradient-trained base method calls once per loss evaluation.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "host/sweep/backend.hpp"
#include "kernels/sctl_math.hpp"

namespace calibench {

/// How class losses are normalised before the weights: nd = (L - mean) / std (unbiased std,
/// K - 1 in the denominator; the default), mm = (L - min) / (max - min), cm = (L - mean) / (max - min).
enum class sctl_norm : std::int32_t { nd, mm, cm };

/// "nd" | "mm" | "cm" (throws input_error otherwise).
sctl_norm parse_sctl_norm(std::string_view name);
const char* sctl_norm_name(sctl_norm norm);

/// Checks a class-loss vector (K >= 2 finite values; `what` names it in messages, e.g. "--l0")
/// and throws input_error naming the first offending index.
void check_class_losses(std::span<const double> losses, const std::string& what);

/// The normalised losses. Where the denominator is 0 (all losses equal) every normalised
/// value is 0, so that every weight is 0 (the authors' code divides 0 by 0 there).
std::vector<double> sctl_normalise(std::span<const double> losses, sctl_norm norm);

/// w_i = beta / (1 + exp(-normalised_i / alpha)) - beta / 2 for every class.
std::vector<double> sctl_weights(std::span<const double> normalised, double alpha, double beta);

/// The scaled loss sum_i (1 + w_i) L_i (a sum over classes, in class order).
double sctl_weighted_loss(std::span<const double> losses, std::span<const double> weights);

/// The search box of (alpha, beta): alpha in [0.1, ln(K)/2], beta in [1.5, 2]. K >= 2, so the
/// alpha interval is never empty (ln(2)/2 = 0.347).
struct sctl_box {
  double alpha_lo = 0.1, alpha_hi = 0.1, beta_lo = 1.5, beta_hi = 2.0;
};
sctl_box sctl_default_box(std::int64_t num_classes);

/// The fit objective sqrt(sum_i (L0_i - w_i(alpha, beta; normalised1) (L1_i - L0_i) - mean(L1))^2),
/// summed in class order; normalised1 = sctl_normalise(L1, norm).
double sctl_objective(std::span<const double> l0, std::span<const double> l1, std::span<const double> normalised1,
                      double alpha, double beta);

/// Its analytic gradient (d/dalpha, d/dbeta); (0, 0) where the objective is 0.
std::array<double, 2> sctl_objective_gradient(std::span<const double> l0, std::span<const double> l1,
                                              std::span<const double> normalised1, double alpha, double beta);

/// NLopt's name of a result code (e.g. "FTOL_REACHED"; "UNKNOWN" for others).
const char* nlopt_status_name(int code);

/// Which fitted pair a run uses: calibench's grid fit (default) or NLopt's SLSQP (the authors' solver).
enum class sctl_solver : std::int32_t { grid, slsqp };

struct sctl_fit_options {
  sctl_norm norm = sctl_norm::nd;
  std::int64_t grid = 256;   ///< candidates per axis; grid x grid pairs, evaluated in one parallel pass
  double start_alpha = 1.0;  ///< SLSQP start (clipped into the box, as SciPy does) and first-evaluation pair
  double start_beta = 1.5;
  bool run_slsqp = true;                   ///< also run NLopt's SLSQP for comparison
  sctl_solver solver = sctl_solver::grid;  ///< which pair sctl_scaler uses after the fit
};

/// The lattice of `grid` x `grid` pairs spanning `box`, endpoints included.
kernels::sctl_lattice sctl_box_lattice(const sctl_box& box, std::int64_t grid);

/// A fitted (alpha, beta) and everything needed to see how it was found.
struct sctl_fit_result {
  std::int64_t num_classes = 0;
  sctl_norm norm = sctl_norm::nd;
  sctl_box box;
  double alpha = 0, beta = 0, objective = 0;                    // calibench: grid, then refinement
  std::int64_t grid_size = 0;                                   // candidates per axis
  std::string grid_backend = "cpu";                             // where the grid was evaluated: cpu | cuda
  double grid_alpha = 0, grid_beta = 0, grid_objective = 0;     // the best grid pair (first on ties)
  double start_alpha = 0, start_beta = 0, start_objective = 0;  // the start, clipped into the box
  bool slsqp_run = false;
  double slsqp_alpha = 0, slsqp_beta = 0, slsqp_objective = 0;
  std::string slsqp_status;  // NLopt's result code, e.g. "FTOL_REACHED"
  std::int64_t slsqp_evaluations = 0;
  std::vector<double> l0, l1;
  std::vector<double> normalised;  // of L1
  std::vector<double> weights;     // w_i(alpha, beta; normalised), the weights applied to L1
};

/// Fits (alpha, beta) on the class losses L0 (initial parameters) and L1 (after the first step):
/// a grid of options.grid^2 pairs spanning the box (endpoints included), evaluated in parallel
/// and deterministically (first minimum in alpha-major order); then, around the best grid
/// pair, a golden-section search over alpha within one grid step on each side, with beta at
/// its exact minimiser for each alpha (the squared objective is a quadratic in beta). The
/// result is the best of the grid pair and the refined pairs, so never worse than the grid.
/// The grid is evaluated by `grid_backend` (sweep_backend::sctl_grid); the CPU backend without
/// one. Throws input_error for fewer than 2 classes, lengths that differ or non-finite losses.
sctl_fit_result fit_sctl(std::span<const double> l0, std::span<const double> l1, const sctl_fit_options& options,
                         sweep_backend& grid_backend);
sctl_fit_result fit_sctl(std::span<const double> l0, std::span<const double> l1, const sctl_fit_options& options);

/// The loss scaling of one training run, as the authors' code applies it: call it once per
/// loss evaluation with the class losses L_i (mean NLL over the validation samples of class
/// i under the current parameters; classes absent from the validation split must be left out
/// by the caller). Evaluation 0 stores L0 and weighs with (start_alpha, start_beta); evaluation 1
/// fits (alpha, beta) on (L0, L1) and weighs with the fitted pair; later evaluations keep it.
/// Weights always come from the normalisation of the losses passed in that call.
class sctl_scaler {
 public:
  explicit sctl_scaler(sctl_fit_options options = {});

  /// Returns sum_i (1 + w_i) L_i and writes 1 + w_i to `scale` (the loss's derivative with
  /// respect to L_i, the weights being detached). `scale` holds K entries.
  double evaluate(std::span<const double> class_losses, std::span<double> scale);

  std::int64_t evaluations() const { return evaluations_; }
  bool fitted() const { return evaluations_ >= 2; }
  double alpha() const { return alpha_; }
  double beta() const { return beta_; }
  /// The fit of evaluation 1 (valid once fitted()).
  const sctl_fit_result& fit() const { return fit_; }

 private:
  sctl_fit_options options_;
  std::int64_t evaluations_ = 0;
  double alpha_ = 1.0, beta_ = 1.5;
  std::vector<double> first_;
  sctl_fit_result fit_;
};

}  // namespace calibench
