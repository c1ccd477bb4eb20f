// The base maps of the loss-trained calibrators (host/calibrators/trained/maps.hpp).
#include "host/calibrators/trained/maps.hpp"

#include <algorithm>

#include "host/calibrators/trained/mlp.hpp"

namespace calibench::detail {

std::vector<double> scaled_logits(const std::vector<double>& z, std::int64_t k, double t,
                                  const std::array<double, 3>& w, const std::vector<double>* per_class) {
  std::vector<double> q(z.size());
  const double add = w[2] / static_cast<double>(k);
  for (std::size_t e = 0; e < z.size(); ++e) {
    q[e] = per_class != nullptr ? z[e] / (*per_class)[e % static_cast<std::size_t>(k)]
                                : w[0] * (z[e] / t) + w[1] * z[e] + add;
  }
  return q;
}

std::vector<double> network_logits(trained_base base, const std::vector<mlp_layer>& net, const std::vector<double>& z,
                                   const std::vector<double>& features, std::int64_t n, std::int64_t k,
                                   std::int64_t top, std::vector<double>* raw_t) {
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
        const double s = chunked_sum(
            n * k, [&](std::int64_t e) { return dq[static_cast<std::size_t>(e)] * z[static_cast<std::size_t>(e)]; });
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

}  // namespace calibench::detail
