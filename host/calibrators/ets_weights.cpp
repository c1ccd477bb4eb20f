// The ETS mixture and its weight fit (host/calibrators/ets_weights.hpp). Both objectives are convex in w: the
// NLL is a mean of -log of linear functions, the MSE a quadratic. The optimum lies in the
// relative interior of one face of the 2-simplex, so the edges are solved exactly first and
// the 2-D interior is searched only when the best edge point is not optimal.
#include "host/calibrators/ets_weights.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.hpp"

namespace calibench {
namespace {

constexpr double k_inf = std::numeric_limits<double>::infinity();

/// Relative slack of the optimality test g_j >= w.g at an edge point: the gradient is a mean of
/// N terms of size ~1, so rounding leaves it ~1e-15 off; an interior optimum that close to an
/// edge changes the objective by ~1e-24, below its own rounding.
constexpr double k_optimality_slack = 1e-12;
/// Newton iterations at most (each edge and the interior); convergence takes ~10-30.
constexpr int k_max_newton = 200;

/// Value, gradient and Hessian of the objective in w (3 coordinates, the simplex not enforced).
struct derivatives {
  double value = 0;
  std::array<double, 3> g{};
  std::array<std::array<double, 3>, 3> h{};
};

/// The objective on the validation rows. NLL: per row the components' probabilities of the
/// label (a, b, 1/K). MSE: the quadratic w'Aw - 2 b'w + 1 from its moments.
class weight_objective {
 public:
  weight_objective(const std::vector<double>& z, const std::vector<std::int32_t>& labels, std::int64_t k, double t,
                   ets_objective objective)
      : objective_(objective), uniform_(1.0 / static_cast<double>(k)) {
    const auto n = static_cast<std::int64_t>(labels.size());
    std::vector<double> p1(static_cast<std::size_t>(k)), p2(static_cast<std::size_t>(k));
    if (objective_ == ets_objective::nll) label_probs_.resize(static_cast<std::size_t>(2 * n));
    for (std::int64_t i = 0; i < n; ++i) {
      components(z.data() + i * k, k, t, p1.data(), p2.data());
      const auto y = static_cast<std::size_t>(labels[static_cast<std::size_t>(i)]);
      if (objective_ == ets_objective::nll) {
        label_probs_[static_cast<std::size_t>(2 * i)] = p1[y];
        label_probs_[static_cast<std::size_t>(2 * i + 1)] = p2[y];
        continue;
      }
      double s11 = 0, s12 = 0, s22 = 0;
      for (std::int64_t j = 0; j < k; ++j) {
        s11 += p1[static_cast<std::size_t>(j)] * p1[static_cast<std::size_t>(j)];
        s12 += p1[static_cast<std::size_t>(j)] * p2[static_cast<std::size_t>(j)];
        s22 += p2[static_cast<std::size_t>(j)] * p2[static_cast<std::size_t>(j)];
      }
      a_[0][0] += s11;
      a_[0][1] += s12;
      a_[1][1] += s22;
      b_[0] += p1[y];
      b_[1] += p2[y];
    }
    if (objective_ == ets_objective::mse) {
      const double inv_n = 1.0 / static_cast<double>(n);
      a_[0][0] *= inv_n;
      a_[0][1] *= inv_n;
      a_[1][1] *= inv_n;
      a_[1][0] = a_[0][1];
      b_[0] *= inv_n;
      b_[1] *= inv_n;
      // Each component row sums to 1, so its inner product with the uniform row is 1/K.
      a_[0][2] = a_[2][0] = a_[1][2] = a_[2][1] = a_[2][2] = b_[2] = uniform_;
    }
  }

  /// softmax(z/T) into p1 and softmax(z) into p2 for one row.
  static void components(const double* z, std::int64_t k, double t, double* p1, double* p2) {
    double m = -k_inf;
    for (std::int64_t j = 0; j < k; ++j) m = std::max(m, z[j]);
    double s1 = 0, s2 = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      const double x = z[j] - m;  // -inf for a probability 0: exp gives 0
      p1[j] = std::exp(x / t);
      p2[j] = std::exp(x);
      s1 += p1[j];
      s2 += p2[j];
    }
    for (std::int64_t j = 0; j < k; ++j) {
      p1[j] /= s1;
      p2[j] /= s2;
    }
  }

