// The networks of pts and pts_sctl (host/calibrators/trained/trained_fit.hpp): layer shapes,
// seeded initial weights, JSON, the sorted top-s logit features, forward and backward passes
// of one row, and the temperature a network output gives. Internal to host/calibrators/trained/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/calibrators/trained/trained_fit.hpp"

namespace calibench::detail {

/// pts and pts_sctl: the bases whose temperature is a network's output (trained by Adam).
inline bool is_network(trained_base b) { return b == trained_base::pts || b == trained_base::pts_sctl; }

/// The parameters layer by layer, weight row-major then bias.
std::vector<double> network_flat(const std::vector<mlp_layer>& net);
void network_unflat(std::vector<mlp_layer>& net, const std::vector<double>& x);

/// The layer shapes: pts_sctl Linear(s, 2) + 3 x Linear(2, 2) + Linear(2, 1); pts Linear(s, H)
/// + (L - 1) x Linear(H, H) + Linear(H, 1). ReLU after every layer but the last.
std::vector<mlp_layer> network_shape(trained_base base, std::int64_t inputs, const train_options& o);

/// Seeded initial weights (torch's nn.Linear default for pts_sctl, Keras' Dense for pts).
void network_init(std::vector<mlp_layer>& net, trained_base base, std::uint64_t seed);

/// A network of `shape` from {"layers": [{"weight", "bias"}]}; input_error naming `where`.
std::vector<mlp_layer> network_from_json(const nlohmann::json& j, const std::vector<mlp_layer>& shape,
                                         const std::string& where);
nlohmann::json network_to_json(const std::vector<mlp_layer>& net);

/// The network's inputs: the top-s values of each row of s(z) (pts: clip(z, -100, 100)), descending.
std::vector<double> network_features(trained_base base, const std::vector<double>& z, std::int64_t n, std::int64_t k,
                                     std::int64_t top);

/// Forward pass of one row: acts[l] = the output of layer l; returns the network output t.
double network_row(const std::vector<mlp_layer>& net, const double* x, std::vector<std::vector<double>>& acts);

/// Backward pass of one row given dLoss/dt: adds the parameter gradient to g (flat layout).
void network_row_backward(const std::vector<mlp_layer>& net, const double* x,
                          const std::vector<std::vector<double>>& acts, double dt, double* g);

/// T from the network output t: pts clip(|t|, 1e-12, 1e12) (Tomani's code), pts_sctl t itself.
double temperature_of(trained_base base, double t);
/// dT/dt.
double temperature_slope(trained_base base, double t);

}  // namespace calibench::detail
