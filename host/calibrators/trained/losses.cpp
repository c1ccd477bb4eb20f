// The training losses (host/calibrators/trained/losses.hpp). Sources of each rule:
// docs/calibrators.md, "Loss-trained calibrators".
#include "host/calibrators/trained/losses.hpp"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/error.hpp"

namespace calibench::detail {
namespace {

constexpr double k_inf = std::numeric_limits<double>::infinity();

}  // namespace

double row_loss(const loss_context& c, const double* l, const double* p, std::int32_t y, double* g) {
  const std::int64_t k = c.k;
  std::fill(g, g + k, 0.0);
  switch (c.kind) {
    case trained_loss::ce:
    case trained_loss::sctl: g[y] = -1.0; return -l[y];
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

/// The per-row weights f_n of the loss sum_n f_n v_n from the row terms v, and the loss.
/// Mean losses: f = 1/N. sctl: class losses L_i (mean of v over class i, in row order), their
/// scale 1 + w_i from the scaler (a counted evaluation when `count`; otherwise the current
/// (alpha, beta) without advancing it), f_n = (1 + w_y) / n_y.
double row_factors(loss_context& c, const std::vector<double>& v, std::vector<double>& f, bool count) {
  f.assign(static_cast<std::size_t>(c.n), 0.0);
  if (count) ++c.evaluations;
  if (c.kind != trained_loss::sctl) {
    std::fill(f.begin(), f.end(), 1.0 / static_cast<double>(c.n));
    return chunked_sum(c.n, [&](std::int64_t i) { return v[static_cast<std::size_t>(i)]; }) / static_cast<double>(c.n);
  }
  std::vector<double> sums(static_cast<std::size_t>(c.k), 0.0);
  for (std::int64_t i = 0; i < c.n; ++i)
    sums[static_cast<std::size_t>((*c.labels)[static_cast<std::size_t>(i)])] += v[static_cast<std::size_t>(i)];
  std::vector<double> losses, scale(c.present.size());
  for (const std::int64_t cls : c.present)
    losses.push_back(sums[static_cast<std::size_t>(cls)] /
                     static_cast<double>(c.class_count[static_cast<std::size_t>(cls)]));
  for (std::size_t i = 0; i < losses.size(); ++i) {
    if (!std::isfinite(losses[i]))
      throw input_error(
          fmt::format("sctl: the loss of class {} is not finite during training (diverged)", c.present[i]));
  }
  double value = 0;
  if (!c.frozen_scale.empty()) {
    scale = c.frozen_scale;
    for (std::size_t i = 0; i < losses.size(); ++i) value += scale[i] * losses[i];
  } else if (count) {
    value = c.scaler->evaluate(losses, scale);
  } else {
    const auto w = sctl_weights(sctl_normalise(losses, c.norm), c.scaler->alpha(), c.scaler->beta());
    for (std::size_t i = 0; i < w.size(); ++i) scale[i] = 1.0 + w[i];
    value = sctl_weighted_loss(losses, w);
  }
  std::vector<double> per_class(static_cast<std::size_t>(c.k), 0.0);
  for (std::size_t i = 0; i < c.present.size(); ++i) {
    const auto cls = static_cast<std::size_t>(c.present[i]);
    per_class[cls] = scale[i] / static_cast<double>(c.class_count[cls]);
  }
  for (std::int64_t i = 0; i < c.n; ++i)
    f[static_cast<std::size_t>(i)] = per_class[static_cast<std::size_t>((*c.labels)[static_cast<std::size_t>(i)])];
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
      v[static_cast<std::size_t>(i)] =
          row_loss(c, l.data(), p.data(), (*c.labels)[static_cast<std::size_t>(i)], g.data());
      if (dq != nullptr) {
        double gs = 0;
        for (std::int64_t j = 0; j < k; ++j) gs += g[static_cast<std::size_t>(j)];
        double* out = dq->data() + i * k;
        for (std::int64_t j = 0; j < k; ++j)
          out[j] = g[static_cast<std::size_t>(j)] - p[static_cast<std::size_t>(j)] * gs;
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
/// The loss at the mixture p = w1 a + w2 b + w3 / K of ets (a = softmax(z / t), b = softmax(z)),
/// and its gradient in w. p is floored at the smallest normal double before the log.
double loss_at_mixture(loss_context& c, const std::vector<double>& a, const std::vector<double>& b, const double* w,
                       double* grad, bool count) {
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
        p[static_cast<std::size_t>(j)] =
            std::max(w[0] * a[e] + w[1] * b[e] + w[2] * inv_k, std::numeric_limits<double>::min());
        l[static_cast<std::size_t>(j)] = std::log(p[static_cast<std::size_t>(j)]);
      }
      v[static_cast<std::size_t>(i)] =
          row_loss(c, l.data(), p.data(), (*c.labels)[static_cast<std::size_t>(i)], g.data());
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
}  // namespace calibench::detail