  /// The objective and its derivatives at w; value +inf (derivatives unset) where the NLL is
  /// infinite (a row whose mixture gives its label probability 0).
  derivatives at(const std::array<double, 3>& w) const {
    derivatives d;
    if (objective_ == ets_objective::mse) {
      d.value = 1.0;
      for (int m = 0; m < 3; ++m) {
        double aw = 0;
        for (int n = 0; n < 3; ++n) {
          aw += a_[m][n] * w[n];
          d.h[m][n] = 2.0 * a_[m][n];
        }
        d.value += w[m] * aw - 2.0 * b_[m] * w[m];
        d.g[m] = 2.0 * aw - 2.0 * b_[m];
      }
      return d;
    }
    const std::size_t n = label_probs_.size() / 2;
    double value = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::array<double, 3> v{label_probs_[2 * i], label_probs_[2 * i + 1], uniform_};
      const double s = w[0] * v[0] + w[1] * v[1] + w[2] * v[2];
      if (!(s > 0)) return {k_inf, {}, {}};
      value -= std::log(s);
      for (int a = 0; a < 3; ++a) {
        d.g[a] -= v[a] / s;
        for (int b = a; b < 3; ++b) d.h[a][b] += v[a] * v[b] / (s * s);
      }
    }
    const double inv_n = 1.0 / static_cast<double>(n);
    d.value = value * inv_n;
    for (int a = 0; a < 3; ++a) {
      d.g[a] *= inv_n;
      for (int b = a; b < 3; ++b) d.h[b][a] = d.h[a][b] = d.h[a][b] * inv_n;
    }
    return d;
  }

 private:
  ets_objective objective_;
  double uniform_;
  std::vector<double> label_probs_;           // nll: (a_i, b_i) per row
  std::array<std::array<double, 3>, 3> a_{};  // mse
  std::array<double, 3> b_{};
};

std::array<double, 3> on_edge(int m, int n, double t) {
  std::array<double, 3> w{0.0, 0.0, 0.0};
  w[static_cast<std::size_t>(m)] = 1.0 - t;
  w[static_cast<std::size_t>(n)] = t;
  return w;
}

/// Minimiser of the objective on the edge (1 - t) e_m + t e_n, t in [0, 1]: the sign change of
/// the derivative, bracketed, by Newton steps kept inside the bracket (bisection otherwise).
ets_weight_fit solve_edge(const weight_objective& f, int m, int n) {
  // The derivative in t; +-inf at an end where the objective is infinite (move away from it).
  const auto slope = [&](const derivatives& d, bool at_lower_end) {
    if (!std::isfinite(d.value)) return at_lower_end ? -k_inf : k_inf;
    return d.g[static_cast<std::size_t>(n)] - d.g[static_cast<std::size_t>(m)];
  };
  const auto finish = [&](double t) { return ets_weight_fit{on_edge(m, n, t), f.at(on_edge(m, n, t)).value}; };
  if (slope(f.at(on_edge(m, n, 0.0)), true) >= 0) return finish(0.0);
  if (slope(f.at(on_edge(m, n, 1.0)), false) <= 0) return finish(1.0);
  double lo = 0.0, hi = 1.0, t = 0.5;
  for (int it = 0; it < k_max_newton; ++it) {
    const auto d = f.at(on_edge(m, n, t));
    double next = 0.5 * (lo + hi);
    if (std::isfinite(d.value)) {
      const double first = slope(d, false);
      if (first == 0) break;
      (first > 0 ? hi : lo) = t;
      const auto um = static_cast<std::size_t>(m), un = static_cast<std::size_t>(n);
      const double second = d.h[un][un] - 2.0 * d.h[um][un] + d.h[um][um];
      next = second > 0 ? t - first / second : 0.5 * (lo + hi);
    } else {
      // The mixture is linear in t, so it is 0 inside the edge only where it is 0 on the whole
      // edge (a row whose two components both give its label probability 0): nothing to find.
      lo = t;
    }
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (std::fabs(next - t) <= 1e-16 || hi - lo <= 1e-16) {
      t = next;
      break;
    }
    t = next;
  }
  return finish(t);
}

/// Whether w (on an edge) is optimal on the whole simplex: no vertex direction descends,
/// g_j >= w.g for every j.
bool is_optimal(const weight_objective& f, const std::array<double, 3>& w) {
  const auto d = f.at(w);
  if (!std::isfinite(d.value)) return false;
  const double wg = w[0] * d.g[0] + w[1] * d.g[1] + w[2] * d.g[2];
  const double slack = k_optimality_slack * std::max({1.0, std::fabs(d.g[0]), std::fabs(d.g[1]), std::fabs(d.g[2])});
  return std::all_of(d.g.begin(), d.g.end(), [&](double gj) { return gj - wg >= -slack; });
}

