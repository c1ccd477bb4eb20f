// The batch sweep: one call evaluates G candidates of one parameter family on one logit set
// and returns per-candidate bin statistics and metrics (docs/sweeps.md). `sweep_backend` is the
// coarse interface both backends implement (host/sweep/cpu_backend.cpp, cuda_backend.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/calib_math.hpp"
#include "kernels/sctl_math.hpp"

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
  /// Report the candidate blocks as they finish (common/progress.hpp; `sweep-candidates` sets
  /// it, the fits do not: their own loops report). The CUDA backend runs one pass and ignores it.
  bool progress = false;
};

/// What a sweep returns: G candidates in the order given, M bins each.
struct sweep_result {
  std::int64_t num_candidates = 0;
  std::int32_t num_bins = 0;
  std::vector<std::int64_t> bin_count;                         ///< G x M
  std::vector<double> bin_sum_confidence;                      ///< G x M
  std::vector<double> bin_sum_correct;                         ///< G x M
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
/// fixed in O(1) per sample and candidate; `set` commits one class's temperature. The public
/// calls check their arguments and keep the temperatures; a backend implements the private
/// do_* calls on inverse temperatures 1/T (never z / T: mixing the two breaks exact ties
/// between classes that share a temperature).
class class_temperature_session {
 public:
  virtual ~class_temperature_session() = default;
  /// Candidates for class `cls` (each T > 0), every other class at its current temperature.
  sweep_result sweep(std::int32_t cls, std::span<const double> candidates);
  /// Commits temperature `temperature` (> 0) for class `cls`.
  void set(std::int32_t cls, double temperature);
  const std::vector<double>& temperatures() const { return temperatures_; }

 protected:
  /// Checks `initial` (one temperature > 0 per class of `num_classes`).
  class_temperature_session(std::int64_t num_classes, std::span<const double> initial);
  /// 1 / T of every class.
  const std::vector<double>& inverse() const { return inverse_; }

 private:
  virtual sweep_result do_sweep(std::int32_t cls, std::span<const double> inverse_candidates) = 0;
  /// Class `cls` moved from 1/T = old_inverse to new_inverse (inverse() already holds it).
  virtual void do_commit(std::int32_t cls, double old_inverse, double new_inverse) = 0;
  /// Recomputes every row's state from inverse(): every K commits, so that incremental
  /// rounding cannot drift.
  virtual void do_refresh() = 0;
  void check_class(std::int32_t cls) const;

  std::int64_t num_classes_;
  std::vector<double> temperatures_;
  std::vector<double> inverse_;
  std::int64_t commits_ = 0;
};

/// The squared (alpha, beta) objective of class-wise loss scaling on a grid x grid lattice:
/// alpha_j = alpha_lo + (alpha_hi - alpha_lo) j / (grid - 1) (alpha_hi exactly at j = grid - 1),
/// beta likewise (kernels/sctl_math.hpp).
using sctl_lattice = kernels::sctl_lattice;

/// A sweep backend. One call = one whole sweep; results are independent of thread count. The
/// public calls check their inputs once, for every backend, then call the backend's private
/// do_* implementation (nvbench's printer_base shape).
class sweep_backend {
 public:
  virtual ~sweep_backend() = default;
  /// "cpu (2 threads)" or "cuda (NVIDIA H100 ...)".
  std::string name() const { return do_name(); }
  /// "cpu" or "cuda".
  std::string kind() const { return do_kind(); }
  /// Makes `data` resident; the result must not outlive `data`'s storage. Checks the shape
  /// (N >= 1, K >= 2, N x K logits, N labels) and that every label lies in [0, K).
  std::unique_ptr<resident_logits> prepare(const logit_set& data);

