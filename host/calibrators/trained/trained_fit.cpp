// Loss-trained calibrators (host/calibrators/trained/trained_fit.hpp). Sources of each rule: docs/calibrators.md,
// "Loss-trained calibrators". The optimisers are ports of torch.optim.LBFGS (no line search)
// and torch.optim.Adam as the class-wise loss scaling code calls them (SeungjinJung/SCTL,
// models/optimizer.py and models/__init__.py), in float64.
#include "host/calibrators/trained/trained_fit.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>

#include <fmt/format.h>
#include <nlopt.h>

#include "common/error.hpp"
#include "common/rng.hpp"

namespace calibench {
namespace {

constexpr double k_inf = std::numeric_limits<double>::infinity();

/// Rows per chunk of the deterministic sums: chunk partials are added in chunk order.
constexpr std::int64_t k_chunk = 256;

// ---- names ---------------------------------------------------------------------------------

constexpr std::array<trained_base, 6> k_bases{trained_base::ts,      trained_base::ets, trained_base::ets_sctl,
                                              trained_base::cts_nll, trained_base::pts, trained_base::pts_sctl};
constexpr std::array<trained_loss, 5> k_variant_losses{trained_loss::ce, trained_loss::ls, trained_loss::fl,
                                                       trained_loss::lsplus, trained_loss::sctl};

bool uses_adam(trained_base b) { return b == trained_base::pts || b == trained_base::pts_sctl; }
bool is_network(trained_base b) { return uses_adam(b); }

// ---- the losses ------------------------------------------------------------------------------

/// Everything a loss evaluation needs besides the calibrated outputs.
struct loss_context {
  trained_loss kind = trained_loss::ce;
  std::int64_t n = 0, k = 0;
  const std::vector<std::int32_t>* labels = nullptr;
  double ls_alpha = 0.05, fl_gamma = 3.0, lsplus_weight = 0.5;
  bool focal_detached = false;
  std::vector<double> prior_true, prior_other;  // lsplus, per class
  std::vector<double> prior_entropy;            // lsplus: sum_j v_j log v_j of v^k, per class
  std::vector<std::int64_t> class_count;        // sctl
  std::vector<std::int64_t> present;            // sctl: classes with samples, ascending
  std::unique_ptr<sctl_scaler> scaler;          // sctl
  sctl_norm norm = sctl_norm::nd;               // sctl
  std::vector<double> frozen_scale;             // sctl: 1 + w_i held fixed (ets's SLSQP phase); empty: none
  std::int64_t evaluations = 0;                 // counted evaluations (closure calls)
};

/// One row's loss term v and its gradient G = dv/dl in the log-probabilities l (p = exp(l)).
double row_loss(const loss_context& c, const double* l, const double* p, std::int32_t y, double* g) {
  const std::int64_t k = c.k;
  std::fill(g, g + k, 0.0);
  switch (c.kind) {
    case trained_loss::ce:
    case trained_loss::sctl:
      g[y] = -1.0;
      return -l[y];
    case trained_loss::ls: {
      // torch CrossEntropyLoss(label_smoothing = a): target (1 - a) onehot + a / K.
      const double other = c.ls_alpha / static_cast<double>(k);
      double v = 0;
      for (std::int64_t j = 0; j < k; ++j) {
        const double t = other + (j == y ? 1.0 - c.ls_alpha : 0.0);
        v -= t * l[j];
        g[j] = -t;
      }
      return v;
    }
    case trained_loss::fl: {
      const double q = 1.0 - p[y];
      const double factor = std::pow(q, c.fl_gamma);
      // d/dl_y of -(1 - e^l)^gamma l = gamma (1 - p)^(gamma - 1) p l - (1 - p)^gamma; the SCTL
      // code detaches p in the factor (`pt = Variable(logpt.data.exp())`): only the second term.
      g[y] = -factor;
      if (!c.focal_detached && q > 0) g[y] += c.fl_gamma * std::pow(q, c.fl_gamma - 1.0) * p[y] * l[y];
      return -factor * l[y];
    }
    case trained_loss::lsplus: {
      // (1 - a) (-l_y) + a KL(v^y || p), KL = sum_j v_j (log v_j - l_j); v_j = 0 terms are 0.
      const double a = c.lsplus_weight;
      const double vt = c.prior_true[static_cast<std::size_t>(y)], vo = c.prior_other[static_cast<std::size_t>(y)];
      double cross = 0;
      for (std::int64_t j = 0; j < k; ++j) {
        const double v = j == y ? vt : vo;
        if (v > 0) cross -= v * l[j];
        g[j] = -a * v;
      }
      g[y] -= 1.0 - a;
      return -(1.0 - a) * l[y] + a * (c.prior_entropy[static_cast<std::size_t>(y)] + cross);
    }
    case trained_loss::mse: {
      // Keras MeanSquaredError: mean over classes of (p - onehot)^2; dv/dl_j = p_j dv/dp_j.
      const double inv_k = 1.0 / static_cast<double>(k);
      double v = 0;
      for (std::int64_t j = 0; j < k; ++j) {
        const double d = p[j] - (j == y ? 1.0 : 0.0);
        v += d * d;
        g[j] = 2.0 * d * inv_k * p[j];
      }
      return v * inv_k;
    }
  }
  return 0;
}

/// Sum of f(i) for i in [0, n) in chunks of k_chunk, chunk partials added in order.
template <class F>
double chunked_sum(std::int64_t n, F f) {
  const std::int64_t chunks = (n + k_chunk - 1) / k_chunk;
  std::vector<double> part(static_cast<std::size_t>(chunks), 0.0);
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < chunks; ++c) {
    double s = 0;
    for (std::int64_t i = c * k_chunk; i < std::min(n, (c + 1) * k_chunk); ++i) s += f(i);
    part[static_cast<std::size_t>(c)] = s;
  }
  double total = 0;
  for (double s : part) total += s;
  return total;
}

/// The per-row weights f_n of the loss sum_n f_n v_n from the row terms v, and the loss.
/// Mean losses: f = 1/N. sctl: class losses L_i (mean of v over class i, in row order), their
/// scale 1 + w_i from the scaler (a counted evaluation when `count`; otherwise the current
/// (alpha, beta) without advancing it), f_n = (1 + w_y) / n_y.
double row_factors(loss_context& c, const std::vector<double>& v, std::vector<double>& f, bool count) {
  f.assign(static_cast<std::size_t>(c.n), 0.0);
  if (count) ++c.evaluations;
  if (c.kind != trained_loss::sctl) {
    std::fill(f.begin(), f.end(), 1.0 / static_cast<double>(c.n));
    return chunked_sum(c.n, [&](std::int64_t i) { return v[static_cast<std::size_t>(i)]; }) /
           static_cast<double>(c.n);
  }
  std::vector<double> sums(static_cast<std::size_t>(c.k), 0.0);
  for (std::int64_t i = 0; i < c.n; ++i) sums[static_cast<std::size_t>((*c.labels)[static_cast<std::size_t>(i)])] += v[static_cast<std::size_t>(i)];
  std::vector<double> losses, scale(c.present.size());
  for (const std::int64_t cls : c.present)
    losses.push_back(sums[static_cast<std::size_t>(cls)] / static_cast<double>(c.class_count[static_cast<std::size_t>(cls)]));
  for (std::size_t i = 0; i < losses.size(); ++i) {
    if (!std::isfinite(losses[i]))
      throw input_error(fmt::format("sctl: the loss of class {} is not finite during training (diverged)", c.present[i]));
  }
  double value = 0;
  if (!c.frozen_scale.empty()) {
    scale = c.frozen_scale;
    for (std::size_t i = 0; i < losses.size(); ++i) value += scale[i] * losses[i];
  } else if (count) {
    value = c.scaler->evaluate(losses, scale);
  } else {
    const auto w = sctl_weights(sctl_normalise(losses, c.norm),
                                c.scaler->alpha(), c.scaler->beta());
    for (std::size_t i = 0; i < w.size(); ++i) scale[i] = 1.0 + w[i];
    value = sctl_weighted_loss(losses, w);
  }
  std::vector<double> per_class(static_cast<std::size_t>(c.k), 0.0);
  for (std::size_t i = 0; i < c.present.size(); ++i) {
    const auto cls = static_cast<std::size_t>(c.present[i]);
    per_class[cls] = scale[i] / static_cast<double>(c.class_count[cls]);
  }
  for (std::int64_t i = 0; i < c.n; ++i) f[static_cast<std::size_t>(i)] = per_class[static_cast<std::size_t>((*c.labels)[static_cast<std::size_t>(i)])];
  return value;
}


/// The loss at calibrated logits q (N x K) and, when `dq` is given, dLoss/dq (N x K):
/// dq_n = f_n (G_n - p_n sum_j G_nj), with l = log_softmax(q), p = exp(l).
double loss_at_logits(loss_context& c, const std::vector<double>& q, std::vector<double>* dq, bool count) {
  const std::int64_t n = c.n, k = c.k;
  std::vector<double> v(static_cast<std::size_t>(n));
  if (dq != nullptr) dq->assign(static_cast<std::size_t>(n * k), 0.0);
#pragma omp parallel
  {
    std::vector<double> l(static_cast<std::size_t>(k)), p(static_cast<std::size_t>(k)), g(static_cast<std::size_t>(k));
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const double* row = q.data() + i * k;
      const double m = *std::max_element(row, row + k);
      double sum = 0;
      for (std::int64_t j = 0; j < k; ++j) sum += std::exp(row[j] - m);
      const double lse = m + std::log(sum);
      for (std::int64_t j = 0; j < k; ++j) {
        l[static_cast<std::size_t>(j)] = row[j] - lse;
        p[static_cast<std::size_t>(j)] = std::exp(l[static_cast<std::size_t>(j)]);
      }
      v[static_cast<std::size_t>(i)] = row_loss(c, l.data(), p.data(), (*c.labels)[static_cast<std::size_t>(i)], g.data());
      if (dq != nullptr) {
        double gs = 0;
        for (std::int64_t j = 0; j < k; ++j) gs += g[static_cast<std::size_t>(j)];
        double* out = dq->data() + i * k;
        for (std::int64_t j = 0; j < k; ++j) out[j] = g[static_cast<std::size_t>(j)] - p[static_cast<std::size_t>(j)] * gs;
      }
    }
  }
  std::vector<double> f;
  const double value = row_factors(c, v, f, count);
  if (dq != nullptr) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      double* out = dq->data() + i * k;
      for (std::int64_t j = 0; j < k; ++j) out[j] *= f[static_cast<std::size_t>(i)];
    }
  }
  return value;
}