/// Damped Newton in (w1, w2), w3 = 1 - w1 - w2, from the centroid, iterates kept strictly
/// inside the simplex (the NLL is self-concordant, the MSE quadratic: both converge).
ets_weight_fit solve_interior(const weight_objective& f) {
  std::array<double, 3> w{1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0};
  auto d = f.at(w);
  for (int it = 0; it < k_max_newton; ++it) {
    const double g1 = d.g[0] - d.g[2], g2 = d.g[1] - d.g[2];
    double h11 = d.h[0][0] - 2.0 * d.h[0][2] + d.h[2][2];
    double h22 = d.h[1][1] - 2.0 * d.h[1][2] + d.h[2][2];
    const double h12 = d.h[0][1] - d.h[0][2] - d.h[1][2] + d.h[2][2];
    // A singular Hessian (softmax(z/T) = softmax(z) when T = 1): a tiny ridge keeps the step defined.
    const double ridge = 1e-12 * std::max(h11 + h22, 1e-300);
    h11 += ridge;
    h22 += ridge;
    const double det = h11 * h22 - h12 * h12;
    if (!(det > 0)) break;
    const double s1 = -(h22 * g1 - h12 * g2) / det, s2 = -(h11 * g2 - h12 * g1) / det;
    const std::array<double, 3> dir{s1, s2, -s1 - s2};
    const double decrement = -(g1 * s1 + g2 * s2);
    if (!(decrement > 1e-30)) break;
    // Longest step that stays inside, with a margin so the iterate stays strictly interior.
    double alpha = 1.0;
    for (int j = 0; j < 3; ++j) {
      if (dir[static_cast<std::size_t>(j)] < 0)
        alpha = std::min(alpha, 0.99 * w[static_cast<std::size_t>(j)] / -dir[static_cast<std::size_t>(j)]);
    }
    // Armijo backtracking; no sufficient decrease left means convergence at rounding level.
    bool moved = false;
    for (int halvings = 0; halvings < 60; ++halvings, alpha *= 0.5) {
      const double w1 = w[0] + alpha * dir[0], w2 = w[1] + alpha * dir[1];
      const std::array<double, 3> next{w1, w2, 1.0 - w1 - w2};
      const auto dn = f.at(next);
      if (std::isfinite(dn.value) && dn.value <= d.value - 1e-4 * alpha * decrement) {
        moved = true;
        w = next;
        d = dn;
        break;
      }
    }
    if (!moved) break;
  }
  return {w, d.value};
}

}  // namespace

std::vector<double> ets_probabilities(const std::vector<double>& z, std::int64_t num_classes, double temperature,
                                      const std::array<double, 3>& weights) {
  const std::int64_t k = num_classes, n = static_cast<std::int64_t>(z.size()) / k;
  const double u = weights[2] / static_cast<double>(k);
  std::vector<double> p(z.size());
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    std::vector<double> p1(static_cast<std::size_t>(k)), p2(static_cast<std::size_t>(k));
    weight_objective::components(z.data() + i * k, k, temperature, p1.data(), p2.data());
    for (std::int64_t j = 0; j < k; ++j)
      p[static_cast<std::size_t>(i * k + j)] =
          weights[0] * p1[static_cast<std::size_t>(j)] + weights[1] * p2[static_cast<std::size_t>(j)] + u;
  }
  return p;
}

ets_weight_fit fit_ets_weights(const std::vector<double>& z, const std::vector<std::int32_t>& labels,
                               std::int64_t num_classes, double temperature, ets_objective objective) {
  CALIBENCH_EXPECTS(z.size() == labels.size() * static_cast<std::size_t>(num_classes) && !labels.empty(),
                    "logits and labels differ in rows");
  const weight_objective f(z, labels, num_classes, temperature, objective);
  // (w1, w3) first: temperature scaling plus uniform mass, the usual optimum.
  ets_weight_fit best{{0.0, 0.0, 0.0}, k_inf};
  for (const auto& [m, n] : {std::array<int, 2>{0, 2}, std::array<int, 2>{0, 1}, std::array<int, 2>{1, 2}}) {
    const auto e = solve_edge(f, m, n);
    if (e.objective < best.objective) best = e;
  }
  if (is_optimal(f, best.weights)) return best;
  const auto inner = solve_interior(f);
  return inner.objective < best.objective ? inner : best;
}

}  // namespace calibench
