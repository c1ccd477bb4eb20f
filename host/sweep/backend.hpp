// The batch sweep: one call evaluates G candidates of one parameter family on one logit set
// and returns per-candidate bin statistics and metrics (DESIGN section 5, docs/sweeps.md).
// `sweep_backend` is the coarse interface both backends implement.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/calib_math.hpp"

namespace calibench {

/// Host view of one split as the sweeps read it: float32 logits, int32 labels.
struct logit_set {
  std::span<const float> logits;         ///< N x K row-major
  std::span<const std::int32_t> labels;  ///< N, in [0, K)
  std::int64_t num_samples = 0;
  std::int64_t num_classes = 0;
};

struct sweep_options {
  std::int32_t num_bins = 15;
  binning bin_rule = binning::right_closed;
  /// Equal-mass bins need each candidate's confidence order (a sort per candidate); turn
  /// this off when only equal-width metrics are needed (e.g. class-based TS on ECE).
  bool adaece = true;
};

/// What a sweep returns: G candidates in the order given, M bins each.
struct sweep_result {
  std::int64_t num_candidates = 0;
  std::int32_t num_bins = 0;
  std::vector<std::int64_t> bin_count;     ///< G x M
  std::vector<double> bin_sum_confidence;  ///< G x M
  std::vector<double> bin_sum_correct;     ///< G x M
  std::vector<double> ece, mce, adaece, nll, brier, accuracy;  ///< G each; adaece NaN when not asked

  /// Index of the smallest value of `metric` (lowest index on ties; NaN never wins).
  static std::int64_t argmin(const std::vector<double>& metric);
  /// Allocates G x M bins and G metrics, zeroed (adaece NaN).
  void reset(std::int64_t num_candidates, std::int32_t num_bins);
};

/// An arithmetic grid of inverse temperatures b_g = start + g * step (g = 0..count-1): the
/// family that the multiply recurrence exp(x b_{g+1}) = exp(x b_g) exp(x step) serves.
struct inverse_temperature_grid {
  double start = 1.0;
  double step = 0.0;
  std::int64_t count = 1;
  double at(std::int64_t g) const { return start + static_cast<double>(g) * step; }
};

/// Per-confidence-bin temperatures: each sample belongs to one calibration bin with its own
/// temperature; the candidates replace the temperature of `target_bin` only.
struct bin_temperature_problem {
  std::span<const std::int32_t> sample_bin;  ///< N, calibration bin of each sample
  std::span<const double> temperatures;      ///< current temperature of each calibration bin
  std::int32_t target_bin = 0;
};

/// Logits made resident for a backend (a device copy for CUDA, a view for the CPU).
class resident_logits {
 public:
  virtual ~resident_logits() = default;
  virtual const logit_set& host() const = 0;
};

/// Per-class temperature search state (the step of class-based TS): holds the current
/// temperature of every class; `sweep` evaluates candidates for one class with the others
/// fixed in O(1) per sample and candidate; `set` commits one class's temperature.
class class_temperature_session {
 public:
  virtual ~class_temperature_session() = default;
  virtual sweep_result sweep(std::int32_t cls, std::span<const double> candidates) = 0;
  virtual void set(std::int32_t cls, double temperature) = 0;
  virtual const std::vector<double>& temperatures() const = 0;
};

/// A sweep backend. One call = one whole sweep; results are independent of thread count.
class sweep_backend {
 public:
  virtual ~sweep_backend() = default;
  /// "cpu (2 threads)" or "cuda (NVIDIA H100 ...)".
  virtual std::string name() const = 0;
  /// Makes `data` resident; the result must not outlive `data`'s storage.
  virtual std::unique_ptr<resident_logits> prepare(const logit_set& data) = 0;

  /// p = softmax(z / T) for each of the given temperatures (T > 0), one exp per logit and
  /// candidate.
  virtual sweep_result temperature(resident_logits& data, std::span<const double> temperatures,
                                   const sweep_options& options) = 0;
  /// p = softmax(z * b_g) on an arithmetic inverse-temperature grid (b_g > 0), by the
  /// multiply recurrence (re-anchored with an exact exp every few dozen steps).
  virtual sweep_result inverse_temperature(resident_logits& data, const inverse_temperature_grid& grid,
                                           const sweep_options& options) = 0;
  /// p_a = a softmax(z) + (1 - a) / K for each weight a in [0, 1]; the prediction stays the
  /// uncalibrated argmax (weight scaling never changes decisions).
  virtual sweep_result weight(resident_logits& data, std::span<const double> weights, const sweep_options& options) = 0;
  /// Samples of `problem.target_bin` at each candidate temperature, all others at their
  /// bin's current temperature.
  virtual sweep_result bin_temperature(resident_logits& data, const bin_temperature_problem& problem,
                                       std::span<const double> temperatures, const sweep_options& options) = 0;
  /// Starts a per-class temperature search from `initial` (K temperatures).
  virtual std::unique_ptr<class_temperature_session> class_temperature(resident_logits& data,
                                                                       std::span<const double> initial,
                                                                       const sweep_options& options) = 0;
  /// Arbitrary candidates: `probs` holds G probability matrices (G x N x K, row-major).
  virtual sweep_result probability_sets(std::span<const float> probs, std::span<const std::int32_t> labels,
                                        std::int64_t num_candidates, std::int64_t num_classes,
                                        const sweep_options& options) = 0;
};

/// The CPU backend (always built): OpenMP over fixed chunks, double accumulation.
std::unique_ptr<sweep_backend> make_cpu_backend();

/// The CUDA backend; throws calibench::error when not built or no device answers.
std::unique_ptr<sweep_backend> make_cuda_backend();

/// "cpu", "cuda" or "auto" (CUDA only when a device answers). Throws input_error for others.
/// Throws input_error unless `which` is cpu, cuda or auto.
void check_backend_name(const std::string& which);
std::unique_ptr<sweep_backend> make_backend(const std::string& which);

}  // namespace calibench
