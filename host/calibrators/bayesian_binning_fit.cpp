// BBQ and ENIR binary calibrators as netcal 1.4.0 computes them
// (host/calibrators/bayesian_binning_fit.hpp, docs/ports/bbq_enir.md). Every sum, product and
// rounding follows the float64 reference's numpy operations in order, so that the exact ties
// netcal's model selection and NIR path test for (== on scores and collision times) fall alike.
#include "host/calibrators/bayesian_binning_fit.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <string>

#include <fmt/format.h>

#include "common/error.hpp"

namespace calibench {
namespace {

/// numpy's float64 epsilon: HistogramBinning.fit clips p to [eps, 1 - eps].
constexpr double k_eps = std::numeric_limits<double>::epsilon();
/// netcal's elbow threshold on the relative likelihoods (AbstractCalibration._elbow).
constexpr double k_elbow_alpha = 0.001;
/// torch's binary_cross_entropy clamps each log at -100.
constexpr double k_log_floor = -100.0;
/// Saved weights are r / sum(r), 1 to a few ulps; anything further off is not a fitted model.
constexpr double k_weight_sum_tolerance = 1e-9;
/// numpy's pairwise summation: blocks of at most 128 summed with 8 accumulators.
constexpr std::size_t k_pairwise_block = 128;

/// a * b rounded to double before it meets an addition. numpy never fuses; the project builds
/// with FMA-capable -march flags, where GCC contracts a * b + c in C++ by default, and one
/// changed ulp in the NIR values can change which collision times tie.
double product(double a, double b) {
  volatile double r = a * b;
  return r;
}

/// numpy's pairwise_sum for float64 (numpy/_core/src/umath/loops_utils.h.src).
double pairwise_sum(const double* a, std::size_t n) {
  if (n < 8) {
    double res = 0.0;
    for (std::size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= k_pairwise_block) {
    double r[8];
    for (std::size_t j = 0; j < 8; ++j) r[j] = a[j];
    std::size_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (std::size_t j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  std::size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/// np.sum of a contiguous float64 array: the identity 0 plus the pairwise sum of all of it.
double numpy_sum(std::span<const double> a) { return 0.0 + pairwise_sum(a.data(), a.size()); }

/// np.var (ddof 0): the mean by np.sum, then np.sum of the squared deviations over n.
double numpy_var(std::span<const double> a) {
  const double n = static_cast<double>(a.size());
  const double mean = numpy_sum(a) / n;
  std::vector<double> sq(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = a[i] - mean;
    sq[i] = product(d, d);
  }
  return numpy_sum(sq) / n;
}

/// torch's BCE loss of estimate e for target 0 (`miss`) and 1 (`hit`), the same float64
/// expression as the reference's: (y - 1) max(log1p(-e), -100) - y max(log e, -100).
struct bce_pair {
  double miss, hit;
};

/// Both losses of estimate e (NaN where e is outside [0, 1], as numpy's log gives).
bce_pair bce_terms(double e) {
  const double a = std::max(std::log1p(-e), k_log_floor);
  const double b = std::max(std::log(e), k_log_floor);
  const auto loss = [&](double y) { return (y - 1.0) * a - y * b; };
  return {loss(0.0), loss(1.0)};
}

/// The log-likelihood of a candidate from its per-sample losses (already in netcal's order).
double loglik(std::span<const double> losses) { return -numpy_sum(losses); }

/// The elbow's choice: candidate indices, best first, and their normalised weights.
struct selection {
  std::vector<std::size_t> kept;
  std::vector<double> weights;
};

/// AbstractCalibration._calc_model_scores and _elbow: scores from (LL, df), relative likelihoods
/// exp((min - score) / 2), sorted descending, equal top ones kept, then every following gap above
/// alpha * var(r) up to the first small one. np.argsort(r)[::-1] puts tied r latest index first
/// for the <= 16 candidates numpy insertion-sorts; beyond that its order of ties is numpy's and
/// CPU's own. Ties past the top come from r underflowing to 0, so a different pick there changes
/// which weight-0 model is listed, never a prediction.
selection select_candidates(std::span<const double> ll, std::span<const std::int64_t> df, std::int64_t num_samples,
                            binning_score score) {
  const std::size_t m = ll.size();
  const double log_n = std::log(static_cast<double>(num_samples));
  std::vector<double> s(m);
  for (std::size_t i = 0; i < m; ++i) {
    const auto d = static_cast<double>(static_cast<std::int32_t>(df[i]));
    s[i] = score == binning_score::bic ? -2.0 * ll[i] + product(d, log_n) : 2.0 * d - 2.0 * ll[i];
  }
  const double best = *std::min_element(s.begin(), s.end());
  std::vector<double> r(m);
  for (std::size_t i = 0; i < m; ++i) r[i] = std::exp((best - s[i]) / 2.0);
  const double var = numpy_var(r);
  std::vector<std::size_t> order(m);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return r[a] < r[b]; });
  std::reverse(order.begin(), order.end());
  std::size_t k = 0;
  while (k + 1 < m && r[order[k]] == r[order[k + 1]]) ++k;
  while (k + 1 < m && (r[order[k]] - r[order[k + 1]]) / var > k_elbow_alpha) ++k;
  selection sel;
  sel.kept.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k + 1));
  for (std::size_t i : sel.kept) sel.weights.push_back(r[i]);
  const double total = numpy_sum(sel.weights);
  for (double& w : sel.weights) w /= total;
  return sel;
}

/// input_error naming `where` unless there are samples, every p is in [0, 1] and every target 0/1.
void check_samples(std::span<const double> p, std::span<const std::uint8_t> hit, const std::string& where,
                   const char* method) {
  CALIBENCH_EXPECTS(p.size() == hit.size(),
                    fmt::format("{}: {} got {} scores and {} targets", where, method, p.size(), hit.size()));
  if (p.empty()) throw input_error(fmt::format("{}: {} needs at least one sample", where, method));
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (!(p[i] >= 0.0 && p[i] <= 1.0))
      throw input_error(fmt::format("{}: {} needs scores in [0, 1]; sample {} is {}", where, method, i, p[i]));
    if (hit[i] > 1)
      throw input_error(fmt::format("{}: {} needs 0/1 targets; sample {} is {}", where, method, i, int{hit[i]}));
  }
}

/// The name a binning_score has in the JSON.
const char* score_name(binning_score s) { return s == binning_score::bic ? "bic" : "aic"; }

// ------------------------------------------------------------------------------------------ BBQ

/// numpy.linspace(0, 1, b + 1): j * (1 / b) (the step, not j / b), the last edge exactly 1.
std::vector<double> linspace_edges(std::size_t b) {
  std::vector<double> e(b + 1);
  const double step = 1.0 / static_cast<double>(b);
  for (std::size_t j = 0; j < b; ++j) e[j] = static_cast<double>(j) * step;
  e[b] = 1.0;
  return e;
}

/// The fit's bin of x in [eps, 1 - eps]: the last j < b with e_j <= x (scipy's
/// binned_statistic_dd, [e_j, e_{j+1})). floor(x b) is a guess the loops correct, so the result
/// is upper_bound's for any sorted edges.
std::size_t fit_bin(const std::vector<double>& e, double x) {
  const std::size_t b = e.size() - 1;
  auto j = static_cast<std::size_t>(std::min(x * static_cast<double>(b), static_cast<double>(b - 1)));
  while (j > 0 && e[j] > x) --j;
  while (j + 1 < b && e[j + 1] <= x) ++j;
  return j;
}

/// The transform's bin of x: the last j with e_j < x clamped to [0, b - 1] (np.digitize with
/// right=True, minus 1); NaN is last, as numpy's searchsorted places it after every edge.
std::size_t predict_bin(const std::vector<double>& e, double x) {
  const std::size_t b = e.size() - 1;
  if (std::isnan(x)) return b - 1;
  const double guess = x * static_cast<double>(b);
  auto j = guess > 0.0 ? static_cast<std::size_t>(std::min(guess, static_cast<double>(b - 1))) : std::size_t{0};
  while (j > 0 && !(e[j] < x)) --j;
  while (j + 1 < b && e[j + 1] < x) ++j;
  return j;
}

/// HistogramBinning.fit with b bins: counts of the clipped p per bin, the hit fraction of each
/// (an exact division of integer counts), the midpoint for an empty bin.
bbq_histogram fit_histogram(std::span<const double> p, std::span<const std::uint8_t> hit, std::size_t b) {
  bbq_histogram h{linspace_edges(b), std::vector<double>(b)};
  std::vector<std::int64_t> count(b, 0), positive(b, 0);
  for (std::size_t i = 0; i < p.size(); ++i) {
    const std::size_t j = fit_bin(h.edges, std::clamp(p[i], k_eps, 1.0 - k_eps));
    ++count[j];
    positive[j] += hit[i];
  }
  for (std::size_t j = 0; j < b; ++j)
    h.values[j] = count[j] == 0 ? 0.5 * (h.edges[j] + h.edges[j + 1])
                                : static_cast<double>(positive[j]) / static_cast<double>(count[j]);
  return h;
}

/// The histogram's log-likelihood on the training (p, hit), looked up by netcal's transform
/// rule in the input order; `losses` is N long scratch.
double histogram_loglik(const bbq_histogram& h, std::span<const double> p, std::span<const std::uint8_t> hit,
                        std::vector<double>& losses) {
  std::vector<bce_pair> table(h.values.size());
  for (std::size_t j = 0; j < table.size(); ++j) table[j] = bce_terms(h.values[j]);
  for (std::size_t i = 0; i < p.size(); ++i) {
    const bce_pair& t = table[predict_bin(h.edges, p[i])];
    losses[i] = hit[i] != 0 ? t.hit : t.miss;
  }
  return loglik(losses);
}

// ----------------------------------------------------------------------------------------- ENIR

/// A state of the NIR path: group sizes (sample counts), bounds, values and the current lambda.
struct nir_groups {
  std::vector<std::int64_t> sizes;
  std::vector<double> lower, upper, values;
  double lambda = 0.0;
};

/// The initial NIR model on sorted (x, y): quick init = one group per run of equal targets valued
/// by the target, standard init = one group per sample; bounds at the midpoints (x_i + x_{i+1}) / 2
/// between groups, 0 below the first and 1 above the last.
nir_groups initial_groups(const std::vector<double>& x, const std::vector<std::uint8_t>& y, bool quick_init) {
  nir_groups g;
  g.lower.push_back(0.0);
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (i == 0 || !quick_init || y[i] != y[i - 1]) {
      if (i > 0) {
        const double mid = (x[i - 1] + x[i]) / 2.0;
        g.upper.push_back(mid);
        g.lower.push_back(mid);
      }
      g.sizes.push_back(0);
      g.values.push_back(static_cast<double>(y[i]));
    }
    ++g.sizes.back();
  }
  g.upper.push_back(1.0);
  return g;
}

