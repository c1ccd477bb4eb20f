// Class-wise loss scaling (host/calibrators/trained/sctl.hpp): normalisation, weights, the (alpha, beta) objective,
// the grid-and-refinement fit, NLopt's SLSQP for comparison, and the per-run scaling state.
#include "host/calibrators/trained/sctl.hpp"

#include <nlopt.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include <fmt/format.h>

#include "common/error.hpp"
#include "kernels/sctl_math.hpp"

namespace calibench {
namespace {

double mean_of(std::span<const double> v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

void check_pair(std::span<const double> l0, std::span<const double> l1, std::span<const double> normalised1) {
  CALIBENCH_EXPECTS(l0.size() == l1.size() && l1.size() == normalised1.size() && l0.size() >= 2,
                    "sctl: L0, L1 and the normalised L1 need the same length K >= 2");
}

/// For a fixed alpha the residuals are c_i - beta h_i with c_i = L0_i - mean(L1) and
/// h_i = (t_i - 1/2)(L1_i - L0_i), so the squared objective is a quadratic in beta whose
/// minimiser over [beta_lo, beta_hi] is sum c h / sum h^2, clipped (beta_lo when every h is 0).
double best_beta(std::span<const double> l0, std::span<const double> l1, std::span<const double> normalised1,
                 double mean_l1, double alpha, const sctl_box& box) {
  double ch = 0, hh = 0;
  for (std::size_t i = 0; i < l0.size(); ++i) {
    const double h = (sctl_sigmoid(normalised1[i], alpha) - 0.5) * (l1[i] - l0[i]);
    ch += (l0[i] - mean_l1) * h;
    hh += h * h;
  }
  if (!(hh > 0)) return box.beta_lo;
  return std::clamp(ch / hh, box.beta_lo, box.beta_hi);
}

/// The evaluations of NLopt's objective callback.
struct slsqp_problem {
  std::span<const double> l0, l1, normalised1;
  std::int64_t evaluations = 0;
};

double slsqp_callback(unsigned n, const double* x, double* grad, void* data) {
  auto* p = static_cast<slsqp_problem*>(data);
  (void)n;
  ++p->evaluations;
  if (grad != nullptr) {
    const auto g = sctl_objective_gradient(p->l0, p->l1, p->normalised1, x[0], x[1]);
    grad[0] = g[0];
    grad[1] = g[1];
  }
  return sctl_objective(p->l0, p->l1, p->normalised1, x[0], x[1]);
}

}  // namespace

const char* nlopt_status_name(int code) {
  switch (static_cast<nlopt_result>(code)) {
    case NLOPT_SUCCESS: return "SUCCESS";
    case NLOPT_STOPVAL_REACHED: return "STOPVAL_REACHED";
    case NLOPT_FTOL_REACHED: return "FTOL_REACHED";
    case NLOPT_XTOL_REACHED: return "XTOL_REACHED";
    case NLOPT_MAXEVAL_REACHED: return "MAXEVAL_REACHED";
    case NLOPT_MAXTIME_REACHED: return "MAXTIME_REACHED";
    case NLOPT_FAILURE: return "FAILURE";
    case NLOPT_INVALID_ARGS: return "INVALID_ARGS";
    case NLOPT_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
    case NLOPT_ROUNDOFF_LIMITED: return "ROUNDOFF_LIMITED";
    case NLOPT_FORCED_STOP: return "FORCED_STOP";
    default: return "UNKNOWN";
  }
}

namespace {

/// SciPy's SLSQP defaults, as the authors call it: stop when the objective changes by less
/// than 1e-6 (SciPy's `ftol`, an absolute accuracy); NLopt counts evaluations, not
/// iterations, so the cap is generous rather than SciPy's 100 iterations.
constexpr double k_slsqp_ftol_abs = 1e-6;
constexpr int k_slsqp_max_evaluations = 1000;

void run_slsqp(sctl_fit_result& r) {
  slsqp_problem problem{r.l0, r.l1, r.normalised, 0};
  const std::unique_ptr<nlopt_opt_s, decltype(&nlopt_destroy)> opt(nlopt_create(NLOPT_LD_SLSQP, 2), &nlopt_destroy);
  if (!opt) throw error("sctl: NLopt could not create an SLSQP optimiser");
  const double lower[2] = {r.box.alpha_lo, r.box.beta_lo};
  const double upper[2] = {r.box.alpha_hi, r.box.beta_hi};
  nlopt_set_lower_bounds(opt.get(), lower);
  nlopt_set_upper_bounds(opt.get(), upper);
  nlopt_set_min_objective(opt.get(), &slsqp_callback, &problem);
  nlopt_set_ftol_abs(opt.get(), k_slsqp_ftol_abs);
  nlopt_set_maxeval(opt.get(), k_slsqp_max_evaluations);
  double x[2] = {r.start_alpha, r.start_beta};
  double fx = 0;
  const nlopt_result status = nlopt_optimize(opt.get(), x, &fx);
  r.slsqp_run = true;
  r.slsqp_status = nlopt_status_name(status);
  r.slsqp_evaluations = problem.evaluations;
  // NLopt leaves the best point it found in x, also when it stops on a failure code.
  r.slsqp_alpha = std::clamp(x[0], r.box.alpha_lo, r.box.alpha_hi);
  r.slsqp_beta = std::clamp(x[1], r.box.beta_lo, r.box.beta_hi);
  r.slsqp_objective = sctl_objective(r.l0, r.l1, r.normalised, r.slsqp_alpha, r.slsqp_beta);
}

/// Golden-section search for the minimum of the profile F(alpha) = objective(alpha,
/// best_beta(alpha)) on [lo, hi]; returns the alpha it ends on. The relative width it stops
/// at is near the resolution of a double, far below any tolerance of the SLSQP comparison.
constexpr double k_golden_relative_width = 1e-13;
constexpr int k_golden_max_iterations = 200;

double golden_section(double lo, double hi, const auto& profile) {
  const double inv_phi = (std::sqrt(5.0) - 1.0) / 2.0;
  double a = lo, b = hi;
  double x1 = b - inv_phi * (b - a), x2 = a + inv_phi * (b - a);
  double f1 = profile(x1), f2 = profile(x2);
  for (int it = 0; it < k_golden_max_iterations; ++it) {
    if (b - a <= k_golden_relative_width * (std::abs(a) + std::abs(b))) break;
    if (f1 <= f2) {
      b = x2;
      x2 = x1;
      f2 = f1;
      x1 = b - inv_phi * (b - a);
      f1 = profile(x1);
    } else {
      a = x1;
      x1 = x2;
      f1 = f2;
      x2 = a + inv_phi * (b - a);
      f2 = profile(x2);
    }
  }
  return f1 <= f2 ? x1 : x2;
}

}  // namespace

sctl_norm parse_sctl_norm(std::string_view name) {
  if (name == "nd") return sctl_norm::nd;
  if (name == "mm") return sctl_norm::mm;
  if (name == "cm") return sctl_norm::cm;
  throw input_error(fmt::format("unknown normalisation '{}' (nd | mm | cm)", name));
}

const char* sctl_norm_name(sctl_norm norm) {
  switch (norm) {
    case sctl_norm::nd: return "nd";
    case sctl_norm::mm: return "mm";
    case sctl_norm::cm: return "cm";
  }
  return "?";
}

void check_class_losses(std::span<const double> losses, const std::string& what) {
  if (losses.empty()) throw input_error(fmt::format("{}: no class losses given", what));
  if (losses.size() < 2)
    throw input_error(
        fmt::format("{}: {} class loss given; class-wise loss scaling needs K >= 2 classes", what, losses.size()));
  for (std::size_t i = 0; i < losses.size(); ++i) {
    if (!std::isfinite(losses[i]))
      throw input_error(fmt::format("{}: value at index {} is not finite ({})", what, i, losses[i]));
  }
}

std::vector<double> sctl_normalise(std::span<const double> losses, sctl_norm norm) {
  check_class_losses(losses, "class losses");
  const double k = static_cast<double>(losses.size());
  const double mean = mean_of(losses);
  const auto [lo_it, hi_it] = std::minmax_element(losses.begin(), losses.end());
  const double lo = *lo_it, hi = *hi_it;
  double centre = mean, scale = hi - lo;
  if (norm == sctl_norm::nd) {
    double ss = 0;
    for (double x : losses) ss += (x - mean) * (x - mean);
    scale = std::sqrt(ss / (k - 1.0));
  } else if (norm == sctl_norm::mm) {
    centre = lo;
  }
  std::vector<double> out(losses.size(), 0.0);
  if (!(scale > 0)) return out;
  for (std::size_t i = 0; i < losses.size(); ++i) out[i] = (losses[i] - centre) / scale;
  return out;
}

std::vector<double> sctl_weights(std::span<const double> normalised, double alpha, double beta) {
  CALIBENCH_EXPECTS(alpha > 0, "sctl: alpha must be positive");
  std::vector<double> w(normalised.size());
  for (std::size_t i = 0; i < normalised.size(); ++i) w[i] = sctl_weight(normalised[i], alpha, beta);
  return w;
}

double sctl_weighted_loss(std::span<const double> losses, std::span<const double> weights) {
  CALIBENCH_EXPECTS(losses.size() == weights.size(), "sctl: one weight per class loss");
  double s = 0;
  for (std::size_t i = 0; i < losses.size(); ++i) s += (1.0 + weights[i]) * losses[i];
  return s;
}

sctl_box sctl_default_box(std::int64_t num_classes) {
  CALIBENCH_EXPECTS(num_classes >= 2, "sctl: K >= 2 classes");
  sctl_box box;
  box.alpha_hi = std::log(static_cast<double>(num_classes)) / 2.0;
  return box;
}

double sctl_objective(std::span<const double> l0, std::span<const double> l1, std::span<const double> normalised1,
                      double alpha, double beta) {
  check_pair(l0, l1, normalised1);
  const double mean_l1 = mean_of(l1);
  double s = 0;
  for (std::size_t i = 0; i < l0.size(); ++i) {
    const double r = sctl_residual(l0[i], l1[i], normalised1[i], mean_l1, alpha, beta);
    s += r * r;
  }
  return std::sqrt(s);
}

std::array<double, 2> sctl_objective_gradient(std::span<const double> l0, std::span<const double> l1,
                                              std::span<const double> normalised1, double alpha, double beta) {
  check_pair(l0, l1, normalised1);
  const double mean_l1 = mean_of(l1);
  double s = 0, ga = 0, gb = 0;
  for (std::size_t i = 0; i < l0.size(); ++i) {
    const double r = sctl_residual(l0[i], l1[i], normalised1[i], mean_l1, alpha, beta);
    const double d = l1[i] - l0[i];
    s += r * r;
    // d r_i / d theta = -(L1_i - L0_i) dw_i / d theta
    ga -= r * d * sctl_weight_dalpha(normalised1[i], alpha, beta);
    gb -= r * d * sctl_weight_dbeta(normalised1[i], alpha);
  }
  const double f = std::sqrt(s);
  if (!(f > 0)) return {0.0, 0.0};
  return {ga / f, gb / f};
}

kernels::sctl_lattice sctl_box_lattice(const sctl_box& box, std::int64_t grid) {
  return {box.alpha_lo, box.alpha_hi, box.beta_lo, box.beta_hi, grid};
}

sctl_fit_result fit_sctl(std::span<const double> l0, std::span<const double> l1, const sctl_fit_options& options) {
  return fit_sctl(l0, l1, options, *make_cpu_backend());
}

sctl_fit_result fit_sctl(std::span<const double> l0, std::span<const double> l1, const sctl_fit_options& options,
                         sweep_backend& grid_backend) {
  check_class_losses(l0, "L0");
  check_class_losses(l1, "L1");
  if (l0.size() != l1.size())
    throw input_error(fmt::format("L0 has {} class losses but L1 has {}", l0.size(), l1.size()));
  if (options.grid < 2 || options.grid > 4096)
    throw input_error(fmt::format("grid size {} outside [2, 4096]", options.grid));
  if (!std::isfinite(options.start_alpha) || !std::isfinite(options.start_beta) || !(options.start_alpha > 0))
    throw input_error("sctl: the start (alpha, beta) must be finite with alpha > 0");

  sctl_fit_result r;
  const auto k = static_cast<std::int64_t>(l0.size());
  r.num_classes = k;
  r.norm = options.norm;
  r.box = sctl_default_box(k);
  r.l0.assign(l0.begin(), l0.end());
  r.l1.assign(l1.begin(), l1.end());
  r.normalised = sctl_normalise(l1, options.norm);
  const sctl_box& box = r.box;
  const double mean_l1 = mean_of(l1);

  const std::int64_t g = options.grid;
  r.grid_size = g;
  const auto axis = [g](double lo, double hi, std::int64_t i) { return kernels::sctl_lattice_axis(lo, hi, i, g); };
  const std::vector<double> values = grid_backend.sctl_grid(l0, l1, r.normalised, sctl_box_lattice(box, g));
  r.grid_backend = grid_backend.kind();
  std::int64_t best = 0;
  for (std::int64_t idx = 1; idx < g * g; ++idx) {
    if (values[idx] < values[best]) best = idx;
  }
  const std::int64_t bj = best / g;
  r.grid_alpha = axis(box.alpha_lo, box.alpha_hi, bj);
  r.grid_beta = axis(box.beta_lo, box.beta_hi, best % g);
  r.grid_objective = sctl_objective(l0, l1, r.normalised, r.grid_alpha, r.grid_beta);
  if (!std::isfinite(r.grid_objective))
    throw input_error("sctl: the objective overflows for these class losses (values too large)");

  // Refinement: alpha by golden section within one grid step of the best row, beta exact.
  const auto beta_of = [&](double alpha) { return best_beta(l0, l1, r.normalised, mean_l1, alpha, box); };
  const auto profile = [&](double alpha) { return sctl_objective(l0, l1, r.normalised, alpha, beta_of(alpha)); };
  const double lo = bj > 0 ? axis(box.alpha_lo, box.alpha_hi, bj - 1) : box.alpha_lo;
  const double hi = bj < g - 1 ? axis(box.alpha_lo, box.alpha_hi, bj + 1) : box.alpha_hi;
  const double golden = golden_section(lo, hi, profile);
  r.alpha = r.grid_alpha;
  r.beta = r.grid_beta;
  r.objective = r.grid_objective;
  for (const double alpha : {r.grid_alpha, golden, lo, hi}) {
    const double beta = beta_of(alpha);
    const double f = sctl_objective(l0, l1, r.normalised, alpha, beta);
    if (f < r.objective) {
      r.alpha = alpha;
      r.beta = beta;
      r.objective = f;
    }
  }

  r.start_alpha = std::clamp(options.start_alpha, box.alpha_lo, box.alpha_hi);
  r.start_beta = std::clamp(options.start_beta, box.beta_lo, box.beta_hi);
  r.start_objective = sctl_objective(l0, l1, r.normalised, r.start_alpha, r.start_beta);
  if (options.run_slsqp || options.solver == sctl_solver::slsqp) run_slsqp(r);
  r.weights = sctl_weights(r.normalised, r.alpha, r.beta);
  return r;
}

sctl_scaler::sctl_scaler(sctl_fit_options options)
    : options_(options), alpha_(options.start_alpha), beta_(options.start_beta) {
  if (!(alpha_ > 0) || !std::isfinite(alpha_) || !std::isfinite(beta_))
    throw input_error("sctl: the start (alpha, beta) must be finite with alpha > 0");
}

double sctl_scaler::evaluate(std::span<const double> class_losses, std::span<double> scale) {
  check_class_losses(class_losses, "class losses");
  CALIBENCH_EXPECTS(scale.size() == class_losses.size(), "sctl: one scale per class loss");
  if (evaluations_ > 0 && class_losses.size() != first_.size())
    throw input_error(
        fmt::format("class losses: {} values, but the first evaluation had {}", class_losses.size(), first_.size()));
  if (evaluations_ == 0) {
    first_.assign(class_losses.begin(), class_losses.end());
  } else if (evaluations_ == 1) {
    fit_ = fit_sctl(first_, class_losses, options_);
    const bool slsqp = options_.solver == sctl_solver::slsqp;
    alpha_ = slsqp ? fit_.slsqp_alpha : fit_.alpha;
    beta_ = slsqp ? fit_.slsqp_beta : fit_.beta;
  }
  ++evaluations_;
  const std::vector<double> w = sctl_weights(sctl_normalise(class_losses, options_.norm), alpha_, beta_);
  for (std::size_t i = 0; i < w.size(); ++i) scale[i] = 1.0 + w[i];
  return sctl_weighted_loss(class_losses, w);
}

}  // namespace calibench
