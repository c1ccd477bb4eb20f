// The confidence-group methods (docs/calibrators.md): the validation samples are cut into B
// equal-mass groups of the uncalibrated confidence, each group gets its own parameter, and a
// sample of any split takes the parameter of the first group whose largest validation
// confidence is at least its own. cws: confidence-based weight scaling (a weight per group,
// closed form); cts_conf: a temperature per group by |accuracy - mean confidence| on a grid
// (the sweep backend); bts: a temperature per group by the group's NLL. --calib-bins auto
// tries B = 2..50 and keeps the lowest validation adaECE.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/confidence_groups_code.hpp"
#include "host/calibrators/grid_search.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"
#include "host/calibrators/temperature_scaling.hpp"
#include "host/sweep/sweep_detail.hpp"
#include "kernels/calib_math.hpp"

namespace calibench {
namespace {

constexpr double k_inf = std::numeric_limits<double>::infinity();

/// Slack when a group's mean confidence is compared with 1/K: a mean of N values equal to
/// 1/K can come out a few ulps above it.
constexpr double k_mean_rounding = 1e-12;

/// --calib-bins auto: the groupings tried.
constexpr std::int64_t k_auto_min_groups = 2, k_auto_max_groups = 50;

/// Table size above which cts_conf runs one sweep per group instead (256 MiB).
constexpr std::int64_t k_max_prefix_values = std::int64_t{1} << 25;

/// Equal-mass groups of the validation confidences (stable ascending order, array_split).
struct calibration_groups {
  std::vector<std::vector<std::int64_t>> rows;  ///< non-empty groups, ascending confidence
  std::vector<std::int64_t> starts;             ///< position of each group in the sorted order
  std::vector<double> edges;                    ///< largest confidence of each group
};

calibration_groups equal_mass_groups(const std::vector<double>& confidence, std::int64_t count) {
  const auto n = static_cast<std::int64_t>(confidence.size());
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return confidence[a] < confidence[b]; });
  calibration_groups g;
  std::int64_t pos = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t size = array_split_size(n, count, i);
    if (size == 0) continue;
    g.rows.emplace_back(order.begin() + pos, order.begin() + pos + size);
    g.starts.push_back(pos);
    g.edges.push_back(confidence[order[pos + size - 1]]);
    pos += size;
  }
  return g;
}

/// Group of each sample by the edge rule: the first group whose edge (largest validation
/// confidence) is at least the sample's confidence, else the last group.
std::vector<std::int64_t> group_by_edges(const std::vector<double>& confidence, const std::vector<double>& edges) {
  std::vector<std::int64_t> group(confidence.size());
  const auto last = static_cast<std::int64_t>(edges.size()) - 1;
  for (std::size_t i = 0; i < confidence.size(); ++i) {
    const auto it = std::lower_bound(edges.begin(), edges.end(), confidence[i]);
    group[i] = it == edges.end() ? last : static_cast<std::int64_t>(it - edges.begin());
  }
  return group;
}

/// The parameters of all three methods: edges and one value per group, a weight (cws) or a
/// temperature (cts_conf, bts).
class group_map final : public calibration_map {
 public:
  enum class kind { weight, temperature };
  group_map(kind k, std::int64_t calib_bins, std::vector<double> edges, std::vector<double> values)
      : kind_(k), calib_bins_(calib_bins), edges_(std::move(edges)), values_(std::move(values)) {}

  nlohmann::json params() const override {
    return {{"edges", edges_}, {value_key(kind_), values_}, {"calib_bins", calib_bins_}};
  }

  scored_split apply(const split_data& split) const override {
    const auto group = group_by_edges(uncalibrated(split).confidence, edges_);
    std::vector<double> per_row(static_cast<std::size_t>(split.num_samples));
    for (std::int64_t i = 0; i < split.num_samples; ++i) {
      const double v = values_[static_cast<std::size_t>(group[i])];
      per_row[i] = kind_ == kind::weight ? v : 1.0 / v;
    }
    return kind_ == kind::weight ? score_weighted(split, per_row) : score_scaled(split, per_row, {});
  }