/// Sum over rows of row_gradient(i, g) into a P-vector, in chunks added in order.
template <class F>
std::vector<double> chunked_gradient(std::int64_t n, std::size_t size, F row_gradient) {
  const std::int64_t chunks = (n + k_chunk - 1) / k_chunk;
  std::vector<double> part(static_cast<std::size_t>(chunks) * size, 0.0);
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < chunks; ++c) {
    double* g = part.data() + static_cast<std::size_t>(c) * size;
    for (std::int64_t i = c * k_chunk; i < std::min(n, (c + 1) * k_chunk); ++i) row_gradient(i, g);
  }
  std::vector<double> total(size, 0.0);
  for (std::int64_t c = 0; c < chunks; ++c)
    for (std::size_t j = 0; j < size; ++j) total[j] += part[static_cast<std::size_t>(c) * size + j];
  return total;
}

// ---- optimisers ----------------------------------------------------------------------------

/// A loss and its gradient at x (a counted evaluation: the closure of the authors' code).
using closure_fn = std::function<double(const std::vector<double>&, std::vector<double>&)>;

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

/// torch.optim.LBFGS(params, lr, max_iter, tolerance_grad, tolerance_change).step(closure) on a
/// fresh optimiser, with torch's other defaults: no line search, history_size 100,
/// max_eval = max_iter * 5 / 4. The first step is min(1, 1/||g||_1) lr along -g, later steps
/// lr along the two-loop direction; the last iteration moves x without evaluating the loss.
training_stage torch_lbfgs(std::vector<double>& x, double lr, std::int64_t max_iter, double tolerance_grad,
                           double tolerance_change, const closure_fn& closure) {
  constexpr std::size_t history_size = 100;
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
  std::vector<std::vector<double>> old_dirs, old_stps;
  std::vector<double> ro, al(history_size), d(x.size()), prev_g;
  double h_diag = 1, t = lr;
  std::int64_t n_iter = 0;
  while (n_iter < max_iter) {
    ++n_iter;
    if (n_iter == 1) {
      for (std::size_t i = 0; i < x.size(); ++i) d[i] = -g[i];
    } else {
      std::vector<double> y(x.size()), s(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) {
        y[i] = g[i] - prev_g[i];
        s[i] = d[i] * t;
      }
      const double ys = dot(y, s);
      if (ys > 1e-10) {
        if (old_dirs.size() == history_size) {
          old_dirs.erase(old_dirs.begin());
          old_stps.erase(old_stps.begin());
          ro.erase(ro.begin());
        }
        old_dirs.push_back(y);
        old_stps.push_back(s);
        ro.push_back(1.0 / ys);
        h_diag = ys / dot(y, y);
      }
      std::vector<double> q(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) q[i] = -g[i];
      for (std::size_t h = old_dirs.size(); h-- > 0;) {
        al[h] = dot(old_stps[h], q) * ro[h];
        for (std::size_t i = 0; i < x.size(); ++i) q[i] -= al[h] * old_dirs[h][i];
      }
      for (std::size_t i = 0; i < x.size(); ++i) d[i] = q[i] * h_diag;
      for (std::size_t h = 0; h < old_dirs.size(); ++h) {
        const double be = dot(old_dirs[h], d) * ro[h];
        for (std::size_t i = 0; i < x.size(); ++i) d[i] += old_stps[h][i] * (al[h] - be);
      }
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

// ---- the networks of pts and pts_sctl --------------------------------------------------------

std::vector<double> network_flat(const std::vector<mlp_layer>& net) {
  std::vector<double> x;
  for (const auto& l : net) {
    x.insert(x.end(), l.weight.begin(), l.weight.end());
    x.insert(x.end(), l.bias.begin(), l.bias.end());
  }
  return x;
}

void network_unflat(std::vector<mlp_layer>& net, const std::vector<double>& x) {
  std::size_t o = 0;
  for (auto& l : net) {
    std::copy(x.begin() + static_cast<std::ptrdiff_t>(o), x.begin() + static_cast<std::ptrdiff_t>(o + l.weight.size()), l.weight.begin());
    o += l.weight.size();
    std::copy(x.begin() + static_cast<std::ptrdiff_t>(o), x.begin() + static_cast<std::ptrdiff_t>(o + l.bias.size()), l.bias.begin());
    o += l.bias.size();
  }
}

/// The layer shapes: pts_sctl Linear(s, 2) + 3 x Linear(2, 2) + Linear(2, 1); pts Linear(s, H)
/// + (L - 1) x Linear(H, H) + Linear(H, 1). ReLU after every layer but the last.
std::vector<mlp_layer> network_shape(trained_base base, std::int64_t inputs, const train_options& o) {
  std::vector<std::pair<std::int64_t, std::int64_t>> dims;
  if (base == trained_base::pts_sctl) {
    dims = {{inputs, 2}, {2, 2}, {2, 2}, {2, 2}, {2, 1}};
  } else {
    dims.push_back({inputs, o.pts_nodes});
    for (std::int64_t i = 1; i < o.pts_layers; ++i) dims.push_back({o.pts_nodes, o.pts_nodes});
    dims.push_back({o.pts_nodes, 1});
  }
  std::vector<mlp_layer> net;
  for (const auto& [in, out] : dims) {
    mlp_layer l;
    l.in = in;
    l.out = out;
    l.weight.assign(static_cast<std::size_t>(in * out), 0.0);
    l.bias.assign(static_cast<std::size_t>(out), 0.0);
    net.push_back(std::move(l));
  }
  return net;
}

/// Seeded initial weights: pts_sctl as torch's nn.Linear default (weight and bias uniform in
/// +-1/sqrt(in)); pts as Keras' Dense default (Glorot uniform weights, +-sqrt(6/(in+out)); zero
/// biases). One SplitMix64 stream, layers in order, weights row-major then biases.
void network_init(std::vector<mlp_layer>& net, trained_base base, std::uint64_t seed) {
  splitmix64 rng = make_stream(seed, 0);
  for (auto& l : net) {
    const double in = static_cast<double>(l.in), out = static_cast<double>(l.out);
    const double bound = base == trained_base::pts_sctl ? 1.0 / std::sqrt(in) : std::sqrt(6.0 / (in + out));
    for (double& w : l.weight) w = (2.0 * rng.uniform() - 1.0) * bound;
    for (double& b : l.bias) b = base == trained_base::pts_sctl ? (2.0 * rng.uniform() - 1.0) * bound : 0.0;
  }
}

std::vector<mlp_layer> network_from_json(const nlohmann::json& j, const std::vector<mlp_layer>& shape,
                                         const std::string& where) {
  try {
    const auto& layers = j.at("layers");
    if (!layers.is_array() || layers.size() != shape.size())
      throw input_error(fmt::format("{}: expected {} layers, found {}", where, shape.size(),
                                    layers.is_array() ? layers.size() : 0));
    std::vector<mlp_layer> net = shape;
    for (std::size_t li = 0; li < shape.size(); ++li) {
      const auto w = layers[li].at("weight").get<std::vector<std::vector<double>>>();
      const auto b = layers[li].at("bias").get<std::vector<double>>();
      auto& l = net[li];
      if (static_cast<std::int64_t>(w.size()) != l.out || static_cast<std::int64_t>(b.size()) != l.out)
        throw input_error(fmt::format("{}: layer {} needs {} x {} weights and {} biases", where, li, l.out, l.in, l.out));
      for (std::int64_t r = 0; r < l.out; ++r) {
        if (static_cast<std::int64_t>(w[static_cast<std::size_t>(r)].size()) != l.in)
          throw input_error(fmt::format("{}: layer {} row {} has {} weights, expected {}", where, li, r,
                                        w[static_cast<std::size_t>(r)].size(), l.in));
        for (std::int64_t c = 0; c < l.in; ++c) {
          const double x = w[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)];
          if (!std::isfinite(x)) throw input_error(fmt::format("{}: layer {} weight [{}][{}] is not finite", where, li, r, c));
          l.weight[static_cast<std::size_t>(r * l.in + c)] = x;
        }
        if (!std::isfinite(b[static_cast<std::size_t>(r)]))
          throw input_error(fmt::format("{}: layer {} bias [{}] is not finite", where, li, r));
        l.bias[static_cast<std::size_t>(r)] = b[static_cast<std::size_t>(r)];
      }
    }
    return net;
  } catch (const nlohmann::json::exception& e) {
    throw input_error(fmt::format("{}: malformed network ({})", where, e.what()));
  }
}

nlohmann::json network_to_json(const std::vector<mlp_layer>& net) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : net) {
    nlohmann::json w = nlohmann::json::array();
    for (std::int64_t r = 0; r < l.out; ++r)
      w.push_back(std::vector<double>(l.weight.begin() + r * l.in, l.weight.begin() + (r + 1) * l.in));
    layers.push_back({{"weight", w}, {"bias", l.bias}});
  }
  return {{"layers", layers}};
}

