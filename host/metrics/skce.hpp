// The squared kernel calibration error of Widmann, Lindsten and Zachariah (NeurIPS 2019) with the
// paper's kernel, and its asymptotic (bootstrap) calibration test (docs/ports/skce.md; float64
// reference tests/reference/skce_ref.py). Authors' code: devmotion/CalibrationErrors.jl 8dfa994
// src/skce.jl, devmotion/CalibrationTests.jl fa3fcac src/skce/asymptotic.jl, devmotion/
// CalibrationPaper a164e8b src/kernels.jl. A pure module: spans in, numbers out.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace calibench {

/// Distances the median selection keeps in memory at most (2^23 doubles, 64 MiB); a bin with
/// more is refined by another histogram pass instead. With this cap the first histogram bin
/// (1/256 of a binade) of Dirichlet-like predictions fits up to N of about 50,000.
inline constexpr std::int64_t k_skce_median_keep = std::int64_t{1} << 23;

/// The bootstrap of `skce_pvalue`: B resamples from calibench's SplitMix64, stream b of `seed`
/// for resample b (docs/metrics.md), as the reference draws them.
struct skce_options {
  std::int64_t resamples = 1000;  ///< B, the authors' bootstrap_iters
  std::uint64_t seed = 0;         ///< calibench's --seed
};

/// What one pass over the N^2 pairs gives.
struct skce_result {
  double skce = 0;                ///< SKCE_uq = sum_{i<j} h_ij / (N (N-1) / 2); NaN for N < 2
  double pvalue = 0;              ///< #{b : T_b >= statistic} / B; NaN for N < 2 or without the test
  double bandwidth = 0;           ///< nu: full-matrix median TV distance with calibench's edge rules; NaN for N = 0
  double skce_biased = 0;         ///< SKCE_b = sum_{i,j} h_ij / N^2; NaN for N = 0
  double statistic = 0;           ///< N/(N-1) SKCE_uq - SKCE_b, the test's statistic; NaN without the test
  std::vector<double> bootstrap;  ///< T_b for b = 0..B-1 (empty without the test)
};

/// The paper's median heuristic: the median of all N^2 total-variation distances
/// d(p_i, p_j) = sum_k |p_ik - p_jk| / 2 (diagonal zeros and both triangles), selected exactly
/// with at most `max_kept` distances in memory (histograms of the float64 bit patterns when
/// more are in play). No edge rules: 0 for N = 1, NaN for N = 0. input_error for non-finite
/// probabilities or a size that is not a multiple of num_classes >= 1.
double median_tv_distance(std::span<const double> probs, std::int64_t num_classes,
                          std::int64_t max_kept = k_skce_median_keep);

/// skce (and, with `with_pvalue`, skce_pvalue) of row-major [N, K] float64 probabilities, used as
/// given, with labels in [0, K): kernel exp(-d(p, q) / nu) [y == y'], nu the median heuristic
/// (0 -> mean distance over the N^2 entries -> 1). The same for any thread count.
/// input_error for mismatched sizes, labels out of range, non-finite probabilities, or
/// with_pvalue and resamples < 1.
skce_result compute_skce(std::span<const double> probs, std::span<const std::int32_t> labels, std::int64_t num_classes,
                         bool with_pvalue, const skce_options& options = {});

}  // namespace calibench
