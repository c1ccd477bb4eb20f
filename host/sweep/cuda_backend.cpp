// CUDA sweep backend, host side. prepare() makes logits and labels device-resident once, with
// each row's max logit and prediction. Every family then runs one chunked pipeline:
//   family kernel -> per-(candidate, sample) terms (kernels/sweep_launch.hpp)
//   -> equal-width bin statistics (fixed-order reductions: bit-reproducible)
//   -> [adaECE: per-candidate stable segmented sort, equal-mass group sums]
//   -> copied into sweep_result and finished by detail::finish, the CPU backend's own code.
// Candidates are chunked so that a chunk's buffers stay under half of the free device memory.
// Not thread-safe: one sweep at a time per backend and per resident logit set.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/metrics/metrics.hpp"
#include "host/sweep/backend.hpp"
#include "host/sweep/cuda_testing.hpp"
#include "host/sweep/device.hpp"
#include "host/sweep/device_buffer.hpp"
#include "host/sweep/sweep_detail.hpp"
#include "kernels/cuda_check.hpp"
#include "kernels/sctl_grid.hpp"
#include "kernels/sweep_launch.hpp"

namespace calibench {
namespace {

/// Recurrence steps between exact exps on arithmetic inverse-temperature grids (~32 ulps at most).
constexpr std::int64_t k_anchor_every = 32;
/// Larger chunks do not run faster; this keeps a sweep's footprint modest on big devices.
constexpr std::size_t k_max_chunk_bytes = std::size_t{4} << 30;
/// (candidate, sample) pairs per chunk: far more than enough to fill a GPU.
constexpr std::int64_t k_max_chunk_items = std::int64_t{1} << 28;

std::atomic<std::int64_t> g_max_chunk_candidates{0};

/// Scratch buffers of the sweeps, kept between calls so that timed sweeps do not allocate.
enum slot : int {
  // one chunk's terms
  s_conf,
  s_correct,
  s_log_p,
  s_brier,
  // bin reduction
  s_part_conf,
  s_part_count,
  s_part_correct,
  s_part_nll,
  s_part_brier,
  s_tot_count,
  s_tot_conf,
  s_tot_correct,
  s_tot_nll,
  s_tot_brier,
  s_tot_accuracy,
  // equal-mass groups
  s_sorted,
  s_index_in,
  s_index_out,
  s_offsets,
  s_sort_temp,
  s_group_conf,
  s_group_correct,
  // per-candidate parameters and inputs of a chunk
  s_params,
  s_probs,
  s_labels,
  // per-sample terms (one candidate's worth) and per-sample inputs
  s_base_conf,
  s_base_correct,
  s_base_log_p,
  s_base_brier,
  s_p_label,
  s_p_sq,
  s_inv_per_sample,
  s_rows,
  slot_count
};

class workspace {
 public:
  template <class T>
  T* get(slot s, std::int64_t count) {
    return buffers_[s].as<T>(count);
  }
  std::size_t bytes() const {
    std::size_t total = 0;
    for (const auto& b : buffers_) total += b.size();
    return total;
  }
  /// Terms of one candidate for N samples (per-sample bases and backgrounds).
  kernels::terms_view base_terms(std::int64_t n) {
    return {get<double>(s_base_conf, n), get<std::uint8_t>(s_base_correct, n), get<double>(s_base_log_p, n),
            get<double>(s_base_brier, n), n};
  }

