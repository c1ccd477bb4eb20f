// Top-versus-All vector and matrix scaling (vs_tva, ms_odir_tva; Le Coz, Herbin and Adjed,
// NeurIPS 2024) as the authors' code trains them (allglc/tva-calibration b420bcf, calibrators.py
// Vector, Dirichlet, fit_scaling_model; docs/calibrators.md, docs/ports/tva.md): the map of the
// logits (w z, no bias; or W z + b) trained on the binary cross-entropy of the top-label
// confidence of the *mapped* logits against correctness, plus the authors' penalty, by their Adam
// loop (lr 1e-3, batches of 512 rows in order, a fixed number of epochs, the last iterate) from the
// Top-versus-All temperature (ts --objective tva). The objective jumps where a row's mapped argmax
// changes, so there is no minimiser to converge to: the procedure is the definition.
#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/logistic.hpp"
#include "host/calibrators/logit_maps.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"
#include "host/calibrators/temperature_scaling.hpp"

namespace calibench {
namespace {

/// The authors' constants: Adam (torch defaults, lr 1e-3), DataLoader batches, epochs.
constexpr double k_lr = 1e-3, k_beta1 = 0.9, k_beta2 = 0.999, k_eps = 1e-8;
constexpr std::int64_t k_batch = 512;
constexpr std::int64_t k_default_epochs = 200;
/// Vector(vec_reg=0.1); Dirichlet(off_diag_reg=1, bias_reg=1, diag_reg=0.1).
constexpr double k_vector_reg = 0.1, k_off_reg = 1.0, k_bias_reg = 1.0, k_diag_reg = 0.1;

/// One map family: the vector map without bias (VS_tva) or the matrix map (Dir-ODIR_tva).
struct tva_family {
  const char* name;
  logit_map map;
};

/// dl/dq of one row's Top-versus-All loss at mapped logits q (t = argmax q, the lowest index on
/// ties; a = [t == y]; u = q_t - logsumexp_{j != t} q_j): g_t = sigmoid(u) - a, g_j = -r_j g_t
/// with r the softmax of the other classes. Returns the loss softplus(u) - a u.
double tva_row(const double* q, std::int64_t k, std::int32_t label, double* g) {
  const auto t = static_cast<std::int64_t>(std::max_element(q, q + k) - q);
  double m = -std::numeric_limits<double>::infinity();
  for (std::int64_t j = 0; j < k; ++j)
    if (j != t) m = std::max(m, q[j]);
  double s = 0;
  for (std::int64_t j = 0; j < k; ++j) s += j == t ? 0.0 : std::exp(q[j] - m);
  const double u = q[t] - m - std::log(s);
  const double a = t == label ? 1.0 : 0.0;
  const double d = sigmoid(u) - a;
  for (std::int64_t j = 0; j < k; ++j) g[j] = j == t ? d : -d * std::exp(q[j] - m) / s;
  return softplus(u) - a * u;
}

/// The batch gradient of the authors' objective (batch-mean loss + the whole penalty) at theta.
/// Vector map theta = [w (K), b (K, held at 0)]; matrix map theta = [W row-major, b].
void batch_gradient(const tva_family& f, const std::vector<double>& theta, const std::vector<double>& z,
                    const std::vector<std::int32_t>& labels, std::int64_t k, std::int64_t first, std::int64_t last,
                    bool regularised, std::vector<double>& grad) {
  std::fill(grad.begin(), grad.end(), 0.0);
  std::vector<double> q(static_cast<std::size_t>(k)), g(static_cast<std::size_t>(k));
  for (std::int64_t r = first; r < last; ++r) {
    const double* x = z.data() + r * k;
    if (f.map == logit_map::vector) {
      for (std::int64_t j = 0; j < k; ++j) q[j] = theta[j] * x[j];
    } else {
      for (std::int64_t i = 0; i < k; ++i) {
        double v = theta[k * k + i];
        for (std::int64_t j = 0; j < k; ++j) v += theta[i * k + j] * x[j];
        q[i] = v;
      }
    }
    tva_row(q.data(), k, labels[r], g.data());
    if (f.map == logit_map::vector) {
      for (std::int64_t j = 0; j < k; ++j) grad[j] += g[j] * x[j];
    } else {
      for (std::int64_t i = 0; i < k; ++i) {
        for (std::int64_t j = 0; j < k; ++j) grad[i * k + j] += g[i] * x[j];
        grad[k * k + i] += g[i];
      }
    }
  }
  const double inv = 1.0 / static_cast<double>(last - first), kd = static_cast<double>(k);
  for (double& v : grad) v *= inv;
  if (f.map == logit_map::vector) {
    const double lam = regularised ? k_vector_reg : 0.0;
    for (std::int64_t j = 0; j < k; ++j) grad[j] += 2.0 * lam * (theta[j] - 1.0) / kd;
    std::fill(grad.begin() + k, grad.end(), 0.0);  // the authors' Vector has no bias
    return;
  }
  const double diag = regularised ? k_diag_reg : 0.0;
  for (std::int64_t i = 0; i < k; ++i) {
    for (std::int64_t j = 0; j < k; ++j) {
      const double w = theta[i * k + j];
      grad[i * k + j] += i == j ? 2.0 * diag * (w - 1.0) / kd : 2.0 * k_off_reg * w;
    }
    grad[k * k + i] += 2.0 * k_bias_reg * theta[k * k + i];
  }
}

/// The authors' loop (torch's single-tensor Adam; tests/reference/tva_ref.py `adam`): every epoch
/// the batches of 512 consecutive rows (the last partial), one step each, from theta.
std::vector<double> adam(const tva_family& f, std::vector<double> theta, const std::vector<double>& z,
                         const std::vector<std::int32_t>& labels, std::int64_t k, std::int64_t epochs, bool regularised,
                         std::int64_t& steps) {
  const auto n = static_cast<std::int64_t>(labels.size());
  std::vector<double> m(theta.size(), 0.0), v(theta.size(), 0.0), g(theta.size());
  steps = 0;
  for (std::int64_t e = 0; e < epochs; ++e) {
    for (std::int64_t first = 0; first < n; first += k_batch) {
      batch_gradient(f, theta, z, labels, k, first, std::min(n, first + k_batch), regularised, g);
      ++steps;
      const double bc1 = 1.0 - std::pow(k_beta1, static_cast<double>(steps));
      const double bc2 = std::sqrt(1.0 - std::pow(k_beta2, static_cast<double>(steps)));
      for (std::size_t i = 0; i < theta.size(); ++i) {
        m[i] = m[i] + (1.0 - k_beta1) * (g[i] - m[i]);
        v[i] = v[i] * k_beta2 + (1.0 - k_beta2) * g[i] * g[i];
        theta[i] = theta[i] + (-(k_lr / bc1)) * (m[i] / (std::sqrt(v[i]) / bc2 + k_eps));
      }
    }
  }
  return theta;
}

fitted fit_tva(const tva_family& f, const fit_input& in) {
  const split_data& val = in.val;
  const std::int64_t k = val.num_classes;
  const std::string where = val.file + ": " + val.values_path();
  const std::vector<double> z = finite_logits(logits_of(val), val, f.name);
  const double t0 = fit_temperature_tva(z, val.labels, k, where);
  std::vector<double> theta = logit_map_identity(f.map, k);
  for (std::int64_t i = 0; i < k; ++i) theta[f.map == logit_map::vector ? i : i * k + i] = 1.0 / t0;
  logit_map_fit r;
  r.params = adam(f, std::move(theta), z, val.labels, k, in.request.iterations.value_or(k_default_epochs),
                  in.request.tva_regularisation, r.iterations);
  r.evaluations = r.iterations;
  r.stop = "iterations";
  std::vector<double> gradient;
  const double nll = logit_map_nll(f.map, r.params, z, val.labels, k, gradient);
  r.nll = nll;
  auto m = std::make_shared<affine_logit_map>(f.name, f.map, false);
  m->set_fit(r, k, nll);
  return {m, {}};
}

method_info tva_method(const tva_family& f) {
  method_info m;
  m.name = f.name;
  m.options = {"iterations", "tva_regularisation"};
  m.fit = [f](const fit_input& in) { return fit_tva(f, in); };
  m.load = [f](const nlohmann::json& p, const std::string& where) {
    return affine_logit_map::load(f.name, f.map, false, std::nullopt, p, where);
  };
  return m;
}

}  // namespace

std::vector<method_info> top_versus_all_methods() {
  return {tva_method({"vs_tva", logit_map::vector}), tva_method({"ms_odir_tva", logit_map::matrix})};
}

}  // namespace calibench
