// Pieces shared by the sweep backends' host code: equal-mass bins of one candidate by a
// stable radix sort, weight-scaling adaECE in closed form, and turning sums into metrics.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "host/sweep/backend.hpp"

namespace calibench::detail {

/// Reusable buffers of adaece_of (one per thread). `index` keeps the last candidate's
/// order: neighbouring candidates of a grid order the samples almost alike, so the next
/// sort starts from it.
struct equal_mass_scratch {
  std::vector<std::uint64_t> keys, keys_tmp;
  std::vector<std::uint32_t> index, index_tmp;
  bool has_order = false;
};

/// The binning rule sweeps use for top-label confidences: guo-strict differs from
/// right-closed only for a confidence of 0, and a top-label confidence is at least the mean
/// probability 1/K (softmax, weight family, probability sets of rows summing to 1), so it is
/// the same rule there; the others pass through.
inline binning top_label_rule(binning rule) { return rule == binning::guo_strict ? binning::right_closed : rule; }

/// adaECE of one candidate: confidences and correctness in row order; equal-mass groups of
/// the confidences sorted ascending with ties in row order, sized like numpy.array_split.
/// The order is a total order on (confidence, row), so it does not depend on how it is
/// found: an insertion sort from the previous candidate's order when that is nearly right,
/// else a stable LSD radix sort on the bit patterns of the non-negative doubles.
double adaece_of(std::span<const double> confidence, std::span<const std::uint8_t> correct, std::int32_t num_bins,
                 equal_mass_scratch& scratch);

/// adaECE of weight-scaling candidates in closed form: a c + (1-a)/K is increasing in c for
/// a > 0, so the groups are those of the uncalibrated confidences (for a = 0 every
/// confidence ties and the groups follow row order). Writes res.adaece.
void weight_adaece(std::span<const double> confidence, std::span<const std::uint8_t> correct,
                   std::span<const double> weights, double num_classes, std::int32_t num_bins, sweep_result& res);

/// Turns the summed statistics of `res` into ece, mce, nll, brier, accuracy (N samples).
void finish(sweep_result& res, std::int64_t num_samples);

}  // namespace calibench::detail