/// The collision times of one path step (NearIsotonicRegression.__get_slopes and
/// __get_collision_times): slope_i = (ind_i - ind_{i+1}) / size_i with ind_i = [V_{i-1} > V_i]
/// (0 at both ends), t_i = (V_{i+1} - V_i) / (slope_i - slope_{i+1}) + lambda, inf where the
/// slopes are equal.
void collision_times(const nir_groups& g, std::vector<double>& slopes, std::vector<double>& t) {
  const std::size_t n = g.values.size();
  const std::vector<double>& v = g.values;
  slopes.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double ind = i > 0 && v[i - 1] > v[i] ? 1.0 : 0.0;
    const double ind_next = i + 1 < n && v[i] > v[i + 1] ? 1.0 : 0.0;
    slopes[i] = (ind - ind_next) / static_cast<double>(g.sizes[i]);
  }
  t.resize(n - 1);
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const double ds = slopes[i] - slopes[i + 1];
    t[i] = (ds != 0.0 ? (v[i + 1] - v[i]) / ds : std::numeric_limits<double>::infinity()) + g.lambda;
  }
}

/// Removes the groups marked in `drop`.
void delete_groups(nir_groups& g, const std::vector<char>& drop) {
  std::size_t out = 0;
  for (std::size_t i = 0; i < g.values.size(); ++i) {
    if (drop[i] != 0) continue;
    g.sizes[out] = g.sizes[i];
    g.lower[out] = g.lower[i];
    g.upper[out] = g.upper[i];
    g.values[out] = g.values[i];
    ++out;
  }
  g.sizes.resize(out);
  g.lower.resize(out);
  g.upper.resize(out);
  g.values.resize(out);
}