/// The network's inputs: the top-s values of each row of s(z) (pts: clip(z, -100, 100)), descending.
std::vector<double> network_features(trained_base base, const std::vector<double>& z, std::int64_t n, std::int64_t k,
                                     std::int64_t top) {
  std::vector<double> f(static_cast<std::size_t>(n * top));
#pragma omp parallel
  {
    std::vector<double> row(static_cast<std::size_t>(k));
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t j = 0; j < k; ++j) {
        const double x = z[static_cast<std::size_t>(i * k + j)];
        row[static_cast<std::size_t>(j)] = base == trained_base::pts ? std::clamp(x, -100.0, 100.0) : x;
      }
      std::partial_sort(row.begin(), row.begin() + top, row.end(), std::greater<>());
      std::copy(row.begin(), row.begin() + top, f.begin() + i * top);
    }
  }
  return f;
}

/// Forward pass of one row: acts[l] = the output of layer l (after ReLU except the last);
/// returns the network output t.
double network_row(const std::vector<mlp_layer>& net, const double* x, std::vector<std::vector<double>>& acts) {
  const double* in = x;
  for (std::size_t li = 0; li < net.size(); ++li) {
    const auto& l = net[li];
    auto& out = acts[li];
    out.resize(static_cast<std::size_t>(l.out));
    for (std::int64_t r = 0; r < l.out; ++r) {
      double s = l.bias[static_cast<std::size_t>(r)];
      for (std::int64_t c = 0; c < l.in; ++c) s += l.weight[static_cast<std::size_t>(r * l.in + c)] * in[c];
      out[static_cast<std::size_t>(r)] = li + 1 < net.size() ? std::max(s, 0.0) : s;
    }
    in = out.data();
  }
  return acts.back()[0];
}

/// Backward pass of one row given dLoss/dt: adds the parameter gradient to g (flat layout).
void network_row_backward(const std::vector<mlp_layer>& net, const double* x, const std::vector<std::vector<double>>& acts,
                          double dt, double* g) {
  thread_local std::vector<double> delta, prev;
  std::size_t end = 0;
  for (const auto& l : net) end += l.weight.size() + l.bias.size();
  delta.assign(1, dt);
  for (std::size_t li = net.size(); li-- > 0;) {
    const auto& l = net[li];
    const double* in = li == 0 ? x : acts[li - 1].data();
    end -= l.weight.size() + l.bias.size();
    double* gw = g + end;
    double* gb = gw + l.weight.size();
    prev.assign(static_cast<std::size_t>(l.in), 0.0);
    for (std::int64_t r = 0; r < l.out; ++r) {
      double dr = delta[static_cast<std::size_t>(r)];
      // ReLU: no gradient where the unit was not active (torch: gradient 0 at exactly 0).
      if (li + 1 < net.size() && !(acts[li][static_cast<std::size_t>(r)] > 0)) dr = 0;
      if (dr == 0) continue;
      gb[r] += dr;
      for (std::int64_t c = 0; c < l.in; ++c) {
        gw[r * l.in + c] += dr * in[c];
        prev[static_cast<std::size_t>(c)] += dr * l.weight[static_cast<std::size_t>(r * l.in + c)];
      }
    }
    delta.swap(prev);
  }
}

/// T from the network output t: pts clip(|t|, 1e-12, 1e12) (Tomani's code), pts_sctl t itself.
double temperature_of(trained_base base, double t) {
  return base == trained_base::pts ? std::clamp(std::abs(t), 1e-12, 1e12) : t;
}
double temperature_slope(trained_base base, double t) {
  if (base != trained_base::pts) return 1.0;
  const double a = std::abs(t);
  if (a < 1e-12 || a > 1e12 || t == 0) return 0.0;
  return t > 0 ? 1.0 : -1.0;
}

}  // namespace

// ---- names -----------------------------------------------------------------------------------

const char* trained_base_name(trained_base b) {
  switch (b) {
    case trained_base::ts: return "ts";
    case trained_base::ets: return "ets";
    case trained_base::ets_sctl: return "ets_sctl";
    case trained_base::cts_nll: return "cts_nll";
    case trained_base::pts: return "pts";
    case trained_base::pts_sctl: return "pts_sctl";
  }
  return "?";
}

