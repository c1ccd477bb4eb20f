// A trained calibrator's parameters: the JSON `params` of `calibench fit`, reading them back,
// and the calibrated probabilities of any split (host/calibrators/trained/trained_fit.hpp).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/trained/losses.hpp"
#include "host/calibrators/trained/maps.hpp"
#include "host/calibrators/trained/mlp.hpp"
#include "host/calibrators/trained/trained_fit.hpp"

namespace calibench {

using namespace detail;

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
      p["val_temperature"] = {
          {"min", temperature_range[0]}, {"median", temperature_range[1]}, {"max", temperature_range[2]}};
      if (method.base == trained_base::pts_sctl) p["nonpositive_temperatures"] = nonpositive_temperatures;
      break;
  }
  p["final_loss"] = final_loss;
  nlohmann::json training = nlohmann::json::array();
  for (const auto& s : stages) {
    training.push_back({{"parameters", s.parameters},
                        {"optimizer", s.optimizer},
                        {"lr", s.lr},
                        {"iterations", s.iterations},
                        {"iterations_run", s.iterations_run},
                        {"evaluations", s.evaluations},
                        {"stop", s.stop},
                        {"loss_before", s.loss_before}});
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
        if (!p.at("top_k").is_number_integer()) throw input_error(fmt::format("{}: top_k must be an integer", where));
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
            throw input_error(
                fmt::format("{}: network layer {} has shape {} x {}, expected {} inputs (and 1 output at the end)",
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
  if (!(t.temperature > 0))
    throw input_error(fmt::format("{}: {} needs a temperature > 0", where, trained_method_name(m)));
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
    q = scaled_logits(z, k, temperature, method.base == trained_base::ts ? std::array<double, 3>{1, 0, 0} : weights,
                      nullptr);
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
