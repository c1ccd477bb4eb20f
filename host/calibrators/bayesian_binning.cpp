// BBQ (bbq; Naeini, Cooper and Hauskrecht 2015) and ENIR (enir; Naeini and Cooper 2016) as
// netcal 1.4.0 fits them with its defaults (BIC, equal-width BBQ bins, ENIR's quick
// initialisation; host/calibrators/bayesian_binning_fit.hpp, docs/calibrators.md), on one score
// per row: K = 2 the binary P(class 1) (the prediction may change), K > 2 the top-label
// confidence (the other classes rescaled, the prediction kept: hist / iso's rule), or with
// --multiclass one-vs-rest one model per class (one_vs_rest.hpp; netcal's own multiclass mode).
#include <algorithm>
#include <cmath>
#include <functional>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/bayesian_binning_fit.hpp"
#include "host/calibrators/logistic.hpp"
#include "host/calibrators/one_vs_rest.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

enum class binning_mode { binary, top_label };

constexpr std::string_view mode_name(binning_mode m) { return m == binning_mode::binary ? "binary" : "top-label"; }

/// One family: its fit, its map and its JSON, as functions of a fitted model `M`.
template <typename M>
struct binning_family {
  const char* name;
  M (*fit)(std::span<const double>, std::span<const std::uint8_t>, const std::string&, binning_score);
  double (*at)(const M&, double);
  nlohmann::json (*to_json)(const M&);
  M (*from_json)(const nlohmann::json&, const std::string&);
};

/// The scores of a split under `mode` (P(class 1), or the top-label confidence) and their
/// targets (label 1, or a correct prediction).
void scores_of(const split_data& split, const scored_split& base, binning_mode mode, std::vector<double>& p,
               std::vector<std::uint8_t>& hit) {
  const auto n = static_cast<std::size_t>(split.num_samples);
  p.resize(n);
  hit.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (mode == binning_mode::binary) {
      const double* row = split.values.data() + 2 * i;
      p[i] = split.is_probs ? row[1] : sigmoid(row[1] - row[0]);
      hit[i] = split.labels[i] == 1 ? 1 : 0;
    } else {
      p[i] = base.confidence[i];
      hit[i] = base.prediction[i] == split.labels[i] ? 1 : 0;
    }
  }
}

template <typename M>
class binning_score_map final : public score_map {
 public:
  binning_score_map(const binning_family<M>& f, M m) : f_(f), m_(std::move(m)) {}
  double at(double p) const override { return f_.at(m_, p); }
  nlohmann::json params() const override { return f_.to_json(m_); }

 private:
  binning_family<M> f_;
  M m_;
};

template <typename M>
class binning_map final : public calibration_map {
 public:
  binning_map(const binning_family<M>& f, binning_mode mode, M m) : f_(f), mode_(mode), m_(std::move(m)) {}

  nlohmann::json params() const override {
    nlohmann::json p = f_.to_json(m_);
    p["multiclass"] = mode_name(mode_);
    return p;
  }

  scored_split apply(const split_data& split) const override {
    if (mode_ == binning_mode::binary && split.num_classes != 2)
      throw input_error(fmt::format("{}: {}: {} was fitted binary (K = 2) but this split has K = {}", split.file,
                                    split.values_path(), f_.name, split.num_classes));
    scored_split base = uncalibrated(split);
    std::vector<double> p;
    std::vector<std::uint8_t> hit;
    scores_of(split, base, mode_, p, hit);
    std::vector<double> q(p.size());
    for (std::size_t i = 0; i < p.size(); ++i) q[i] = f_.at(m_, p[i]);
    if (mode_ == binning_mode::top_label) return rescale_top_label(std::move(base), q);
    std::vector<double> probs(2 * p.size());
    for (std::size_t i = 0; i < p.size(); ++i) {
      probs[2 * i] = 1.0 - q[i];
      probs[2 * i + 1] = q[i];
    }
    return score_split(derived(split, std::move(probs), true));
  }

 private:
  binning_family<M> f_;
  binning_mode mode_;
  M m_;
};

template <typename M>
fitted fit_binning(const binning_family<M>& f, const fit_input& in) {
  const split_data& val = in.val;
  if (in.request.multiclass == multiclass_rule::one_vs_rest) {
    return fit_one_vs_rest(
        in, class_score::probability,
        [f](std::span<const double> p, std::span<const std::uint8_t> hit, const std::string& where) {
          return std::make_shared<binning_score_map<M>>(f, f.fit(p, hit, where, binning_score::bic));
        },
        f.name);
  }
  const bool top = in.request.multiclass == multiclass_rule::top_label || val.num_classes > 2;
  const binning_mode mode = top ? binning_mode::top_label : binning_mode::binary;
  std::vector<double> p;
  std::vector<std::uint8_t> hit;
  scores_of(val, uncalibrated(val), mode, p, hit);
  const std::string where = fmt::format("{}: {}: {} ({})", val.file, val.values_path(), f.name, mode_name(mode));
  return {std::make_shared<binning_map<M>>(f, mode, f.fit(p, hit, where, binning_score::bic)), {}};
}

template <typename M>
std::shared_ptr<const calibration_map> load_binning(const binning_family<M>& f, const nlohmann::json& p,
                                                    const std::string& where) {
  if (is_one_vs_rest(p)) {
    return load_one_vs_rest(
        p, where,
        [f](const nlohmann::json& c, const std::string& w) {
          return std::make_shared<binning_score_map<M>>(f, f.from_json(c, w));
        },
        f.name);
  }
  const auto mode = p.at("multiclass").get<std::string>();
  if (mode != mode_name(binning_mode::binary) && mode != mode_name(binning_mode::top_label))
    throw input_error(fmt::format("{}: {} multiclass must be binary or top-label (got '{}')", where, f.name, mode));
  return std::make_shared<binning_map<M>>(f, mode == "binary" ? binning_mode::binary : binning_mode::top_label,
                                          f.from_json(p, where));
}

template <typename M>
method_info binning_method(const binning_family<M>& f) {
  method_info m;
  m.name = f.name;
  m.options = {"multiclass"};
  m.fit = [f](const fit_input& in) { return fit_binning(f, in); };
  m.load = [f](const nlohmann::json& p, const std::string& where) { return load_binning(f, p, where); };
  return m;
}

/// ENIR with netcal's default quick initialisation.
enir_model fit_enir_default(std::span<const double> p, std::span<const std::uint8_t> hit, const std::string& where,
                            binning_score score) {
  return fit_enir(p, hit, where, score, true);
}

nlohmann::json bbq_json(const bbq_model& m) { return to_json(m); }
nlohmann::json enir_json(const enir_model& m) { return to_json(m); }

}  // namespace

std::vector<method_info> bayesian_binning_methods() {
  const binning_family<bbq_model> bbq{"bbq", fit_bbq, bbq_at, bbq_json, bbq_from_json};
  const binning_family<enir_model> enir{"enir", fit_enir_default, enir_at, enir_json, enir_from_json};
  return {binning_method(bbq), binning_method(enir)};
}

}  // namespace calibench