const char* trained_loss_name(trained_loss l) {
  switch (l) {
    case trained_loss::ce: return "ce";
    case trained_loss::ls: return "ls";
    case trained_loss::fl: return "fl";
    case trained_loss::lsplus: return "lsplus";
    case trained_loss::sctl: return "sctl";
    case trained_loss::mse: return "mse";
  }
  return "?";
}

std::string trained_method_name(const trained_method& m) {
  const bool plain = (m.base == trained_base::pts && m.loss == trained_loss::mse) ||
                     ((m.base == trained_base::ets_sctl || m.base == trained_base::pts_sctl) && m.loss == trained_loss::ce);
  if (plain) return trained_base_name(m.base);
  return fmt::format("{}+{}", trained_base_name(m.base), trained_loss_name(m.loss));
}

const std::vector<std::string>& trained_method_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto b : k_bases) {
      if (b == trained_base::ets_sctl || b == trained_base::pts || b == trained_base::pts_sctl)
        v.emplace_back(trained_base_name(b));
      for (const auto l : k_variant_losses) v.push_back(fmt::format("{}+{}", trained_base_name(b), trained_loss_name(l)));
    }
    v.emplace_back("pts+mse");
    return v;
  }();
  return names;
}

std::optional<trained_method> parse_trained_method(std::string_view name) {
  for (const auto b : k_bases) {
    const std::string base = trained_base_name(b);
    if (name == base) {
      if (b == trained_base::pts) return trained_method{b, trained_loss::mse};
      if (b == trained_base::ets_sctl || b == trained_base::pts_sctl) return trained_method{b, trained_loss::ce};
      return std::nullopt;  // ts, ets, cts_nll: the converged fits of host/calibrators/calibrator.cpp
    }
    for (const auto l : k_variant_losses) {
      if (name == fmt::format("{}+{}", base, trained_loss_name(l))) return trained_method{b, l};
    }
  }
  if (name == "pts+mse") return trained_method{trained_base::pts, trained_loss::mse};
  return std::nullopt;
}

const char* train_schedule_name(train_schedule schedule) {
  switch (schedule) {
    case train_schedule::automatic: return "auto";
    case train_schedule::on: return "on";
    case train_schedule::off: return "off";
  }
  return "?";
}

namespace {

/// One optimiser stage of the authors' code: (lr, max_iter or steps).
struct stage_plan {
  double lr;
  std::int64_t iterations;
};

/// The stages: the ls/fl schedule (three fresh optimisers, models/optimizer.py `*_schedule`) or one.
std::vector<stage_plan> plan_stages(const trained_method& m, const train_options& o) {
  const bool given = o.lr >= 0 || o.iterations >= 0;
  bool schedule = m.loss == trained_loss::ls || m.loss == trained_loss::fl;
  if (o.schedule == train_schedule::on) {
    if (given) throw input_error("--lr and --iterations set one stage: use them with --schedule off (or auto)");
    schedule = true;
  } else if (o.schedule == train_schedule::off || given) {
    schedule = false;
  }
  if (schedule) return {{0.005, 200}, {0.003, 400}, {0.001, 400}};
  return {{o.lr >= 0 ? o.lr : 0.02, o.iterations >= 0 ? o.iterations : 1000}};
}

void check_options(const trained_method& m, const train_options& o) {
  auto positive = [](double v, const char* what) {
    if (!(v > 0) || !std::isfinite(v)) throw input_error(fmt::format("{} must be a positive number (got {})", what, v));
  };
  if (o.lr >= 0) positive(o.lr, "--lr");
  if (!(o.tolerance_grad >= 0) || !(o.tolerance_change >= 0))
    throw input_error("--tolerance-grad and --tolerance-change must be >= 0");
  if (!(o.ls_alpha >= 0 && o.ls_alpha <= 1)) throw input_error(fmt::format("--ls-alpha must lie in [0, 1] (got {})", o.ls_alpha));
  if (!(o.fl_gamma >= 0) || !std::isfinite(o.fl_gamma)) throw input_error(fmt::format("--fl-gamma must be >= 0 (got {})", o.fl_gamma));
  if (!(o.lsplus_weight >= 0 && o.lsplus_weight <= 1))
    throw input_error(fmt::format("--lsplus-weight must lie in [0, 1] (got {})", o.lsplus_weight));
  if (o.pts_top_k < 1 || o.pts_layers < 1 || o.pts_nodes < 1)
    throw input_error("--pts-top-k, --pts-layers and --pts-nodes must be at least 1");
  if (m.loss == trained_loss::sctl && (o.sctl.grid < 2 || o.sctl.grid > 4096))
    throw input_error(fmt::format("--sctl-grid must lie in [2, 4096] (got {})", o.sctl.grid));
  if (o.weight_decay >= 0 && !is_network(m.base))
    throw input_error(fmt::format("--weight-decay applies to pts and pts_sctl (Adam), not {}", trained_method_name(m)));
  if (!o.pts_init.empty() && !is_network(m.base))
    throw input_error(fmt::format("--pts-init applies to pts and pts_sctl, not {}", trained_method_name(m)));
}

/// Non-finite logits (log of a probability 0) have no gradient: refused, naming the first one.
void check_finite(const split_data& val, const std::vector<double>& z, const trained_method& m) {
  const std::int64_t k = val.num_classes;
  for (std::size_t i = 0; i < z.size(); ++i) {
    if (!std::isfinite(z[i]))
      throw input_error(fmt::format("{}: {}: non-finite logit at [{}, {}] (log of a probability 0?): {} needs finite logits",
                                    val.file, val.values_path(), i / static_cast<std::size_t>(k),
                                    i % static_cast<std::size_t>(k), trained_method_name(m)));
  }
}

/// The loss at the mixture p = w1 a + w2 b + w3 / K of ets (a = softmax(z / t), b = softmax(z)),
/// and its gradient in w. p is floored at the smallest normal double before the log.
double loss_at_mixture(loss_context& c, const std::vector<double>& a, const std::vector<double>& b,
                       const double* w, double* grad, bool count) {
  const std::int64_t n = c.n, k = c.k;
  const double inv_k = 1.0 / static_cast<double>(k);
  std::vector<double> v(static_cast<std::size_t>(n)), r(static_cast<std::size_t>(n * 3));
#pragma omp parallel
  {
    std::vector<double> l(static_cast<std::size_t>(k)), p(static_cast<std::size_t>(k)), g(static_cast<std::size_t>(k));
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t j = 0; j < k; ++j) {
        const auto e = static_cast<std::size_t>(i * k + j);
        p[static_cast<std::size_t>(j)] = std::max(w[0] * a[e] + w[1] * b[e] + w[2] * inv_k, std::numeric_limits<double>::min());
        l[static_cast<std::size_t>(j)] = std::log(p[static_cast<std::size_t>(j)]);
      }
      v[static_cast<std::size_t>(i)] = row_loss(c, l.data(), p.data(), (*c.labels)[static_cast<std::size_t>(i)], g.data());
      double r0 = 0, r1 = 0, r2 = 0;
      for (std::int64_t j = 0; j < k; ++j) {
        const auto e = static_cast<std::size_t>(i * k + j);
        const double dp = g[static_cast<std::size_t>(j)] / p[static_cast<std::size_t>(j)];
        r0 += dp * a[e];
        r1 += dp * b[e];
        r2 += dp * inv_k;
      }
      r[static_cast<std::size_t>(3 * i)] = r0;
      r[static_cast<std::size_t>(3 * i + 1)] = r1;
      r[static_cast<std::size_t>(3 * i + 2)] = r2;
    }
  }
  std::vector<double> f;
  const double value = row_factors(c, v, f, count);
  if (grad != nullptr) {
    const auto gsum = chunked_gradient(n, 3, [&](std::int64_t i, double* g) {
      for (int q = 0; q < 3; ++q) g[q] += f[static_cast<std::size_t>(i)] * r[static_cast<std::size_t>(3 * i + q)];
    });
    std::copy(gsum.begin(), gsum.end(), grad);
  }
  return value;
}

