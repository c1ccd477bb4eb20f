// The NLL of affine logit maps, its analytic gradient and the L-BFGS fit (host/calibrators/logit_map_fit.hpp).
// Rows go in fixed chunks (OpenMP over chunks, partial sums added in chunk order) so that a fit
// is bit-identical for any thread count; the matrix map's products use Eigen single-threaded
// inside each chunk, since Eigen's own threading may change its blocking and so its sums.
#define EIGEN_DONT_PARALLELIZE
#include "host/calibrators/logit_map_fit.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include <LBFGS.h>
#include <fmt/format.h>
#include <Eigen/Core>

#include "common/error.hpp"
#include "common/progress.hpp"

namespace calibench {
namespace {

using row_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Rows per chunk at least; fewer, larger chunks when the partial gradients would exceed
/// k_max_partial_values doubles (the matrix map at large K).
constexpr std::int64_t k_chunk_rows = 1024;
constexpr std::int64_t k_max_partial_values = std::int64_t{1} << 24;  // 128 MiB

/// Row ranges of the chunks: a function of N and the parameter count only.
std::int64_t chunk_rows(std::int64_t n, std::int64_t num_params) {
  const std::int64_t max_chunks = std::max<std::int64_t>(1, k_max_partial_values / num_params);
  const std::int64_t chunks = std::min((n + k_chunk_rows - 1) / k_chunk_rows, max_chunks);
  return std::max<std::int64_t>(k_chunk_rows, (n + chunks - 1) / std::max<std::int64_t>(chunks, 1));
}

/// q of rows [begin, end) into `q` ((end - begin) x K).
void map_rows(logit_map map, const double* params, const double* z, std::int64_t rows, std::int64_t k, double* q) {
  switch (map) {
    case logit_map::vector:
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < k; ++j) q[i * k + j] = params[j] * z[i * k + j] + params[k + j];
      break;
    case logit_map::class_temperature:
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < k; ++j) q[i * k + j] = params[j] * z[i * k + j];
      break;
    case logit_map::matrix: {
      const Eigen::Map<const row_matrix> zm(z, rows, k), w(params, k, k);
      const Eigen::Map<const Eigen::RowVectorXd> b(params + k * k, k);
      Eigen::Map<row_matrix> qm(q, rows, k);
      qm.noalias() = zm * w.transpose();
      qm.rowwise() += b;
      break;
    }
  }
}

/// Sum over `rows` rows of the NLL; `q` becomes dNLL/dq = softmax(q) - onehot(label).
double nll_rows(double* q, const std::int32_t* labels, std::int64_t rows, std::int64_t k) {
  double total = 0;
  for (std::int64_t i = 0; i < rows; ++i) {
    double* row = q + i * k;
    double m = row[0];
    for (std::int64_t j = 1; j < k; ++j) m = std::max(m, row[j]);
    double s = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      row[j] = std::exp(row[j] - m);
      s += row[j];
    }
    const std::int32_t y = labels[i];
    // -log p_y = log s - (q_y - m), with row[y] = exp(q_y - m) already formed: log(s / row[y])
    // loses precision when row[y] underflows, so keep the difference form.
    total += std::log(s) - std::log(row[y]);
    const double inv = 1.0 / s;
    for (std::int64_t j = 0; j < k; ++j) row[j] *= inv;
    row[y] -= 1.0;
  }
  return total;
}

/// Adds the chunk's parameter gradient (from dNLL/dq in `g`) to `out`.
void gradient_rows(logit_map map, const double* g, const double* z, std::int64_t rows, std::int64_t k, double* out) {
  switch (map) {
    case logit_map::vector:
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < k; ++j) {
          out[j] += g[i * k + j] * z[i * k + j];
          out[k + j] += g[i * k + j];
        }
      break;
    case logit_map::class_temperature:
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < k; ++j) out[j] += g[i * k + j] * z[i * k + j];
      break;
    case logit_map::matrix: {
      const Eigen::Map<const row_matrix> gm(g, rows, k), zm(z, rows, k);
      Eigen::Map<row_matrix> gw(out, k, k);
      gw.noalias() += gm.transpose() * zm;
      // A plain loop: Eigen's vectorised column sums peel by alignment, so their order of
      // addition would depend on where the heap put the chunk.
      double* gb = out + k * k;
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < k; ++j) gb[j] += g[i * k + j];
      break;
    }
  }
}

