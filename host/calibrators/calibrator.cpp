// Fitting and applying the seed papers' calibrators (docs/calibrators.md). Grid searches run
// on the sweep backend (one call per grid); NLL fits are 1-D convex problems solved by a
// safeguarded Newton iteration, or L-BFGS for the logit maps (host/calibrators/logit_map_fit.hpp);
// application and scoring are float64 on the host.
#include "host/calibrators/calibrator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "host/metrics/conventions.hpp"
#include "common/error.hpp"
#include "host/calibrators/ets_weights.hpp"
#include "host/calibrators/logit_map_fit.hpp"
#include "host/io/grid.hpp"
#include "common/rng.hpp"
#include "host/sweep/sweep_detail.hpp"
#include "host/sweep/sweep_input.hpp"
#include "kernels/calib_math.hpp"

namespace calibench {
namespace {

constexpr double k_inf = std::numeric_limits<double>::infinity();

/// Slack when a group's mean confidence is compared with 1/K: a mean of N values equal to
/// 1/K can come out a few ulps above it.
constexpr double k_mean_rounding = 1e-12;

/// Inverse temperatures searched by the NLL fits (T in [1e-8, 1e8]); when the NLL has no
/// minimiser inside (it keeps falling towards T -> 0, e.g. every label is the top logit, or
/// towards T -> infinity), the bound is reported (docs/calibrators.md).
constexpr double k_min_inverse = 1e-8;
constexpr double k_max_inverse = 1e8;

/// Logits of a split as double: stored logits, or log p for probability dumps.
std::vector<double> logits_of(const split_data& s) {
  if (!s.is_probs) return s.values;
  std::vector<double> z(s.values.size());
  for (std::size_t i = 0; i < z.size(); ++i) z[i] = std::log(s.values[i]);
  return z;
}

/// Scores softmax(z * inv) where inv is per row (row_inverse, N) or per class (class_inverse,
/// K); the prediction is the argmax of the scaled logits, lowest index on ties.
scored_split score_scaled(const split_data& s, const std::vector<double>& row_inverse,
                          const std::vector<double>& class_inverse) {
  const std::int64_t n = s.num_samples, k = s.num_classes;
  split_data scaled;
  scaled.num_samples = n;
  scaled.num_classes = k;
  scaled.labels = s.labels;
  scaled.values = logits_of(s);
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    double* row = scaled.values.data() + i * k;
    for (std::int64_t j = 0; j < k; ++j) {
      const double inv = row_inverse.empty() ? class_inverse[j] : row_inverse[i];
      row[j] = row[j] * inv;
    }
  }
  return score_split(std::move(scaled));
}

/// Scores a p + (1 - a)/K with a per row; the prediction stays the uncalibrated one.
scored_split score_weighted(const split_data& s, const std::vector<double>& row_weight) {
  scored_split base = uncalibrated(s);
  const std::int64_t n = base.num_samples, k = base.num_classes;
  const double kd = static_cast<double>(k);
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    const double a = row_weight[i], u = (1.0 - a) / kd;
    double* row = base.probs.data() + i * k;
    for (std::int64_t j = 0; j < k; ++j) row[j] = a * row[j] + u;
    base.confidence[i] = row[base.prediction[i]];
    base.log_p_label[i] = std::log(row[base.labels[i]]);
  }
  return base;
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

// ---- top-label maps (hist, iso) -----------------------------------------------------------

/// `--calib-bins` as one positive integer (B or M).
std::int64_t parse_calib_bins(const std::string& text, const std::string& method) {
  if (text == "auto" && method == "hist")
    throw input_error("--calib-bins auto chooses equal-mass groups for cws, cts_conf, bts; hist needs M");
  const auto values = parse_grid(text, "--calib-bins");
  if (values.size() != 1 || values[0] < 1 || values[0] != std::floor(values[0]) || values[0] > 1e6)
    throw input_error(fmt::format("--calib-bins must be a positive integer{} (got '{}')",
                                  method == "hist" ? " for hist" : " or 'auto'", text));
  return static_cast<std::int64_t>(values[0]);
}

/// Replaces each row's top-label confidence by `top[i]` and scales the other classes to share
/// 1 - c' in proportion to their probabilities: p_j (1 - c')/(1 - c), computed as
/// (p_j / r)(1 - c') with r = sum of the other classes' probabilities (= 1 - c for a normalised
/// row, without 1 - c's cancellation; K = 2 then gives exactly 1 - c'). r = 0 (c = 1) spreads
/// 1 - c' evenly. The prediction stays the uncalibrated one, as in weight scaling.
scored_split rescale_top_label(scored_split base, const std::vector<double>& top) {
  const std::int64_t n = base.num_samples, k = base.num_classes;
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    const double calibrated = top[i], rest_mass = 1.0 - calibrated;
    const std::int32_t pred = base.prediction[i];
    double* row = base.probs.data() + i * k;
    double rest = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      if (j != pred) rest += row[j];
    }
    for (std::int64_t j = 0; j < k; ++j) {
      row[j] = rest > 0 ? row[j] / rest * rest_mass : rest_mass / static_cast<double>(k - 1);
    }
    row[pred] = calibrated;
    base.confidence[i] = calibrated;
    base.log_p_label[i] = std::log(row[base.labels[i]]);
  }
  return base;
}