  static const char* value_key(kind k) { return k == kind::weight ? "weights" : "temperatures"; }

  static std::shared_ptr<const calibration_map> load(kind k, const nlohmann::json& p, const std::string& where) {
    auto edges = p.at("edges").get<std::vector<double>>();
    const auto calib_bins = p.at("calib_bins").get<std::int64_t>();
    auto values = p.at(value_key(k)).get<std::vector<double>>();
    if (edges.empty() || values.size() != edges.size())
      throw input_error(fmt::format("{}: edges and per-group parameters differ in length", where));
    return std::make_shared<group_map>(k, calib_bins, std::move(edges), std::move(values));
  }

 private:
  kind kind_;
  std::int64_t calib_bins_;
  std::vector<double> edges_, values_;
};

/// Accuracy and mean confidence of the uncalibrated validation scores over a group's rows.
struct group_stats {
  double accuracy = 0, confidence = 0, size = 0;
};

group_stats stats_of(const scored_split& base, const std::vector<std::int64_t>& rows) {
  group_stats s;
  for (std::int64_t r : rows) {
    s.accuracy += base.prediction[r] == base.labels[r] ? 1.0 : 0.0;
    s.confidence += base.confidence[r];
  }
  s.size = static_cast<double>(rows.size());
  s.accuracy /= s.size;
  s.confidence /= s.size;
  return s;
}

/// The value of group `gi` of `groups` (one method's rule).
using group_rule = std::function<double(const calibration_groups& groups, std::size_t gi, const group_stats& stats)>;

std::shared_ptr<const group_map> fit_groups(group_map::kind kind, const scored_split& base, std::int64_t count,
                                            const group_rule& rule) {
  const auto groups = equal_mass_groups(base.confidence, count);
  std::vector<double> values;
  for (std::size_t gi = 0; gi < groups.rows.size(); ++gi)
    values.push_back(rule(groups, gi, stats_of(base, groups.rows[gi])));
  return std::make_shared<group_map>(kind, count, groups.edges, std::move(values));
}

/// `fit(count)` for the request's --calib-bins, or for auto the grouping of 2..50 with the
/// lowest validation adaECE (the first on ties).
fitted fit_grouping(const fit_input& in, const std::function<std::shared_ptr<const group_map>(std::int64_t)>& fit) {
  const calib_bins_option& bins = in.request.calib_bins;
  if (!bins.automatic) return {fit(bins.count), {}};
  std::shared_ptr<const group_map> best, first;
  double best_ada = k_inf;
  detail::equal_mass_scratch scratch;
  for (std::int64_t count = k_auto_min_groups; count <= k_auto_max_groups; ++count) {
    auto map = fit(count);
    if (first == nullptr) first = map;
    // adaECE alone (the classwise metrics of a full evaluation are not needed here); the
    // same stable order and groups as compute_metrics, so the same value.
    const scored_split s = map->apply(in.val);
    std::vector<std::uint8_t> correct(s.labels.size());
    for (std::size_t i = 0; i < correct.size(); ++i) correct[i] = s.prediction[i] == s.labels[i];
    const double ada = detail::adaece_of(s.confidence, correct, in.request.metrics.num_bins, scratch);
    if (ada < best_ada) {
      best_ada = ada;
      best = std::move(map);
    }
  }
  return {best != nullptr ? best : first, {}};
}

// ---- cws ---------------------------------------------------------------------------------------------

fitted fit_cws(const fit_input& in) {
  if (in.request.follow_code) return fit_cws_code(in);
  const scored_split base = uncalibrated(in.val);
  const double inv_k = 1.0 / static_cast<double>(in.val.num_classes);
  const group_rule weight = [inv_k](const calibration_groups&, std::size_t, const group_stats& s) {
    // C <= 1/K (within the rounding of a mean, so that uniform rows count as C = 1/K).
    return s.confidence <= inv_k + k_mean_rounding
               ? 1.0
               : std::clamp((s.accuracy - inv_k) / (s.confidence - inv_k), 0.0, 1.0);
  };
  return fit_grouping(in, [&](std::int64_t count) { return fit_groups(group_map::kind::weight, base, count, weight); });
}

