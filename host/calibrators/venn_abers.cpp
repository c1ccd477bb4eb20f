// Inductive Venn-ABERS calibration (venn_abers; Vovk, Petej and Fedorova 2015; multiclass by
// pairwise coupling, Manokhin 2017), as the venn-abers 1.5.4 package's calibrator-only path
// (VennAbersCalibrator(inductive=True).predict_proba(p_cal, y_cal, p_test)) computes it;
// docs/calibrators.md, docs/ports/venn_abers.md. Binary: for a test score t, p0 and p1 are the
// isotonic fits at t of the validation (score, label) pairs with (t, 0) or (t, 1) added; the
// probability is p1 / (1 - p0 + p1). Both tables are computed once, by pool-adjacent-violators
// on the prefixes and suffixes in exact integer arithmetic. K > 2: one binary calibrator per
// pair of classes a < b present in /val (score p_b / (p_a + p_b), rows of those two labels), the
// pairwise probabilities coupled by q_a = 1 / (sum 1/x - (K' - 2)), then normalised. Float64.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

/// One binary calibrator: the distinct validation scores c_1 < ... < c_k and the tables
/// p0 = F0[#{c_j <= t}], p1 = F1[#{c_j < t}] (k + 1 entries each).
struct va_tables {
  std::vector<double> scores, f0, f1;

  /// (p0, p1) of a test score.
  std::pair<double, double> at(double t) const {
    const auto le = std::upper_bound(scores.begin(), scores.end(), t) - scores.begin();
    const auto lt = std::lower_bound(scores.begin(), scores.end(), t) - scores.begin();
    return {f0[static_cast<std::size_t>(le)], f1[static_cast<std::size_t>(lt)]};
  }
  nlohmann::json json() const { return {{"scores", scores}, {"p0", f0}, {"p1", f1}}; }
};

double merged(double p0, double p1) { return p1 / (1.0 - p0 + p1); }

/// Blocks of a pool-adjacent-violators stack: label sum, count, the block below on the stack.
struct pava_blocks {
  std::vector<std::int64_t> sum, weight, link;
  std::int64_t push(std::int64_t s, std::int64_t w, std::int64_t below) {
    sum.push_back(s);
    weight.push_back(w);
    link.push_back(below);
    return static_cast<std::int64_t>(sum.size()) - 1;
  }
};

/// The tables of pairs (score, label in {0, 1}); scores finite. Groups of equal scores are
/// pooled; top_left[j] is the stack of the isotonic fit of groups 0..j, top_right[j] of j..k-1,
/// kept as persistent linked stacks; each table entry adds the test point to one group and pools
/// it with its neighbouring blocks until the fit is monotone (every mean compared by
/// cross-multiplication, so each value is one correctly rounded division S / W).
va_tables fit_tables(std::vector<std::pair<double, int>> points) {
  std::sort(points.begin(), points.end());
  va_tables t;
  std::vector<std::int64_t> s, w;
  for (const auto& [score, label] : points) {
    if (t.scores.empty() || score != t.scores.back()) {
      t.scores.push_back(score);
      s.push_back(0);
      w.push_back(0);
    }
    s.back() += label;
    ++w.back();
  }
  const auto k = static_cast<std::int64_t>(t.scores.size());
  pava_blocks blocks;
  std::vector<std::int64_t> top_left(static_cast<std::size_t>(k)), top_right(static_cast<std::size_t>(k));
  std::int64_t top = -1;
  for (std::int64_t j = 0; j < k; ++j) {  // a new block pools the blocks whose mean is not below its own
    std::int64_t cs = s[j], cw = w[j];
    while (top >= 0 && blocks.sum[top] * cw >= cs * blocks.weight[top]) {
      cs += blocks.sum[top];
      cw += blocks.weight[top];
      top = blocks.link[top];
    }
    top_left[j] = top = blocks.push(cs, cw, top);
  }
  top = -1;
  for (std::int64_t j = k - 1; j >= 0; --j) {  // mirrored: pools the blocks whose mean is not above
    std::int64_t cs = s[j], cw = w[j];
    while (top >= 0 && cs * blocks.weight[top] >= blocks.sum[top] * cw) {
      cs += blocks.sum[top];
      cw += blocks.weight[top];
      top = blocks.link[top];
    }
    top_right[j] = top = blocks.push(cs, cw, top);
  }
  const auto value = [&](std::int64_t m, int h) {
    std::int64_t ms = s[m] + h, mw = w[m] + 1;
    std::int64_t a = m > 0 ? top_left[m - 1] : -1, b = m + 1 < k ? top_right[m + 1] : -1;
    for (;;) {
      if (a >= 0 && blocks.sum[a] * mw >= ms * blocks.weight[a]) {
        ms += blocks.sum[a];
        mw += blocks.weight[a];
        a = blocks.link[a];
      } else if (b >= 0 && blocks.sum[b] * mw <= ms * blocks.weight[b]) {
        ms += blocks.sum[b];
        mw += blocks.weight[b];
        b = blocks.link[b];
      } else {
        return static_cast<double>(ms) / static_cast<double>(mw);
      }
    }
  };
  t.f0.assign(static_cast<std::size_t>(k + 1), 0.0);
  t.f1.assign(static_cast<std::size_t>(k + 1), 1.0);
  for (std::int64_t j = 0; j < k; ++j) {
    t.f0[j + 1] = value(j, 0);
    t.f1[j] = value(j, 1);
  }
  return t;
}