/// netcal's modified-PAVA path from `g`, handing visit(k, state) every model k = 0, 1, ... as
/// netcal leaves it: the values already moved to the next lambda and the merged groups' upper
/// bounds extended (its next model edits the arrays it shares with this one), before the merged
/// groups are deleted; the last model unmodified. Merges run in ascending order in place, so a
/// chain i, i+1 gets upper_{i+1} and size_i + size_{i+1} and leaves a gap (docs/ports/bbq_enir.md
/// section 3). input_error naming `where` when the path reaches one group (netcal's np.min of no
/// collision times).
template <class Visit>
void run_nir_path(nir_groups g, const std::string& where, Visit&& visit) {
  std::vector<double> slopes, t;
  std::vector<char> drop;
  for (std::size_t k = 0;; ++k) {
    const std::size_t n = g.values.size();
    if (n < 2)
      throw input_error(
          fmt::format("{}: enir cannot fit these targets: its near-isotonic path pools every sample into one group "
                      "(e.g. all targets equal; netcal 1.4.0 raises here)",
                      where));
    collision_times(g, slopes, t);
    const double next = *std::min_element(t.begin(), t.end());
    if (next < g.lambda || next == std::numeric_limits<double>::infinity()) {
      visit(k, std::as_const(g));
      return;
    }
    for (std::size_t i = 0; i < n; ++i) g.values[i] = g.values[i] + product(slopes[i], next - g.lambda);
    drop.assign(n, 0);
    for (std::size_t i = 0; i + 1 < n; ++i) {
      if (t[i] != next) continue;
      g.sizes[i] += g.sizes[i + 1];
      g.upper[i] = g.upper[i + 1];
      drop[i + 1] = 1;
    }
    visit(k, std::as_const(g));
    delete_groups(g, drop);
    g.lambda = next;
  }
}