 private:
  std::array<device_buffer, slot_count> buffers_;
};

/// Candidates per chunk: the chunk's buffers under half of the free device memory.
std::int64_t plan_chunk(const workspace& ws, std::int64_t num_candidates, std::int64_t n, std::int32_t m, bool adaece,
                        std::size_t extra_per_candidate) {
  const auto un = static_cast<std::size_t>(n), um = static_cast<std::size_t>(m);
  const auto tiles = static_cast<std::size_t>(kernels::bin_tiles(n));
  std::size_t per = un * (3 * sizeof(double) + 1) + tiles * (um * 16 + 16) + um * 24 + 24 + 8 + extra_per_candidate;
  // Sorted keys, two index arrays and about as much again for CUB's double buffers.
  if (adaece) per += un * 32 + 8 + um * 16;
  std::size_t free_bytes = 0, total_bytes = 0;
  CALIBENCH_CUDA_TRY(cudaMemGetInfo(&free_bytes, &total_bytes));
  const std::size_t budget = std::min(k_max_chunk_bytes, (free_bytes + ws.bytes()) / 2);
  auto gc = static_cast<std::int64_t>(budget / per);
  gc = std::max<std::int64_t>(gc, 1);
  gc = std::min(gc, std::max<std::int64_t>(1, k_max_chunk_items / n));
  gc = std::min(gc, num_candidates);
  const std::int64_t cap = g_max_chunk_candidates.load();
  if (cap > 0) gc = std::min(gc, cap);
  // Whole anchor blocks per chunk, so the recurrence never recomputes a block's head.
  if (gc < num_candidates && gc > k_anchor_every) gc -= gc % k_anchor_every;
  return gc;
}

void check_bins(const sweep_options& options) {
  CALIBENCH_EXPECTS(options.num_bins >= 1, "need at least one bin");
  const binning rule = detail::top_label_rule(options.bin_rule);
  if (rule != binning::right_closed && rule != binning::left_closed)
    throw input_error(
        fmt::format("the CUDA backend sweeps right-closed, guo-strict and left-closed bins; "
                    "--binning {} runs on the CPU backend (--backend cpu)",
                    options.bin_rule == binning::torchmetrics ? "torchmetrics" : "digitize-linspace"));
  const std::int32_t most = kernels::max_bins();
  if (options.num_bins > most)
    throw input_error(fmt::format("{} bins; the CUDA backend handles at most {}", options.num_bins, most));
}

/// The shared driver: `fill(g0, gc, terms)` writes the terms of candidates [g0, g0 + gc).
template <class Fill>
sweep_result run_chunks(workspace& ws, std::int64_t num_candidates, std::int64_t n, const sweep_options& options,
                        bool want_adaece, std::size_t extra_per_candidate, Fill&& fill) {
  check_bins(options);
  const std::int32_t m = options.num_bins;
  sweep_result res;
  res.reset(num_candidates, m);
  if (num_candidates == 0) return res;

  const std::int64_t gc_max = plan_chunk(ws, num_candidates, n, m, want_adaece, extra_per_candidate);
  const std::int64_t tiles = kernels::bin_tiles(n);
  const std::int64_t items = gc_max * n, bins = gc_max * m;
  const kernels::terms_view terms{ws.get<double>(s_conf, items), ws.get<std::uint8_t>(s_correct, items),
                                  ws.get<double>(s_log_p, items), ws.get<double>(s_brier, items), n};
  const kernels::bin_partials partials{
      ws.get<double>(s_part_conf, bins * tiles), ws.get<std::int32_t>(s_part_count, bins * tiles),
      ws.get<std::int32_t>(s_part_correct, bins * tiles), ws.get<double>(s_part_nll, gc_max * tiles),
      ws.get<double>(s_part_brier, gc_max * tiles)};
  const kernels::bin_totals totals{ws.get<std::int64_t>(s_tot_count, bins), ws.get<double>(s_tot_conf, bins),
                                   ws.get<double>(s_tot_correct, bins),     ws.get<double>(s_tot_nll, gc_max),
                                   ws.get<double>(s_tot_brier, gc_max),     ws.get<double>(s_tot_accuracy, gc_max)};
  kernels::equal_mass_scratch sort{};
  double* d_group_conf = nullptr;
  double* d_group_correct = nullptr;
  std::vector<double> group_conf, group_correct;
  if (want_adaece) {
    sort.sorted_confidence = ws.get<double>(s_sorted, items);
    sort.index_in = ws.get<std::int32_t>(s_index_in, items);
    sort.index_out = ws.get<std::int32_t>(s_index_out, items);
    sort.offsets = ws.get<std::int64_t>(s_offsets, gc_max + 1);
    d_group_conf = ws.get<double>(s_group_conf, bins);
    d_group_correct = ws.get<double>(s_group_correct, bins);
    group_conf.resize(static_cast<std::size_t>(bins));
    group_correct.resize(static_cast<std::size_t>(bins));
  }

  for (std::int64_t g0 = 0; g0 < num_candidates; g0 += gc_max) {
    const std::int64_t gc = std::min(gc_max, num_candidates - g0);
    fill(g0, gc, terms);
    kernels::launch_bin_statistics(terms, gc, m, detail::top_label_rule(options.bin_rule), partials, totals);
    download(res.bin_count.data() + g0 * m, totals.count, gc * m);
    download(res.bin_sum_confidence.data() + g0 * m, totals.sum_confidence, gc * m);
    download(res.bin_sum_correct.data() + g0 * m, totals.sum_correct, gc * m);
    download(res.nll.data() + g0, totals.nll, gc);
    download(res.brier.data() + g0, totals.brier, gc);
    download(res.accuracy.data() + g0, totals.correct, gc);
    if (want_adaece) {
      sort.temp_bytes = kernels::equal_mass_temp_bytes(gc, n);
      sort.temp = ws.get<std::byte>(s_sort_temp, static_cast<std::int64_t>(std::max<std::size_t>(sort.temp_bytes, 1)));
      kernels::launch_equal_mass_groups(terms, gc, m, sort, d_group_conf, d_group_correct);
      download(group_conf.data(), d_group_conf, gc * m);
      download(group_correct.data(), d_group_correct, gc * m);
      // The CPU's adaece_of formula, group by group in order.
      for (std::int64_t g = 0; g < gc; ++g) {
        double total = 0;
        std::int64_t groups = 0;
        for (std::int32_t b = 0; b < m; ++b) {
          const std::int64_t size = array_split_size(n, m, b);
          if (size == 0) continue;
          const double sz = static_cast<double>(size);
          total += std::fabs(group_correct[g * m + b] / sz - group_conf[g * m + b] / sz);
          ++groups;
        }
        res.adaece[g0 + g] = total / static_cast<double>(groups);
      }
    }
  }
  detail::finish(res, n);
  return res;
}

class cuda_resident final : public resident_logits {
 public:
  /// `data` was checked by sweep_backend::prepare (a label outside [0, K) would make the
  /// kernels read out of bounds).
  explicit cuda_resident(const logit_set& data) : data_(data) {
    const std::int64_t n = data.num_samples, k = data.num_classes;
    logits_ = logits_buf_.as<float>(n * k);
    labels_ = labels_buf_.as<std::int32_t>(n);
    max_logit_ = max_buf_.as<double>(n);
    prediction_ = pred_buf_.as<std::int32_t>(n);
    upload(logits_, data.logits.data(), n * k);
    upload(labels_, data.labels.data(), n);
    kernels::launch_row_argmax(logits_, n, k, max_logit_, prediction_);
    CALIBENCH_CUDA_TRY(cudaDeviceSynchronize());
  }
  const logit_set& host() const override { return data_; }
  std::int64_t n() const { return data_.num_samples; }
  std::int64_t k() const { return data_.num_classes; }
  const float* logits() const { return logits_; }
  const std::int32_t* labels() const { return labels_; }
  const double* max_logit() const { return max_logit_; }
  const std::int32_t* prediction() const { return prediction_; }
  workspace& ws() { return ws_; }

