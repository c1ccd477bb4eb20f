// The base maps of the loss-trained calibrators (host/calibrators/trained/trained_fit.hpp):
// their calibrated logits, and the training loss of each map with its gradient in the map's
// parameters. Internal to host/calibrators/trained/.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "host/calibrators/trained/losses.hpp"
#include "host/calibrators/trained/trained_fit.hpp"

namespace calibench::detail {

/// The calibrated logits of the temperature maps: w0 z / t + w1 z + w2 / K (ts: w = (1, 0, 0)),
/// or z_j / T_j (cts_nll, `per_class`).
std::vector<double> scaled_logits(const std::vector<double>& z, std::int64_t k, double t,
                                  const std::array<double, 3>& w, const std::vector<double>* per_class);

/// pts, pts_sctl: calibrated logits s(z) / T(x) and (in `raw_t`, when given) the per-row network output.
std::vector<double> network_logits(trained_base base, const std::vector<mlp_layer>& net, const std::vector<double>& z,
                                   const std::vector<double>& features, std::int64_t n, std::int64_t k,
                                   std::int64_t top, std::vector<double>* raw_t);

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
                std::vector<double>* grad, bool count, std::vector<mlp_layer>& work);

}  // namespace calibench::detail
