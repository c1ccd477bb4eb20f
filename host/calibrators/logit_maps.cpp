// The NLL-trained logit maps vs, ms, cts_nll and the map type they share with ODIR
// (host/calibrators/logit_maps.hpp), with their registry rows.
#include "host/calibrators/logit_maps.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {

std::vector<double> logit_map_input(const split_data& s, bool log_softmax) {
  std::vector<double> z = logits_of(s);
  if (!log_softmax) return z;
  const std::int64_t k = s.num_classes;
  for (std::int64_t i = 0; i < s.num_samples; ++i) {
    double* row = z.data() + i * k;
    const double m = *std::max_element(row, row + k);
    double sum = 0;
    for (std::int64_t j = 0; j < k; ++j) sum += std::exp(row[j] - m);
    const double lse = m + std::log(sum);
    for (std::int64_t j = 0; j < k; ++j) row[j] -= lse;
  }
  return z;
}

affine_logit_map::affine_logit_map(std::string method, logit_map map, bool log_softmax)
    : method_(std::move(method)), map_(map), log_softmax_(log_softmax) {}

void affine_logit_map::set_fit(const logit_map_fit& fit, std::int64_t k, double final_nll) {
  iterations_run_ = fit.iterations;
  final_nll_ = final_nll;
  stop_ = fit.stop;
  const auto first = fit.params.begin();
  switch (map_) {
    case logit_map::vector:
      weights_.assign(first, first + k);
      biases_.assign(first + k, fit.params.end());
      break;
    case logit_map::matrix:
      matrix_.assign(first, first + k * k);
      biases_.assign(first + k * k, fit.params.end());
      break;
    case logit_map::class_temperature:
      for (double b : fit.params) temperatures_.push_back(1.0 / b);
      break;
  }
}

nlohmann::json affine_logit_map::params() const {
  nlohmann::json p = nlohmann::json::object();
  switch (map_) {
    case logit_map::vector: p["weights"] = weights_; break;
    case logit_map::matrix: p["matrix"] = matrix_; break;
    case logit_map::class_temperature: p["temperatures"] = temperatures_; break;
  }
  if (map_ != logit_map::class_temperature) p["biases"] = biases_;
  p["iterations_run"] = iterations_run_;
  p["final_nll"] = final_nll_;
  p["stop"] = stop_;
  if (odir_) {
    const bool odir = odir_->penalty.form == penalty_form::odir;
    if (!odir) p["penalty"] = "l2";
    p["lambda"] = odir_->penalty.lambda;
    if (odir) p["mu"] = odir_->penalty.mu;
    p["final_objective"] = odir_->objective;
    nlohmann::json cv = nlohmann::json::array();
    for (std::size_t i = 0; i < odir_->cv_nll.size(); ++i) {
      nlohmann::json e{{"lambda", odir_->cv_lambdas[i]}};
      if (odir) e["mu"] = odir_->cv_mus[i];
      e["nll"] = odir_->cv_nll[i];
      cv.push_back(std::move(e));
    }
    p["cv"] = cv;
    p["folds"] = odir_->cv_nll.empty() ? nlohmann::json(nullptr)
                                       : nlohmann::json{{"k", k_odir_folds}, {"seed", k_odir_fold_seed}};
  }
  return p;
}

std::vector<double> affine_logit_map::flat(const split_data& split) const {
  const std::int64_t k = split.num_classes;
  const auto mismatch = [&](std::size_t got, std::int64_t want, const char* what) {
    if (static_cast<std::int64_t>(got) != want)
      throw input_error(fmt::format("{}: {} {} for K = {} (expected {})", split.file, got, what, k, want));
  };
  std::vector<double> p;
  switch (map_) {
    case logit_map::vector:
      mismatch(weights_.size(), k, "weights");
      mismatch(biases_.size(), k, "biases");
      p = weights_;
      p.insert(p.end(), biases_.begin(), biases_.end());
      break;
    case logit_map::matrix:
      mismatch(matrix_.size(), k * k, "matrix entries");
      mismatch(biases_.size(), k, "biases");
      p = matrix_;
      p.insert(p.end(), biases_.begin(), biases_.end());
      break;
    case logit_map::class_temperature:
      mismatch(temperatures_.size(), k, "class temperatures");
      for (double t : temperatures_) p.push_back(1.0 / t);
      break;
  }
  return p;
}

scored_split affine_logit_map::apply(const split_data& split) const {
  const std::vector<double> z = finite_logits(logit_map_input(split, log_softmax_), split, method_);
  return score_split(derived(split, apply_logit_map(map_, flat(split), z, split.num_classes), false));
}

std::shared_ptr<const calibration_map> affine_logit_map::load(std::string method, logit_map map, bool log_softmax,
                                                              std::optional<penalty_form> penalty,
                                                              const nlohmann::json& p, const std::string&) {
  auto m = std::make_shared<affine_logit_map>(std::move(method), map, log_softmax);
  if (map == logit_map::vector) m->weights_ = p.at("weights").get<std::vector<double>>();
  if (map == logit_map::matrix) m->matrix_ = p.at("matrix").get<std::vector<double>>();
  if (map == logit_map::class_temperature) m->temperatures_ = p.at("temperatures").get<std::vector<double>>();
  if (map != logit_map::class_temperature) m->biases_ = p.at("biases").get<std::vector<double>>();
  m->iterations_run_ = p.value("iterations_run", std::int64_t{0});
  m->final_nll_ = p.value("final_nll", 0.0);
  m->stop_ = p.value("stop", std::string());
  if (penalty) {
    odir_record r;
    r.penalty = {p.value("lambda", 0.0), p.value("mu", 0.0), *penalty};
    r.objective = p.value("final_objective", 0.0);
    if (p.contains("cv")) {
      for (const auto& e : p.at("cv")) {
        r.cv_lambdas.push_back(e.at("lambda").get<double>());
        r.cv_mus.push_back(e.value("mu", 0.0));
        r.cv_nll.push_back(e.at("nll").is_null() ? std::numeric_limits<double>::quiet_NaN()
                                                 : e.at("nll").get<double>());
      }
    }
    m->odir_ = std::move(r);
  }
  return m;
}

namespace {

/// vs, ms, cts_nll: L-BFGS from the identity on the validation logits.
fitted fit_logit_map(const fit_input& in, const std::string& method, logit_map map) {
  const split_data& val = in.val;
  const auto r =
      fit_logit_map(map, logit_map_input(val, false), val.labels, val.num_classes,
                    in.request.iterations.value_or(k_default_lbfgs_iterations), val.file + ": " + val.values_path());
  auto m = std::make_shared<affine_logit_map>(method, map, false);
  m->set_fit(r, val.num_classes, r.nll);
  return {m, {}};
}

method_info logit_map_method(std::string name, logit_map map) {
  method_info m;
  m.name = name;
  m.options = {"iterations"};
  m.fit = [name, map](const fit_input& in) { return fit_logit_map(in, name, map); };
  m.load = [name, map](const nlohmann::json& p, const std::string& where) {
    return affine_logit_map::load(name, map, false, std::nullopt, p, where);
  };
  return m;
}

}  // namespace

std::vector<method_info> logit_map_methods() {
  return {logit_map_method("cts_nll", logit_map::class_temperature), logit_map_method("vs", logit_map::vector),
          logit_map_method("ms", logit_map::matrix)};
}

}  // namespace calibench
