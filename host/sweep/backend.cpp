// The backend interface (host/sweep/backend.hpp): result bookkeeping, the public calls that
// check their inputs once before a backend's do_* implementation, and choosing a backend.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/metrics/metrics.hpp"
#include "host/sweep/backend.hpp"
#include "host/sweep/device.hpp"
#include "host/sweep/sweep_detail.hpp"

namespace calibench {

void sweep_result::reset(std::int64_t g, std::int32_t m) {
  num_candidates = g;
  num_bins = m;
  const auto gm = static_cast<std::size_t>(g * m);
  bin_count.assign(gm, 0);
  bin_sum_confidence.assign(gm, 0.0);
  bin_sum_correct.assign(gm, 0.0);
  for (auto* v : {&ece, &mce, &nll, &brier, &accuracy}) v->assign(static_cast<std::size_t>(g), 0.0);
  adaece.assign(static_cast<std::size_t>(g), std::numeric_limits<double>::quiet_NaN());
}

std::int64_t sweep_result::argmin(const std::vector<double>& metric) {
  std::int64_t best = -1;
  for (std::size_t g = 0; g < metric.size(); ++g) {
    if (std::isnan(metric[g])) continue;
    if (best < 0 || metric[g] < metric[static_cast<std::size_t>(best)]) best = static_cast<std::int64_t>(g);
  }
  return best;
}

namespace {

void check_temperatures(std::span<const double> temperatures) {
  for (std::size_t g = 0; g < temperatures.size(); ++g) {
    if (!(temperatures[g] > 0.0) || !std::isfinite(temperatures[g]))
      throw input_error(
          fmt::format("temperature candidate {} is {}; temperatures must be finite and > 0", g, temperatures[g]));
  }
}

std::vector<double> inverses(std::span<const double> temperatures) {
  std::vector<double> inv(temperatures.size());
  for (std::size_t g = 0; g < temperatures.size(); ++g) inv[g] = 1.0 / temperatures[g];
  return inv;
}

void check_labels(std::span<const std::int32_t> labels, std::int64_t num_classes) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes)
      throw input_error(fmt::format("label {} of sample {} is outside [0, {})", labels[i], i, num_classes));
  }
}

void check_options(const sweep_options& options) { CALIBENCH_EXPECTS(options.num_bins >= 1, "need at least one bin"); }

}  // namespace

// ---- class-temperature sessions ----------------------------------------------------------------

class_temperature_session::class_temperature_session(std::int64_t num_classes, std::span<const double> initial)
    : num_classes_(num_classes), temperatures_(initial.begin(), initial.end()) {
  if (static_cast<std::int64_t>(temperatures_.size()) != num_classes)
    throw input_error(fmt::format("{} initial temperatures for {} classes", temperatures_.size(), num_classes));
  check_temperatures(temperatures_);
  inverse_ = inverses(temperatures_);
}

void class_temperature_session::check_class(std::int32_t cls) const {
  if (cls < 0 || cls >= num_classes_) throw input_error(fmt::format("class {} outside [0, {})", cls, num_classes_));
}

sweep_result class_temperature_session::sweep(std::int32_t cls, std::span<const double> candidates) {
  check_class(cls);
  check_temperatures(candidates);
  return do_sweep(cls, inverses(candidates));
}

void class_temperature_session::set(std::int32_t cls, double temperature) {
  check_class(cls);
  check_temperatures(std::span<const double>(&temperature, 1));
  const double old_inverse = inverse_[cls];
  temperatures_[cls] = temperature;
  inverse_[cls] = 1.0 / temperature;
  if (++commits_ >= num_classes_) {
    commits_ = 0;
    do_refresh();
  } else {
    do_commit(cls, old_inverse, inverse_[cls]);
  }
}

// ---- the backend's public calls: checks, then the backend ------------------------------------

std::unique_ptr<resident_logits> sweep_backend::prepare(const logit_set& data) {
  const std::int64_t n = data.num_samples, k = data.num_classes;
  CALIBENCH_EXPECTS(static_cast<std::int64_t>(data.logits.size()) == n * k, "logits size is not N x K");
  CALIBENCH_EXPECTS(static_cast<std::int64_t>(data.labels.size()) == n, "labels size is not N");
  CALIBENCH_EXPECTS(n >= 1 && k >= 2, "need N >= 1 and K >= 2");
  check_labels(data.labels, k);  // the kernels index by label
  return do_prepare(data);
}

sweep_result sweep_backend::temperature(resident_logits& data, std::span<const double> temperatures,
                                        const sweep_options& options) {
  check_temperatures(temperatures);
  check_options(options);
  return do_temperature(data, inverses(temperatures), options);
}

sweep_result sweep_backend::inverse_temperature(resident_logits& data, const inverse_temperature_grid& grid,
                                                const sweep_options& options) {
  if (grid.count < 1) throw input_error("an inverse-temperature grid needs at least one point");
  if (!(grid.step >= 0.0) || !std::isfinite(grid.step))
    throw input_error(fmt::format("inverse-temperature grid step {} must be finite and >= 0", grid.step));
  for (std::int64_t g : {std::int64_t{0}, grid.count - 1}) {
    if (!(grid.at(g) > 0.0) || !std::isfinite(grid.at(g)))
      throw input_error(
          fmt::format("inverse temperature {} of the grid is {}; it must be finite and > 0", g, grid.at(g)));
  }
  check_options(options);
  return do_inverse_temperature(data, grid, options);
}