va_tables load_tables(const nlohmann::json& p, const std::string& where) {
  va_tables t{p.at("scores").get<std::vector<double>>(), p.at("p0").get<std::vector<double>>(),
              p.at("p1").get<std::vector<double>>()};
  const bool finite = std::all_of(t.scores.begin(), t.scores.end(), [](double v) { return std::isfinite(v); });
  if (t.scores.empty() || !finite || t.f0.size() != t.scores.size() + 1 || t.f1.size() != t.f0.size() ||
      std::adjacent_find(t.scores.begin(), t.scores.end(), std::greater_equal<>()) != t.scores.end())
    throw input_error(
        fmt::format("{}: venn_abers needs finite, strictly ascending scores and p0, p1 tables one longer", where));
  return t;
}

/// P(b | a or b) of one row as the package computes it, p_b / (p_a + p_b), or from the logits
/// (sigmoid(z_b - z_a)) where both probabilities underflow to 0; NaN when both are 0 in a
/// probability dump.
double pair_score(const double* p, const double* z, std::int64_t a, std::int64_t b) {
  const double sum = p[a] + p[b];
  if (sum > 0) return p[b] / sum;
  return 1.0 / (1.0 + std::exp(z[a] - z[b]));
}

[[noreturn]] void bad_pair(const split_data& split, std::int64_t row, std::int64_t a, std::int64_t b) {
  throw input_error(
      fmt::format("{}: {}: row {}: classes {} and {} both have probability 0 (venn_abers compares "
                  "them by p_b / (p_a + p_b))",
                  split.file, split.values_path(), row, a, b));
}

class venn_abers_map final : public calibration_map {
 public:
  /// Binary (K = 2): one table on P(class 1); else the present classes and one table per pair.
  venn_abers_map(std::vector<std::int64_t> classes, std::vector<va_tables> pairs)
      : classes_(std::move(classes)), pairs_(std::move(pairs)) {}

  bool binary() const { return classes_.empty(); }

  nlohmann::json params() const override {
    if (binary()) {
      nlohmann::json p = pairs_[0].json();
      p["multiclass"] = "binary";
      return p;
    }
    nlohmann::json list = nlohmann::json::array();
    std::size_t e = 0;
    for (std::size_t i = 0; i < classes_.size(); ++i)
      for (std::size_t j = i + 1; j < classes_.size(); ++j, ++e) {
        nlohmann::json q = pairs_[e].json();
        q["a"] = classes_[i];
        q["b"] = classes_[j];
        list.push_back(std::move(q));
      }
    return {{"multiclass", "one-vs-one"}, {"classes", classes_}, {"pairs", list}};
  }

  /// Calibrated probabilities (row-major N x K) and the intervals: binary p0, p1 per row;
  /// else per row and pair (in params' pair order).
  void run(const split_data& split, std::vector<double>& probs, std::vector<double>& p0,
           std::vector<double>& p1) const {
    const scored_split base = uncalibrated(split);
    const std::vector<double> z = logits_of(split);
    const std::int64_t n = split.num_samples, k = split.num_classes, np = static_cast<std::int64_t>(pairs_.size());
    probs.assign(static_cast<std::size_t>(n * k), 0.0);
    p0.resize(static_cast<std::size_t>(n * np));
    p1.resize(p0.size());
    const auto kp = static_cast<std::int64_t>(classes_.size());
    std::vector<double> inverse_sum(static_cast<std::size_t>(kp));
    for (std::int64_t i = 0; i < n; ++i) {
      const double* p = base.probs.data() + i * k;
      if (binary()) {
        const auto [lo, hi] = pairs_[0].at(p[1]);
        p0[i] = lo;
        p1[i] = hi;
        const double q = merged(lo, hi);
        probs[i * k] = 1.0 - q;
        probs[i * k + 1] = q;
        continue;
      }
      std::fill(inverse_sum.begin(), inverse_sum.end(), 0.0);
      std::int64_t e = 0;
      for (std::int64_t a = 0; a < kp; ++a)
        for (std::int64_t b = a + 1; b < kp; ++b, ++e) {
          const double r = pair_score(p, z.data() + i * k, classes_[a], classes_[b]);
          if (std::isnan(r)) bad_pair(split, i, classes_[a], classes_[b]);
          const auto [lo, hi] = pairs_[e].at(r);
          p0[i * np + e] = lo;
          p1[i * np + e] = hi;
          const double pm = merged(lo, hi);
          inverse_sum[a] += 1.0 / (1.0 - pm);
          inverse_sum[b] += 1.0 / pm;
        }
      double total = 0;
      for (std::int64_t a = 0; a < kp; ++a) total += 1.0 / (inverse_sum[a] - static_cast<double>(kp - 2));
      for (std::int64_t a = 0; a < kp; ++a)
        probs[i * k + classes_[a]] = 1.0 / (inverse_sum[a] - static_cast<double>(kp - 2)) / total;
    }
  }