 private:
  logit_set data_;
  device_buffer logits_buf_, labels_buf_, max_buf_, pred_buf_;
  float* logits_ = nullptr;
  std::int32_t* labels_ = nullptr;
  double* max_logit_ = nullptr;
  std::int32_t* prediction_ = nullptr;
  workspace ws_;
};

cuda_resident& as_cuda(resident_logits& data) {
  auto* p = dynamic_cast<cuda_resident*>(&data);
  CALIBENCH_EXPECTS(p != nullptr, "logits were prepared by another backend");
  return *p;
}

/// Per-class temperature search on the device (see class_temperature_session): the CPU
/// session's state and update rules, row by row, in kernels/sweep_class.cu.
class cuda_class_session final : public class_temperature_session {
 public:
  cuda_class_session(cuda_resident& data, std::span<const double> initial, const sweep_options& options)
      : class_temperature_session(data.k(), initial), data_(data), options_(options) {
    const std::int64_t k = data_.k(), n = data_.n();
    inverse_d_ = inverse_buf_.as<double>(k);
    rows_ = rows_buf_.as<class_row_state>(n);
    state_ = state_buf_.as<class_step_state<double>>(n);
    class_logit_ = class_logit_buf_.as<double>(n);
    do_refresh();
  }

 private:
  sweep_result do_sweep(std::int32_t cls, std::span<const double> inv) override {
    const std::int64_t n = data_.n(), k = data_.k();
    kernels::launch_class_rest_state(data_.logits(), data_.labels(), n, k, inverse_d_, rows_, cls, state_,
                                     class_logit_);
    workspace& ws = data_.ws();
    return run_chunks(ws, static_cast<std::int64_t>(inv.size()), n, options_, options_.adaece, 0,
                      [&](std::int64_t g0, std::int64_t gc, const kernels::terms_view& terms) {
                        double* d_inv = ws.get<double>(s_params, gc);
                        upload(d_inv, inv.data() + g0, gc);
                        kernels::launch_class_candidate_terms(data_.labels(), n, state_, class_logit_, cls, d_inv, gc,
                                                              terms);
                      });
  }

  void do_commit(std::int32_t cls, double old_inverse, double new_inverse) override {
    upload(inverse_d_ + cls, inverse().data() + cls, 1);
    kernels::launch_class_commit(data_.logits(), data_.n(), data_.k(), inverse_d_, cls, old_inverse, new_inverse,
                                 rows_);
  }