/// The first i >= from with x_i > bound in sorted x (x.size() if none), by galloping from `from`:
/// O(log distance), so a sweep over n groups costs O(n log(N / n)) rather than O(N).
std::size_t first_above(const std::vector<double>& x, std::size_t from, double bound) {
  std::size_t step = 1, lo = from, hi = from;
  while (hi < x.size() && x[hi] <= bound) {
    lo = hi + 1;
    hi = std::min(x.size(), hi + step);
    step *= 2;
  }
  return static_cast<std::size_t>(std::upper_bound(x.begin() + static_cast<std::ptrdiff_t>(lo),
                                                   x.begin() + static_cast<std::ptrdiff_t>(hi), bound) -
                                  x.begin());
}

/// A path model's log-likelihood on the sorted training (x, y) by nir_at's rule, swept group by
/// group: group g claims the samples with lower_g < x <= lower_{g+1} (the last group with lower 0
/// also claims x = 0) and predicts its value on those with x <= upper_g, 0 on the rest. `losses`
/// is N long scratch. input_error naming `where` when a training estimate leaves [0, 1] in
/// float32 (torch's BCE check; netcal raises).
double nir_loglik(const nir_groups& g, std::size_t candidate, const std::vector<double>& x,
                  const std::vector<std::uint8_t>& y, std::vector<double>& losses, const std::string& where) {
  const std::size_t n = g.values.size();
  const std::size_t num = x.size();
  const bce_pair outside = bce_terms(0.0);
  const auto fill = [&](std::size_t from, std::size_t to, const bce_pair& t) {
    for (std::size_t i = from; i < to; ++i) losses[i] = y[i] != 0 ? t.hit : t.miss;
  };
  // Claims start at 0 while lower is 0, so only the last of those groups claims x = 0.
  const auto claim_start = [&](std::size_t k, std::size_t from) {
    if (k == n) return num;
    return g.lower[k] == 0.0 ? std::size_t{0} : first_above(x, from, g.lower[k]);
  };
  std::size_t begin = claim_start(0, 0);
  fill(0, begin, outside);
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t end = std::max(begin, claim_start(k + 1, begin));
    const std::size_t inside = std::min(end, first_above(x, begin, g.upper[k]));
    if (inside > begin) {
      const auto e32 = static_cast<float>(g.values[k]);
      if (!(e32 >= 0.0f && e32 <= 1.0f))
        throw input_error(fmt::format(
            "{}: enir candidate {} predicts {} outside [0, 1] at sorted training position {} (torch BCE raises)", where,
            candidate, g.values[k], begin));
      fill(begin, inside, bce_terms(g.values[k]));
    }
    fill(inside, end, outside);
    begin = end;
  }
  return loglik(losses);
}

