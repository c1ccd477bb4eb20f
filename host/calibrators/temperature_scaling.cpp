// Temperature scaling (host/calibrators/temperature_scaling.hpp) and its registry row.
#include "host/calibrators/temperature_scaling.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/grid_search.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

constexpr double k_inf = std::numeric_limits<double>::infinity();

/// Inverse temperatures searched by the NLL fits (T in [1e-8, 1e8]); when the NLL has no
/// minimiser inside (it keeps falling towards T -> 0, e.g. every label is the top logit, or
/// towards T -> infinity), the bound is reported (docs/calibrators.md).
constexpr double k_min_inverse = 1e-8;
constexpr double k_max_inverse = 1e8;

/// Mean NLL of softmax(b z) over `rows` and its first two derivatives in b.
struct nll_derivatives {
  double value = 0, first = 0, second = 0;
};

nll_derivatives nll_at(const std::vector<double>& z, const std::vector<std::int32_t>& labels, std::int64_t k,
                       const std::vector<std::int64_t>& rows, double b) {
  // Fixed chunks summed in order: the result does not depend on the thread count.
  constexpr std::int64_t k_chunk = 4096;
  const auto n = static_cast<std::int64_t>(rows.size());
  const std::int64_t chunks = (n + k_chunk - 1) / k_chunk;
  std::vector<nll_derivatives> partial(static_cast<std::size_t>(chunks));
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::int64_t c = 0; c < chunks; ++c) {
    nll_derivatives& p = partial[static_cast<std::size_t>(c)];
    for (std::int64_t r = c * k_chunk; r < std::min(n, (c + 1) * k_chunk); ++r) {
      const double* row = z.data() + rows[r] * k;
      double m = -k_inf;
      for (std::int64_t j = 0; j < k; ++j) m = std::max(m, row[j]);
      double s = 0, mean = 0, sq = 0;
      for (std::int64_t j = 0; j < k; ++j) {
        if (row[j] == -k_inf) continue;  // log 0 of a probability dump: no mass
        const double x = row[j] - m;     // b x <= 0
        const double e = std::exp(b * x);
        s += e;
        mean += e * x;
        sq += e * x * x;
      }
      mean /= s;
      sq /= s;
      const double xy = row[labels[rows[r]]] - m;
      p.value += std::log(s) - b * xy;
      p.first += mean - xy;
      p.second += sq - mean * mean;
    }
  }
  nll_derivatives total;
  for (const auto& p : partial) {
    total.value += p.value;
    total.first += p.first;
    total.second += p.second;
  }
  const double nd = static_cast<double>(n);
  return {total.value / nd, total.first / nd, total.second / nd};
}

fitted fit_ts(const fit_input& in) {
  const fit_request& r = in.request;
  if (r.objective == fit_objective::nll) {
    std::vector<std::int64_t> rows(static_cast<std::size_t>(in.val.num_samples));
    std::iota(rows.begin(), rows.end(), std::int64_t{0});
    return {std::make_shared<temperature_map>(fit_temperature_nll(logits_of(in.val), in.val.labels, in.val.num_classes,
                                                                  rows, in.val.file + ": /val/probs")),
            {}};
  }
  const resident_split split(in.val, *in.backend);
  const auto grid = grid_or(r, "0.01:10:0.01");
  const bool ada = r.objective == fit_objective::adaece;
  const auto s = in.backend->temperature(*split.data, grid, sweep_options_of(r, ada));
  const std::vector<double>& objective = ada ? s.adaece : s.ece;
  return {std::make_shared<temperature_map>(grid[static_cast<std::size_t>(first_min(objective))]),
          {ada ? "adaece" : "ece", grid, objective}};
}

}  // namespace

double fit_temperature_nll(const std::vector<double>& z, const std::vector<std::int32_t>& labels, std::int64_t k,
                           const std::vector<std::int64_t>& rows, const std::string& where) {
  if (rows.empty()) return 1.0;
  for (std::int64_t r : rows) {
    if (z[r * k + labels[r]] == -k_inf)
      throw input_error(
          fmt::format("{}: probability 0 on the label at index {}: the NLL is infinite for every "
                      "temperature (use --objective ece or adaece)",
                      where, r));
  }
  double lo = k_min_inverse, hi = k_max_inverse;
  if (nll_at(z, labels, k, rows, lo).first >= 0) return 1.0 / lo;
  if (nll_at(z, labels, k, rows, hi).first <= 0) return 1.0 / hi;
  double b = 1.0;
  for (int it = 0; it < 200; ++it) {
    const auto d = nll_at(z, labels, k, rows, b);
    if (d.first == 0) break;
    (d.first > 0 ? hi : lo) = b;
    // Bisection is geometric: the bracket spans sixteen decades.
    double next = d.second > 0 ? b - d.first / d.second : std::sqrt(lo * hi);
    if (!(next > lo && next < hi)) next = std::sqrt(lo * hi);
    if (std::fabs(next - b) <= 1e-15 * b || hi - lo <= 1e-15 * b) {
      b = next;
      break;
    }
    b = next;
  }
  return 1.0 / b;
}

scored_split temperature_map::apply(const split_data& split) const {
  return score_scaled(split, std::vector<double>(static_cast<std::size_t>(split.num_samples), 1.0 / temperature_), {});
}

std::vector<method_info> temperature_scaling_methods() {
  method_info ts;
  ts.name = "ts";
  ts.options = {"objective", "grid"};
  ts.objectives = {fit_objective::nll, fit_objective::ece, fit_objective::adaece};
  ts.on_backend = [](const fit_request& r) { return r.objective != fit_objective::nll; };
  ts.check = [](const fit_request& r) {
    if (r.objective == fit_objective::nll && r.was_given("grid"))
      throw input_error("--grid applies to ts --objective ece or adaece (the NLL fit searches no grid)");
  };
  ts.fit = fit_ts;
  ts.load = [](const nlohmann::json& p, const std::string&) {
    return std::make_shared<temperature_map>(p.at("temperature").get<double>());
  };
  return {ts};
}

}  // namespace calibench