double nll_and_gradient(logit_map map, const double* params, const std::vector<double>& z,
                        const std::vector<std::int32_t>& labels, std::int64_t k, double* gradient) {
  const auto n = static_cast<std::int64_t>(labels.size());
  const std::int64_t p = logit_map_size(map, k);
  const std::int64_t step = chunk_rows(n, p);
  const std::int64_t chunks = (n + step - 1) / step;
  std::vector<double> values(static_cast<std::size_t>(chunks), 0.0);
  std::vector<double> partial(static_cast<std::size_t>(chunks * p), 0.0);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t begin = c * step, rows = std::min(n, begin + step) - begin;
    std::vector<double> q(static_cast<std::size_t>(rows * k));
    const double* zc = z.data() + begin * k;
    map_rows(map, params, zc, rows, k, q.data());
    values[static_cast<std::size_t>(c)] = nll_rows(q.data(), labels.data() + begin, rows, k);
    gradient_rows(map, q.data(), zc, rows, k, partial.data() + c * p);
  }
  const double inv_n = 1.0 / static_cast<double>(n);
  double value = 0;
  for (std::int64_t c = 0; c < chunks; ++c) value += values[static_cast<std::size_t>(c)];
  std::fill(gradient, gradient + p, 0.0);
  for (std::int64_t c = 0; c < chunks; ++c)
    for (std::int64_t i = 0; i < p; ++i) gradient[i] += partial[static_cast<std::size_t>(c * p + i)];
  for (std::int64_t i = 0; i < p; ++i) gradient[i] *= inv_n;
  return value * inv_n;
}

/// The objective as LBFGSpp calls it; remembers the lowest point evaluated (the first on ties)
/// and counts iterations through counted_line_search.
struct nll_objective {
  nll_objective(logit_map m, const std::vector<double>& logits, const std::vector<std::int32_t>& y,
                std::int64_t num_classes, const map_penalty& pen)
      : map(m), z(logits), labels(y), k(num_classes), penalty(pen) {}

  logit_map map;
  const std::vector<double>& z;
  const std::vector<std::int32_t>& labels;
  std::int64_t k;
  map_penalty penalty;
  std::int64_t evaluations = 0, line_searches = 0;
  progress* shown = nullptr;  ///< the fit's iterations, when progress is on
  double best_value = std::numeric_limits<double>::infinity();
  Eigen::VectorXd best_x;
  double best_gradient_norm = 0;

  double penalty_value(const double* x, double* grad) const {
    switch (penalty.form) {
      case penalty_form::odir: return odir_value(penalty, x, k, grad);
      case penalty_form::sms: return sms_value(penalty, x, k, grad);
      case penalty_form::l2: break;
    }
    return l2_value(penalty, map, x, k, grad);
  }

  double operator()(const Eigen::VectorXd& x, Eigen::VectorXd& grad) {
    grad.resize(x.size());
    double v = nll_and_gradient(map, x.data(), z, labels, k, grad.data());
    if (penalty.active()) v += penalty_value(x.data(), grad.data());
    ++evaluations;
    // A trial step so long that the mapped logits overflow: reject it (the line search shrinks).
    if (!std::isfinite(v)) v = std::numeric_limits<double>::infinity();
    if (v < best_value) {
      best_value = v;
      best_x = x;
      best_gradient_norm = grad.norm();
    }
    return v;
  }
};

/// LBFGSpp's backtracking line search (strong Wolfe conditions), counting its calls (one per
/// L-BFGS iteration). Not LineSearchNocedalWright: in LBFGSpp 0.1 its interpolation yields NaN
/// steps once the NLL stops changing at rounding level.
template <typename Scalar>
class counted_line_search {
 public:
  using vector_type = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  template <typename Objective>
  static void LineSearch(Objective& f, Scalar& fx, vector_type& x, vector_type& grad, Scalar& step,
                         const vector_type& drt, const vector_type& xp, const LBFGSpp::LBFGSParam<Scalar>& param) {
    ++f.line_searches;
    if (f.shown != nullptr) {
      f.shown->detail(fmt::format("NLL {:.6g}", f.best_value));
      f.shown->set(f.line_searches);
    }
    LBFGSpp::LineSearchBacktracking<Scalar>::LineSearch(f, fx, x, grad, step, drt, xp, param);
  }
};

}  // namespace

std::int64_t logit_map_size(logit_map map, std::int64_t num_classes) {
  switch (map) {
    case logit_map::vector: return 2 * num_classes;
    case logit_map::matrix: return num_classes * num_classes + num_classes;
    case logit_map::class_temperature: return num_classes;
  }
  return 0;
}