std::vector<double> softmax_rows(const std::vector<double>& z, std::int64_t n, std::int64_t k, double inv_t) {
  std::vector<double> p(z.size());
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    const double* row = z.data() + i * k;
    double m = -k_inf;
    for (std::int64_t j = 0; j < k; ++j) m = std::max(m, row[j] * inv_t);
    double s = 0;
    for (std::int64_t j = 0; j < k; ++j) s += (p[static_cast<std::size_t>(i * k + j)] = std::exp(row[j] * inv_t - m));
    for (std::int64_t j = 0; j < k; ++j) p[static_cast<std::size_t>(i * k + j)] /= s;
  }
  return p;
}

struct slsqp_data {
  loss_context* c;
  const std::vector<double>* a;
  const std::vector<double>* b;
  std::int64_t evaluations = 0;
  nlopt_opt opt = nullptr;
  std::exception_ptr failure;  ///< an exception of the objective, rethrown after nlopt_optimize
};

/// NLopt's objective: C frames must not be unwound, so an exception stops the run and is kept.
double ets_slsqp_objective(unsigned, const double* w, double* grad, void* data) {
  auto* d = static_cast<slsqp_data*>(data);
  ++d->evaluations;
  try {
    return loss_at_mixture(*d->c, *d->a, *d->b, w, grad, true);
  } catch (...) {
    d->failure = std::current_exception();
    nlopt_force_stop(d->opt);
    return k_inf;
  }
}

double simplex_constraint(unsigned, const double* w, double* grad, void*) {
  if (grad != nullptr) grad[0] = grad[1] = grad[2] = 1.0;
  return w[0] + w[1] + w[2] - 1.0;
}

/// The ets weights on the simplex by NLopt's SLSQP from (1, 0, 0) (Mix-n-Match fits them with
/// SciPy's SLSQP, tol 1e-12); the result is clipped to [0, 1] and renormalised to sum 1.
training_stage fit_ets_simplex(loss_context& c, const std::vector<double>& a, const std::vector<double>& b,
                               std::array<double, 3>& w) {
  constexpr int max_evaluations = 1000;
  training_stage st;
  st.parameters = "w";
  st.optimizer = "slsqp";
  st.iterations = max_evaluations;
  const std::unique_ptr<nlopt_opt_s, decltype(&nlopt_destroy)> opt(nlopt_create(NLOPT_LD_SLSQP, 3), &nlopt_destroy);
  if (!opt) throw error("ets: NLopt could not create an SLSQP optimiser");
  slsqp_data data{&c, &a, &b, 0, opt.get(), nullptr};
  const double lower[3] = {0, 0, 0}, upper[3] = {1, 1, 1};
  nlopt_set_lower_bounds(opt.get(), lower);
  nlopt_set_upper_bounds(opt.get(), upper);
  nlopt_set_min_objective(opt.get(), &ets_slsqp_objective, &data);
  nlopt_add_equality_constraint(opt.get(), &simplex_constraint, nullptr, 1e-12);
  nlopt_set_ftol_abs(opt.get(), 1e-12);
  nlopt_set_maxeval(opt.get(), max_evaluations);
  double x[3] = {1.0, 0.0, 0.0};
  // SLSQP needs the gradient of the value it minimises: the focal loss's full gradient, and for
  // sctl class weights held at their values at the start (1, 0, 0) for the whole phase (they are
  // recomputed from detached losses at every evaluation of the gradient-trained phases, which
  // gives a gradient of no fixed function).
  const bool detached = c.focal_detached;
  c.focal_detached = false;
  if (c.kind == trained_loss::sctl) {
    // The class losses at the start, where the mixture is a = softmax(z / t), weighed as the scaler would.
    std::vector<double> sums(static_cast<std::size_t>(c.k), 0.0);
    for (std::int64_t i = 0; i < c.n; ++i) {
      const auto y = static_cast<std::size_t>((*c.labels)[static_cast<std::size_t>(i)]);
      sums[y] -= std::log(std::max(a[static_cast<std::size_t>(i * c.k) + y], std::numeric_limits<double>::min()));
    }
    std::vector<double> losses;
    for (const std::int64_t cls : c.present)
      losses.push_back(sums[static_cast<std::size_t>(cls)] / static_cast<double>(c.class_count[static_cast<std::size_t>(cls)]));
    const auto class_w = sctl_weights(sctl_normalise(losses, c.norm), c.scaler->alpha(), c.scaler->beta());
    c.frozen_scale.clear();
    for (double wi : class_w) c.frozen_scale.push_back(1.0 + wi);
  }
  st.loss_before = loss_at_mixture(c, a, b, x, nullptr, false);
  double fx = 0;
  const nlopt_result status = nlopt_optimize(opt.get(), x, &fx);
  if (data.failure) std::rethrow_exception(data.failure);
  st.stop = nlopt_status_name(status);
  double sum = 0;
  for (double& v : x) sum += (v = std::clamp(v, 0.0, 1.0));
  if (!(sum > 0)) {
    x[0] = 1;
    x[1] = x[2] = 0;
    sum = 1;
  }
  for (int q = 0; q < 3; ++q) w[static_cast<std::size_t>(q)] = x[q] / sum;
  st.evaluations = data.evaluations;
  st.iterations_run = data.evaluations;
  st.loss_after = loss_at_mixture(c, a, b, w.data(), nullptr, false);
  c.focal_detached = detached;
  return st;
}

/// The calibrated logits of the temperature maps: w0 z / t + w1 z + w2 / K (ts: w = (1, 0, 0)),
/// or z_j / T_j (cts_nll).
std::vector<double> scaled_logits(const std::vector<double>& z, std::int64_t k, double t, const std::array<double, 3>& w,
                                  const std::vector<double>* per_class) {
  std::vector<double> q(z.size());
  const double add = w[2] / static_cast<double>(k);
  for (std::size_t e = 0; e < z.size(); ++e) {
    q[e] = per_class != nullptr ? z[e] / (*per_class)[e % static_cast<std::size_t>(k)]
                                : w[0] * (z[e] / t) + w[1] * z[e] + add;
  }
  return q;
}

/// pts, pts_sctl: calibrated logits s(z) / T(x) and the per-row T.
std::vector<double> network_logits(trained_base base, const std::vector<mlp_layer>& net, const std::vector<double>& z,
                                   const std::vector<double>& features, std::int64_t n, std::int64_t k, std::int64_t top,
                                   std::vector<double>* raw_t) {
  std::vector<double> q(z.size());
  if (raw_t != nullptr) raw_t->assign(static_cast<std::size_t>(n), 0.0);
#pragma omp parallel
  {
    std::vector<std::vector<double>> acts(net.size());
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const double t = network_row(net, features.data() + i * top, acts);
      if (raw_t != nullptr) (*raw_t)[static_cast<std::size_t>(i)] = t;
      const double temp = temperature_of(base, t);
      for (std::int64_t j = 0; j < k; ++j) {
        const double x = z[static_cast<std::size_t>(i * k + j)];
        q[static_cast<std::size_t>(i * k + j)] = (base == trained_base::pts ? std::clamp(x, -100.0, 100.0) : x) / temp;
      }
    }
  }
  return q;
}

}  // namespace