// ----------------------------------------------------------------------------------------- JSON

/// input_error naming `where` unless there are as many weights as models (>= 1), all finite and
/// >= 0 (a kept model's r can underflow to 0), summing to 1.
void check_weights(const std::vector<double>& w, std::size_t num_models, const std::string& where, const char* method) {
  if (num_models == 0 || w.size() != num_models)
    throw input_error(fmt::format("{}: {} needs >= 1 models and one weight per model ({} models, {} weights)", where,
                                  method, num_models, w.size()));
  double total = 0.0;
  for (double v : w) {
    if (!(std::isfinite(v) && v >= 0.0))
      throw input_error(fmt::format("{}: {} weights must be finite and >= 0 (got {})", where, method, v));
    total += v;
  }
  if (!(std::abs(total - 1.0) <= k_weight_sum_tolerance))
    throw input_error(fmt::format("{}: {} weights must sum to 1 (they sum to {})", where, method, total));
}

/// The shared head of a saved model: "method" must be `method`; returns the score.
binning_score read_head(const nlohmann::json& j, const char* method, const std::string& where) {
  if (!j.is_object()) throw input_error(fmt::format("{}: {} parameters must be a JSON object", where, method));
  const std::string got = j.at("method").get<std::string>();
  if (got != method) throw input_error(fmt::format("{}: expected {} parameters, got '{}'", where, method, got));
  const std::string s = j.at("score").get<std::string>();
  if (s != "bic" && s != "aic")
    throw input_error(fmt::format("{}: {} score must be 'bic' or 'aic', not '{}'", where, method, s));
  if (!j.at("models").is_array()) throw input_error(fmt::format("{}: {} models must be a list", where, method));
  return s == "bic" ? binning_score::bic : binning_score::aic;
}

/// The training N of a saved model, >= 1.
std::int64_t read_num_samples(const nlohmann::json& j, const char* method, const std::string& where) {
  const nlohmann::json& n = j.at("n");
  if (!n.is_number_integer() || n.get<std::int64_t>() < 1)
    throw input_error(fmt::format("{}: {} needs an integer n >= 1", where, method));
  return n.get<std::int64_t>();
}

/// input_error naming `where` unless the histogram has b >= 1 values in [0, 1], "bins" = b and
/// the b + 1 edges numpy.linspace(0, 1, b + 1) (predict_bin's guess assumes them).
void check_histogram(const bbq_histogram& h, std::int64_t bins, std::size_t k, const std::string& where) {
  const std::size_t b = h.values.size();
  if (b == 0 || bins != static_cast<std::int64_t>(b) || h.edges.size() != b + 1)
    throw input_error(
        fmt::format("{}: bbq model {} needs bins = b >= 1, b values and b + 1 edges (bins {}, {} values, {} edges)",
                    where, k, bins, b, h.edges.size()));
  for (double v : h.values) {
    if (!(v >= 0.0 && v <= 1.0))
      throw input_error(fmt::format("{}: bbq model {} values must be in [0, 1] (got {})", where, k, v));
  }
  if (h.edges != linspace_edges(b))
    throw input_error(fmt::format("{}: bbq model {} edges must be numpy.linspace(0, 1, {})", where, k, b + 1));
}