  scored_split apply(const split_data& split) const override {
    std::vector<double> probs, p0, p1;
    run(split, probs, p0, p1);
    return score_split(derived(split, std::move(probs), true));
  }

  std::vector<vector_to_write> outputs(const split_data& split, const std::string& group) const override {
    std::vector<double> probs, p0, p1;
    run(split, probs, p0, p1);
    const std::int64_t columns = binary() ? 0 : static_cast<std::int64_t>(pairs_.size());
    return {{"/" + group + "/venn_abers_p0", std::move(p0), columns},
            {"/" + group + "/venn_abers_p1", std::move(p1), columns}};
  }

  static std::shared_ptr<const calibration_map> load(const nlohmann::json& p, const std::string& where) {
    if (p.value("multiclass", std::string()) == "binary")
      return std::make_shared<venn_abers_map>(std::vector<std::int64_t>{},
                                              std::vector<va_tables>{load_tables(p, where)});
    auto classes = p.at("classes").get<std::vector<std::int64_t>>();
    const auto& list = p.at("pairs");
    const std::size_t kp = classes.size();
    if (kp < 2 || !std::is_sorted(classes.begin(), classes.end()) || classes.front() < 0 ||
        list.size() != kp * (kp - 1) / 2)
      throw input_error(fmt::format("{}: venn_abers needs ascending classes and one table per pair of them", where));
    std::vector<va_tables> pairs;
    for (const auto& q : list) pairs.push_back(load_tables(q, where));
    return std::make_shared<venn_abers_map>(std::move(classes), std::move(pairs));
  }

 private:
  std::vector<std::int64_t> classes_;
  std::vector<va_tables> pairs_;
};

fitted fit_venn_abers(const fit_input& in) {
  const split_data& val = in.val;
  const std::int64_t n = val.num_samples, k = val.num_classes;
  const std::string where = fmt::format("{}: {}", val.file, val.values_path());
  const scored_split base = uncalibrated(val);
  if (k == 2) {
    std::vector<std::pair<double, int>> points;
    for (std::int64_t i = 0; i < n; ++i) points.emplace_back(base.probs[i * 2 + 1], val.labels[i]);
    return {std::make_shared<venn_abers_map>(std::vector<std::int64_t>{}, std::vector<va_tables>{fit_tables(points)}),
            {}};
  }
  std::vector<std::int64_t> classes;
  for (std::int32_t y : val.labels) classes.push_back(y);
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  if (classes.size() < 2)
    throw input_error(
        fmt::format("{}: venn_abers needs at least two classes among the labels (found {})", where, classes.size()));
  const std::vector<double> z = logits_of(val);
  std::vector<std::vector<std::int64_t>> rows_of(static_cast<std::size_t>(k));
  for (std::int64_t i = 0; i < n; ++i) rows_of[val.labels[i]].push_back(i);
  std::vector<va_tables> pairs;
  for (std::size_t a = 0; a < classes.size(); ++a)
    for (std::size_t b = a + 1; b < classes.size(); ++b) {
      std::vector<std::pair<double, int>> points;
      for (const std::int64_t c : {classes[a], classes[b]})
        for (std::int64_t i : rows_of[c]) {
          const double r = pair_score(base.probs.data() + i * k, z.data() + i * k, classes[a], classes[b]);
          if (std::isnan(r)) bad_pair(val, i, classes[a], classes[b]);
          points.emplace_back(r, c == classes[b] ? 1 : 0);
        }
      pairs.push_back(fit_tables(std::move(points)));
    }
  return {std::make_shared<venn_abers_map>(std::move(classes), std::move(pairs)), {}};
}

}  // namespace

std::vector<method_info> venn_abers_methods() {
  method_info m;
  m.name = "venn_abers";
  m.fit = fit_venn_abers;
  m.load = venn_abers_map::load;
  return {m};
}

}  // namespace calibench