// ---- bts ---------------------------------------------------------------------------------------------

fitted fit_bts(const fit_input& in) {
  const scored_split base = uncalibrated(in.val);
  const std::vector<double> z = logits_of(in.val);
  const group_rule temperature = [&](const calibration_groups& groups, std::size_t gi, const group_stats&) {
    return fit_temperature_nll(z, in.val.labels, in.val.num_classes, groups.rows[gi], in.val.file + ": /val/probs");
  };
  return fit_grouping(
      in, [&](std::int64_t count) { return fit_groups(group_map::kind::temperature, base, count, temperature); });
}

// ---- cts_conf ----------------------------------------------------------------------------------------

/// Confidence of every validation row under every grid temperature, summed cumulatively in
/// the rows' equal-mass order: a group's mean confidence at any candidate is then one
/// difference, whatever the number of groups. `calib_bins auto` fits 49 groupings, so this
/// replaces 49 passes over the logits by one. (N + 1) x G doubles.
struct confidence_prefix {
  std::int64_t num_candidates = 0;
  std::vector<double> sums;
  double group_sum(std::int64_t begin, std::int64_t end, std::int64_t g) const {
    return sums[static_cast<std::size_t>(end * num_candidates + g)] -
           sums[static_cast<std::size_t>(begin * num_candidates + g)];
  }
};

/// The rows' confidences under every temperature of `grid` (float32 logits, as the sweeps
/// read them), accumulated in the stable ascending order of the uncalibrated confidence.
confidence_prefix build_prefix(const sweep_input& input, const scored_split& base, const std::vector<double>& grid) {
  const std::int64_t n = input.num_samples, k = input.num_classes;
  const auto g_count = static_cast<std::int64_t>(grid.size());
  std::vector<double> inv(grid.size());
  for (std::size_t g = 0; g < grid.size(); ++g) inv[g] = 1.0 / grid[g];
  std::vector<double> conf(static_cast<std::size_t>(n * g_count));
#pragma omp parallel
  {
    std::vector<double> x(static_cast<std::size_t>(k));
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const float* z = input.logits.data() + i * k;
      double m = z[0];
      for (std::int64_t j = 1; j < k; ++j) m = std::max(m, static_cast<double>(z[j]));
      for (std::int64_t j = 0; j < k; ++j) x[j] = static_cast<double>(z[j]) - m;
      for (std::int64_t g = 0; g < g_count; ++g) {
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (std::int64_t j = 0; j < k; ++j) s += exp_nonpositive(x[j] * inv[g]);
        conf[static_cast<std::size_t>(i * g_count + g)] = 1.0 / s;
      }
    }
  }
  const auto groups = equal_mass_groups(base.confidence, 1);  // the whole sorted order
  const auto& order = groups.rows.front();
  confidence_prefix p;
  p.num_candidates = g_count;
  p.sums.assign(static_cast<std::size_t>((n + 1) * g_count), 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    const double* row = conf.data() + order[i] * g_count;
    const double* prev = p.sums.data() + i * g_count;
    double* next = p.sums.data() + (i + 1) * g_count;
    for (std::int64_t g = 0; g < g_count; ++g) next[g] = prev[g] + row[g];
  }
  return p;
}

/// A sub-problem of some rows of a split, as the sweeps read it.
sweep_input subset(const sweep_input& all, const std::vector<std::int64_t>& rows) {
  sweep_input s;
  s.num_samples = static_cast<std::int64_t>(rows.size());
  s.num_classes = all.num_classes;
  s.logits.reserve(rows.size() * static_cast<std::size_t>(all.num_classes));
  for (std::int64_t r : rows) {
    s.logits.insert(s.logits.end(), all.logits.begin() + r * all.num_classes,
                    all.logits.begin() + (r + 1) * all.num_classes);
    s.labels.push_back(all.labels[r]);
  }
  return s;
}

