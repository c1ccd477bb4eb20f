// Per-element math shared by the CPU backend and the CUDA kernels: top-label softmax
// statistics of one row and the bin rules. No CUDA, Thrust or CUB includes, no containers,
// no exceptions, so that the CPU and GPU paths cannot drift apart.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define CALIBENCH_HD __host__ __device__ __forceinline__
#else
#define CALIBENCH_HD inline
#endif

namespace calibench {

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
CALIBENCH_HD top_label_stats<Real> softmax_top_label(const In* row, std::int64_t num_classes,
                                                      std::int32_t label, Real inv_t = Real(1)) {
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

/// How a value in [0, 1] is assigned to one of M equal-width bins. A new convention is one
/// more enumerator and one more case in `bin_index` (DESIGN section 3 lists the others).
enum class binning : std::int32_t {
  right_closed = 0,  ///< ((i-1)/M, i/M], 0 in the first bin (DESIGN default)
  left_closed = 1,   ///< [(i-1)/M, i/M), last bin closed (numpy histogram, netcal)
};

/// Edge i of M equal-width bins, computed in double as DESIGN requires (i / M, not i * (1/M)).
CALIBENCH_HD double bin_edge(std::int32_t i, std::int32_t num_bins) {
  return static_cast<double>(i) / static_cast<double>(num_bins);
}

/// 0-based bin of `v` in [0, 1] under `rule`; equal to numpy's
/// searchsorted(edges[1:M], v, side="left" | "right") on edges i/M. The arithmetic guess is
/// corrected against the true edges, so values exactly on an edge land where the comparison
/// with that edge puts them, never where rounding of M*v does.
CALIBENCH_HD std::int32_t bin_index(binning rule, double v, std::int32_t num_bins) {
  double guess = v * static_cast<double>(num_bins);
  std::int32_t b = guess <= 0.0 ? 0 : (guess >= num_bins ? num_bins - 1 : static_cast<std::int32_t>(guess));
  if (rule == binning::right_closed) {
    while (b > 0 && !(bin_edge(b, num_bins) < v)) --b;
    while (b < num_bins - 1 && bin_edge(b + 1, num_bins) < v) ++b;
  } else {
    while (b > 0 && bin_edge(b, num_bins) > v) --b;
    while (b < num_bins - 1 && bin_edge(b + 1, num_bins) <= v) ++b;
  }
  return b;
}

}  // namespace calibench