  void do_refresh() override {
    upload(inverse_d_, inverse().data(), data_.k());
    kernels::launch_class_refresh(data_.logits(), data_.n(), data_.k(), inverse_d_, rows_);
  }

  cuda_resident& data_;
  sweep_options options_;
  device_buffer inverse_buf_, rows_buf_, state_buf_, class_logit_buf_;
  double* inverse_d_ = nullptr;
  class_row_state* rows_ = nullptr;
  class_step_state<double>* state_ = nullptr;
  double* class_logit_ = nullptr;
};

class cuda_backend final : public sweep_backend {
 public:
  explicit cuda_backend(std::string device_name) : name_("cuda (" + std::move(device_name) + ")") {}

 private:
  std::string do_name() const override { return name_; }
  std::string do_kind() const override { return "cuda"; }

  std::unique_ptr<resident_logits> do_prepare(const logit_set& data) override {
    return std::make_unique<cuda_resident>(data);
  }

  sweep_result do_temperature(resident_logits& data, std::span<const double> inv,
                              const sweep_options& options) override {
    auto& r = as_cuda(data);
    workspace& ws = r.ws();
    return run_chunks(ws, static_cast<std::int64_t>(inv.size()), r.n(), options, options.adaece, 0,
                      [&](std::int64_t g0, std::int64_t gc, const kernels::terms_view& terms) {
                        double* d_inv = ws.get<double>(s_params, gc);
                        upload(d_inv, inv.data() + g0, gc);
                        kernels::launch_temperature_terms(r.logits(), r.labels(), r.max_logit(), r.prediction(), r.n(),
                                                          r.k(), nullptr, r.n(), d_inv, gc, terms);
                      });
  }

  sweep_result do_inverse_temperature(resident_logits& data, const inverse_temperature_grid& grid,
                                      const sweep_options& options) override {
    auto& r = as_cuda(data);
    return run_chunks(r.ws(), grid.count, r.n(), options, options.adaece, 0,
                      [&](std::int64_t g0, std::int64_t gc, const kernels::terms_view& terms) {
                        kernels::launch_inverse_temperature_terms(r.logits(), r.labels(), r.max_logit(), r.prediction(),
                                                                  r.n(), r.k(), grid.start, grid.step, g0, g0 + gc,
                                                                  k_anchor_every, terms);
                      });
  }

  sweep_result do_weight(resident_logits& data, std::span<const double> weights,
                         const sweep_options& options) override {
    auto& r = as_cuda(data);
    const std::int64_t n = r.n();
    workspace& ws = r.ws();
    // Per-sample confidence, label probability and sum of squares, once.
    const kernels::terms_view base = ws.base_terms(n);
    kernels::launch_sample_terms(r.logits(), r.labels(), r.max_logit(), r.prediction(), n, r.k(), nullptr, 1.0, base);
    double* d_p_label = ws.get<double>(s_p_label, n);
    double* d_p_sq = ws.get<double>(s_p_sq, n);
    kernels::launch_weight_base(base, d_p_label, d_p_sq);
    const double kd = static_cast<double>(r.k());
    sweep_result res = run_chunks(ws, static_cast<std::int64_t>(weights.size()), n, options, false, 0,
                                  [&](std::int64_t g0, std::int64_t gc, const kernels::terms_view& terms) {
                                    double* d_w = ws.get<double>(s_params, gc);
                                    upload(d_w, weights.data() + g0, gc);
                                    kernels::launch_weight_terms(base, d_p_label, d_p_sq, kd, d_w, gc, terms);
                                  });
    if (options.adaece) {
      // O(N log N + G M) on the host: the groups do not depend on the weight.
      std::vector<double> conf(static_cast<std::size_t>(n));
      std::vector<std::uint8_t> hit(static_cast<std::size_t>(n));
      download(conf.data(), base.confidence, n);
      download(hit.data(), base.correct, n);
      detail::weight_adaece(conf, hit, weights, kd, options.num_bins, res);
    }
    return res;
  }