/// |accuracy - mean confidence| of a group at every grid temperature: one backend sweep of
/// the group's rows.
std::vector<double> swept_gaps(const fit_input& in, const sweep_input& input, const std::vector<std::int64_t>& rows,
                               const group_stats& s, const std::vector<double>& grid) {
  const sweep_input sub = subset(input, rows);
  auto data = in.backend->prepare(sub.view());
  const auto r = in.backend->temperature(*data, grid, sweep_options_of(in.request, false));
  std::vector<double> gap(grid.size());
  for (std::size_t g = 0; g < grid.size(); ++g) {
    double sum_conf = 0;
    for (std::int32_t b = 0; b < r.num_bins; ++b) sum_conf += r.bin_sum_confidence[g * r.num_bins + b];
    gap[g] = std::fabs(s.accuracy - sum_conf / s.size);
  }
  return gap;
}

fitted fit_cts_conf(const fit_input& in) {
  const scored_split base = uncalibrated(in.val);
  const sweep_input input = to_sweep_input(in.val);
  const auto grid = grid_or(in.request, "0.01:10:0.01");
  // One grouping: per-group sweeps (the backend's vectorised kernels) are faster than
  // building the table; many groupings (auto): the table.
  std::optional<confidence_prefix> prefix;
  if (in.request.calib_bins.automatic &&
      (input.num_samples + 1) * static_cast<std::int64_t>(grid.size()) <= k_max_prefix_values)
    prefix = build_prefix(input, base, grid);
  const group_rule temperature = [&](const calibration_groups& groups, std::size_t gi, const group_stats& s) {
    std::vector<double> gap(grid.size());
    if (prefix) {
      const std::int64_t begin = groups.starts[gi], end = begin + static_cast<std::int64_t>(groups.rows[gi].size());
      for (std::size_t g = 0; g < grid.size(); ++g)
        gap[g] = std::fabs(s.accuracy - prefix->group_sum(begin, end, static_cast<std::int64_t>(g)) / s.size);
    } else {
      gap = swept_gaps(in, input, groups.rows[gi], s, grid);
    }
    return grid[static_cast<std::size_t>(first_min(gap))];
  };
  return fit_grouping(
      in, [&](std::int64_t count) { return fit_groups(group_map::kind::temperature, base, count, temperature); });
}

method_info group_method(std::string name, group_map::kind kind, std::function<fitted(const fit_input&)> fit) {
  method_info m;
  m.name = std::move(name);
  m.options = {"calib_bins", "objective_bins"};
  m.fit = std::move(fit);
  m.load = [kind](const nlohmann::json& p, const std::string& where) { return group_map::load(kind, p, where); };
  return m;
}

}  // namespace

std::vector<method_info> confidence_group_methods() {
  method_info cws = group_method("cws", group_map::kind::weight, fit_cws);
  cws.options.push_back("follow");
  cws.load = [](const nlohmann::json& p, const std::string& where) {
    return p.value("follow", "paper") == "code" ? load_cws_code(p, where)
                                                : group_map::load(group_map::kind::weight, p, where);
  };
  cws.check = [](const fit_request& r) {
    if (r.follow_code && r.was_given("objective_bins"))
      throw input_error("cws --follow code: the code's bins are --calib-bins; --objective-bins does not apply");
  };
  method_info cts_conf = group_method("cts_conf", group_map::kind::temperature, fit_cts_conf);
  cts_conf.options.push_back("grid");
  cts_conf.on_backend = [](const fit_request&) { return true; };
  method_info bts = group_method("bts", group_map::kind::temperature, fit_bts);
  return {cws, cts_conf, bts};
}

}  // namespace calibench
