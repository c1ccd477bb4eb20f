// Gradient-trained calibrators of `calibench fit` (vs, ms, cts_nll; docs/calibrators.md): an
// affine map of the logits, the mean NLL of its softmax with the analytic gradient, and its
// minimisation by L-BFGS (LBFGSpp). Float64 on the host, bit-reproducible for any thread count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace calibench {

/// The maps, with their flat parameter layouts (row-major, K classes):
/// vector  q_j = w_j z_j + b_j      [w_0..w_{K-1}, b_0..b_{K-1}]       (2K)
/// matrix  q = W z + b              [W row-major (K x K), b_0..b_{K-1}] (K^2 + K)
/// class_temperature  q_j = z_j / T_j, parameterised by b_j = 1/T_j  [b_0..b_{K-1}] (K)
enum class logit_map { vector, matrix, class_temperature };

/// Number of parameters of `map` for `num_classes` classes.
std::int64_t logit_map_size(logit_map map, std::int64_t num_classes);

/// The identity map's parameters (w = 1, b = 0; W = I, b = 0; 1/T = 1): the optimiser's start.
std::vector<double> logit_map_identity(logit_map map, std::int64_t num_classes);

/// The mapped logits q of row-major N x K logits `z`.
std::vector<double> apply_logit_map(logit_map map, const std::vector<double>& params, const std::vector<double>& z,
                                    std::int64_t num_classes);

/// Mean over the rows of -log softmax(q)_label and, in `gradient` (resized), its gradient in the
/// parameters. Rows are summed in fixed chunks whose partial sums are added in order.
double logit_map_nll(logit_map map, const std::vector<double>& params, const std::vector<double>& z,
                     const std::vector<std::int32_t>& labels, std::int64_t num_classes, std::vector<double>& gradient);

/// The penalties of the regularised maps (docs/calibrators.md), both dirichletcal's reg_norm = True
/// normalisation:
/// - odir (ms_odir, dir_odir; Kull 2019), matrix map only:
///   lambda/(K(K-1)) sum_{i != j} W_ij^2 + mu/K sum_i b_i^2; the diagonal of W is not penalised.
/// - l2 (dir_l2, dir_diag; dirichletcal's L2 with ref_row = True), matrix or vector map:
///   lambda/(K(K+1)) sum_i sum_j (A_ij - A_{K-1,j})^2 over the augmented matrix A = [W | b]
///   (the vector map's W = diag(w)); the softmax does not change when one row is subtracted
///   from every row, so this penalises the map's unique reference-row form. mu is unused.
/// - sms (structured matrix scaling; probmetrics 1.3.0's SMSCalibrator), matrix map only, no
///   normalisation: lambda sum_{i != j} W_ij^2 + diagonal sum_i (W_ii - 1)^2 + mu sum_i b_i^2
///   (the diagonal is pulled towards the identity's 1).
/// lambda = mu = diagonal = 0 is the plain NLL.
enum class penalty_form { odir, l2, sms };
struct map_penalty {
  double lambda = 0;
  double mu = 0;
  penalty_form form = penalty_form::odir;
  double diagonal = 0;  ///< sms only
  bool active() const { return lambda != 0 || mu != 0 || diagonal != 0; }
};

/// The odir penalty at matrix-map parameters `params` (K^2 + K), its gradient added to `gradient`
/// (same size). K = 1 has no off-diagonal entries (that term is 0).
double odir_value(const map_penalty& penalty, const double* params, std::int64_t num_classes, double* gradient);

/// The sms penalty at matrix-map parameters `params` (K^2 + K), its gradient added to `gradient`.
double sms_value(const map_penalty& penalty, const double* params, std::int64_t num_classes, double* gradient);

/// The l2 penalty at `map`'s parameters (matrix or vector), its gradient added to `gradient`.
double l2_value(const map_penalty& penalty, logit_map map, const double* params, std::int64_t num_classes,
                double* gradient);

/// The matrix map's parameters in reference-row form: row K-1 of [W | b] subtracted from every
/// row (the same probabilities; dirichletcal's weights_ with ref_row = True).
std::vector<double> reference_row_form(const std::vector<double>& params, std::int64_t num_classes);

/// Result of fit_logit_map.
struct logit_map_fit {
  std::vector<double> params;    ///< the lowest-NLL point the optimiser evaluated
  std::int64_t iterations = 0;   ///< L-BFGS iterations (line searches) run
  std::int64_t evaluations = 0;  ///< NLL and gradient evaluations
  double nll = 0;                ///< objective at `params`: mean NLL plus the penalty (if any)
  double gradient_norm = 0;      ///< Euclidean norm of the gradient at `params`
  std::string stop;              ///< "gradient" | "objective" | "iterations" | "line_search"
};

/// Gradient-norm tolerance of the fit: stop when ||g||_2 <= k_gradient_tolerance max(1, ||params||_2).
inline constexpr double k_gradient_tolerance = 1e-8;
/// Stall rule: stop when the NLL moved by at most k_stall_tolerance max(1, |NLL|) over the last
/// k_stall_iterations iterations (rounding level: the gradient tolerance can be out of reach of
/// float64 sums on ill-conditioned problems).
inline constexpr int k_stall_iterations = 10;
inline constexpr double k_stall_tolerance = 1e-14;

/// Minimises logit_map_nll from the identity by L-BFGS (memory 10, backtracking strong-Wolfe line search)
/// until the gradient tolerance, the stall rule, `max_iterations` iterations (0: none, the
/// identity is returned), or a line search that cannot decrease the NLL any further. The logits
/// must be finite (throws input_error naming `where` otherwise). An active `penalty` adds its
/// value (odir_value, sms_value: matrix map only; l2_value: matrix or vector map) to the objective and its
/// gradient.
logit_map_fit fit_logit_map(logit_map map, const std::vector<double>& z, const std::vector<std::int32_t>& labels,
                            std::int64_t num_classes, std::int64_t max_iterations, const std::string& where,
                            const map_penalty& penalty = {});

}  // namespace calibench