namespace {

/// The loss context of a training run on `val` (lsplus priors, sctl classes and scaler).
std::unique_ptr<loss_context> make_context(const split_data& val, const trained_method& m, const train_options& o) {
  auto c = std::make_unique<loss_context>();
  const std::int64_t k = val.num_classes;
  c->kind = m.loss;
  c->n = val.num_samples;
  c->k = k;
  c->labels = &val.labels;
  c->ls_alpha = o.ls_alpha;
  c->fl_gamma = o.fl_gamma;
  c->focal_detached = o.focal_detached;
  c->lsplus_weight = o.lsplus_weight;
  if (m.loss == trained_loss::lsplus) {
    for (const auto& p : compute_lsplus_priors(val, o.lsplus_rule).classes) {
      c->prior_true.push_back(p.prior_true);
      c->prior_other.push_back(p.prior_other);
      double h = 0;
      if (p.prior_true > 0) h += p.prior_true * std::log(p.prior_true);
      if (p.prior_other > 0) h += static_cast<double>(k - 1) * p.prior_other * std::log(p.prior_other);
      c->prior_entropy.push_back(h);
    }
  }
  if (m.loss == trained_loss::sctl) {
    c->class_count.assign(static_cast<std::size_t>(k), 0);
    for (const auto y : val.labels) ++c->class_count[static_cast<std::size_t>(y)];
    for (std::int64_t cls = 0; cls < k; ++cls)
      if (c->class_count[static_cast<std::size_t>(cls)] > 0) c->present.push_back(cls);
    if (c->present.size() < 2)
      throw input_error(fmt::format("{}: {}: +sctl needs validation samples of at least 2 classes ({} present)",
                                    val.file, val.values_path(), c->present.size()));
    c->norm = o.sctl.norm;
    c->scaler = std::make_unique<sctl_scaler>(o.sctl);
  }
  return c;
}

/// Logits of a split as double (log p for probability dumps), checked finite.
std::vector<double> finite_logits(const split_data& val, const trained_method& m) {
  std::vector<double> z = val.values;
  if (val.is_probs) {
    for (double& x : z) x = std::log(x);
  }
  check_finite(val, z, m);
  return z;
}

/// The inputs of one base map: logits and (pts, pts_sctl) the network's features.
struct map_inputs {
  const std::vector<double>* z = nullptr;
  std::vector<double> features;
  std::int64_t n = 0, k = 0, top = 0;
};

/// The loss of a logit map and its gradient in the map's full parameter vector: ts [t];
/// ets_sctl [t, w0, w1, w2]; cts_nll [T_0 .. T_{K-1}]; pts, pts_sctl the network (network_flat
/// layout; `work` holds the network's shape). A counted evaluation when `count`.
double map_loss(loss_context& c, trained_base base, const map_inputs& in, const std::vector<double>& x,
                std::vector<double>* grad, bool count, std::vector<mlp_layer>& work) {
  const std::vector<double>& z = *in.z;
  const std::int64_t n = in.n, k = in.k;
  std::vector<double> dq;
  std::vector<double>* dq_ptr = grad != nullptr ? &dq : nullptr;
  switch (base) {
    case trained_base::ts:
    case trained_base::ets: {
      const double t = x[0];
      const double value = loss_at_logits(c, scaled_logits(z, k, t, {1.0, 0.0, 0.0}, nullptr), dq_ptr, count);
      if (grad != nullptr) {
        const double s = chunked_sum(n * k, [&](std::int64_t e) { return dq[static_cast<std::size_t>(e)] * z[static_cast<std::size_t>(e)]; });
        grad->assign(1, -s / (t * t));
      }
      return value;
    }
    case trained_base::ets_sctl: {
      const double t = x[0];
      const double value = loss_at_logits(c, scaled_logits(z, k, t, {x[1], x[2], x[3]}, nullptr), dq_ptr, count);
      if (grad != nullptr) {
        const double w0 = x[1];
        *grad = chunked_gradient(n, 4, [&](std::int64_t i, double* g) {
          for (std::int64_t j = 0; j < k; ++j) {
            const auto e = static_cast<std::size_t>(i * k + j);
            g[0] -= dq[e] * w0 * z[e] / (t * t);
            g[1] += dq[e] * z[e] / t;
            g[2] += dq[e] * z[e];
            g[3] += dq[e] / static_cast<double>(k);
          }
        });
      }
      return value;
    }
    case trained_base::cts_nll: {
      const double value = loss_at_logits(c, scaled_logits(z, k, 1.0, {}, &x), dq_ptr, count);
      if (grad != nullptr) {
        *grad = chunked_gradient(n, static_cast<std::size_t>(k), [&](std::int64_t i, double* g) {
          for (std::int64_t j = 0; j < k; ++j) {
            const auto e = static_cast<std::size_t>(i * k + j);
            const double t = x[static_cast<std::size_t>(j)];
            g[j] -= dq[e] * z[e] / (t * t);
          }
        });
      }
      return value;
    }
    case trained_base::pts:
    case trained_base::pts_sctl: {
      network_unflat(work, x);
      std::vector<double> raw_t;
      const double value =
          loss_at_logits(c, network_logits(base, work, z, in.features, n, k, in.top, &raw_t), dq_ptr, count);
      if (grad != nullptr) {
        *grad = chunked_gradient(n, x.size(), [&](std::int64_t i, double* g) {
          const double t = raw_t[static_cast<std::size_t>(i)];
          const double temp = temperature_of(base, t);
          double d_temp = 0;
          for (std::int64_t j = 0; j < k; ++j) {
            const double zz = z[static_cast<std::size_t>(i * k + j)];
            const double s = base == trained_base::pts ? std::clamp(zz, -100.0, 100.0) : zz;
            d_temp -= dq[static_cast<std::size_t>(i * k + j)] * s / (temp * temp);
          }
          const double dt = d_temp * temperature_slope(base, t);
          if (dt == 0) return;
          thread_local std::vector<std::vector<double>> acts;
          acts.resize(work.size());
          network_row(work, in.features.data() + i * in.top, acts);
          network_row_backward(work, in.features.data() + i * in.top, acts, dt, g);
        });
      }
      return value;
    }
  }
  return 0;
}

/// The network of pts/pts_sctl before training: --pts-init, or the seeded default.
std::vector<mlp_layer> initial_network(const trained_method& m, std::int64_t top, const train_options& o) {
  std::vector<mlp_layer> net = network_shape(m.base, top, o);
  if (o.pts_init.empty()) {
    network_init(net, m.base, o.seed);
    return net;
  }
  std::ifstream in(o.pts_init);
  if (!in) throw input_error(fmt::format("{}: cannot open --pts-init file", o.pts_init));
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw input_error(fmt::format("{}: not JSON ({})", o.pts_init, e.what()));
  }
  return network_from_json(j, net, o.pts_init);
}

}  // namespace