calibrator fit_hist(const split_data& val, const fit_options& o) {
  const std::int64_t bins = parse_calib_bins(o.calib_bins, "hist");
  const auto m = static_cast<std::int32_t>(bins);
  const scored_split base = uncalibrated(val);
  calibrator cal;
  cal.method = "hist";
  cal.counts.assign(static_cast<std::size_t>(m), 0);
  std::vector<std::int64_t> correct(static_cast<std::size_t>(m), 0);
  for (std::int64_t i = 0; i < base.num_samples; ++i) {
    const auto b = static_cast<std::size_t>(bin_index(binning::right_closed, base.confidence[i], m));
    ++cal.counts[b];
    correct[b] += base.prediction[i] == base.labels[i] ? 1 : 0;
  }
  for (std::int32_t i = 0; i <= m; ++i) cal.edges.push_back(bin_edge(i, m));
  for (std::size_t b = 0; b < cal.counts.size(); ++b) {
    // Empty bins map to 0, as markus93's HistogramBinning does (docs/calibrators.md).
    cal.values.push_back(cal.counts[b] == 0 ? 0.0
                                            : static_cast<double>(correct[b]) / static_cast<double>(cal.counts[b]));
  }
  return cal;
}

/// sklearn's _make_unique: a sorted x starts a new distinct value only when it exceeds the
/// first x of the current one by at least numpy's float64 resolution.
constexpr double k_sklearn_resolution = 1e-15;

calibrator fit_iso(const split_data& val) {
  const scored_split base = uncalibrated(val);
  const std::int64_t n = base.num_samples;
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return base.confidence[a] < base.confidence[b]; });
  // Distinct confidences first (sklearn's _make_unique), each with its samples' counts: PAV
  // runs on those points, so tied samples can never be split across blocks.
  struct block {
    double first_x, last_x;
    std::int64_t correct, count;
  };
  std::vector<block> points;
  for (std::int64_t r : order) {
    const double x = base.confidence[r];
    const std::int64_t hit = base.prediction[r] == base.labels[r] ? 1 : 0;
    if (!points.empty() && x - points.back().first_x < k_sklearn_resolution) {
      points.back().correct += hit;
      ++points.back().count;
    } else {
      points.push_back({x, x, hit, 1});
    }
  }
  // The pool-adjacent-violators stack. Correct and total counts are integers, so
  // "mean(previous) >= mean(last)" is decided exactly by cross-multiplication: adjacent blocks
  // with equal means always pool, and the surviving means strictly increase.
  std::vector<block> blocks;
  for (const block& point : points) {
    blocks.push_back(point);
    while (blocks.size() > 1) {
      const block& last = blocks.back();
      block& prev = blocks[blocks.size() - 2];
      if (prev.correct * last.count < last.correct * prev.count) break;
      prev.last_x = last.last_x;
      prev.correct += last.correct;
      prev.count += last.count;
      blocks.pop_back();
    }
  }
  calibrator cal;
  cal.method = "iso";
  for (const block& b : blocks) {
    const double y = static_cast<double>(b.correct) / static_cast<double>(b.count);
    cal.knots_x.push_back(b.first_x);
    cal.knots_y.push_back(y);
    if (b.last_x != b.first_x) {
      cal.knots_x.push_back(b.last_x);
      cal.knots_y.push_back(y);
    }
  }
  return cal;
}

/// The fitted isotonic function at c: clipped to [x_0, x_last], then scipy interp1d's linear
/// formula (slope (y_hi - y_lo)/(x_hi - x_lo) times (c - x_lo), plus y_lo; the segment's upper
/// knot is the first one >= c, except that c = x_0 uses the first segment).
double isotonic_at(const std::vector<double>& x, const std::vector<double>& y, double c) {
  if (x.size() == 1) return y.front();
  const double t = std::clamp(c, x.front(), x.back());
  const auto hi = std::clamp<std::ptrdiff_t>(std::lower_bound(x.begin(), x.end(), t) - x.begin(), 1,
                                             static_cast<std::ptrdiff_t>(x.size()) - 1);
  const auto lo = hi - 1;
  const double slope = (y[hi] - y[lo]) / (x[hi] - x[lo]);
  return slope * (t - x[lo]) + y[lo];
}

// ---- logit maps trained by NLL (vs, ms, cts_nll) ------------------------------------------

bool is_odir(const std::string& method) { return method == "ms_odir" || method == "dir_odir"; }

bool is_logit_map(const std::string& method) {
  return method == "vs" || method == "ms" || method == "cts_nll" || is_odir(method);
}

logit_map logit_map_of(const std::string& method) {
  if (method == "vs") return logit_map::vector;
  if (method == "ms" || is_odir(method)) return logit_map::matrix;
  return logit_map::class_temperature;
}