/// input_error naming `where` unless the NIR model has n >= 1 groups with finite values, bounds
/// in [0, 1] with lower_g <= upper_g, both non-decreasing, and a finite lambda >= 0.
void check_nir(const nir_model& m, std::size_t k, const std::string& where) {
  const std::size_t n = m.values.size();
  if (n == 0 || m.lower.size() != n || m.upper.size() != n)
    throw input_error(fmt::format("{}: enir model {} needs n >= 1 values and n lower and upper bounds", where, k));
  if (!(std::isfinite(m.lambda) && m.lambda >= 0.0))
    throw input_error(fmt::format("{}: enir model {} needs a finite lambda >= 0", where, k));
  for (std::size_t i = 0; i < n; ++i) {
    const bool in_unit = m.lower[i] >= 0.0 && m.upper[i] <= 1.0 && m.lower[i] <= m.upper[i];
    const bool ordered = i == 0 || (m.lower[i] >= m.lower[i - 1] && m.upper[i] >= m.upper[i - 1]);
    if (!std::isfinite(m.values[i]) || !in_unit || !ordered)
      throw input_error(
          fmt::format("{}: enir model {} group {} must have a finite value and 0 <= lower <= upper <= 1, both bounds "
                      "non-decreasing",
                      where, k, i));
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------ BBQ

std::pair<std::int64_t, std::int64_t> bbq_bin_range(std::int64_t num_samples) {
  const auto n = static_cast<double>(num_samples);
  const double c = std::pow(n, 1.0 / 3.0);
  const auto lo = static_cast<std::int64_t>(std::max(1.0, std::floor(c / 10.0)));
  const auto hi = static_cast<std::int64_t>(std::min(std::ceil(n / 5.0), std::ceil(c * 10.0)));
  return {lo, hi};
}

bbq_model fit_bbq(std::span<const double> p, std::span<const std::uint8_t> hit, const std::string& where,
                  binning_score score) {
  check_samples(p, hit, where, "bbq");
  const auto num_samples = static_cast<std::int64_t>(p.size());
  const auto [lo, hi] = bbq_bin_range(num_samples);
  std::vector<bbq_histogram> candidates;
  std::vector<double> ll;
  std::vector<std::int64_t> df;
  std::vector<double> losses(p.size());
  for (std::int64_t b = lo; b <= hi; ++b) {
    candidates.push_back(fit_histogram(p, hit, static_cast<std::size_t>(b)));
    ll.push_back(histogram_loglik(candidates.back(), p, hit, losses));
    df.push_back(b);
  }
  const selection sel = select_candidates(ll, df, num_samples, score);
  bbq_model m{score, num_samples, {}, sel.weights};
  for (std::size_t i : sel.kept) m.models.push_back(std::move(candidates[i]));
  return m;
}

double histogram_at(const bbq_histogram& h, double p) { return h.values[predict_bin(h.edges, p)]; }

double bbq_at(const bbq_model& m, double p) {
  double out = 0.0;
  for (std::size_t k = 0; k < m.models.size(); ++k) out = out + product(m.weights[k], histogram_at(m.models[k], p));
  return std::clamp(out, 0.0, 1.0);
}

// ----------------------------------------------------------------------------------------- ENIR

enir_model fit_enir(std::span<const double> p, std::span<const std::uint8_t> hit, const std::string& where,
                    binning_score score, bool quick_init) {
  check_samples(p, hit, where, "enir");
  const auto num_samples = static_cast<std::int64_t>(p.size());
  std::vector<std::size_t> order(p.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] < p[b]; });
  std::vector<double> x(p.size());
  std::vector<std::uint8_t> y(p.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    x[i] = p[order[i]];
    y[i] = hit[order[i]];
  }
  const nir_groups start = initial_groups(x, y, quick_init);

  // Pass 1 scores every candidate (model 0, the perfect fit, is dropped as netcal does); pass 2
  // replays the deterministic path to copy out only the kept ones, so memory stays O(N).
  std::vector<double> ll;
  std::vector<std::int64_t> df;
  std::vector<double> losses(p.size());
  run_nir_path(start, where, [&](std::size_t k, const nir_groups& g) {
    if (k == 0) return;
    ll.push_back(nir_loglik(g, k - 1, x, y, losses, where));
    df.push_back(static_cast<std::int64_t>(g.values.size()));
  });
  if (ll.empty())
    throw input_error(
        fmt::format("{}: enir has no candidate model: the sorted targets are already isotonic (all 0 below all 1; "
                    "netcal 1.4.0 raises here)",
                    where));
  const selection sel = select_candidates(ll, df, num_samples, score);
  std::vector<std::ptrdiff_t> slot(ll.size(), -1);
  for (std::size_t s = 0; s < sel.kept.size(); ++s) slot[sel.kept[s]] = static_cast<std::ptrdiff_t>(s);
  enir_model m{score, quick_init, num_samples, std::vector<nir_model>(sel.kept.size()), sel.weights};
  run_nir_path(start, where, [&](std::size_t k, const nir_groups& g) {
    if (k == 0 || slot[k - 1] < 0) return;
    m.models[static_cast<std::size_t>(slot[k - 1])] = {g.lower, g.upper, g.values, g.lambda};
  });
  return m;
}