  /// p = softmax(z / T) for each of the given temperatures (T > 0), one exp per logit and
  /// candidate.
  sweep_result temperature(resident_logits& data, std::span<const double> temperatures, const sweep_options& options);
  /// p = softmax(z * b_g) on an arithmetic inverse-temperature grid (b_g > 0), by the
  /// multiply recurrence (re-anchored with an exact exp every few dozen steps).
  sweep_result inverse_temperature(resident_logits& data, const inverse_temperature_grid& grid,
                                   const sweep_options& options);
  /// p_a = a softmax(z) + (1 - a) / K for each weight a in [0, 1]; the prediction stays the
  /// uncalibrated argmax (weight scaling never changes decisions).
  sweep_result weight(resident_logits& data, std::span<const double> weights, const sweep_options& options);
  /// Samples of `problem.target_bin` at each candidate temperature, all others at their
  /// bin's current temperature.
  sweep_result bin_temperature(resident_logits& data, const bin_temperature_problem& problem,
                               std::span<const double> temperatures, const sweep_options& options);
  /// Starts a per-class temperature search from `initial` (K temperatures).
  std::unique_ptr<class_temperature_session> class_temperature(resident_logits& data, std::span<const double> initial,
                                                               const sweep_options& options);
  /// Arbitrary candidates: `probs` holds G probability matrices (G x N x K, row-major).
  sweep_result probability_sets(std::span<const float> probs, std::span<const std::int32_t> labels,
                                std::int64_t num_candidates, std::int64_t num_classes, const sweep_options& options);
  /// The class-wise loss scaling objective at every pair of `lattice`, alpha-major
  /// (values[j * grid + c]): sum over the K classes, in class order, of (l0_i - w_i (l1_i - l0_i)
  /// - mean(l1))^2 with w_i = beta sigmoid(normalised1_i / alpha) - beta / 2.
  std::vector<double> sctl_grid(std::span<const double> l0, std::span<const double> l1,
                                std::span<const double> normalised1, const sctl_lattice& lattice);

 private:
  virtual std::string do_name() const = 0;
  virtual std::string do_kind() const = 0;
  virtual std::unique_ptr<resident_logits> do_prepare(const logit_set& data) = 0;
  /// The do_* calls of the temperature families receive inverse temperatures 1/T.
  virtual sweep_result do_temperature(resident_logits& data, std::span<const double> inverse,
                                      const sweep_options& options) = 0;
  virtual sweep_result do_inverse_temperature(resident_logits& data, const inverse_temperature_grid& grid,
                                              const sweep_options& options) = 0;
  virtual sweep_result do_weight(resident_logits& data, std::span<const double> weights,
                                 const sweep_options& options) = 0;
  /// `moving`: the rows of the target bin, ascending.
  virtual sweep_result do_bin_temperature(resident_logits& data, const bin_temperature_problem& problem,
                                          std::span<const std::int64_t> moving, std::span<const double> inverse,
                                          const sweep_options& options) = 0;
  virtual std::unique_ptr<class_temperature_session> do_class_temperature(resident_logits& data,
                                                                          std::span<const double> initial,
                                                                          const sweep_options& options) = 0;
  virtual sweep_result do_probability_sets(std::span<const float> probs, std::span<const std::int32_t> labels,
                                           std::int64_t num_candidates, std::int64_t num_classes,
                                           const sweep_options& options) = 0;
  virtual std::vector<double> do_sctl_grid(std::span<const double> l0, std::span<const double> l1,
                                           std::span<const double> normalised1, double mean_l1,
                                           const sctl_lattice& lattice) = 0;
};

/// Where a sweep runs: the CPU, a CUDA device, or auto (CUDA only when a device answers).
enum class backend_choice : std::int32_t { cpu, cuda, automatic };

/// "cpu" | "cuda" | "auto"; input_error for any other name.
backend_choice parse_backend_choice(std::string_view name);
const char* backend_choice_name(backend_choice choice);

/// `auto` takes the CPU backend for bin rules only it sweeps (torchmetrics,
/// digitize-linspace), so that auto never fails where cpu would work; other choices pass.
backend_choice backend_for_rule(backend_choice choice, binning rule);

/// The CPU backend (always built): OpenMP over fixed chunks, double accumulation.
std::unique_ptr<sweep_backend> make_cpu_backend();

/// The CUDA backend; throws input_error when it is not built or no device answers.
std::unique_ptr<sweep_backend> make_cuda_backend();

std::unique_ptr<sweep_backend> make_backend(backend_choice choice);
/// make_backend(parse_backend_choice(which)).
std::unique_ptr<sweep_backend> make_backend(const std::string& which);

}  // namespace calibench
