// The registry rows of the loss-trained calibrators (host/calibrators/trained/trained_fit.hpp):
// one row per name of trained_method_names() (BASE+LOSS, ets_sctl, pts, pts_sctl and their
// aliases), each taking --iterations and the training options that apply to its base and loss.
#include <initializer_list>
#include <memory>

#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"
#include "host/calibrators/trained/mlp.hpp"
#include "host/calibrators/trained/trained_fit.hpp"

namespace calibench {
namespace {

using detail::is_network;

class trained_map final : public calibration_map {
 public:
  trained_map(std::string method, trained_model model) : method_(std::move(method)), model_(std::move(model)) {}
  nlohmann::json params() const override { return model_.params(); }
  scored_split apply(const split_data& split) const override {
    const std::vector<double> z = finite_logits(logits_of(split), split, method_);
    return score_split(
        derived(split, model_.probabilities(z, split.num_classes, split.file + ": " + split.values_path()), true));
  }

 private:
  std::string method_;
  trained_model model_;
};

/// The training options that apply to `m` (docs/calibrators.md, "Loss-trained calibrators").
std::vector<std::string_view> trained_options(const trained_method& m) {
  std::vector<std::string_view> o{"iterations", "lr", "schedule"};
  const auto add = [&o](std::initializer_list<std::string_view> keys) {
    for (const auto key : keys) o.push_back(key);
  };
  if (!is_network(m.base)) add({"tolerance_grad", "tolerance_change"});
  switch (m.loss) {
    case trained_loss::ls: add({"ls_alpha"}); break;
    case trained_loss::fl: add({"fl_gamma", "focal_gradient"}); break;
    case trained_loss::lsplus: add({"lsplus_weight", "lsplus_perfect"}); break;
    case trained_loss::sctl: add({"sctl_norm", "sctl_solver", "sctl_grid"}); break;
    case trained_loss::ce:
    case trained_loss::mse: break;
  }
  if (is_network(m.base)) add({"seed", "pts_init", "pts_top_k", "weight_decay"});
  if (m.base == trained_base::pts) add({"pts_layers", "pts_nodes"});
  return o;
}

method_info trained_row(const std::string& name) {
  const trained_method m = *parse_trained_method(name);
  method_info row;
  row.name = name;
  row.options = trained_options(m);
  row.objective_note = "it trains its own loss";
  row.loss_trained = true;
  row.fit = [name, m](const fit_input& in) {
    return fitted{std::make_shared<trained_map>(name, fit_trained(in.val, m, in.request.train)), {}};
  };
  row.load = [name, m](const nlohmann::json& p, const std::string& where) {
    return std::make_shared<trained_map>(name, trained_model::from_params(m, p, where));
  };
  return row;
}

}  // namespace

std::vector<method_info> trained_methods() {
  std::vector<method_info> rows;
  for (const auto& name : trained_method_names()) rows.push_back(trained_row(name));
  return rows;
}

}  // namespace calibench
