// The networks of pts and pts_sctl (host/calibrators/trained/mlp.hpp).
#include "host/calibrators/trained/mlp.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/rng.hpp"

namespace calibench::detail {

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
    std::copy(x.begin() + static_cast<std::ptrdiff_t>(o), x.begin() + static_cast<std::ptrdiff_t>(o + l.weight.size()),
              l.weight.begin());
    o += l.weight.size();
    std::copy(x.begin() + static_cast<std::ptrdiff_t>(o), x.begin() + static_cast<std::ptrdiff_t>(o + l.bias.size()),
              l.bias.begin());
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
      throw input_error(
          fmt::format("{}: expected {} layers, found {}", where, shape.size(), layers.is_array() ? layers.size() : 0));
    std::vector<mlp_layer> net = shape;
    for (std::size_t li = 0; li < shape.size(); ++li) {
      const auto w = layers[li].at("weight").get<std::vector<std::vector<double>>>();
      const auto b = layers[li].at("bias").get<std::vector<double>>();
      auto& l = net[li];
      if (static_cast<std::int64_t>(w.size()) != l.out || static_cast<std::int64_t>(b.size()) != l.out)
        throw input_error(
            fmt::format("{}: layer {} needs {} x {} weights and {} biases", where, li, l.out, l.in, l.out));
      for (std::int64_t r = 0; r < l.out; ++r) {
        if (static_cast<std::int64_t>(w[static_cast<std::size_t>(r)].size()) != l.in)
          throw input_error(fmt::format("{}: layer {} row {} has {} weights, expected {}", where, li, r,
                                        w[static_cast<std::size_t>(r)].size(), l.in));
        for (std::int64_t c = 0; c < l.in; ++c) {
          const double x = w[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)];
          if (!std::isfinite(x))
            throw input_error(fmt::format("{}: layer {} weight [{}][{}] is not finite", where, li, r, c));
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
void network_row_backward(const std::vector<mlp_layer>& net, const double* x,
                          const std::vector<std::vector<double>>& acts, double dt, double* g) {
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

}  // namespace calibench::detail
