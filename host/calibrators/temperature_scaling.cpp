// Temperature scaling (host/calibrators/temperature_scaling.hpp) and its registry row.
#include "host/calibrators/temperature_scaling.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/grid_search.hpp"
#include "host/calibrators/logistic.hpp"
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

/// Sums `add_row(r, partial)` over rows r = 0..n-1 in fixed chunks of 4096 rows whose partial
/// sums are then added in order: the result does not depend on the thread count. `Sum` has
/// operator+=.
template <typename Sum, typename AddRow>
Sum sum_in_chunks(std::int64_t n, const AddRow& add_row) {
  constexpr std::int64_t k_chunk = 4096;
  const std::int64_t chunks = (n + k_chunk - 1) / k_chunk;
  std::vector<Sum> partial(static_cast<std::size_t>(chunks));
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::int64_t c = 0; c < chunks; ++c)
    for (std::int64_t r = c * k_chunk; r < std::min(n, (c + 1) * k_chunk); ++r)
      add_row(r, partial[static_cast<std::size_t>(c)]);
  Sum total;
  for (const Sum& p : partial) total += p;
  return total;
}

/// Mean NLL of softmax(b z) over `rows` and its first two derivatives in b.
struct nll_derivatives {
  double value = 0, first = 0, second = 0;
  nll_derivatives& operator+=(const nll_derivatives& o) {
    value += o.value;
    first += o.first;
    second += o.second;
    return *this;
  }
};

nll_derivatives nll_at(const std::vector<double>& z, const std::vector<std::int32_t>& labels, std::int64_t k,
                       const std::vector<std::int64_t>& rows, double b) {
  const auto n = static_cast<std::int64_t>(rows.size());
  const auto total = sum_in_chunks<nll_derivatives>(n, [&](std::int64_t r, nll_derivatives& p) {
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
  });
  const double nd = static_cast<double>(n);
  return {total.value / nd, total.first / nd, total.second / nd};
}

/// Mean Top-versus-All loss F(b) of softmax(b z) and dF/db: per row, with t = argmax z (fixed for
/// b > 0), u = b z_t - logsumexp_{j != t} b z_j and r the softmax of the others,
/// l = softplus(u) - a u and dl/db = (sigmoid(u) - a)(z_t - sum_{j != t} r_j z_j).
struct tva_value {
  double value = 0, first = 0;
  tva_value& operator+=(const tva_value& o) {
    value += o.value;
    first += o.first;
    return *this;
  }
};

tva_value tva_at(const std::vector<double>& z, const std::vector<std::int32_t>& top,
                 const std::vector<std::uint8_t>& hit, std::int64_t k, double b) {
  const auto n = static_cast<std::int64_t>(top.size());
  const auto total = sum_in_chunks<tva_value>(n, [&](std::int64_t r, tva_value& p) {
    const double* row = z.data() + r * k;
    const std::int32_t t = top[r];
    double m = -k_inf;
    for (std::int64_t j = 0; j < k; ++j)
      if (j != t) m = std::max(m, row[j]);
    double s = 0, mean = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      if (j == t || row[j] == -k_inf) continue;
      const double e = std::exp(b * (row[j] - m));
      s += e;
      mean += e * row[j];
    }
    const double u = b * (row[t] - m) - std::log(s);
    const double a = hit[r] != 0 ? 1.0 : 0.0;
    p.value += softplus(u) - a * u;
    p.first += (sigmoid(u) - a) * (row[t] - mean / s);
  });
  const double nd = static_cast<double>(n);
  return {total.value / nd, total.first / nd};
}

/// A root in [lo, hi] of `f`, whose values flo, fhi at the ends have opposite signs: scipy's
/// brentq (scipy/optimize/Zeros/brentq.c, Brent 1973) with xtol = 1e-300 and rtol = 4 eps, as
/// the reference calls it (tests/reference/tva_ref.py, _scalar_min).
template <typename F>
double brent_root(const F& f, double lo, double hi, double flo, double fhi) {
  constexpr double xtol = 1e-300, rtol = 4 * std::numeric_limits<double>::epsilon();
  double xpre = lo, xcur = hi, fpre = flo, fcur = fhi, xblk = 0, fblk = 0, spre = 0, scur = 0;
  if (fpre == 0) return xpre;
  if (fcur == 0) return xcur;
  for (int it = 0; it < 500; ++it) {
    if (fpre != 0 && fcur != 0 && std::signbit(fpre) != std::signbit(fcur)) {
      xblk = xpre;
      fblk = fpre;
      spre = scur = xcur - xpre;
    }
    if (std::fabs(fblk) < std::fabs(fcur)) {
      xpre = xcur;
      xcur = xblk;
      xblk = xpre;
      fpre = fcur;
      fcur = fblk;
      fblk = fpre;
    }
    const double delta = (xtol + rtol * std::fabs(xcur)) / 2;
    const double sbis = (xblk - xcur) / 2;
    if (fcur == 0 || std::fabs(sbis) < delta) return xcur;
    if (std::fabs(spre) > delta && std::fabs(fcur) < std::fabs(fpre)) {
      double stry;
      if (xpre == xblk) {
        stry = -fcur * (xcur - xpre) / (fcur - fpre);  // interpolate
      } else {                                         // extrapolate
        const double dpre = (fpre - fcur) / (xpre - xcur), dblk = (fblk - fcur) / (xblk - xcur);
        stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre));
      }
      if (2 * std::fabs(stry) < std::min(std::fabs(spre), 3 * std::fabs(sbis) - delta)) {
        spre = scur;
        scur = stry;
      } else {
        spre = scur = sbis;
      }
    } else {
      spre = scur = sbis;
    }
    xpre = xcur;
    fpre = fcur;
    xcur += std::fabs(scur) > delta ? scur : (sbis > 0 ? delta : -delta);
    fcur = f(xcur);
  }
  return xcur;
}