sweep_result sweep_backend::weight(resident_logits& data, std::span<const double> weights,
                                   const sweep_options& options) {
  for (std::size_t g = 0; g < weights.size(); ++g) {
    if (!(weights[g] >= 0.0 && weights[g] <= 1.0))
      throw input_error(fmt::format("weight candidate {} is {}; weights must lie in [0, 1]", g, weights[g]));
  }
  check_options(options);
  return do_weight(data, weights, options);
}

sweep_result sweep_backend::bin_temperature(resident_logits& data, const bin_temperature_problem& problem,
                                            std::span<const double> temperatures, const sweep_options& options) {
  check_temperatures(temperatures);
  check_temperatures(problem.temperatures);
  check_options(options);
  const std::int64_t n = data.host().num_samples;
  const auto num_bins = static_cast<std::int32_t>(problem.temperatures.size());
  if (static_cast<std::int64_t>(problem.sample_bin.size()) != n)
    throw input_error(fmt::format("{} bin assignments for {} samples", problem.sample_bin.size(), n));
  if (problem.target_bin < 0 || problem.target_bin >= num_bins)
    throw input_error(fmt::format("target bin {} outside [0, {})", problem.target_bin, num_bins));
  std::vector<std::int64_t> moving;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t b = problem.sample_bin[i];
    if (b < 0 || b >= num_bins)
      throw input_error(fmt::format("sample {} is in bin {} outside [0, {})", i, b, num_bins));
    if (b == problem.target_bin) moving.push_back(i);
  }
  return do_bin_temperature(data, problem, moving, inverses(temperatures), options);
}

std::unique_ptr<class_temperature_session> sweep_backend::class_temperature(resident_logits& data,
                                                                            std::span<const double> initial,
                                                                            const sweep_options& options) {
  check_options(options);
  return do_class_temperature(data, initial, options);
}

sweep_result sweep_backend::probability_sets(std::span<const float> probs, std::span<const std::int32_t> labels,
                                             std::int64_t num_candidates, std::int64_t num_classes,
                                             const sweep_options& options) {
  const auto n = static_cast<std::int64_t>(labels.size());
  CALIBENCH_EXPECTS(n >= 1 && num_classes >= 2, "need N >= 1 and K >= 2");
  CALIBENCH_EXPECTS(static_cast<std::int64_t>(probs.size()) == num_candidates * n * num_classes,
                    "probability sets are not G x N x K");
  check_labels(labels, num_classes);
  check_options(options);
  return do_probability_sets(probs, labels, num_candidates, num_classes, options);
}

std::vector<double> sweep_backend::sctl_grid(std::span<const double> l0, std::span<const double> l1,
                                             std::span<const double> normalised1, const sctl_lattice& lattice) {
  const std::size_t k = l0.size();
  CALIBENCH_EXPECTS(k >= 1 && l1.size() == k && normalised1.size() == k && lattice.grid >= 2, "sctl grid: shapes");
  double mean_l1 = 0;
  for (double v : l1) mean_l1 += v;
  mean_l1 /= static_cast<double>(k);
  return do_sctl_grid(l0, l1, normalised1, mean_l1, lattice);
}

// ---- choosing a backend ------------------------------------------------------------------------

backend_choice parse_backend_choice(std::string_view name) {
  if (name == "cpu") return backend_choice::cpu;
  if (name == "cuda") return backend_choice::cuda;
  if (name == "auto") return backend_choice::automatic;
  throw input_error(fmt::format("unknown backend '{}' (cpu, cuda or auto)", name));
}

const char* backend_choice_name(backend_choice choice) {
  switch (choice) {
    case backend_choice::cpu: return "cpu";
    case backend_choice::cuda: return "cuda";
    case backend_choice::automatic: return "auto";
  }
  return "?";
}

backend_choice backend_for_rule(backend_choice choice, binning rule) {
  const bool cuda_rule = rule != binning::torchmetrics && rule != binning::digitize_linspace;
  return choice == backend_choice::automatic && !cuda_rule ? backend_choice::cpu : choice;
}

#if !defined(CALIBENCH_HAVE_CUDA)
std::unique_ptr<sweep_backend> make_cuda_backend() {
  throw input_error("the CUDA backend is not built into this calibench (configure with nvcc available)");
}
#endif

std::unique_ptr<sweep_backend> make_backend(backend_choice choice) {
  switch (choice) {
    case backend_choice::cpu: return make_cpu_backend();
    case backend_choice::cuda: return make_cuda_backend();
    case backend_choice::automatic: break;
  }
  const device_report dev = discover_devices();
  return dev.device_count > 0 ? make_cuda_backend() : make_cpu_backend();
}

std::unique_ptr<sweep_backend> make_backend(const std::string& which) {
  return make_backend(parse_backend_choice(which));
}

}  // namespace calibench
