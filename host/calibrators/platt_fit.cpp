// Platt's logistic fit (host/calibrators/platt_fit.hpp).
#include "host/calibrators/platt_fit.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/logistic.hpp"

namespace calibench {
namespace {

/// Newton steps at most (the fits of the tests and the real dumps converge in 3 to 10).
constexpr std::int64_t k_max_newton_steps = 200;

/// Mean negative log-likelihood of sigma(a s + b) and its gradient and Hessian in (a, b).
struct platt_objective {
  double value = 0, ga = 0, gb = 0, haa = 0, hab = 0, hbb = 0;
};

platt_objective objective_at(const platt_scores& d, double a, double b) {
  platt_objective o;
  for (std::size_t i = 0; i < d.s.size(); ++i) {
    const double s = d.s[i], y = d.target[i], t = a * s + b, p = sigmoid(t), w = p * (1.0 - p);
    o.value += softplus(t) - y * t;
    o.ga += (p - y) * s;
    o.gb += p - y;
    o.haa += w * s * s;
    o.hab += w * s;
    o.hbb += w;
  }
  const double n = static_cast<double>(d.s.size());
  for (double* v : {&o.value, &o.ga, &o.gb, &o.haa, &o.hab, &o.hbb}) *v /= n;
  return o;
}

/// The maximum-likelihood estimate exists exactly when the two targets overlap in s: refuses
/// one target, one score value (a is not identifiable), and (quasi-)separable scores, where a
/// runs off to infinity.
void check_identifiable(const platt_scores& d, const std::string& where, const char* target, std::int64_t rows) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  double lo[2] = {inf, inf}, hi[2] = {-inf, -inf};
  std::int64_t count[2] = {0, 0};
  for (std::size_t i = 0; i < d.s.size(); ++i) {
    const int t = d.target[i] > 0.5 ? 1 : 0;
    lo[t] = std::min(lo[t], d.s[i]);
    hi[t] = std::max(hi[t], d.s[i]);
    ++count[t];
  }
  if (count[0] == 0 || count[1] == 0)
    throw input_error(
        fmt::format("{}: every one of the {} validation rows has target {} ({}): the fit needs both "
                    "outcomes",
                    where, rows, count[1] > 0 ? 1 : 0, target));
  if (std::min(lo[0], lo[1]) == std::max(hi[0], hi[1]))
    throw input_error(fmt::format("{}: every validation score is {}: the slope is not identifiable", where, lo[0]));
  if (hi[0] <= lo[1] || hi[1] <= lo[0])
    throw input_error(
        fmt::format("{}: the validation scores separate the targets (target 0 in [{}, {}], target 1 "
                    "in [{}, {}]): the maximum-likelihood slope is infinite",
                    where, lo[0], hi[0], lo[1], hi[1]));
}

/// Damped Newton from the identity (a, b) = (1, 0) with Armijo backtracking. Stops when the
/// Newton decrement is below 1e-24 ("converged"), when no step along the Newton direction meets
/// the Armijo rule ("line_search"), or after k_max_newton_steps ("iterations").
platt_result newton_platt(const platt_scores& d) {
  double a = 1, b = 0;
  platt_objective o = objective_at(d, a, b);
  std::int64_t step = 0;
  std::string stop = "iterations";
  for (; step < k_max_newton_steps; ++step) {
    const double det = o.haa * o.hbb - o.hab * o.hab;
    // The Hessian is positive definite where the targets overlap; fall back on the gradient
    // where its weights have underflowed (|a s + b| beyond ~700 on every row).
    const bool newton = det > 0 && std::isfinite(det);
    const double da = newton ? -(o.hbb * o.ga - o.hab * o.gb) / det : -o.ga;
    const double db = newton ? -(o.haa * o.gb - o.hab * o.ga) / det : -o.gb;
    const double slope = o.ga * da + o.gb * db;  // < 0 unless the gradient is 0
    if (-slope <= 1e-24) {                       // the Newton decrement: twice the objective's distance to its minimum
      stop = "converged";
      break;
    }
    double tau = 1;
    platt_objective next = objective_at(d, a + da, b + db);
    // Armijo's rule, up to the rounding of the objective's sum: near the optimum the decrease a
    // Newton step brings is below it, and the full step is taken.
    const double rounding = 1e-15 * std::max(1.0, std::abs(o.value));
    const auto armijo = [&] { return next.value <= o.value + 1e-4 * tau * slope + rounding; };
    while (!armijo() && tau > 1e-12) {
      tau *= 0.5;
      next = objective_at(d, a + tau * da, b + tau * db);
    }
    if (!armijo()) {
      stop = "line_search";
      break;
    }
    a += tau * da;
    b += tau * db;
    o = next;
  }
  return {a, b, step, o.value, stop};
}

/// Platt's smoothed targets in place of the 0/1 ones: (N+ + 1)/(N+ + 2) for the N+ positive
/// rows and 1/(N- + 2) for the N- others (Platt 1999, section 2.2; scikit-learn's
/// _sigmoid_calibration).
void smooth_targets(platt_scores& d) {
  double positives = 0;
  for (double t : d.target) positives += t;
  const double negatives = static_cast<double>(d.target.size()) - positives;
  for (double& t : d.target) t = t > 0.5 ? (positives + 1.0) / (positives + 2.0) : 1.0 / (negatives + 2.0);
}

/// The fit of scores `d`: with 0/1 targets the maximum-likelihood estimate must exist
/// (check_identifiable); the smoothed targets lie strictly inside (0, 1), so only equal scores
/// (no slope) are refused.
}  // namespace

platt_result fit_scores(platt_scores d, bool smoothed, const std::string& where, const char* target,
                        std::int64_t rows) {
  if (!smoothed) {
    check_identifiable(d, where, target, rows);
    return newton_platt(d);
  }
  const auto [lo, hi] = std::minmax_element(d.s.begin(), d.s.end());
  if (*lo == *hi)
    throw input_error(fmt::format("{}: every validation score is {}: the slope is not identifiable", where, *lo));
  smooth_targets(d);
  return newton_platt(d);
}

}  // namespace calibench