/// The input of a logit map: the logits (log p for probability dumps), and for dir_odir their
/// log-softmax z - logsumexp(z) (= log p, finite even where exp underflows).
std::vector<double> logit_map_input(const std::string& method, const split_data& s) {
  std::vector<double> z = logits_of(s);
  if (method != "dir_odir") return z;
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

/// Default L-BFGS iterations of vs, ms, cts_nll (docs/calibrators.md).
constexpr std::int64_t k_default_lbfgs_iterations = 1000;

calibrator fit_logit_map_method(const split_data& val, const fit_options& o) {
  const std::int64_t k = val.num_classes;
  const auto r = fit_logit_map(logit_map_of(o.method), logit_map_input(o.method, val), val.labels, k,
                               o.iterations >= 0 ? o.iterations : k_default_lbfgs_iterations,
                               val.file + ": " + val.values_path());
  calibrator cal;
  cal.method = o.method;
  cal.iterations_run = r.iterations;
  cal.final_nll = r.nll;
  cal.stop = r.stop;
  const auto first = r.params.begin();
  if (o.method == "vs") {
    cal.weights.assign(first, first + k);
    cal.biases.assign(first + k, r.params.end());
  } else if (o.method == "ms") {
    cal.matrix.assign(first, first + k * k);
    cal.biases.assign(first + k * k, r.params.end());
  } else {
    for (double b : r.params) cal.temperatures.push_back(1.0 / b);
  }
  return cal;
}

// ---- ODIR-regularised matrix maps (ms_odir, dir_odir) -------------------------------------

/// Internal cross-validation of lambda and mu (docs/calibrators.md): 5 folds from a splitmix64
/// shuffle with seed 15, candidates lambda = mu from --grid (default default_odir_grid).
constexpr std::int64_t k_odir_folds = 5;
constexpr std::uint64_t k_odir_fold_seed = 15;
/// Default candidates: 10^e K (K - 1) for e = -2, -1, 0, 1, 2. The penalty is normalised by
/// K (K - 1) (dirichletcal's reg_norm), so these are per-entry weights 10^-2 .. 10^2 (the low
/// end of the paper's unnormalised grid for its 100-class sets); a fixed grid such as 1e-4 .. 1
/// is far too weak at K = 100 (test NLL 10.6 against ts's 2.1 on a CIFAR-100-shaped dump), and
/// per-entry weights of 10^4 and more made the fits too ill-conditioned to converge reliably.
std::string default_odir_grid(std::int64_t k) {
  const double scale = static_cast<double>(k) * static_cast<double>(k - 1);
  return fmt::format("{:.17g},{:.17g},{:.17g},{:.17g},{:.17g}", 1e-2 * scale, 1e-1 * scale, 1.0 * scale, 1e1 * scale,
                     1e2 * scale);
}

/// Fold of each of n rows: a Fisher-Yates shuffle of 0..n-1 (for i = n-1 down to 1, swap
/// positions i and below(i + 1) of splitmix64(seed 15)), cut into k_odir_folds contiguous
/// blocks, the first n mod 5 of them one row longer (sklearn KFold's sizes).
std::vector<std::int64_t> odir_folds(std::int64_t n) {
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), std::int64_t{0});
  splitmix64 rng(k_odir_fold_seed);
  for (std::int64_t i = n - 1; i > 0; --i)
    std::swap(perm[static_cast<std::size_t>(i)],
              perm[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
  std::vector<std::int64_t> fold(static_cast<std::size_t>(n));
  std::int64_t pos = 0;
  for (std::int64_t f = 0; f < k_odir_folds; ++f) {
    const std::int64_t size = n / k_odir_folds + (f < n % k_odir_folds ? 1 : 0);
    for (std::int64_t r = 0; r < size; ++r) fold[static_cast<std::size_t>(perm[static_cast<std::size_t>(pos++)])] = f;
  }
  return fold;
}

calibrator fit_odir_method(const split_data& val, const fit_options& o) {
  const std::int64_t k = val.num_classes, n = val.num_samples;
  const std::string where = val.file + ": " + val.values_path();
  const std::int64_t iterations = o.iterations >= 0 ? o.iterations : k_default_lbfgs_iterations;
  const std::vector<double> z = logit_map_input(o.method, val);
  for (std::size_t i = 0; i < z.size(); ++i) {
    if (!std::isfinite(z[i]))
      throw input_error(fmt::format("{}: non-finite logit (log of a probability 0?) at row {}: {} needs finite "
                                    "logits", where, i / static_cast<std::size_t>(k), o.method));
  }
  calibrator cal;
  cal.method = o.method;
  odir_penalty chosen{o.odir_lambda, o.odir_mu};
  if (o.odir_lambda < 0) {
    if (n < k_odir_folds)
      throw input_error(fmt::format("{}: {} needs at least {} validation samples for its cross-validation "
                                    "(or give --odir-lambda and --odir-mu)", where, o.method, k_odir_folds));
    const std::vector<double> grid = parse_grid(o.grid.empty() ? default_odir_grid(k) : o.grid, "--grid");
    for (double c : grid) {
      if (!(c >= 0) || !std::isfinite(c))
        throw input_error(fmt::format("--grid: {} candidates lambda = mu must be finite and >= 0 (got {})", o.method, c));
    }
    const std::vector<std::int64_t> fold = odir_folds(n);
    double best = k_inf;
    for (double c : grid) {
      const odir_penalty pen{c, c};
      double total = 0;
      for (std::int64_t f = 0; f < k_odir_folds; ++f) {
        std::vector<double> z_fit, z_held;
        std::vector<std::int32_t> y_fit, y_held;
        for (std::int64_t i = 0; i < n; ++i) {
          const bool held = fold[static_cast<std::size_t>(i)] == f;
          auto& zs = held ? z_held : z_fit;
          zs.insert(zs.end(), z.begin() + i * k, z.begin() + (i + 1) * k);
          (held ? y_held : y_fit).push_back(val.labels[static_cast<std::size_t>(i)]);
        }
        const auto r = fit_logit_map(logit_map::matrix, z_fit, y_fit, k, iterations, where, pen);
        std::vector<double> gradient;
        total += logit_map_nll(logit_map::matrix, r.params, z_held, y_held, k, gradient);
      }
      const double mean = total / static_cast<double>(k_odir_folds);
      cal.cv_lambdas.push_back(pen.lambda);
      cal.cv_mus.push_back(pen.mu);
      cal.cv_nll.push_back(mean);
      if (mean < best) {  // the first candidate on ties; a NaN mean is never chosen
        best = mean;
        chosen = pen;
      }
    }
    if (!(best < k_inf)) throw input_error(fmt::format("{}: {}: no candidate has a finite held-out NLL", where, o.method));
  }
  const auto r = fit_logit_map(logit_map::matrix, z, val.labels, k, iterations, where, chosen);
  std::vector<double> gradient;
  cal.final_nll = logit_map_nll(logit_map::matrix, r.params, z, val.labels, k, gradient);
  cal.odir_objective = r.nll;
  cal.odir_lambda = chosen.lambda;
  cal.odir_mu = chosen.mu;
  cal.iterations_run = r.iterations;
  cal.stop = r.stop;
  cal.matrix.assign(r.params.begin(), r.params.begin() + k * k);
  cal.biases.assign(r.params.begin() + k * k, r.params.end());
  return cal;
}

/// The flat parameters of a fitted logit map (the layout of host/calibrators/logit_map_fit.hpp), checked
/// against the split's K.
std::vector<double> logit_map_params(const calibrator& c, const split_data& split) {
  const std::int64_t k = split.num_classes;
  const auto mismatch = [&](std::size_t got, std::int64_t want, const char* what) {
    if (static_cast<std::int64_t>(got) != want)
      throw input_error(fmt::format("{}: {} {} for K = {} (expected {})", split.file, got, what, k, want));
  };
  std::vector<double> p;
  if (c.method == "vs") {
    mismatch(c.weights.size(), k, "weights");
    mismatch(c.biases.size(), k, "biases");
    p = c.weights;
    p.insert(p.end(), c.biases.begin(), c.biases.end());
  } else if (c.method == "ms" || is_odir(c.method)) {
    mismatch(c.matrix.size(), k * k, "matrix entries");
    mismatch(c.biases.size(), k, "biases");
    p = c.matrix;
    p.insert(p.end(), c.biases.begin(), c.biases.end());
  } else {
    mismatch(c.temperatures.size(), k, "class temperatures");
    for (double t : c.temperatures) p.push_back(1.0 / t);
  }
  return p;
}

// ---- NLL of temperature scaling ----------------------------------------------------------

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

/// argmin over b in [k_min_inverse, k_max_inverse] of the (convex) NLL: Newton steps kept
/// inside a shrinking bracket of the derivative's sign change, bisection when Newton leaves
/// it. Returns the temperature 1/b.
double fit_temperature_nll(const std::vector<double>& z, const std::vector<std::int32_t>& labels, std::int64_t k,
                           const std::vector<std::int64_t>& rows, const std::string& where) {
  if (rows.empty()) return 1.0;
  for (std::int64_t r : rows) {
    if (z[r * k + labels[r]] == -k_inf)
      throw input_error(fmt::format("{}: probability 0 on the label at index {}: the NLL is infinite for every "
                                    "temperature (use --objective ece or adaece)", where, r));
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

// ---- grids and groups --------------------------------------------------------------------

std::vector<double> grid_or(const fit_options& o, const char* fallback) {
  return parse_grid(o.grid.empty() ? std::string(fallback) : o.grid, "--grid");
}

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

// ---- the methods ---------------------------------------------------------------------------

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

/// Table size above which cts_conf runs one sweep per group instead (256 MiB).
constexpr std::int64_t k_max_prefix_values = std::int64_t{1} << 25;

struct fit_context {
  const split_data& val;
  const fit_options& options;
  sweep_backend& backend;
  sweep_input input;                     // float32 logits for the sweeps
  std::unique_ptr<resident_logits> data;
  scored_split base;                     // uncalibrated validation scores
  std::optional<confidence_prefix> prefix;  // cts_conf, built on first use when small enough
  bool many_groupings = false;             // calib_bins auto: the prefix table pays for itself
  sweep_options sweep(bool adaece) const { return {options.metrics.num_bins, options.metrics.bin_rule, adaece}; }
};

/// The rows' confidences under every temperature of `grid` (float32 logits, as the sweeps
/// read them), accumulated in the stable ascending order of the uncalibrated confidence.
confidence_prefix build_prefix(const fit_context& c, const std::vector<double>& grid) {
  const std::int64_t n = c.input.num_samples, k = c.input.num_classes;
  const auto g_count = static_cast<std::int64_t>(grid.size());
  std::vector<double> inv(grid.size());
  for (std::size_t g = 0; g < grid.size(); ++g) inv[g] = 1.0 / grid[g];
  std::vector<double> conf(static_cast<std::size_t>(n * g_count));
#pragma omp parallel
  {
    std::vector<double> x(static_cast<std::size_t>(k));
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const float* z = c.input.logits.data() + i * k;
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
  const auto groups = equal_mass_groups(c.base.confidence, 1);  // the whole sorted order
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

std::int64_t first_min(const std::vector<double>& v) {
  const std::int64_t best = sweep_result::argmin(v);
  if (best < 0) throw error("every candidate's objective is undefined");
  return best;
}

calibrator fit_ts(fit_context& c) {
  calibrator cal;
  cal.method = "ts";
  if (c.options.objective == "nll") {
    std::vector<std::int64_t> rows(static_cast<std::size_t>(c.val.num_samples));
    std::iota(rows.begin(), rows.end(), std::int64_t{0});
    cal.temperature = fit_temperature_nll(logits_of(c.val), c.val.labels, c.val.num_classes, rows,
                                          c.val.file + ": /val/probs");
    return cal;
  }
  const auto grid = grid_or(c.options, "0.01:10:0.01");
  const bool ada = c.options.objective == "adaece";
  const auto r = c.backend.temperature(*c.data, grid, c.sweep(ada));
  cal.temperature = grid[static_cast<std::size_t>(first_min(ada ? r.adaece : r.ece))];
  cal.curve_metric = ada ? "adaece" : "ece";
  cal.curve_candidates = grid;
  cal.curve_values = ada ? r.adaece : r.ece;
  return cal;
}

/// ets: T by the ts NLL fit, then the weights of the mixture (host/calibrators/ets_weights.hpp).
calibrator fit_ets(const split_data& val, const fit_options& o) {
  const std::vector<double> z = logits_of(val);
  const std::int64_t k = val.num_classes;
  const std::string where = val.file + ": " + val.values_path();
  for (std::int64_t r = 0; r < val.num_samples; ++r) {
    if (z[static_cast<std::size_t>(r * k + val.labels[static_cast<std::size_t>(r)])] == -k_inf)
      throw input_error(fmt::format("{}: probability 0 on the label at index {}: the NLL of the temperature "
                                    "that ets fits first is infinite for every temperature", where, r));
  }
  std::vector<std::int64_t> rows(static_cast<std::size_t>(val.num_samples));
  std::iota(rows.begin(), rows.end(), std::int64_t{0});
  calibrator cal;
  cal.method = "ets";
  cal.temperature = fit_temperature_nll(z, val.labels, k, rows, where);
  cal.weight_objective = o.objective;
  const auto r = fit_ets_weights(z, val.labels, k, cal.temperature,
                                 o.objective == "mse" ? ets_objective::mse : ets_objective::nll);
  cal.weights.assign(r.weights.begin(), r.weights.end());
  cal.final_objective = r.objective;
  return cal;
}

calibrator fit_ws(fit_context& c) {
  const auto grid = grid_or(c.options, "0:1:0.001");
  const auto r = c.backend.weight(*c.data, grid, c.sweep(true));
  calibrator cal;
  cal.method = "ws";
  cal.weight = grid[static_cast<std::size_t>(first_min(r.adaece))];
  cal.curve_metric = "adaece";
  cal.curve_candidates = grid;
  cal.curve_values = r.adaece;
  return cal;
}

/// cws, cts_conf, bts with a fixed number of calibration groups.
calibrator fit_grouped(fit_context& c, const std::string& method, std::int64_t count) {
  const auto groups = equal_mass_groups(c.base.confidence, count);
  calibrator cal;
  cal.method = method;
  cal.calib_bins = count;
  cal.edges = groups.edges;
  const double inv_k = 1.0 / static_cast<double>(c.val.num_classes);
  std::vector<double> z;
  if (method == "bts") z = logits_of(c.val);
  std::vector<double> grid;
  if (method == "cts_conf") grid = grid_or(c.options, "0.01:10:0.01");
  // One grouping: per-group sweeps (the backend's vectorised kernels) are faster than
  // building the table; many groupings (auto): the table.
  const bool use_prefix = method == "cts_conf" && c.many_groupings &&
                          (c.input.num_samples + 1) * static_cast<std::int64_t>(grid.size()) <= k_max_prefix_values;
  if (use_prefix && !c.prefix) c.prefix = build_prefix(c, grid);
  for (std::size_t gi = 0; gi < groups.rows.size(); ++gi) {
    const auto& rows = groups.rows[gi];
    double acc = 0, conf = 0;
    for (std::int64_t r : rows) {
      acc += c.base.prediction[r] == c.base.labels[r] ? 1.0 : 0.0;
      conf += c.base.confidence[r];
    }
    const double size = static_cast<double>(rows.size());
    acc /= size;
    conf /= size;
    if (method == "cws") {
      // C <= 1/K (within the rounding of a mean, so that uniform rows count as C = 1/K).
      cal.weights.push_back(conf <= inv_k + k_mean_rounding ? 1.0
                                                            : std::clamp((acc - inv_k) / (conf - inv_k), 0.0, 1.0));
    } else if (method == "bts") {
      cal.temperatures.push_back(fit_temperature_nll(z, c.val.labels, c.val.num_classes, rows,
                                                     c.val.file + ": /val/probs"));
    } else {
      std::vector<double> gap(grid.size());
      if (use_prefix) {
        const std::int64_t begin = groups.starts[gi], end = begin + static_cast<std::int64_t>(rows.size());
        for (std::size_t g = 0; g < grid.size(); ++g)
          gap[g] = std::fabs(acc - c.prefix->group_sum(begin, end, static_cast<std::int64_t>(g)) / size);
      } else {
        const sweep_input sub = subset(c.input, rows);
        auto data = c.backend.prepare(sub.view());
        const auto r = c.backend.temperature(*data, grid, c.sweep(false));
        for (std::size_t g = 0; g < grid.size(); ++g) {
          double sum_conf = 0;
          for (std::int32_t b = 0; b < r.num_bins; ++b) sum_conf += r.bin_sum_confidence[g * r.num_bins + b];
          gap[g] = std::fabs(acc - sum_conf / size);
        }
      }
      cal.temperatures.push_back(grid[static_cast<std::size_t>(first_min(gap))]);
    }
  }
  return cal;
}

calibrator fit_grouped_auto(fit_context& c, const std::string& method) {
  const std::string& text = c.options.calib_bins;
  if (text != "auto") return fit_grouped(c, method, parse_calib_bins(text, method));
  calibrator best;
  double best_ada = k_inf;
  const metric_options& mo = c.options.metrics;
  detail::equal_mass_scratch scratch;
  c.many_groupings = true;
  for (std::int64_t count = 2; count <= 50; ++count) {
    calibrator cal = fit_grouped(c, method, count);
    // adaECE alone (the classwise metrics of a full evaluation are not needed here); the
    // same stable order and groups as compute_metrics, so the same value.
    const scored_split s = cal.apply(c.val);
    std::vector<std::uint8_t> correct(s.labels.size());
    for (std::size_t i = 0; i < correct.size(); ++i) correct[i] = s.prediction[i] == s.labels[i];
    const double ada = detail::adaece_of(s.confidence, correct, mo.num_bins, scratch);
    if (ada < best_ada) {
      best_ada = ada;
      best = std::move(cal);
    }
  }
  return best;
}

calibrator fit_cts_greedy(fit_context& c) {
  const bool nudge = c.options.cts_search == "nudge";
  if (!nudge && c.options.cts_search != "grid")
    throw input_error(fmt::format("--cts-search must be grid or nudge (got '{}')", c.options.cts_search));
  const std::int64_t cycles = c.options.iterations >= 0 ? c.options.iterations : (nudge ? 1000 : 5);
  const auto grid = grid_or(c.options, "0.1:10:0.1");
  const std::int64_t k = c.val.num_classes;

  // 1. One temperature by validation ECE on the grid.
  const auto init = c.backend.temperature(*c.data, grid, c.sweep(false));
  const std::int64_t t0 = first_min(init.ece);
  calibrator cal;
  cal.method = "cts_greedy";
  cal.initial_temperature = grid[static_cast<std::size_t>(t0)];
  cal.curve_metric = "ece";
  cal.curve_candidates = grid;
  cal.curve_values = init.ece;
  auto session = c.backend.class_temperature(
      *c.data, std::vector<double>(static_cast<std::size_t>(k), cal.initial_temperature), c.sweep(false));

  const std::vector<double> steps{-0.2, -0.1, 0.0, 0.1, 0.2};
  double running_best = k_inf;                             // nudge: one best across the run
  double accepted_accuracy = init.accuracy[static_cast<std::size_t>(t0)];
  std::int64_t run = 0;
  for (; run < cycles;) {
    ++run;
    bool changed = false;
    for (std::int32_t i = 0; i < k; ++i) {
      const double current = session->temperatures()[static_cast<std::size_t>(i)];
      if (nudge) {
        std::vector<double> cands;
        for (double s : steps) {
          if (current + s > 0) cands.push_back(current + s);
        }
        const auto r = session->sweep(i, cands);
        double chosen = current;
        for (std::size_t g = 0; g < cands.size(); ++g) {
          const bool allowed = !c.options.accuracy_constraint || r.accuracy[g] >= accepted_accuracy;
          if (allowed && r.ece[g] < running_best) {
            running_best = r.ece[g];
            chosen = cands[g];
            if (c.options.accuracy_constraint) accepted_accuracy = r.accuracy[g];
          }
        }
        if (chosen != current) {
          session->set(i, chosen);
          changed = true;
        }
      } else {
        // The grid plus the current value, so "strictly better than now" compares numbers
        // computed the same way.
        std::vector<double> cands = grid;
        cands.push_back(current);
        const auto r = session->sweep(i, cands);
        const std::size_t now = grid.size();
        std::int64_t best = -1;
        for (std::size_t g = 0; g < grid.size(); ++g) {
          if (c.options.accuracy_constraint && r.accuracy[g] < r.accuracy[now]) continue;
          if (best < 0 || r.ece[g] < r.ece[static_cast<std::size_t>(best)]) best = static_cast<std::int64_t>(g);
        }
        if (best >= 0 && r.ece[static_cast<std::size_t>(best)] < r.ece[now] &&
            grid[static_cast<std::size_t>(best)] != current) {
          session->set(i, grid[static_cast<std::size_t>(best)]);
          changed = true;
        }
      }
    }
    if (!changed) break;
  }
  cal.iterations_run = run;
  cal.temperatures = session->temperatures();
  return cal;
}

/// `z` when every entry is finite; otherwise input_error naming the file, dataset and row.
std::vector<double> finite_logits(std::vector<double> z, const split_data& split, const std::string& method) {
  for (std::size_t i = 0; i < z.size(); ++i) {
    if (!std::isfinite(z[i]))
      throw input_error(fmt::format("{}: {}: non-finite logit (log of a probability 0?) at row {}: {} needs "
                                    "finite logits", split.file, split.values_path(),
                                    i / static_cast<std::size_t>(split.num_classes), method));
  }
  return z;
}

/// A split with the labels and names of `split` and new values (calibrated logits or probabilities).
split_data derived(const split_data& split, std::vector<double> values, bool is_probs) {
  split_data out;
  out.file = split.file;
  out.name = split.name;
  out.num_samples = split.num_samples;
  out.num_classes = split.num_classes;
  out.labels = split.labels;
  out.is_probs = is_probs;
  out.values = std::move(values);
  return out;
}

}  // namespace

const std::vector<std::string>& method_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v{"ts", "ws", "cws",      "cts_conf", "bts", "cts_greedy", "cts_nll",
                               "vs", "ms", "ms_odir", "dir_odir", "hist", "iso",       "ets"};
    for (const auto& t : trained_method_names()) v.push_back(t);
    return v;
  }();
  return names;
}

scored_split uncalibrated(const split_data& split) {
  split_data copy = split;
  return score_split(std::move(copy));
}

nlohmann::json calibrator::params() const {
  nlohmann::json p = nlohmann::json::object();
  if (trained) return trained->params();
  if (method == "ets") {
    p["temperature"] = temperature;
    p["weights"] = weights;
    p["objective"] = weight_objective;
    p["final_objective"] = final_objective;
  } else if (method == "ts") {
    p["temperature"] = temperature;
  } else if (method == "ws") {
    p["weight"] = weight;
  } else if (method == "cws") {
    p["edges"] = edges;
    p["weights"] = weights;
    p["calib_bins"] = calib_bins;
  } else if (method == "cts_conf" || method == "bts") {
    p["edges"] = edges;
    p["temperatures"] = temperatures;
    p["calib_bins"] = calib_bins;
  } else if (method == "cts_greedy") {
    p["temperatures"] = temperatures;
    p["iterations_run"] = iterations_run;
    p["initial_temperature"] = initial_temperature;
  } else if (method == "hist") {
    p["edges"] = edges;
    p["values"] = values;
    p["counts"] = counts;
  } else if (method == "iso") {
    p["x"] = knots_x;
    p["y"] = knots_y;
  } else if (is_logit_map(method)) {
    if (method == "vs") {
      p["weights"] = weights;
    } else if (method == "ms" || is_odir(method)) {
      p["matrix"] = matrix;
    } else {
      p["temperatures"] = temperatures;
    }
    if (method != "cts_nll") p["biases"] = biases;
    p["iterations_run"] = iterations_run;
    p["final_nll"] = final_nll;
    p["stop"] = stop;
    if (is_odir(method)) {
      p["lambda"] = odir_lambda;
      p["mu"] = odir_mu;
      p["final_objective"] = odir_objective;
      nlohmann::json cv = nlohmann::json::array();
      for (std::size_t i = 0; i < cv_nll.size(); ++i)
        cv.push_back({{"lambda", cv_lambdas[i]}, {"mu", cv_mus[i]}, {"nll", cv_nll[i]}});
      p["cv"] = cv;
      p["folds"] = cv_nll.empty() ? nlohmann::json(nullptr)
                                  : nlohmann::json{{"k", k_odir_folds}, {"seed", k_odir_fold_seed}};
    }
  }
  return p;
}

nlohmann::json calibrator::to_json() const { return {{"method", method}, {"params", params()}}; }

calibrator calibrator::from_json(const nlohmann::json& j, const std::string& where) {
  try {
    calibrator c;
    c.method = j.at("method").get<std::string>();
    const auto& p = j.at("params");
    if (const auto tm = parse_trained_method(c.method)) {
      c.trained = trained_model::from_params(*tm, p, where);
    } else if (c.method == "ets") {
      c.temperature = p.at("temperature").get<double>();
      c.weights = p.at("weights").get<std::vector<double>>();
      c.weight_objective = p.value("objective", std::string("nll"));
      c.final_objective = p.value("final_objective", 0.0);
      if (!(c.temperature > 0) || !std::isfinite(c.temperature) || c.weights.size() != 3)
        throw input_error(fmt::format("{}: ets needs a temperature > 0 and 3 weights", where));
    } else if (c.method == "ts") {
      c.temperature = p.at("temperature").get<double>();
    } else if (c.method == "ws") {
      c.weight = p.at("weight").get<double>();
    } else if (c.method == "cws" || c.method == "cts_conf" || c.method == "bts") {
      c.edges = p.at("edges").get<std::vector<double>>();
      c.calib_bins = p.at("calib_bins").get<std::int64_t>();
      (c.method == "cws" ? c.weights : c.temperatures) =
          p.at(c.method == "cws" ? "weights" : "temperatures").get<std::vector<double>>();
      const auto& v = c.method == "cws" ? c.weights : c.temperatures;
      if (c.edges.empty() || v.size() != c.edges.size())
        throw input_error(fmt::format("{}: edges and per-group parameters differ in length", where));
    } else if (c.method == "cts_greedy") {
      c.temperatures = p.at("temperatures").get<std::vector<double>>();
      c.iterations_run = p.value("iterations_run", std::int64_t{0});
      c.initial_temperature = p.value("initial_temperature", 1.0);
    } else if (c.method == "hist") {
      c.edges = p.at("edges").get<std::vector<double>>();
      c.values = p.at("values").get<std::vector<double>>();
      c.counts = p.at("counts").get<std::vector<std::int64_t>>();
      const std::size_t m = c.values.size();
      if (m == 0 || m > 1000000 || c.counts.size() != m || c.edges.size() != m + 1)
        throw input_error(fmt::format("{}: hist needs M >= 1 values and counts and M + 1 edges", where));
      for (std::size_t i = 0; i <= m; ++i) {
        if (c.edges[i] != bin_edge(static_cast<std::int32_t>(i), static_cast<std::int32_t>(m)))
          throw input_error(fmt::format("{}: hist edges must be i/M (edge {} is {})", where, i, c.edges[i]));
      }
    } else if (c.method == "iso") {
      c.knots_x = p.at("x").get<std::vector<double>>();
      c.knots_y = p.at("y").get<std::vector<double>>();
      if (c.knots_x.empty() || c.knots_y.size() != c.knots_x.size())
        throw input_error(fmt::format("{}: iso needs x and y of one length >= 1", where));
      for (std::size_t i = 1; i < c.knots_x.size(); ++i) {
        if (!(c.knots_x[i] > c.knots_x[i - 1]))
          throw input_error(fmt::format("{}: iso x must increase strictly (position {})", where, i));
      }
    } else if (is_logit_map(c.method)) {
      if (c.method == "vs") c.weights = p.at("weights").get<std::vector<double>>();
      if (c.method == "ms" || is_odir(c.method)) c.matrix = p.at("matrix").get<std::vector<double>>();
      if (c.method == "cts_nll") c.temperatures = p.at("temperatures").get<std::vector<double>>();
      if (c.method != "cts_nll") c.biases = p.at("biases").get<std::vector<double>>();
      c.iterations_run = p.value("iterations_run", std::int64_t{0});
      c.final_nll = p.value("final_nll", 0.0);
      c.stop = p.value("stop", std::string());
      if (is_odir(c.method)) {
        c.odir_lambda = p.value("lambda", 0.0);
        c.odir_mu = p.value("mu", 0.0);
        c.odir_objective = p.value("final_objective", 0.0);
        if (p.contains("cv")) {
          for (const auto& e : p.at("cv")) {
            c.cv_lambdas.push_back(e.at("lambda").get<double>());
            c.cv_mus.push_back(e.at("mu").get<double>());
            c.cv_nll.push_back(e.at("nll").is_null() ? std::numeric_limits<double>::quiet_NaN()
                                                     : e.at("nll").get<double>());
          }
        }
      }
    } else {
      throw input_error(fmt::format("{}: unknown calibration method '{}'", where, c.method));
    }
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw input_error(fmt::format("{}: malformed calibrator parameters ({})", where, e.what()));
  }
}

scored_split calibrator::apply(const split_data& split) const {
  const std::int64_t n = split.num_samples;
  if (trained) {
    const std::vector<double> z = finite_logits(logits_of(split), split, method);
    return score_split(
        derived(split, trained->probabilities(z, split.num_classes, split.file + ": " + split.values_path()), true));
  }
  if (method == "ets") {
    // The mixture keeps the argmax of z (each component does); ties go to the lowest index.
    return score_split(derived(split,
                               ets_probabilities(logits_of(split), split.num_classes, temperature,
                                                 {weights.at(0), weights.at(1), weights.at(2)}),
                               true));
  }
  if (method == "ts") return score_scaled(split, std::vector<double>(static_cast<std::size_t>(n), 1.0 / temperature), {});
  if (method == "ws") return score_weighted(split, std::vector<double>(static_cast<std::size_t>(n), weight));
  if (is_logit_map(method)) {
    const std::vector<double> z = finite_logits(logit_map_input(method, split), split, method);
    return score_split(
        derived(split, apply_logit_map(logit_map_of(method), logit_map_params(*this, split), z, split.num_classes), false));
  }
  if (method == "hist" || method == "iso") {
    scored_split base = uncalibrated(split);
    std::vector<double> top(static_cast<std::size_t>(n));
    const auto m = static_cast<std::int32_t>(values.size());
    for (std::int64_t i = 0; i < n; ++i) {
      const double c = base.confidence[i];
      top[i] = method == "hist" ? values[static_cast<std::size_t>(bin_index(binning::right_closed, c, m))]
                                : isotonic_at(knots_x, knots_y, c);
    }
    return rescale_top_label(std::move(base), top);
  }
  if (method == "cts_greedy") {
    if (static_cast<std::int64_t>(temperatures.size()) != split.num_classes)
      throw input_error(fmt::format("{}: {} class temperatures for K = {}", split.file, temperatures.size(),
                                    split.num_classes));
    std::vector<double> inv(temperatures.size());
    for (std::size_t j = 0; j < inv.size(); ++j) inv[j] = 1.0 / temperatures[j];
    return score_scaled(split, {}, inv);
  }
  // Grouped methods: the group of each sample by its uncalibrated confidence.
  const auto group = group_by_edges(uncalibrated(split).confidence, edges);
  std::vector<double> per_row(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const auto g = static_cast<std::size_t>(group[i]);
    per_row[i] = method == "cws" ? weights[g] : 1.0 / temperatures[g];
  }
  return method == "cws" ? score_weighted(split, per_row) : score_scaled(split, per_row, {});
}

bool fit_uses_backend(const fit_options& options) {
  const auto& m = options.method;
  if (m == "ts") return options.objective != "nll";
  return m == "ws" || m == "cws" || m == "cts_conf" || m == "bts" || m == "cts_greedy";
}

calibrator fit_calibrator(const split_data& val, const fit_options& options, sweep_backend& backend) {
  if (std::find(method_names().begin(), method_names().end(), options.method) == method_names().end())
    throw input_error(fmt::format("unknown method '{}' ({})", options.method, fmt::join(method_names(), ", ")));
  if (options.objective != "nll" && options.objective != "ece" && options.objective != "adaece" &&
      options.objective != "mse")
    throw input_error(fmt::format("--objective must be nll, ece, adaece or mse (got '{}')", options.objective));
  if ((options.method == "ets") != (options.objective == "mse") && options.objective != "nll")
    throw input_error(fmt::format("--objective {} does not apply to {} (ts: nll | ece | adaece; ets: nll | mse)",
                                  options.objective, options.method));
  if (options.objective == "adaece" && options.metrics.adaptive != adaptive_rule::split)
    throw input_error(fmt::format("--objective adaece sweeps DESIGN's equal-mass groups (--adaptive split); "
                                  "--adaptive {} applies to the reported metrics only: drop one of the two",
                                  adaptive_name(options.metrics.adaptive)));
  if ((options.odir_lambda >= 0) != (options.odir_mu >= 0))
    throw input_error("--odir-lambda and --odir-mu go together (or neither: cross-validation)");
  if (options.odir_lambda >= 0 && !is_odir(options.method))
    throw input_error(fmt::format("--odir-lambda and --odir-mu apply to ms_odir and dir_odir, not {}", options.method));
  if (const auto tm = parse_trained_method(options.method)) {
    if (options.objective != "nll")
      throw input_error(fmt::format("--objective {} does not apply to {} (it trains its own loss)", options.objective,
                                    options.method));
    train_options t = options.train;
    if (options.iterations >= 0) t.iterations = options.iterations;
    calibrator cal;
    cal.method = options.method;
    cal.trained = fit_trained(val, *tm, t);
    return cal;
  }
  if (is_odir(options.method)) return fit_odir_method(val, options);
  if (is_logit_map(options.method)) return fit_logit_map_method(val, options);
  if (options.method == "ets") return fit_ets(val, options);
  if (options.method == "hist") return fit_hist(val, options);
  if (options.method == "iso") return fit_iso(val);
  fit_context c{val, options, backend, to_sweep_input(val), nullptr, uncalibrated(val), std::nullopt};
  c.data = backend.prepare(c.input.view());
  const auto& m = options.method;
  if (m == "ts") return fit_ts(c);
  if (m == "ws") return fit_ws(c);
  if (m == "cts_greedy") return fit_cts_greedy(c);
  return fit_grouped_auto(c, m);
}

}  // namespace calibench