std::vector<double> logit_map_identity(logit_map map, std::int64_t num_classes) {
  const std::int64_t k = num_classes;
  std::vector<double> p(static_cast<std::size_t>(logit_map_size(map, k)), 0.0);
  switch (map) {
    case logit_map::vector: std::fill(p.begin(), p.begin() + k, 1.0); break;
    case logit_map::matrix:
      for (std::int64_t j = 0; j < k; ++j) p[static_cast<std::size_t>(j * k + j)] = 1.0;
      break;
    case logit_map::class_temperature: std::fill(p.begin(), p.end(), 1.0); break;
  }
  return p;
}

std::vector<double> apply_logit_map(logit_map map, const std::vector<double>& params, const std::vector<double>& z,
                                    std::int64_t num_classes) {
  CALIBENCH_EXPECTS(static_cast<std::int64_t>(params.size()) == logit_map_size(map, num_classes),
                    "logit map parameters do not match K");
  const std::int64_t k = num_classes, n = static_cast<std::int64_t>(z.size()) / k;
  std::vector<double> q(z.size());
  const std::int64_t chunks = (n + k_chunk_rows - 1) / k_chunk_rows;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t begin = c * k_chunk_rows, rows = std::min(n, begin + k_chunk_rows) - begin;
    map_rows(map, params.data(), z.data() + begin * k, rows, k, q.data() + begin * k);
  }
  return q;
}

double logit_map_nll(logit_map map, const std::vector<double>& params, const std::vector<double>& z,
                     const std::vector<std::int32_t>& labels, std::int64_t num_classes, std::vector<double>& gradient) {
  CALIBENCH_EXPECTS(static_cast<std::int64_t>(params.size()) == logit_map_size(map, num_classes),
                    "logit map parameters do not match K");
  CALIBENCH_EXPECTS(z.size() == labels.size() * static_cast<std::size_t>(num_classes) && !labels.empty(),
                    "logits and labels differ in rows");
  gradient.assign(params.size(), 0.0);
  return nll_and_gradient(map, params.data(), z, labels, num_classes, gradient.data());
}

double odir_value(const map_penalty& penalty, const double* params, std::int64_t num_classes, double* gradient) {
  const std::int64_t k = num_classes;
  const double off_scale = k > 1 ? penalty.lambda / static_cast<double>(k * (k - 1)) : 0.0;
  const double bias_scale = penalty.mu / static_cast<double>(k);
  double off = 0, bias = 0;
  for (std::int64_t i = 0; i < k; ++i)
    for (std::int64_t j = 0; j < k; ++j) {
      if (i == j) continue;
      const double w = params[i * k + j];
      off += w * w;
      gradient[i * k + j] += 2.0 * off_scale * w;
    }
  for (std::int64_t i = 0; i < k; ++i) {
    const double b = params[k * k + i];
    bias += b * b;
    gradient[k * k + i] += 2.0 * bias_scale * b;
  }
  return off_scale * off + bias_scale * bias;
}

double sms_value(const map_penalty& penalty, const double* params, std::int64_t num_classes, double* gradient) {
  const std::int64_t k = num_classes;
  double off = 0, diag = 0, bias = 0;
  for (std::int64_t i = 0; i < k; ++i)
    for (std::int64_t j = 0; j < k; ++j) {
      const double w = params[i * k + j];
      if (i == j) {
        diag += (w - 1.0) * (w - 1.0);
        gradient[i * k + j] += 2.0 * penalty.diagonal * (w - 1.0);
      } else {
        off += w * w;
        gradient[i * k + j] += 2.0 * penalty.lambda * w;
      }
    }
  for (std::int64_t i = 0; i < k; ++i) {
    const double b = params[k * k + i];
    bias += b * b;
    gradient[k * k + i] += 2.0 * penalty.mu * b;
  }
  return penalty.lambda * off + penalty.diagonal * diag + penalty.mu * bias;
}

