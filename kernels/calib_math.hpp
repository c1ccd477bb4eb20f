// Per-element math shared by the CPU backend and the CUDA kernels: top-label softmax
// statistics of one row and the bin rules. No CUDA, Thrust or CUB includes, no containers,
// no exceptions, so that the CPU and GPU paths cannot drift apart.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/host_device.hpp"

namespace calibench {

/// exp(x) for x <= 0 (larger x is not supported), branch-free so that loops over it
/// vectorise on the host; within 2 ulp of std::exp (tests/unit/test_calib_math.cpp). Results below
/// exp(-700) ~ 1e-304 are flushed to that value's neighbourhood instead of 0, which no sum
/// of softmax terms can notice. On the device it is the native exp.
CALIBENCH_HD double exp_nonpositive(double x) {
#if defined(__CUDA_ARCH__)
  return exp(x);
#else
  constexpr double k_log2e = 1.4426950408889634;
  constexpr double k_ln2_hi = 6.93147180369123816490e-01;  // Cody-Waite split of ln 2
  constexpr double k_ln2_lo = 1.90821492927058770002e-10;
  x = x < -700.0 ? -700.0 : x;
  const double kf = __builtin_floor(x * k_log2e + 0.5);
  const double r = (x - kf * k_ln2_hi) - kf * k_ln2_lo;  // |r| <= ln2/2
  // Taylor series to r^13 / 13!: truncation below 5e-18 relative on |r| <= 0.347.
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // 2^k by building the exponent field (k >= -1010 here, so the result is normal): adding
  // 1.5 * 2^52 puts the integer k + 1023 in the low mantissa bits, and the shift moves it to
  // the exponent. Only bit operations, so the loop vectorises without AVX-512DQ.
  const double biased = kf + (6755399441055744.0 + 1023.0);
  const std::uint64_t bits = __builtin_bit_cast(std::uint64_t, biased) << 52;
  return p * __builtin_bit_cast(double, bits);
#endif
}

/// log(x) for finite x > 0, branch-free for host vectorisation; within 2 ulp of std::log
/// (tests/unit/test_calib_math.cpp). Native log on the device.
CALIBENCH_HD double log_positive(double x) {
#if defined(__CUDA_ARCH__)
  return log(x);
#else
  // Subnormals are scaled into the normal range first (exactly: a power of two).
  const bool tiny = x < 2.2250738585072014e-308;
  x = tiny ? x * 18446744073709551616.0 : x;
  const std::uint64_t bits = __builtin_bit_cast(std::uint64_t, x);
  // x = 2^e * m with m in [sqrt(1/2), sqrt(2)): take the mantissa to [1, 2), then halve
  // it when above sqrt(2). The biased exponent becomes a double by the 2^52 trick.
  const double biased_e =
      __builtin_bit_cast(double, ((bits >> 52) & 0x7ffULL) | 0x4330000000000000ULL) - 4503599627370496.0;
  double e = biased_e - 1023.0 - (tiny ? 64.0 : 0.0);
  double m = __builtin_bit_cast(double, (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
  const bool high = m > 1.4142135623730951;
  m = high ? m * 0.5 : m;
  e = high ? e + 1.0 : e;
  // log m = 2 atanh(s), s = (m - 1)/(m + 1), |s| <= 0.1716: odd series to s^23.
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double p = 1.0 / 23.0;
  p = p * s2 + 1.0 / 21.0;
  p = p * s2 + 1.0 / 19.0;
  p = p * s2 + 1.0 / 17.0;
  p = p * s2 + 1.0 / 15.0;
  p = p * s2 + 1.0 / 13.0;
  p = p * s2 + 1.0 / 11.0;
  p = p * s2 + 1.0 / 9.0;
  p = p * s2 + 1.0 / 7.0;
  p = p * s2 + 1.0 / 5.0;
  p = p * s2 + 1.0 / 3.0;
  const double log_m = 2.0 * s + 2.0 * s * s2 * p;
  constexpr double k_ln2_hi = 6.93147180369123816490e-01;
  constexpr double k_ln2_lo = 1.90821492927058770002e-10;
  return e * k_ln2_hi + (log_m + e * k_ln2_lo);
#endif
}

/// Top-label statistics of one row of logits.
template <class Real>
struct top_label_stats {
  Real confidence;    ///< max_j softmax(z)_j = 1 / sum_j exp(z_j - max z)
  Real log_p_label;   ///< log softmax(z)_label
  Real sum_exp;       ///< S = sum_j exp(z_j - max z)
  Real max_logit;     ///< max_j z_j
  std::int32_t pred;  ///< argmax_j z_j, lowest index on ties
};

/// Softmax top-label statistics of `row[0..num_classes)` with inverse temperature `inv_t`
/// (1 for the raw logits). Accumulates in `Real`; `In` is the storage type of the logits.
template <class Real, class In>
CALIBENCH_HD top_label_stats<Real> softmax_top_label(const In* row, std::int64_t num_classes, std::int32_t label,
                                                     Real inv_t = Real(1)) {
  using std::exp;
  using std::log;
  Real m = Real(row[0]) * inv_t;
  std::int32_t pred = 0;
  for (std::int64_t j = 1; j < num_classes; ++j) {
    const Real v = Real(row[j]) * inv_t;
    if (v > m) {  // strict: the lowest index wins ties
      m = v;
      pred = static_cast<std::int32_t>(j);
    }
  }
  Real s = 0;
  for (std::int64_t j = 0; j < num_classes; ++j) s += exp(Real(row[j]) * inv_t - m);
  top_label_stats<Real> out;
  out.confidence = Real(1) / s;
  out.log_p_label = Real(row[label]) * inv_t - m - log(s);
  out.sum_exp = s;
  out.max_logit = m;
  out.pred = pred;
  return out;
}

/// How a value in [0, 1] is assigned to one of the slots of M equal-width bins
/// (docs/metrics.md, "Conventions of other libraries", has the table with sources).
enum class binning : std::int32_t {
  right_closed = 0,       ///< ((i-1)/M, i/M], 0 in the first bin (the calibench default)
  left_closed = 1,        ///< [(i-1)/M, i/M), last bin closed (numpy histogram, netcal)
  guo_strict = 2,         ///< ((i-1)/M, i/M], 0 in no bin (Guo et al., focal_calibration, markus93)
  torchmetrics = 3,       ///< [(i-1)/M, i/M) plus a slot M holding only 1.0 (torchmetrics)
  digitize_linspace = 4,  ///< digitize(v, linspace(0, 1, M)) - 1: M-1 bins plus {1.0} (Dirichlet code)
};

/// Edge i of M equal-width bins, computed in double as docs/metrics.md requires (i / M, not i * (1/M)).
CALIBENCH_HD double bin_edge(std::int32_t i, std::int32_t num_bins) {
  return static_cast<double>(i) / static_cast<double>(num_bins);
}

/// Number of slots of M bins under `rule`: M + 1 for torchmetrics, M otherwise.
CALIBENCH_HD std::int32_t bin_slots(binning rule, std::int32_t num_bins) {
  return rule == binning::torchmetrics ? num_bins + 1 : num_bins;
}

/// Edge i (0..M-1) of numpy's linspace(0, 1, M): i * (1 / (M-1)), the last exactly 1.
CALIBENCH_HD double linspace_edge(std::int32_t i, std::int32_t num_bins) {
  if (i >= num_bins - 1) return 1.0;
  return static_cast<double>(i) * (1.0 / static_cast<double>(num_bins - 1));
}

namespace detail {
/// Number of edges e(1)..e(count-1) with e < v (strict) or e <= v, for increasing edges e(i)
/// that are close to i / count: the arithmetic guess is corrected against the true edges, so
/// values exactly on an edge land where the comparison with that edge puts them, never where
/// rounding of count * v does.
template <class Edge>
CALIBENCH_HD std::int32_t count_edges_below(double v, std::int32_t count, bool strict, Edge edge) {
  const double guess = v * static_cast<double>(count);
  std::int32_t b = guess <= 0.0 ? 0 : (guess >= count ? count - 1 : static_cast<std::int32_t>(guess));
  if (strict) {
    while (b > 0 && !(edge(b) < v)) --b;
    while (b < count - 1 && edge(b + 1) < v) ++b;
  } else {
    while (b > 0 && edge(b) > v) --b;
    while (b < count - 1 && edge(b + 1) <= v) ++b;
  }
  return b;
}
}  // namespace detail

/// 0-based slot of `v` in [0, 1] under `rule`, or -1 when the rule puts it in no slot
/// (guo-strict and v <= 0). right/left-closed equal numpy's
/// searchsorted(edges[1:M], v, side="left" | "right") on edges i/M.
CALIBENCH_HD std::int32_t bin_index(binning rule, double v, std::int32_t num_bins) {
  const auto uniform = [num_bins](std::int32_t i) { return bin_edge(i, num_bins); };
  switch (rule) {
    case binning::guo_strict:
      if (!(v > 0.0)) return -1;
      return detail::count_edges_below(v, num_bins, true, uniform);
    case binning::left_closed: return detail::count_edges_below(v, num_bins, false, uniform);
    case binning::torchmetrics: return v >= 1.0 ? num_bins : detail::count_edges_below(v, num_bins, false, uniform);
    case binning::digitize_linspace: {
      if (num_bins == 1) return 0;
      if (v >= 1.0) return num_bins - 1;
      const std::int32_t inner = num_bins - 1;
      return detail::count_edges_below(v, inner, false,
                                       [num_bins](std::int32_t i) { return linspace_edge(i, num_bins); });
    }
    case binning::right_closed:
    default: return detail::count_edges_below(v, num_bins, true, uniform);
  }
}

/// Lower and upper edge of slot `slot` under `rule` (the reliability diagram's bin bounds).
struct slot_bounds {
  double lo, hi;
};
CALIBENCH_HD slot_bounds bin_slot_bounds(binning rule, std::int32_t slot, std::int32_t num_bins) {
  if (rule == binning::torchmetrics && slot == num_bins) return {1.0, 1.0};
  if (rule == binning::digitize_linspace) {
    if (num_bins == 1) return {0.0, 1.0};
    if (slot == num_bins - 1) return {1.0, 1.0};
    return {linspace_edge(slot, num_bins), linspace_edge(slot + 1, num_bins)};
  }
  return {bin_edge(slot, num_bins), bin_edge(slot + 1, num_bins)};
}

/// bin_index without loops, for vectorised loops (the rule fixed at compile time): the guess
/// floor(v M) is within one bin of the answer (v M is within a few ulps of an integer only
/// next to an edge), so one step down and one step up, each checked against the true edge,
/// reach it. Equal to bin_index for every v in [0, 1] (tests/unit/test_calib_math.cpp), except
/// that guo_strict is not offered: callers with top-label confidences (always > 0) use
/// right_closed, which then agrees with it.
template <binning Rule>
CALIBENCH_HD std::int32_t bin_index_fast(double v, std::int32_t num_bins) {
  static_assert(Rule != binning::guo_strict, "guo-strict has an empty slot for 0: use bin_index");
  // Double arithmetic, non-short-circuit logic and the rule as a template parameter: the
  // forms GCC vectorises.
  if constexpr (Rule == binning::digitize_linspace) {
    if (num_bins == 1) return 0;
    const double m = static_cast<double>(num_bins - 1);
    const double step = 1.0 / m;
    const double guess = v * m;
    // !(guess >= 0): a NaN confidence lands in bin 0 (and shows as a NaN sum), never outside.
    double b = floor(!(guess >= 0.0) ? 0.0 : (guess > m - 1.0 ? m - 1.0 : guess));
    const double lower = b * step;
    const double upper = (b + 1.0 >= m) ? 1.0 : (b + 1.0) * step;
    b -= ((b > 0.0) & (lower > v)) ? 1.0 : 0.0;
    b += ((b < m - 1.0) & (upper <= v)) ? 1.0 : 0.0;
    b += (v >= 1.0) ? 1.0 : 0.0;
    return static_cast<std::int32_t>(b);
  } else {
    const double m = static_cast<double>(num_bins);
    const double guess = v * m;
    double b = floor(!(guess >= 0.0) ? 0.0 : (guess > m - 1.0 ? m - 1.0 : guess));  // NaN: bin 0
    const double lower = b / m;
    const double upper = (b + 1.0) / m;
    if constexpr (Rule == binning::right_closed) {
      b -= ((b > 0.0) & !(lower < v)) ? 1.0 : 0.0;
      b += ((b < m - 1.0) & (upper < v)) ? 1.0 : 0.0;
    } else {
      b -= ((b > 0.0) & (lower > v)) ? 1.0 : 0.0;
      b += ((b < m - 1.0) & (upper <= v)) ? 1.0 : 0.0;
    }
    if constexpr (Rule == binning::torchmetrics) b += (v >= 1.0) ? 1.0 : 0.0;
    return static_cast<std::int32_t>(b);
  }
}

}  // namespace calibench

namespace calibench {

/// Top-label terms of one sample under one candidate: what every sweep accumulates.
template <class Real>
struct candidate_terms {
  Real confidence;
  Real log_p_label;
  Real brier;  ///< sum_j (p_j - [j = y])^2
};

/// Terms from the softmax sums of a row whose largest scaled logit is 0:
/// S = sum_j exp(s_j), Q = sum_j exp(2 s_j), s_y the label's scaled logit (<= 0) and
/// e_y = exp(s_y). conf = 1/S (the maximum contributes exp(0) = 1), log p_y = s_y - log S,
/// Brier = Q/S^2 - 2 p_y + 1.
template <class Real>
CALIBENCH_HD candidate_terms<Real> terms_from_sums(Real sum_exp, Real sum_exp_sq, Real scaled_label, Real exp_label) {
  candidate_terms<Real> t;
  const Real inv = Real(1) / sum_exp;
  const Real p_label = exp_label * inv;
  t.confidence = inv;
  t.log_p_label = scaled_label - Real(log_positive(sum_exp));
  t.brier = sum_exp_sq * inv * inv - Real(2) * p_label + Real(1);
  return t;
}

/// Weight scaling p_a = a p + (1 - a)/K of a sample with confidence c, label probability
/// p_y and sum of squared probabilities P2 (sum_j p_j = 1):
/// sum_j (a p_j + u - [j = y])^2 = a^2 P2 + 2 a u + K u^2 - 2 (a p_y + u) + 1, u = (1 - a)/K.
template <class Real>
CALIBENCH_HD candidate_terms<Real> weight_terms(Real a, Real num_classes, Real confidence, Real p_label,
                                                Real sum_p_sq) {
  using std::log;
  const Real u = (Real(1) - a) / num_classes;
  const Real py = a * p_label + u;
  candidate_terms<Real> t;
  t.confidence = a * confidence + u;
  t.log_p_label = log(py);
  t.brier = a * a * sum_p_sq + Real(2) * a * u + num_classes * u * u - Real(2) * py + Real(1);
  return t;
}

/// Per-sample state of the class-temperature step for class i, sums relative to a base m at
/// or above every other class's scaled logit (class_rest_state takes m = u_r where that is
/// finite, so that S_r >= 1, and no stored exponent is positive): the other classes'
/// S_r = sum_{j != i} exp(u_j - m) and Q_r = sum_{j != i} exp(2(u_j - m)), their maximum u_r
/// (absolute, with its class, lowest index on ties), and the label's scaled logit.
template <class Real>
struct class_step_state {
  Real row_max;       ///< m
  Real rest_sum;      ///< S_r
  Real rest_sum_sq;   ///< Q_r
  Real rest_max;      ///< u_r = max_{j != i} u_j (absolute: ties are decided on it)
  Real rest_max_exp;  ///< exp(u_r - m)
  Real label_scaled;  ///< u_y - m (meaningful when y != i)
  Real label_exp;     ///< exp(u_y - m)
  std::int32_t rest_argmax;
};

/// Evaluates a candidate scaled logit u = z_i / T of class i on one sample (one exp, one
/// log) and writes the prediction. The prediction compares u itself with u_r, so that equal
/// scaled logits tie exactly even where the compiler fuses u - m into one operation.
template <class Real>
CALIBENCH_HD candidate_terms<Real> class_step_terms(const class_step_state<Real>& s, Real u, std::int32_t cls,
                                                    std::int32_t label, std::int32_t* pred) {
  const bool wins = (u > s.rest_max) | ((u == s.rest_max) & (cls < s.rest_argmax));
  *pred = wins ? cls : s.rest_argmax;
  const Real v = u - s.row_max;
  // Rebase to m' = m + max(0, v) so that no exponent is positive: one exp of -|v| serves both
  // cases. Written with selects only, so that a loop over candidates vectorises.
  const bool above = v > Real(0);
  const Real e = Real(exp_nonpositive(above ? -v : v));
  const Real scale = above ? e : Real(1);  // factor on the other classes' terms
  const Real own = above ? Real(1) : e;    // class i's term
  const Real sum = s.rest_sum * scale + own;
  const Real sum_sq = s.rest_sum_sq * scale * scale + own * own;
  const Real top_exp = wins ? own : s.rest_max_exp * scale;
  const bool is_label = label == cls;
  const Real label_exp = is_label ? own : s.label_exp * scale;
  const Real label_rel = (is_label ? v : s.label_scaled) - (above ? v : Real(0));  // u_y - m'
  candidate_terms<Real> t;
  const Real inv = Real(1) / sum;
  t.confidence = top_exp * inv;
  t.log_p_label = label_rel - Real(log_positive(sum));
  const Real p_label = label_exp * inv;
  t.brier = sum_sq * inv * inv - Real(2) * p_label + Real(1);
  return t;
}

/// Terms of one row of stored probabilities `p` (K entries) with label y, and its
/// prediction (argmax, lowest index on ties).
template <class In>
CALIBENCH_HD candidate_terms<double> probability_row_terms(const In* p, std::int64_t num_classes, std::int32_t label,
                                                           std::int32_t* pred) {
  using std::log;
  std::int32_t best = 0;
  double q = 0;
  for (std::int64_t j = 0; j < num_classes; ++j) {
    if (p[j] > p[best]) best = static_cast<std::int32_t>(j);
    const double v = static_cast<double>(p[j]) - (j == label ? 1.0 : 0.0);
    q += v * v;
  }
  *pred = best;
  return {static_cast<double>(p[best]), log(static_cast<double>(p[label])), q};
}

/// Per-sample state of the class-temperature search (scaled logits u_j = z_j * (1/T_j)).
struct class_row_state {
  double max;         ///< largest scaled logit
  double sum;         ///< sum_j exp(u_j - max)
  double sum_sq;      ///< sum_j exp(2 (u_j - max))
  double top2_value;  ///< second largest scaled logit
  std::int32_t top1;  ///< argmax (lowest index on ties)
  std::int32_t top2;  ///< argmax over the others (lowest index on ties)
};

/// Recomputes a row's state from its logits `z` and the per-class inverse temperatures: O(K).
template <class In>
CALIBENCH_HD void refresh_class_row(const In* z, std::int64_t num_classes, const double* inverse, class_row_state& r) {
  using std::exp;
  r.top1 = 0;
  double best = static_cast<double>(z[0]) * inverse[0];
  for (std::int64_t j = 1; j < num_classes; ++j) {
    const double u = static_cast<double>(z[j]) * inverse[j];
    if (u > best) {
      best = u;
      r.top1 = static_cast<std::int32_t>(j);
    }
  }
  r.max = best;
  r.top2 = -1;
  r.top2_value = 0;
  r.sum = 0;
  r.sum_sq = 0;
  for (std::int64_t j = 0; j < num_classes; ++j) {
    const double u = static_cast<double>(z[j]) * inverse[j];
    const double e = exp(u - best);
    r.sum += e;
    r.sum_sq += e * e;
    if (j != r.top1 && (r.top2 < 0 || u > r.top2_value)) {
      r.top2 = static_cast<std::int32_t>(j);
      r.top2_value = u;
    }
  }
}

/// Commits class `cls`'s inverse temperature old_inv -> new_inv (`inverse` already holds the
/// new value): O(1) unless the top two may change (class `cls` is one of them or enters
/// them), about 2N/K rows, which are recomputed.
template <class In>
CALIBENCH_HD void commit_class_row(const In* z, std::int64_t num_classes, const double* inverse, std::int32_t cls,
                                   double old_inv, double new_inv, class_row_state& r) {
  using std::exp;
  const double zi = static_cast<double>(z[cls]);
  const double u_old = zi * old_inv, u_new = zi * new_inv;
  if (r.top1 == cls || r.top2 == cls || u_new >= r.top2_value) {
    refresh_class_row(z, num_classes, inverse, r);
  } else {
    // Class cls is neither of the top two before or after: its term is at most half the sum,
    // so the update cannot cancel badly, and the maximum does not move.
    const double t_old = exp(u_old - r.max), t_new = exp(u_new - r.max);
    r.sum += t_new - t_old;
    r.sum_sq += t_new * t_new - t_old * t_old;
  }
}

/// The row's state with class `cls` taken out, for class_step_terms. The sums are taken
/// relative to the other classes' maximum u_r, so that S_r >= 1 however far below class `cls`
/// they lie: relative to a maximum held by `cls` itself they would underflow to 0 once the gap
/// passes about 745 (z = -100 at T = 0.1 beside z = -100 at T = 2), and a candidate that brings
/// `cls` down to them would then divide 0 by 0. When every other class is at -inf (log 0 of
/// a probability input), the base stays class `cls`'s own value: S_r = 0 and class `cls` holds
/// all the mass for every candidate.
template <class In>
CALIBENCH_HD class_step_state<double> class_rest_state(const In* z, std::int64_t num_classes, const double* inverse,
                                                       const class_row_state& r, std::int32_t cls, std::int32_t label) {
  using std::exp;
  class_step_state<double> s;
  double base = r.max;
  if (r.top1 == cls) {
    // The removed term dominates the sum: subtracting it would cancel, so sum the rest.
    s.rest_max = r.top2_value;
    s.rest_argmax = r.top2;
    if (s.rest_max > -HUGE_VAL) base = s.rest_max;
    s.rest_sum = 0;
    s.rest_sum_sq = 0;
    for (std::int64_t j = 0; j < num_classes; ++j) {
      if (j == cls) continue;
      const double e = exp(static_cast<double>(z[j]) * inverse[j] - base);
      s.rest_sum += e;
      s.rest_sum_sq += e * e;
    }
  } else {
    // r.max belongs to another class, so it is already the rest's maximum, and the removed
    // term is at most 1 of a sum that keeps the maximum's 1.
    const double t = exp(static_cast<double>(z[cls]) * inverse[cls] - r.max);
    s.rest_max = r.max;
    s.rest_argmax = r.top1;
    s.rest_sum = r.sum - t;
    s.rest_sum_sq = r.sum_sq - t * t;
  }
  s.row_max = base;
  s.rest_max_exp = exp(s.rest_max - base);  // 1, or 0 when the rest is all -inf
  // Only read when label != cls; 0 otherwise so that no exponent is positive.
  s.label_scaled = label == cls ? 0.0 : static_cast<double>(z[label]) * inverse[label] - base;
  s.label_exp = exp(s.label_scaled);
  return s;
}

}  // namespace calibench
