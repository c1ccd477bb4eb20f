// One calibrator per class (host/calibrators/one_vs_rest.hpp).
#include "host/calibrators/one_vs_rest.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

constexpr std::string_view score_name(class_score k) {
  return k == class_score::probability ? "probability" : "log-odds";
}

/// The classes that get a map: class 1 alone for K = 2 (scikit-learn's binary case), else all.
std::vector<std::int64_t> mapped_classes(std::int64_t k) {
  if (k == 2) return {1};
  std::vector<std::int64_t> out(static_cast<std::size_t>(k));
  for (std::int64_t j = 0; j < k; ++j) out[static_cast<std::size_t>(j)] = j;
  return out;
}

/// Every class's score, N x K row-major: p_ij, or log(p_ij / (1 - p_ij)) from the logits
/// (input_error naming the row and class when it is not finite: a probability of 0 or 1).
std::vector<double> class_scores(const split_data& split, class_score kind, const std::string& method) {
  const std::int64_t n = split.num_samples, k = split.num_classes;
  if (kind == class_score::probability) return uncalibrated(split).probs;
  const std::vector<double> z = logits_of(split);
  std::vector<double> s(z.size());
  for (std::int64_t i = 0; i < n; ++i) {
    const double* row = z.data() + i * k;
    for (std::int64_t j = 0; j < k; ++j) {
      const double v = log_odds_against_rest(row, k, j);
      if (!std::isfinite(v))
        throw input_error(
            fmt::format("{}: {}: row {}, class {}: {} (one-vs-rest) needs a finite log-odds score (got "
                        "{}; a probability of exactly 0 or 1?)",
                        split.file, split.values_path(), i, j, method, v));
      s[static_cast<std::size_t>(i * k + j)] = v;
    }
  }
  return s;
}

class one_vs_rest_map final : public calibration_map {
 public:
  one_vs_rest_map(std::string method, class_score kind, std::vector<std::shared_ptr<const score_map>> maps)
      : method_(std::move(method)), kind_(kind), maps_(std::move(maps)) {}

  nlohmann::json params() const override {
    nlohmann::json classes = nlohmann::json::array();
    for (const auto& m : maps_) classes.push_back(m->params());
    return {{"multiclass", "one-vs-rest"}, {"score", score_name(kind_)}, {"classes", std::move(classes)}};
  }

  scored_split apply(const split_data& split) const override {
    const std::int64_t n = split.num_samples, k = split.num_classes;
    const std::vector<std::int64_t> classes = mapped_classes(k);
    if (classes.size() != maps_.size())
      throw input_error(
          fmt::format("{}: {}: this one-vs-rest {} calibrator has {} class map(s) (K = {}) but the split "
                      "has K = {}",
                      split.file, split.values_path(), method_, maps_.size(),
                      maps_.size() == 1 ? std::size_t{2} : maps_.size(), k));
    const std::vector<double> s = class_scores(split, kind_, method_);
    std::vector<double> q(static_cast<std::size_t>(n * k), 0.0);
    for (std::int64_t i = 0; i < n; ++i) {
      double* row = q.data() + i * k;
      for (std::size_t c = 0; c < classes.size(); ++c) row[classes[c]] = maps_[c]->at(s[i * k + classes[c]]);
      if (k == 2) {
        row[0] = 1.0 - row[1];
      } else {
        double sum = 0;
        for (std::int64_t j = 0; j < k; ++j) sum += row[j];
        for (std::int64_t j = 0; j < k; ++j) row[j] = sum != 0 ? row[j] / sum : 1.0 / static_cast<double>(k);
      }
      // scikit-learn's last step: values that exceed 1 by rounding (at most 1e-5) become 1.
      for (std::int64_t j = 0; j < k; ++j) {
        if (row[j] > 1.0 && row[j] <= 1.0 + 1e-5) row[j] = 1.0;
      }
    }
    return score_split(derived(split, std::move(q), true));
  }

 private:
  std::string method_;
  class_score kind_;
  std::vector<std::shared_ptr<const score_map>> maps_;
};

}  // namespace

fitted fit_one_vs_rest(const fit_input& in, class_score kind, const score_fitter& fit, const std::string& method) {
  const split_data& val = in.val;
  const std::int64_t n = val.num_samples, k = val.num_classes;
  const std::vector<double> s = class_scores(val, kind, method);
  std::vector<std::shared_ptr<const score_map>> maps;
  std::vector<double> column(static_cast<std::size_t>(n));
  std::vector<std::uint8_t> hit(static_cast<std::size_t>(n));
  for (const std::int64_t j : mapped_classes(k)) {
    for (std::int64_t i = 0; i < n; ++i) {
      column[i] = s[i * k + j];
      hit[i] = val.labels[i] == j ? 1 : 0;
    }
    maps.push_back(
        fit(column, hit, fmt::format("{}: {}: {} (one-vs-rest), class {}", val.file, val.values_path(), method, j)));
  }
  return {std::make_shared<one_vs_rest_map>(method, kind, std::move(maps)), {}};
}

bool is_one_vs_rest(const nlohmann::json& params) {
  return params.is_object() && params.value("multiclass", std::string()) == "one-vs-rest";
}

std::shared_ptr<const calibration_map> load_one_vs_rest(const nlohmann::json& params, const std::string& where,
                                                        const score_loader& load, const std::string& method) {
  const std::string score = params.at("score").get<std::string>();
  if (score != score_name(class_score::probability) && score != score_name(class_score::log_odds))
    throw input_error(fmt::format("{}: {} score must be probability or log-odds (got '{}')", where, method, score));
  std::vector<std::shared_ptr<const score_map>> maps;
  for (const auto& c : params.at("classes")) maps.push_back(load(c, where));
  if (maps.empty()) throw input_error(fmt::format("{}: {} one-vs-rest needs at least one class map", where, method));
  return std::make_shared<one_vs_rest_map>(
      method, score == "probability" ? class_score::probability : class_score::log_odds, std::move(maps));
}

}  // namespace calibench
