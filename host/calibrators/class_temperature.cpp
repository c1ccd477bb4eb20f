// Class-based temperature scaling (cts_greedy; the class-based TS paper, docs/calibrators.md):
// one temperature per class, T_0 by validation ECE on the grid, then cycles over the classes,
// each moved to the grid value (the paper's search) or by +-0.1/0.2 nudges (the authors'
// code) that lowers the validation ECE, with or without the accuracy constraint. Every
// candidate of a class is one class-temperature session sweep on the sweep backend.
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/progress.hpp"
#include "host/calibrators/grid_search.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

constexpr double k_inf = std::numeric_limits<double>::infinity();

/// Default cycles over the classes of each search.
constexpr std::int64_t k_grid_cycles = 5, k_nudge_cycles = 1000;

class class_temperature_map final : public calibration_map {
 public:
  class_temperature_map(std::vector<double> temperatures, std::int64_t iterations_run, double initial_temperature)
      : temperatures_(std::move(temperatures)),
        iterations_run_(iterations_run),
        initial_temperature_(initial_temperature) {}

  nlohmann::json params() const override {
    return {{"temperatures", temperatures_},
            {"iterations_run", iterations_run_},
            {"initial_temperature", initial_temperature_}};
  }

  scored_split apply(const split_data& split) const override {
    if (static_cast<std::int64_t>(temperatures_.size()) != split.num_classes)
      throw input_error(
          fmt::format("{}: {} class temperatures for K = {}", split.file, temperatures_.size(), split.num_classes));
    std::vector<double> inv(temperatures_.size());
    for (std::size_t j = 0; j < inv.size(); ++j) inv[j] = 1.0 / temperatures_[j];
    return score_scaled(split, {}, inv);
  }

  static std::shared_ptr<const calibration_map> load(const nlohmann::json& p, const std::string&) {
    return std::make_shared<class_temperature_map>(p.at("temperatures").get<std::vector<double>>(),
                                                   p.value("iterations_run", std::int64_t{0}),
                                                   p.value("initial_temperature", 1.0));
  }

 private:
  std::vector<double> temperatures_;
  std::int64_t iterations_run_;
  double initial_temperature_;
};

/// The search state across classes and cycles.
struct class_search_state {
  class_temperature_session& session;
  bool constrained;
  double running_best = k_inf;  // nudge: one best across the run
  double accepted_accuracy;     // nudge: the accuracy of the last accepted move
  bool code = false;            // nudge --follow code: the code's float32 values and its acc_check
};

/// The authors' acc_check stores `T`, the TS grid loop's leftover (0.1 + 100 x 0.1 accumulated
/// in Python floats, 10.09999999999998), as float32, in place of the accepted candidate
/// (liorfrenkel1992/calibration @ 01ea29b, temperature_scaling.py l.346).
constexpr double k_code_leftover_temperature = static_cast<float>(10.09999999999998);

/// The authors' code: class `i` moves by the first nudge that beats the run's best ECE.
bool nudge_class(class_search_state& s, std::int32_t i) {
  static const std::vector<double> steps{-0.2, -0.1, 0.0, 0.1, 0.2};
  const double current = s.session.temperatures()[static_cast<std::size_t>(i)];
  std::vector<double> cands;
  for (double step : steps) {
    // The code's temperatures are float32 tensors: v + s in float32 (exact in double, then rounded).
    const double t = s.code ? static_cast<float>(current + static_cast<float>(step)) : current + step;
    if (t > 0) cands.push_back(t);
  }
  const auto r = s.session.sweep(i, cands);
  double chosen = current;
  for (std::size_t g = 0; g < cands.size(); ++g) {
    const bool allowed = !s.constrained || r.accuracy[g] >= s.accepted_accuracy;
    if (allowed && r.ece[g] < s.running_best) {
      s.running_best = r.ece[g];
      chosen = s.code && s.constrained ? k_code_leftover_temperature : cands[g];
      if (s.constrained) s.accepted_accuracy = r.accuracy[g];
    }
  }
  if (chosen == current) return false;
  s.session.set(i, chosen);
  return true;
}

/// The paper: class `i` moves to the grid value with the lowest ECE when it beats the current one.
bool grid_step_class(class_search_state& s, std::int32_t i, const std::vector<double>& grid) {
  const double current = s.session.temperatures()[static_cast<std::size_t>(i)];
  // The grid plus the current value, so "strictly better than now" compares numbers
  // computed the same way.
  std::vector<double> cands = grid;
  cands.push_back(current);
  const auto r = s.session.sweep(i, cands);
  const std::size_t now = grid.size();
  std::int64_t best = -1;
  for (std::size_t g = 0; g < grid.size(); ++g) {
    if (s.constrained && r.accuracy[g] < r.accuracy[now]) continue;
    if (best < 0 || r.ece[g] < r.ece[static_cast<std::size_t>(best)]) best = static_cast<std::int64_t>(g);
  }
  if (best < 0 || !(r.ece[static_cast<std::size_t>(best)] < r.ece[now]) ||
      grid[static_cast<std::size_t>(best)] == current)
    return false;
  s.session.set(i, grid[static_cast<std::size_t>(best)]);
  return true;
}

fitted fit_cts_greedy(const fit_input& in) {
  const fit_request& r = in.request;
  const bool nudge = r.search == class_search::nudge;
  const std::int64_t cycles = r.iterations.value_or(nudge ? k_nudge_cycles : k_grid_cycles);
  const resident_split split(in.val, *in.backend);
  const auto grid = grid_or(r, "0.1:10:0.1");
  const std::int64_t k = in.val.num_classes;

  // 1. One temperature by validation ECE on the grid.
  const auto init = in.backend->temperature(*split.data, grid, sweep_options_of(r, false));
  const std::int64_t t0 = first_min(init.ece);
  const double initial =
      r.follow_code ? static_cast<float>(grid[static_cast<std::size_t>(t0)]) : grid[static_cast<std::size_t>(t0)];
  auto session = in.backend->class_temperature(*split.data, std::vector<double>(static_cast<std::size_t>(k), initial),
                                               sweep_options_of(r, false));
  // 2. Cycles over the classes until one changes nothing.
  class_search_state state{*session, r.accuracy_constraint, k_inf, init.accuracy[static_cast<std::size_t>(t0)],
                           r.follow_code};
  std::int64_t run = 0;
  progress shown(nudge ? "cts_greedy (nudge)" : "cts_greedy", cycles * k, "class steps", true);
  while (run < cycles) {
    ++run;
    bool changed = false;
    shown.detail(fmt::format("cycle {} of at most {}", run, cycles));
    for (std::int32_t i = 0; i < k; ++i) {
      changed = (nudge ? nudge_class(state, i) : grid_step_class(state, i, grid)) || changed;
      shown.step();
    }
    if (!changed) break;
  }
  return {std::make_shared<class_temperature_map>(session->temperatures(), run, initial), {"ece", grid, init.ece}};
}

}  // namespace

std::vector<method_info> class_temperature_methods() {
  method_info m;
  m.name = "cts_greedy";
  m.options = {"grid", "iterations", "accuracy_constraint", "cts_search", "objective_bins", "follow"};
  m.on_backend = [](const fit_request&) { return true; };
  m.check = [](const fit_request& r) {
    if (r.follow_code && r.search != class_search::nudge)
      throw input_error(
          "cts_greedy --follow code: the authors' code is the nudge search (--cts-search nudge); the grid search is "
          "the paper's Algorithm 1");
  };
  m.fit = fit_cts_greedy;
  m.load = class_temperature_map::load;
  return {m};
}

}  // namespace calibench