trained_model fit_trained(const split_data& val, const trained_method& m, const train_options& o) {
  check_options(m, o);
  const std::int64_t n = val.num_samples, k = val.num_classes;
  if (n < 1 || k < 2) throw input_error(fmt::format("{}: {} needs samples and K >= 2", val.file, trained_method_name(m)));
  const std::vector<double> z = finite_logits(val, m);
  const auto stages = plan_stages(m, o);
  const auto context = make_context(val, m, o);
  loss_context& c = *context;

  trained_model model;
  model.method = m;
  model.num_classes = k;
  model.ls_alpha = o.ls_alpha;
  model.fl_gamma = o.fl_gamma;
  model.focal_detached = o.focal_detached;
  model.lsplus_weight = o.lsplus_weight;
  model.lsplus_prior = c.prior_true;
  if (m.loss == trained_loss::sctl) {
    model.sctl_classes = c.present;
    model.sctl_normalisation = o.sctl.norm;
    model.sctl_solver = o.sctl.solver == sctl_solver::slsqp ? "slsqp" : "grid";
  }
  map_inputs in;
  in.z = &z;
  in.n = n;
  in.k = k;
  std::vector<mlp_layer> work;
  if (is_network(m.base)) {
    in.top = std::min(o.pts_top_k, k);
    in.features = network_features(m.base, z, n, k, in.top);
    model.top_k = in.top;
    model.network = initial_network(m, in.top, o);
    model.weight_decay = o.weight_decay >= 0 ? o.weight_decay : (m.base == trained_base::pts ? 0.002 : 0.0);
    work = model.network;
  }

  // One optimiser run per stage over the parameters `x` (the indices `free` of the map's full
  // vector `full`; the others fixed), as the authors' code runs one optimiser per phase.
  const auto train = [&](std::vector<double>& full, const std::vector<std::size_t>& free, trained_base map,
                         const char* what) {
    std::vector<double> x;
    for (const auto i : free) x.push_back(full[i]);
    const closure_fn f = [&](const std::vector<double>& xs, std::vector<double>& g) {
      std::vector<double> at = full, gf;
      for (std::size_t q = 0; q < free.size(); ++q) at[free[q]] = xs[q];
      const double value = map_loss(c, map, in, at, &gf, true, work);
      g.resize(free.size());
      for (std::size_t q = 0; q < free.size(); ++q) g[q] = gf[free[q]];
      return value;
    };
    for (const auto& s : stages) {
      if (s.iterations == 0) continue;
      auto st = uses_adam(map) ? torch_adam(x, s.lr, s.iterations, model.weight_decay, f)
                               : torch_lbfgs(x, s.lr, s.iterations, o.tolerance_grad, o.tolerance_change, f);
      st.parameters = what;
      if (st.stop == "non_finite")
        throw input_error(fmt::format("{}: {} diverged: the training loss or its gradient is not finite in stage {} "
                                      "({} of {}, lr {}, evaluation {}); try a smaller --lr or another start",
                                      val.file, trained_method_name(m), model.stages.size() + 1, st.optimizer, what,
                                      st.lr, st.evaluations));
      model.stages.push_back(st);
    }
    for (std::size_t q = 0; q < free.size(); ++q) full[free[q]] = x[q];
    for (double v : x) {
      if (!std::isfinite(v))
        throw input_error(fmt::format("{}: {} diverged (non-finite parameters); try a smaller --lr", val.file,
                                      trained_method_name(m)));
    }
  };
  const auto all = [](std::size_t size) {
    std::vector<std::size_t> v(size);
    std::iota(v.begin(), v.end(), std::size_t{0});
    return v;
  };

  std::vector<double> full;
  switch (m.base) {
    case trained_base::ts:
    case trained_base::ets:
      full = {1.0};
      train(full, {0}, trained_base::ts, "t");
      model.temperature = full[0];
      break;
    case trained_base::ets_sctl:
      full = {1.0, 1.0, 0.0, 0.0};
      train(full, {0}, m.base, "t");
      train(full, {1, 2, 3}, m.base, "w");
      model.temperature = full[0];
      model.weights = {full[1], full[2], full[3]};
      break;
    case trained_base::cts_nll:
      full.assign(static_cast<std::size_t>(k), 1.0);
      train(full, all(full.size()), m.base, "T");
      model.temperatures = full;
      break;
    case trained_base::pts:
    case trained_base::pts_sctl:
      full = network_flat(model.network);
      train(full, all(full.size()), m.base, "network");
      network_unflat(model.network, full);
      break;
  }
  // A temperature map must end with t > 0 (t <= 0 reverses or flattens every row: torch would
  // return it silently), and per-class temperatures must not be 0 (negative ones are counted).
  if ((m.base == trained_base::ts || m.base == trained_base::ets || m.base == trained_base::ets_sctl) &&
      !(model.temperature > 0))
    throw input_error(fmt::format("{}: {} ended at t = {} <= 0, which reverses or flattens every prediction; try a "
                                  "smaller --lr", val.file, trained_method_name(m), model.temperature));
  if (m.base == trained_base::cts_nll) {
    for (std::size_t j = 0; j < model.temperatures.size(); ++j) {
      if (model.temperatures[j] == 0)
        throw input_error(fmt::format("{}: {} ended with T_{} = 0; try a smaller --lr", val.file,
                                      trained_method_name(m), j));
      if (model.temperatures[j] < 0) ++model.nonpositive_temperatures;
    }
  }
  if (m.base == trained_base::ets) {
    const auto a = softmax_rows(z, n, k, 1.0 / model.temperature);
    const auto b = softmax_rows(z, n, k, 1.0);
    model.stages.push_back(fit_ets_simplex(c, a, b, model.weights));
    model.final_loss = loss_at_mixture(c, a, b, model.weights.data(), nullptr, false);
  } else {
    model.final_loss = map_loss(c, m.base, in, full, nullptr, false, work);
  }
  if (!model.stages.empty() && model.stages.back().optimizer != "slsqp") model.stages.back().loss_after = model.final_loss;
  if (is_network(m.base)) {
    std::vector<double> raw_t;
    network_logits(m.base, model.network, z, in.features, n, k, in.top, &raw_t);
    std::vector<double> temps(raw_t.size());
    for (std::size_t i = 0; i < raw_t.size(); ++i) {
      temps[i] = temperature_of(m.base, raw_t[i]);
      if (raw_t[i] <= 0) ++model.nonpositive_temperatures;
    }
    std::sort(temps.begin(), temps.end());
    model.temperature_range = {temps.front(), temps[temps.size() / 2], temps.back()};
  }
  if (!std::isfinite(model.final_loss))
    throw input_error(fmt::format("{}: {} ended with a non-finite training loss (a temperature of 0?); try a smaller "
                                  "--lr or another start", val.file, trained_method_name(m)));
  if (c.scaler && c.scaler->fitted()) model.sctl = c.scaler->fit();
  return model;
}

double training_loss(const split_data& val, const trained_method& m, const train_options& o,
                     const trained_model& model, std::vector<double>* gradient) {
  check_options(m, o);
  const std::vector<double> z = finite_logits(val, m);
  const auto context = make_context(val, m, o);
  const std::int64_t n = val.num_samples, k = val.num_classes;
  if (m.base == trained_base::ets) {
    const auto a = softmax_rows(z, n, k, 1.0 / model.temperature);
    const auto b = softmax_rows(z, n, k, 1.0);
    if (gradient != nullptr) gradient->assign(3, 0.0);
    return loss_at_mixture(*context, a, b, model.weights.data(), gradient != nullptr ? gradient->data() : nullptr, false);
  }
  map_inputs in;
  in.z = &z;
  in.n = n;
  in.k = k;
  std::vector<mlp_layer> work = model.network;
  std::vector<double> x;
  switch (m.base) {
    case trained_base::ts: x = {model.temperature}; break;
    case trained_base::ets_sctl: x = {model.temperature, model.weights[0], model.weights[1], model.weights[2]}; break;
    case trained_base::cts_nll: x = model.temperatures; break;
    default:
      in.top = model.top_k;
      in.features = network_features(m.base, z, n, k, in.top);
      x = network_flat(model.network);
      break;
  }
  return map_loss(*context, m.base, in, x, gradient, false, work);
}

