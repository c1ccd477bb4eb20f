// The optimisers (host/calibrators/trained/optimisers.hpp).
#include "host/calibrators/trained/optimisers.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace calibench::detail {
namespace {

constexpr double k_inf = std::numeric_limits<double>::infinity();

/// The largest |x_i|; +inf when an entry is not finite (a NaN gradient never passes a tolerance).
double max_abs(const std::vector<double>& x) {
  double m = 0;
  for (double v : x) {
    if (!std::isfinite(v)) return k_inf;
    m = std::max(m, std::abs(v));
  }
  return m;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

/// torch's L-BFGS memory: the last 100 curvature pairs (y, s), 1 / (y . s) and the diagonal
/// scale of the initial Hessian.
struct lbfgs_history {
  static constexpr std::size_t size = 100;
  std::vector<std::vector<double>> old_dirs, old_stps;
  std::vector<double> ro, al = std::vector<double>(size);
  double h_diag = 1;

  /// Records the step t d that moved the gradient from prev_g to g (when y . s > 1e-10).
  void update(const std::vector<double>& g, const std::vector<double>& prev_g, const std::vector<double>& d, double t) {
    std::vector<double> y(g.size()), s(g.size());
    for (std::size_t i = 0; i < g.size(); ++i) {
      y[i] = g[i] - prev_g[i];
      s[i] = d[i] * t;
    }
    const double ys = dot(y, s);
    if (!(ys > 1e-10)) return;
    if (old_dirs.size() == size) {
      old_dirs.erase(old_dirs.begin());
      old_stps.erase(old_stps.begin());
      ro.erase(ro.begin());
    }
    old_dirs.push_back(y);
    old_stps.push_back(s);
    ro.push_back(1.0 / ys);
    h_diag = ys / dot(y, y);
  }

  /// The two-loop recursion: d = -H g.
  void direction(const std::vector<double>& g, std::vector<double>& d) {
    std::vector<double> q(g.size());
    for (std::size_t i = 0; i < g.size(); ++i) q[i] = -g[i];
    for (std::size_t h = old_dirs.size(); h-- > 0;) {
      al[h] = dot(old_stps[h], q) * ro[h];
      for (std::size_t i = 0; i < g.size(); ++i) q[i] -= al[h] * old_dirs[h][i];
    }
    for (std::size_t i = 0; i < g.size(); ++i) d[i] = q[i] * h_diag;
    for (std::size_t h = 0; h < old_dirs.size(); ++h) {
      const double be = dot(old_dirs[h], d) * ro[h];
      for (std::size_t i = 0; i < g.size(); ++i) d[i] += old_stps[h][i] * (al[h] - be);
    }
  }
};

}  // namespace

/// torch.optim.LBFGS(params, lr, max_iter, tolerance_grad, tolerance_change).step(closure) on a
/// fresh optimiser, with torch's other defaults: no line search, history_size 100,
/// max_eval = max_iter * 5 / 4. The first step is min(1, 1/||g||_1) lr along -g, later steps
/// lr along the two-loop direction; the last iteration moves x without evaluating the loss.
training_stage torch_lbfgs(std::vector<double>& x, double lr, std::int64_t max_iter, double tolerance_grad,
                           double tolerance_change, const closure_fn& closure) {
  const std::int64_t max_eval = max_iter * 5 / 4;
  training_stage st;
  st.optimizer = "lbfgs";
  st.lr = lr;
  st.iterations = max_iter;
  std::vector<double> g(x.size());
  double loss = closure(x, g);
  st.loss_before = loss;
  std::int64_t evals = 1;
  st.stop = "max_iter";
  if (!std::isfinite(loss) || max_abs(g) == k_inf) {
    st.stop = "non_finite";
    st.evaluations = evals;
    return st;
  }
  if (max_abs(g) <= tolerance_grad) {
    st.stop = "tolerance_grad";
    st.evaluations = evals;
    st.loss_after = loss;
    return st;
  }
  lbfgs_history history;
  std::vector<double> d(x.size()), prev_g;
  double t = lr;
  std::int64_t n_iter = 0;
  while (n_iter < max_iter) {
    ++n_iter;
    if (n_iter == 1) {
      for (std::size_t i = 0; i < x.size(); ++i) d[i] = -g[i];
    } else {
      history.update(g, prev_g, d, t);
      history.direction(g, d);
    }
    prev_g = g;
    const double prev_loss = loss;
    if (n_iter == 1) {
      double l1 = 0;
      for (double v : g) l1 += std::abs(v);
      t = std::min(1.0, 1.0 / l1) * lr;
    } else {
      t = lr;
    }
    if (dot(g, d) > -tolerance_change) {
      st.stop = "directional_derivative";
      break;
    }
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += t * d[i];
    if (n_iter != max_iter) {
      loss = closure(x, g);
      ++evals;
      if (!std::isfinite(loss) || max_abs(g) == k_inf) {
        st.stop = "non_finite";
        break;
      }
    }
    if (n_iter == max_iter) break;
    if (evals >= max_eval) {
      st.stop = "max_eval";
      break;
    }
    if (max_abs(g) <= tolerance_grad) {
      st.stop = "tolerance_grad";
      break;
    }
    double step = 0;
    for (double v : d) step = std::max(step, std::abs(v * t));
    if (step <= tolerance_change) {
      st.stop = "tolerance_change_x";
      break;
    }
    if (std::abs(loss - prev_loss) < tolerance_change) {
      st.stop = "tolerance_change_loss";
      break;
    }
  }
  st.iterations_run = n_iter;
  st.evaluations = evals;
  return st;
}

/// `steps` full-batch steps of torch.optim.Adam(params, lr, weight_decay) on a fresh optimiser
/// (betas 0.9, 0.999, eps 1e-8; the decay is added to the gradient, not decoupled).
training_stage torch_adam(std::vector<double>& x, double lr, std::int64_t steps, double weight_decay,
                          const closure_fn& closure) {
  constexpr double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  training_stage st;
  st.optimizer = "adam";
  st.lr = lr;
  st.iterations = steps;
  st.stop = "steps";
  const std::size_t size = x.size();
  std::vector<double> g(size), moments(2 * size, 0.0);  // first moments, then second moments
  double* m = moments.data();
  double* v = moments.data() + size;
  for (std::int64_t step = 1; step <= steps; ++step) {
    const double loss = closure(x, g);
    if (step == 1) st.loss_before = loss;
    ++st.evaluations;
    if (!std::isfinite(loss) || max_abs(g) == k_inf) {
      st.stop = "non_finite";
      break;
    }
    const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    const double bc2_sqrt = std::sqrt(1.0 - std::pow(beta2, static_cast<double>(step)));
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double gi = g[i] + weight_decay * x[i];
      m[i] = beta1 * m[i] + (1.0 - beta1) * gi;
      v[i] = beta2 * v[i] + (1.0 - beta2) * gi * gi;
      x[i] -= (lr / bc1) * m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps);
    }
    st.iterations_run = step;
  }
  return st;
}
}  // namespace calibench::detail