double l2_value(const map_penalty& penalty, logit_map map, const double* params, std::int64_t num_classes,
                double* gradient) {
  CALIBENCH_EXPECTS(map != logit_map::class_temperature, "the l2 penalty applies to the matrix and vector maps");
  const std::int64_t k = num_classes, last = k - 1;
  const double scale = penalty.lambda / static_cast<double>(k * (k + 1));
  double sum = 0;
  if (map == logit_map::matrix) {
    // Column j of A = [W | b] is W(:, j) for j < K and b for j = K.
    const auto at = [k](std::int64_t i, std::int64_t j) { return j < k ? i * k + j : k * k + i; };
    for (std::int64_t j = 0; j <= k; ++j)
      for (std::int64_t i = 0; i < last; ++i) {
        const double d = params[at(i, j)] - params[at(last, j)];
        sum += d * d;
        gradient[at(i, j)] += 2.0 * scale * d;
        gradient[at(last, j)] -= 2.0 * scale * d;
      }
    return scale * sum;
  }
  // Vector map [w, b]: row i < K-1 of A minus row K-1 is w_i at column i, -w_{K-1} at column
  // K-1 and b_i - b_{K-1} at the bias.
  const double w_last = params[last], b_last = params[k + last];
  for (std::int64_t i = 0; i < last; ++i) {
    const double w = params[i], d = params[k + i] - b_last;
    sum += w * w + w_last * w_last + d * d;
    gradient[i] += 2.0 * scale * w;
    gradient[last] += 2.0 * scale * w_last;
    gradient[k + i] += 2.0 * scale * d;
    gradient[k + last] -= 2.0 * scale * d;
  }
  return scale * sum;
}

std::vector<double> reference_row_form(const std::vector<double>& params, std::int64_t num_classes) {
  const std::int64_t k = num_classes, last = k - 1;
  CALIBENCH_EXPECTS(static_cast<std::int64_t>(params.size()) == k * k + k, "matrix map parameters do not match K");
  std::vector<double> out = params;
  for (std::int64_t i = 0; i < k; ++i) {
    for (std::int64_t j = 0; j < k; ++j) out[i * k + j] = params[i * k + j] - params[last * k + j];
    out[k * k + i] = params[k * k + i] - params[k * k + last];
  }
  return out;
}

logit_map_fit fit_logit_map(logit_map map, const std::vector<double>& z, const std::vector<std::int32_t>& labels,
                            std::int64_t num_classes, std::int64_t max_iterations, const std::string& where,
                            const map_penalty& penalty) {
  CALIBENCH_EXPECTS(z.size() == labels.size() * static_cast<std::size_t>(num_classes) && !labels.empty(),
                    "logits and labels differ in rows");
  CALIBENCH_EXPECTS(
      !penalty.active() || map == logit_map::matrix || (penalty.form == penalty_form::l2 && map == logit_map::vector),
      "the ODIR penalty applies to the matrix map only, the l2 penalty to the matrix and vector maps");
  for (std::size_t i = 0; i < z.size(); ++i) {
    if (!std::isfinite(z[i]))
      throw input_error(
          fmt::format("{}: non-finite logit (log of a probability 0?) at row {}: the logit maps need "
                      "finite logits",
                      where, i / static_cast<std::size_t>(num_classes)));
  }
  const std::vector<double> start = logit_map_identity(map, num_classes);
  Eigen::VectorXd x = Eigen::Map<const Eigen::VectorXd>(start.data(), static_cast<Eigen::Index>(start.size()));
  nll_objective f(map, z, labels, num_classes, penalty);
  progress shown("L-BFGS", max_iterations, "iterations", true);
  f.shown = &shown;
  logit_map_fit out;
  if (max_iterations == 0) {
    Eigen::VectorXd grad;
    f(x, grad);
    out.stop = "iterations";
  } else {
    LBFGSpp::LBFGSParam<double> param;
    param.m = 10;
    param.epsilon = k_gradient_tolerance;
    param.epsilon_rel = k_gradient_tolerance;
    param.max_iterations = static_cast<int>(std::min<std::int64_t>(max_iterations, 1 << 30));
    param.past = k_stall_iterations;
    param.delta = k_stall_tolerance;
    param.linesearch = LBFGSpp::LBFGS_LINESEARCH_BACKTRACKING_STRONG_WOLFE;
    LBFGSpp::LBFGSSolver<double, counted_line_search> solver(param);
    double fx = 0;
    try {
      solver.minimize(f, x, fx);
      if (f.best_gradient_norm <= k_gradient_tolerance * std::max(1.0, f.best_x.norm()))
        out.stop = "gradient";
      else
        out.stop = f.line_searches < max_iterations ? "objective" : "iterations";
    } catch (const error&) {
      throw;
    } catch (const std::runtime_error&) {
      // No step lowers the NLL any more within rounding (or the direction is no longer a
      // descent direction): the lowest point evaluated stands.
      out.stop = "line_search";
    } catch (const std::logic_error&) {
      out.stop = "line_search";
    }
  }
  out.params.assign(f.best_x.data(), f.best_x.data() + f.best_x.size());
  out.iterations = f.line_searches;
  out.evaluations = f.evaluations;
  out.nll = f.best_value;
  out.gradient_norm = f.best_gradient_norm;
  return out;
}

}  // namespace calibench