double nir_at(const nir_model& m, double p) {
  const auto& lo = m.lower;
  const auto c = p == 0.0 ? std::upper_bound(lo.begin(), lo.end(), 0.0) - lo.begin()
                          : std::lower_bound(lo.begin(), lo.end(), p) - lo.begin();
  if (c == 0 || !(p <= m.upper[static_cast<std::size_t>(c - 1)])) return 0.0;
  return m.values[static_cast<std::size_t>(c - 1)];
}

double enir_at(const enir_model& m, double p) {
  double out = 0.0;
  for (std::size_t k = 0; k < m.models.size(); ++k) out = out + product(m.weights[k], nir_at(m.models[k], p));
  return std::clamp(out, 0.0, 1.0);
}

// ----------------------------------------------------------------------------------------- JSON

nlohmann::json to_json(const bbq_model& m) {
  nlohmann::json models = nlohmann::json::array();
  for (const bbq_histogram& h : m.models)
    models.push_back({{"bins", h.values.size()}, {"edges", h.edges}, {"values", h.values}});
  return {{"method", "bbq"},
          {"score", score_name(m.score)},
          {"n", m.num_samples},
          {"models", std::move(models)},
          {"weights", m.weights}};
}

nlohmann::json to_json(const enir_model& m) {
  nlohmann::json models = nlohmann::json::array();
  for (const nir_model& g : m.models)
    models.push_back({{"lower", g.lower}, {"upper", g.upper}, {"values", g.values}, {"lambda", g.lambda}});
  return {{"method", "enir"},   {"score", score_name(m.score)}, {"quick_init", m.quick_init},
          {"n", m.num_samples}, {"models", std::move(models)},  {"weights", m.weights}};
}

bbq_model bbq_from_json(const nlohmann::json& j, const std::string& where) {
  bbq_model m;
  std::vector<std::int64_t> bins;
  try {
    m.score = read_head(j, "bbq", where);
    m.num_samples = read_num_samples(j, "bbq", where);
    for (const nlohmann::json& h : j.at("models")) {
      m.models.push_back({h.at("edges").get<std::vector<double>>(), h.at("values").get<std::vector<double>>()});
      bins.push_back(h.at("bins").get<std::int64_t>());
    }
    m.weights = j.at("weights").get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    throw input_error(fmt::format("{}: malformed bbq parameters ({})", where, e.what()));
  }
  check_weights(m.weights, m.models.size(), where, "bbq");
  for (std::size_t k = 0; k < m.models.size(); ++k) check_histogram(m.models[k], bins[k], k, where);
  return m;
}

enir_model enir_from_json(const nlohmann::json& j, const std::string& where) {
  enir_model m;
  try {
    m.score = read_head(j, "enir", where);
    m.num_samples = read_num_samples(j, "enir", where);
    m.quick_init = j.at("quick_init").get<bool>();
    for (const nlohmann::json& g : j.at("models"))
      m.models.push_back({g.at("lower").get<std::vector<double>>(), g.at("upper").get<std::vector<double>>(),
                          g.at("values").get<std::vector<double>>(), g.at("lambda").get<double>()});
    m.weights = j.at("weights").get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    throw input_error(fmt::format("{}: malformed enir parameters ({})", where, e.what()));
  }
  check_weights(m.weights, m.models.size(), where, "enir");
  for (std::size_t k = 0; k < m.models.size(); ++k) check_nir(m.models[k], k, where);
  return m;
}

}  // namespace calibench