  sweep_result do_bin_temperature(resident_logits& data, const bin_temperature_problem& problem,
                                  std::span<const std::int64_t> moving, std::span<const double> inv,
                                  const sweep_options& options) override {
    auto& r = as_cuda(data);
    const std::int64_t n = r.n();
    std::vector<double> inv_per_sample(static_cast<std::size_t>(n), 1.0);
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int32_t b = problem.sample_bin[i];
      if (b != problem.target_bin) inv_per_sample[i] = 1.0 / problem.temperatures[b];
    }
    workspace& ws = r.ws();
    double* d_inv_per_sample = ws.get<double>(s_inv_per_sample, n);
    upload(d_inv_per_sample, inv_per_sample.data(), n);
    const auto num_moving = static_cast<std::int64_t>(moving.size());
    std::int64_t* d_rows = ws.get<std::int64_t>(s_rows, std::max<std::int64_t>(num_moving, 1));
    upload(d_rows, moving.data(), num_moving);
    // The other rows' terms do not move with the candidates: computed once, then copied into
    // every candidate before the moving rows are evaluated over them.
    const kernels::terms_view background = ws.base_terms(n);
    kernels::launch_sample_terms(r.logits(), r.labels(), r.max_logit(), r.prediction(), n, r.k(), d_inv_per_sample, 1.0,
                                 background);
    return run_chunks(ws, static_cast<std::int64_t>(inv.size()), n, options, options.adaece, 0,
                      [&](std::int64_t g0, std::int64_t gc, const kernels::terms_view& terms) {
                        kernels::launch_broadcast_terms(background, gc, terms);
                        double* d_inv = ws.get<double>(s_params, gc);
                        upload(d_inv, inv.data() + g0, gc);
                        kernels::launch_temperature_terms(r.logits(), r.labels(), r.max_logit(), r.prediction(), n,
                                                          r.k(), d_rows, num_moving, d_inv, gc, terms);
                      });
  }

  std::unique_ptr<class_temperature_session> do_class_temperature(resident_logits& data,
                                                                  std::span<const double> initial,
                                                                  const sweep_options& options) override {
    return std::make_unique<cuda_class_session>(as_cuda(data), initial, options);
  }

  sweep_result do_probability_sets(std::span<const float> probs, std::span<const std::int32_t> labels,
                                   std::int64_t num_candidates, std::int64_t num_classes,
                                   const sweep_options& options) override {
    const auto n = static_cast<std::int64_t>(labels.size());
    const std::int64_t k = num_classes;
    std::int32_t* d_labels = ws_.get<std::int32_t>(s_labels, n);
    upload(d_labels, labels.data(), n);
    const auto extra = static_cast<std::size_t>(n * k) * sizeof(float);
    return run_chunks(ws_, num_candidates, n, options, options.adaece, extra,
                      [&](std::int64_t g0, std::int64_t gc, const kernels::terms_view& terms) {
                        float* d_probs = ws_.get<float>(s_probs, gc * n * k);
                        upload(d_probs, probs.data() + g0 * n * k, gc * n * k);
                        kernels::launch_probability_terms(d_probs, d_labels, n, k, gc, terms);
                      });
  }

  std::vector<double> do_sctl_grid(std::span<const double> l0, std::span<const double> l1,
                                   std::span<const double> normalised1, double mean_l1,
                                   const sctl_lattice& lattice) override {
    const auto k = static_cast<std::int64_t>(l0.size());
    device_buffer l0_buf, l1_buf, norm_buf, values_buf;
    double* d_l0 = l0_buf.as<double>(k);
    double* d_l1 = l1_buf.as<double>(k);
    double* d_norm = norm_buf.as<double>(k);
    double* d_values = values_buf.as<double>(lattice.grid * lattice.grid);
    upload(d_l0, l0.data(), k);
    upload(d_l1, l1.data(), k);
    upload(d_norm, normalised1.data(), k);
    kernels::launch_sctl_grid(d_l0, d_l1, d_norm, k, mean_l1, lattice, d_values);
    CALIBENCH_CUDA_TRY(cudaDeviceSynchronize());
    std::vector<double> values(static_cast<std::size_t>(lattice.grid * lattice.grid));
    download(values.data(), d_values, lattice.grid * lattice.grid);
    return values;
  }

  std::string name_;
  workspace ws_;  // probability sets have no resident logit set
};

}  // namespace

namespace cuda_sweep_testing {
std::int64_t set_max_chunk_candidates(std::int64_t candidates) {
  return g_max_chunk_candidates.exchange(std::max<std::int64_t>(candidates, 0));
}
}  // namespace cuda_sweep_testing

std::unique_ptr<sweep_backend> make_cuda_backend() {
  const device_report dev = discover_devices();
  // Asking for a device that is not there is a usage error (exit 2), like any other option
  // this machine cannot serve.
  if (!dev.cuda_built) throw input_error("the CUDA backend is not built into this calibench");
  if (dev.device_count == 0) throw input_error("no CUDA device for the CUDA backend: " + dev.reason);
  return std::make_unique<cuda_backend>(dev.name);
}

}  // namespace calibench
