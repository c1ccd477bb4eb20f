// Launchers of the batch-sweep kernels (kernels/sweep_*.cu), called by the CUDA backend in
// host/sweep/cuda_backend.cpp. Device pointers and plain structs only, so this compiles with g++.
// Every launcher is asynchronous on the default stream and throws cuda_error on a failed
// launch; results are deterministic (no floating-point atomics, fixed reduction orders).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/calib_math.hpp"

namespace calibench::kernels {

/// Per-(candidate, sample) terms of a chunk of candidates, candidate-major: entry g * N + i
/// belongs to local candidate g and sample i. Every family kernel writes these; the bin and
/// equal-mass reductions read them.
struct terms_view {
  double* confidence;     ///< top-label confidence (+0.0 normalised, for the sort)
  std::uint8_t* correct;  ///< prediction == label
  double* log_p_label;    ///< log p_label
  double* brier;          ///< sum_j (p_j - [j = y])^2
  std::int64_t num_samples;
};

// ---- per-row preparation and per-sample terms (sweep_rows.cu) -------------------------------

/// Row maximum (as double) and argmax (lowest index on ties) of each logit row.
void launch_row_argmax(const float* d_logits, std::int64_t num_samples, std::int64_t num_classes, double* d_max_logit,
                       std::int32_t* d_prediction);

/// Terms of every sample at its own inverse temperature (`d_inv_per_sample`, or `inv` for all
/// samples when it is null), written as candidate 0 of `out`.
void launch_sample_terms(const float* d_logits, const std::int32_t* d_labels, const double* d_max_logit,
                         const std::int32_t* d_prediction, std::int64_t num_samples, std::int64_t num_classes,
                         const double* d_inv_per_sample, double inv, terms_view out);

/// Copies candidate 0 of `src` into candidates 0..num_candidates-1 of `dst`.
void launch_broadcast_terms(terms_view src, std::int64_t num_candidates, terms_view dst);

// ---- temperature families (sweep_temperature.cu, sweep_recurrence.cu) -----------------------

/// p = softmax((z - max) * b_g) with b_g = d_inv_temperature[g] for the rows `d_rows[0..num_rows)`
/// (all rows in order when `d_rows` is null); one exp per logit and candidate.
void launch_temperature_terms(const float* d_logits, const std::int32_t* d_labels, const double* d_max_logit,
                              const std::int32_t* d_prediction, std::int64_t num_samples, std::int64_t num_classes,
                              const std::int64_t* d_rows, std::int64_t num_rows, const double* d_inv_temperature,
                              std::int64_t num_candidates, terms_view out);

/// Inverse temperatures b_g = start + g * step for the global candidates g in [g_begin, g_end),
/// written as local candidates g - g_begin: the multiply recurrence
/// exp(x b_{g+1}) = exp(x b_g) exp(x step), anchored with exact exps at every multiple of
/// `anchor_every` (at most 32; so results do not depend on how candidates are chunked).
void launch_inverse_temperature_terms(const float* d_logits, const std::int32_t* d_labels, const double* d_max_logit,
                                      const std::int32_t* d_prediction, std::int64_t num_samples,
                                      std::int64_t num_classes, double start, double step, std::int64_t g_begin,
                                      std::int64_t g_end, std::int64_t anchor_every, terms_view out);

// ---- weight scaling (sweep_weight.cu) ---------------------------------------------------------

/// p_label = exp(log p_label) and sum_j p_j^2 = brier + 2 p_label - 1 of candidate 0 of `base`.
void launch_weight_base(terms_view base, double* d_p_label, double* d_p_sq);

/// p_a = a p + (1 - a) / K for the weights d_weights[0..num_candidates), in closed form per sample
/// (weight_terms); the prediction, hence correctness, is that of `base`.
void launch_weight_terms(terms_view base, const double* d_p_label, const double* d_p_sq, double num_classes,
                         const double* d_weights, std::int64_t num_candidates, terms_view out);

// ---- class-temperature search (sweep_class.cu) -----------------------------------------------

/// Recomputes every row's state from the logits and the classes' inverse temperatures
/// `d_inverse` (1 / T_j, computed once on the host: scaled logits are z_j * (1 / T_j)).
void launch_class_refresh(const float* d_logits, std::int64_t num_samples, std::int64_t num_classes,
                          const double* d_inverse, ::calibench::class_row_state* d_rows);

/// Commits a new inverse temperature of class `cls` (already in `d_inverse`, = new_inv): the
/// O(1) update of the sums, or a refresh of rows whose top two may change.
void launch_class_commit(const float* d_logits, std::int64_t num_samples, std::int64_t num_classes,
                         const double* d_inverse, std::int32_t cls, double old_inv, double new_inv,
                         ::calibench::class_row_state* d_rows);

/// Each row's state with class `cls` removed (class_step_state) and its logit z_cls.
void launch_class_rest_state(const float* d_logits, const std::int32_t* d_labels, std::int64_t num_samples,
                             std::int64_t num_classes, const double* d_inverse,
                             const ::calibench::class_row_state* d_rows, std::int32_t cls,
                             class_step_state<double>* d_state, double* d_class_logit);

/// Terms of candidates d_inv_temperature[0..num_candidates) for class `cls` (class_step_terms).
void launch_class_candidate_terms(const std::int32_t* d_labels, std::int64_t num_samples,
                                  const class_step_state<double>* d_state, const double* d_class_logit,
                                  std::int32_t cls, const double* d_inv_temperature, std::int64_t num_candidates,
                                  terms_view out);

// ---- arbitrary probability sets (sweep_probs.cu) ---------------------------------------------

/// Terms of `num_candidates` probability matrices d_probs (candidate x N x K, row-major).
void launch_probability_terms(const float* d_probs, const std::int32_t* d_labels, std::int64_t num_samples,
                              std::int64_t num_classes, std::int64_t num_candidates, terms_view out);

// ---- equal-width bin statistics (sweep_reduce.cu) --------------------------------------------

/// Per-tile partial sums: the reduction's scratch, `bin_tiles(N)` tiles per candidate.
struct bin_partials {
  double* sum_confidence;  ///< candidates x tiles x M
  std::int32_t* count;     ///< candidates x tiles x M
  std::int32_t* correct;   ///< candidates x tiles x M
  double* nll;             ///< candidates x tiles (sum of -log p_label)
  double* brier;           ///< candidates x tiles
};

/// Per-candidate sums, the layout of sweep_result's fields for a chunk.
struct bin_totals {
  std::int64_t* count;     ///< candidates x M
  double* sum_confidence;  ///< candidates x M
  double* sum_correct;     ///< candidates x M
  double* nll;             ///< candidates (sum of -log p_label)
  double* brier;           ///< candidates
  double* correct;         ///< candidates
};

/// Sample tiles per candidate in the bin reduction (the tile size is fixed, so the order of
/// additions, hence every result bit, does not depend on the device or on chunking).
std::int64_t bin_tiles(std::int64_t num_samples);

/// Largest bin count the bin reduction accepts on the current device (shared memory).
std::int32_t max_bins();

/// Equal-width bin statistics of `num_candidates` candidates of `in` under `rule`.
void launch_bin_statistics(terms_view in, std::int64_t num_candidates, std::int32_t num_bins, binning rule,
                           bin_partials scratch, bin_totals out);

// ---- equal-mass groups (sweep_equal_mass.cu) -------------------------------------------------

/// Scratch of the per-candidate stable sort.
struct equal_mass_scratch {
  double* sorted_confidence;  ///< candidates x N
  std::int32_t* index_in;     ///< candidates x N
  std::int32_t* index_out;    ///< candidates x N
  std::int64_t* offsets;      ///< candidates + 1
  void* temp;                 ///< CUB temporary storage
  std::size_t temp_bytes;
};

/// CUB temporary storage the sort of `num_candidates` segments of N samples needs.
std::size_t equal_mass_temp_bytes(std::int64_t num_candidates, std::int64_t num_samples);

/// Sorts each candidate's confidences ascending (stable: ties keep row order) and writes the
/// sums of confidence and correctness of the M equal-mass groups (numpy.array_split sizes:
/// the first N mod M groups one larger), candidates x M each.
void launch_equal_mass_groups(terms_view in, std::int64_t num_candidates, std::int32_t num_bins,
                              equal_mass_scratch scratch, double* d_group_confidence, double* d_group_correct);

}  // namespace calibench::kernels