fitted fit_ts(const fit_input& in) {
  const fit_request& r = in.request;
  if (r.objective == fit_objective::tva)
    return {std::make_shared<temperature_map>(fit_temperature_tva(logits_of(in.val), in.val.labels, in.val.num_classes,
                                                                  in.val.file + ": " + in.val.values_path())),
            {}};
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

double fit_temperature_tva(const std::vector<double>& z, const std::vector<std::int32_t>& labels, std::int64_t k,
                           const std::string& where) {
  if (k < 2) throw input_error(fmt::format("{}: ts --objective tva needs K >= 2 classes (got {})", where, k));
  const auto n = static_cast<std::int64_t>(labels.size());
  std::vector<std::int32_t> top(static_cast<std::size_t>(n));
  std::vector<std::uint8_t> hit(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const double* row = z.data() + i * k;
    const auto t = static_cast<std::int32_t>(std::max_element(row, row + k) - row);
    bool other = false;
    for (std::int64_t j = 0; j < k; ++j) other = other || (j != t && row[j] > -k_inf);
    if (!(row[t] > -k_inf) || !(row[t] < k_inf) || !other)
      throw input_error(
          fmt::format("{}: row {}: ts --objective tva needs a finite top-label log-odds (a row of probability "
                      "0 or 1?)",
                      where, i));
    top[i] = t;
    hit[i] = t == labels[i] ? 1 : 0;
  }
  // The grid of the reference (tests/reference/tva_ref.py): b = 10^(-8 + 16 i / 640), i = 0..640.
  constexpr int k_grid = 641;
  std::vector<double> grid(k_grid), d(k_grid);
  for (int i = 0; i < k_grid; ++i) grid[i] = i + 1 == k_grid ? k_max_inverse : std::pow(10.0, -8.0 + 0.025 * i);
  for (int i = 0; i < k_grid; ++i) d[i] = tva_at(z, top, hit, k, grid[i]).first;
  std::vector<int> nonzero;
  for (int i = 0; i < k_grid; ++i)
    if (d[i] != 0) nonzero.push_back(i);
  if (nonzero.empty()) return 1.0;
  std::vector<double> candidates;
  if (d[nonzero.front()] > 0) candidates.push_back(k_min_inverse);
  if (d[nonzero.back()] < 0) candidates.push_back(k_max_inverse);
  const auto df = [&](double b) { return tva_at(z, top, hit, k, b).first; };
  for (std::size_t s = 0; s + 1 < nonzero.size(); ++s) {
    const int i = nonzero[s], j = nonzero[s + 1];
    if (!(d[i] < 0 && d[j] > 0)) continue;
    candidates.push_back(j > i + 1 ? grid[i + 1] : brent_root(df, grid[i], grid[j], d[i], d[j]));
  }
  double best = k_inf, best_b = candidates.front();
  for (double b : candidates) {
    const double v = tva_at(z, top, hit, k, b).value;
    if (v < best) {
      best = v;
      best_b = b;
    }
  }
  return 1.0 / best_b;
}

scored_split temperature_map::apply(const split_data& split) const {
  return score_scaled(split, std::vector<double>(static_cast<std::size_t>(split.num_samples), 1.0 / temperature_), {});
}

std::vector<method_info> temperature_scaling_methods() {
  method_info ts;
  ts.name = "ts";
  ts.options = {"objective", "grid", "objective_bins"};
  ts.objectives = {fit_objective::nll, fit_objective::ece, fit_objective::adaece, fit_objective::tva};
  ts.on_backend = [](const fit_request& r) {
    return r.objective == fit_objective::ece || r.objective == fit_objective::adaece;
  };
  ts.check = [](const fit_request& r) {
    const bool binless = r.objective == fit_objective::nll || r.objective == fit_objective::tva;
    if (binless && r.was_given("grid"))
      throw input_error(fmt::format("--grid applies to ts --objective ece or adaece (the {} fit searches no grid)",
                                    r.objective == fit_objective::nll ? "NLL" : "TvA"));
    if (binless && r.was_given("objective_bins"))
      throw input_error(
          fmt::format("--objective-bins applies to ts --objective ece or adaece (the {} fit bins nothing)",
                      r.objective == fit_objective::nll ? "NLL" : "TvA"));
  };
  ts.fit = fit_ts;
  ts.load = [](const nlohmann::json& p, const std::string&) {
    return std::make_shared<temperature_map>(p.at("temperature").get<double>());
  };
  return {ts};
}

}  // namespace calibench