nlohmann::json trained_model::params() const {
  nlohmann::json p;
  p["base"] = trained_base_name(method.base);
  p["loss"] = trained_loss_name(method.loss);
  p["num_classes"] = num_classes;
  switch (method.base) {
    case trained_base::ts: p["temperature"] = temperature; break;
    case trained_base::ets:
    case trained_base::ets_sctl:
      p["temperature"] = temperature;
      p["weights"] = weights;
      break;
    case trained_base::cts_nll:
      p["temperatures"] = temperatures;
      p["negative_temperatures"] = nonpositive_temperatures;
      break;
    case trained_base::pts:
    case trained_base::pts_sctl:
      p["network"] = network_to_json(network);
      p["top_k"] = top_k;
      p["weight_decay"] = weight_decay;
      p["val_temperature"] = {{"min", temperature_range[0]}, {"median", temperature_range[1]}, {"max", temperature_range[2]}};
      if (method.base == trained_base::pts_sctl) p["nonpositive_temperatures"] = nonpositive_temperatures;
      break;
  }
  p["final_loss"] = final_loss;
  nlohmann::json training = nlohmann::json::array();
  for (const auto& s : stages) {
    training.push_back({{"parameters", s.parameters}, {"optimizer", s.optimizer}, {"lr", s.lr},
                        {"iterations", s.iterations}, {"iterations_run", s.iterations_run},
                        {"evaluations", s.evaluations}, {"stop", s.stop}, {"loss_before", s.loss_before}});
  }
  p["training"] = training;
  if (method.loss == trained_loss::ls) p["ls_alpha"] = ls_alpha;
  if (method.loss == trained_loss::fl) {
    p["fl_gamma"] = fl_gamma;
    p["focal_gradient"] = focal_detached ? "detached" : "full";
  }
  if (method.loss == trained_loss::lsplus) {
    p["lsplus_weight"] = lsplus_weight;
    p["lsplus_prior"] = lsplus_prior;
  }
  if (method.loss == trained_loss::sctl) {
    p["sctl_norm"] = sctl_norm_name(sctl_normalisation);
    p["sctl_solver"] = sctl_solver;
    p["classes"] = sctl_classes;
    p["sctl_fitted"] = sctl.has_value();
    if (sctl) {
      const bool slsqp = sctl_solver == "slsqp";
      p["alpha"] = slsqp ? sctl->slsqp_alpha : sctl->alpha;
      p["beta"] = slsqp ? sctl->slsqp_beta : sctl->beta;
      p["objective"] = slsqp ? sctl->slsqp_objective : sctl->objective;
      p["grid_alpha"] = sctl->alpha;
      p["grid_beta"] = sctl->beta;
      p["grid_objective"] = sctl->objective;
      p["slsqp_alpha"] = sctl->slsqp_alpha;
      p["slsqp_beta"] = sctl->slsqp_beta;
      p["slsqp_objective"] = sctl->slsqp_objective;
      p["slsqp_status"] = sctl->slsqp_status;
      p["l0"] = sctl->l0;
      p["l1"] = sctl->l1;
      p["class_weights"] = sctl_weights(sctl->normalised, p["alpha"].get<double>(), p["beta"].get<double>());
    }
  }
  return p;
}

trained_model trained_model::from_params(const trained_method& m, const nlohmann::json& p, const std::string& where) {
  trained_model t;
  t.method = m;
  try {
    if (p.contains("num_classes")) {
      if (!p.at("num_classes").is_number_integer() || p.at("num_classes").get<std::int64_t>() < 2)
        throw input_error(fmt::format("{}: num_classes must be an integer >= 2", where));
      t.num_classes = p.at("num_classes").get<std::int64_t>();
    }
    switch (m.base) {
      case trained_base::ts: t.temperature = p.at("temperature").get<double>(); break;
      case trained_base::ets:
      case trained_base::ets_sctl: {
        t.temperature = p.at("temperature").get<double>();
        const auto w = p.at("weights").get<std::vector<double>>();
        if (w.size() != 3) throw input_error(fmt::format("{}: {} needs 3 weights", where, trained_method_name(m)));
        t.weights = {w[0], w[1], w[2]};
        break;
      }
      case trained_base::cts_nll: t.temperatures = p.at("temperatures").get<std::vector<double>>(); break;
      case trained_base::pts:
      case trained_base::pts_sctl: {
        if (!p.at("top_k").is_number_integer())
          throw input_error(fmt::format("{}: top_k must be an integer", where));
        t.top_k = p.at("top_k").get<std::int64_t>();
        const auto& layers = p.at("network").at("layers");
        if (t.top_k < 1 || !layers.is_array() || layers.empty())
          throw input_error(fmt::format("{}: {} needs top_k >= 1 and network layers", where, trained_method_name(m)));
        // The shape comes from the stored layers themselves.
        std::vector<mlp_layer> shape;
        for (const auto& l : layers) {
          mlp_layer s;
          const auto w = l.at("weight").get<std::vector<std::vector<double>>>();
          s.out = static_cast<std::int64_t>(w.size());
          s.in = w.empty() ? 0 : static_cast<std::int64_t>(w[0].size());
          s.weight.assign(static_cast<std::size_t>(s.in * s.out), 0.0);
          s.bias.assign(static_cast<std::size_t>(s.out), 0.0);
          shape.push_back(s);
        }
        for (std::size_t i = 0; i < shape.size(); ++i) {
          const std::int64_t in = i == 0 ? t.top_k : shape[i - 1].out;
          if (shape[i].in != in || shape[i].out < 1 || (i + 1 == shape.size() && shape[i].out != 1))
            throw input_error(fmt::format("{}: network layer {} has shape {} x {}, expected {} inputs (and 1 output at the end)",
                                          where, i, shape[i].out, shape[i].in, in));
        }
        t.network = network_from_json(p.at("network"), shape, where);
        break;
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw input_error(fmt::format("{}: malformed {} parameters ({})", where, trained_method_name(m), e.what()));
  }
  const auto bad = [&](double v) { return !std::isfinite(v); };
  if (bad(t.temperature) || std::any_of(t.temperatures.begin(), t.temperatures.end(), bad) ||
      std::any_of(t.weights.begin(), t.weights.end(), bad))
    throw input_error(fmt::format("{}: {} parameters must be finite", where, trained_method_name(m)));
  if (!(t.temperature > 0)) throw input_error(fmt::format("{}: {} needs a temperature > 0", where, trained_method_name(m)));
  if (std::any_of(t.temperatures.begin(), t.temperatures.end(), [](double v) { return v == 0; }))
    throw input_error(fmt::format("{}: {} temperatures must not be 0", where, trained_method_name(m)));
  if (m.base == trained_base::ets) {
    const double sum = t.weights[0] + t.weights[1] + t.weights[2];
    if (std::any_of(t.weights.begin(), t.weights.end(), [](double v) { return v < 0; }) || std::abs(sum - 1) > 1e-9)
      throw input_error(fmt::format("{}: ets weights must be >= 0 and sum to 1", where));
  }
  return t;
}

std::vector<double> trained_model::probabilities(const std::vector<double>& z, std::int64_t k,
                                                 const std::string& where) const {
  if (k < 2 || z.size() % static_cast<std::size_t>(k) != 0)
    throw input_error(fmt::format("{}: {} values do not form rows of K = {} classes", where, z.size(), k));
  const std::int64_t n = static_cast<std::int64_t>(z.size()) / k;
  if (method.base == trained_base::cts_nll && static_cast<std::int64_t>(temperatures.size()) != k)
    throw input_error(fmt::format("{}: {} class temperatures for K = {}", where, temperatures.size(), k));
  if (method.base == trained_base::ets) {
    const auto a = softmax_rows(z, n, k, 1.0 / temperature);
    auto p = softmax_rows(z, n, k, 1.0);
    const double inv_k = 1.0 / static_cast<double>(k);
    for (std::size_t e = 0; e < p.size(); ++e) p[e] = weights[0] * a[e] + weights[1] * p[e] + weights[2] * inv_k;
    return p;
  }
  std::vector<double> q;
  if (is_network(method.base)) {
    const std::int64_t top = std::min(top_k, k);
    if (top != top_k) throw input_error(fmt::format("{}: the network takes {} logits, K = {}", where, top_k, k));
    q = network_logits(method.base, network, z, network_features(method.base, z, n, k, top), n, k, top, nullptr);
  } else if (method.base == trained_base::cts_nll) {
    q = scaled_logits(z, k, 1.0, {}, &temperatures);
  } else {
    q = scaled_logits(z, k, temperature, method.base == trained_base::ts ? std::array<double, 3>{1, 0, 0} : weights, nullptr);
  }
  auto p = softmax_rows(q, n, k, 1.0);
  for (std::size_t e = 0; e < p.size(); ++e) {
    if (!std::isfinite(p[e]))
      throw input_error(fmt::format("{}: {} gives a non-finite probability at row {} (a network temperature of 0?)",
                                    where, trained_method_name(method), e / static_cast<std::size_t>(k)));
  }
  return p;
}

}  // namespace calibench
