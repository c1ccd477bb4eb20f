// CPU sweep backend: every family runs through one driver that walks fixed row chunks in
// parallel (OpenMP), accumulates per-candidate bin statistics in double per chunk and adds
// the chunks in order, so results do not depend on the thread count. The per-sample math is
// the shared code of kernels/calib_math.hpp.
#include <omp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/parallel.hpp"
#include "common/progress.hpp"
#include "host/metrics/metrics.hpp"
#include "host/sweep/backend.hpp"
#include "host/sweep/sweep_detail.hpp"

namespace calibench {
namespace {

/// Candidates evaluated together in the temperature kernels: the innermost loops run over
/// these lanes (two AVX-512 vectors of doubles), so any K vectorises.
constexpr std::int64_t k_lanes = 16;
/// Rows per work item. Fixed, so the order of floating-point additions is too.
constexpr std::int64_t k_row_chunk = 1024;
/// Lane groups between exact exps on arithmetic inverse-temperature grids. An anchor costs
/// one exp per logit and lane, so anchoring every 16 groups (256 candidates) leaves 1/16 exp
/// per logit-candidate; each group multiplies by exp(x * lanes * step), adding about one ulp
/// of relative error, so exp(x b) stays within ~16 ulps (4e-15 relative).
constexpr std::int64_t k_anchor_groups = 16;
/// Candidates per block when confidences need not be kept.
constexpr std::int64_t k_max_block = 512;
/// Per-candidate confidences kept at once for equal-mass bins (doubles; 128 MiB).
constexpr std::int64_t k_confidence_budget = std::int64_t{1} << 24;

class cpu_resident final : public resident_logits {
 public:
  /// `data` was checked by sweep_backend::prepare.
  explicit cpu_resident(const logit_set& data) : data_(data) {
    const std::int64_t n = data.num_samples, k = data.num_classes;
    max_logit_.resize(static_cast<std::size_t>(n));
    prediction_.resize(static_cast<std::size_t>(n));
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const float* row = data.logits.data() + i * k;
      std::int32_t best = 0;
      for (std::int64_t j = 1; j < k; ++j) {
        if (row[j] > row[best]) best = static_cast<std::int32_t>(j);
      }
      prediction_[i] = best;
      max_logit_[i] = row[best];
    }
  }
  const logit_set& host() const override { return data_; }
  const std::vector<double>& max_logit() const { return max_logit_; }
  const std::vector<std::int32_t>& prediction() const { return prediction_; }

 private:
  logit_set data_;
  std::vector<double> max_logit_;
  std::vector<std::int32_t> prediction_;
};

cpu_resident& as_cpu(resident_logits& data) {
  auto* p = dynamic_cast<cpu_resident*>(&data);
  CALIBENCH_EXPECTS(p != nullptr, "logits were prepared by another backend");
  return *p;
}

/// Accumulators of one work item (a row chunk) for a block of candidates.
struct chunk_partial {
  std::vector<std::int64_t> count;
  std::vector<double> sum_confidence, sum_correct, nll, brier, correct;
  void reset(std::int64_t block, std::int32_t bins) {
    const auto gm = static_cast<std::size_t>(block * bins);
    count.assign(gm, 0);
    sum_confidence.assign(gm, 0.0);
    sum_correct.assign(gm, 0.0);
    nll.assign(static_cast<std::size_t>(block), 0.0);
    brier.assign(static_cast<std::size_t>(block), 0.0);
    correct.assign(static_cast<std::size_t>(block), 0.0);
  }
};

/// Rows that do not move with the candidates (bin-temperature sweeps): their terms, fixed.
struct background {
  std::vector<std::int64_t> rows;
  std::vector<double> confidence;
  std::vector<std::uint8_t> correct;
  std::vector<double> log_p_label, brier;
};

/// What a family's evaluator writes for one row and a block of candidates (structure of
/// arrays, so that the driver's per-candidate sums vectorise). Each array holds at least
/// the block rounded up to k_lanes entries; entries past the block are scratch.
struct row_output {
  double* confidence;
  double* log_p_label;
  double* brier;
  std::uint8_t* correct;
  void set(std::int64_t i, const candidate_terms<double>& t, bool ok) const {
    confidence[i] = t.confidence;
    log_p_label[i] = t.log_p_label;
    brier[i] = t.brier;
    correct[i] = ok;
  }
};

/// Bin slot of each of the `gb` confidences `cf` under `rule` (vectorised per rule).
inline void bin_slots_of(binning rule, const double* cf, std::int64_t gb, std::int32_t num_bins, std::int32_t* bin) {
  switch (rule) {
    case binning::left_closed:
#pragma omp simd
      for (std::int64_t g = 0; g < gb; ++g) bin[g] = bin_index_fast<binning::left_closed>(cf[g], num_bins);
      break;
    case binning::torchmetrics:
#pragma omp simd
      for (std::int64_t g = 0; g < gb; ++g) bin[g] = bin_index_fast<binning::torchmetrics>(cf[g], num_bins);
      break;
    case binning::digitize_linspace:
#pragma omp simd
      for (std::int64_t g = 0; g < gb; ++g) bin[g] = bin_index_fast<binning::digitize_linspace>(cf[g], num_bins);
      break;
    default:
#pragma omp simd
      for (std::int64_t g = 0; g < gb; ++g) bin[g] = bin_index_fast<binning::right_closed>(cf[g], num_bins);
      break;
  }
}

/// One row's terms for a block of `gb` candidates (in `t_*`), added to the chunk's partials.
inline void accumulate_row(chunk_partial& p, std::int64_t gb, std::int32_t m, binning rule, std::int32_t num_bins,
                           const double* t_conf, const double* t_logp, const double* t_brier, const std::uint8_t* ok,
                           std::int32_t* bin) {
  double* nll = p.nll.data();
  double* brier = p.brier.data();
  double* hits = p.correct.data();
#pragma omp simd
  for (std::int64_t g = 0; g < gb; ++g) {
    nll[g] -= t_logp[g];
    brier[g] += t_brier[g];
    hits[g] += ok[g] ? 1.0 : 0.0;
  }
  bin_slots_of(rule, t_conf, gb, num_bins, bin);
  for (std::int64_t g = 0; g < gb; ++g) {
    const std::int64_t b = g * m + bin[g];
    p.count[b] += 1;
    p.sum_confidence[b] += t_conf[g];
    p.sum_correct[b] += ok[g] ? 1.0 : 0.0;
  }
}

/// Fixed-order reduction of candidates [g0, g0 + gb): the chunks in order, then the background.
void reduce_block(const std::vector<chunk_partial>& partials, const background* bg, std::int64_t g0, std::int64_t gb,
                  std::int32_t m, binning rule, std::int32_t num_bins, sweep_result& res) {
  for (std::int64_t g = 0; g < gb; ++g) {
    const std::int64_t out = g0 + g;
    for (const auto& p : partials) {
      for (std::int32_t b = 0; b < m; ++b) {
        res.bin_count[out * m + b] += p.count[g * m + b];
        res.bin_sum_confidence[out * m + b] += p.sum_confidence[g * m + b];
        res.bin_sum_correct[out * m + b] += p.sum_correct[g * m + b];
      }
      res.nll[out] += p.nll[g];
      res.brier[out] += p.brier[g];
      res.accuracy[out] += p.correct[g];
    }
    if (bg == nullptr) continue;
    for (std::size_t i = 0; i < bg->rows.size(); ++i) {
      const std::int64_t b = out * m + bin_index(rule, bg->confidence[i], num_bins);
      const double hit = bg->correct[i] ? 1.0 : 0.0;
      res.bin_count[b] += 1;
      res.bin_sum_confidence[b] += bg->confidence[i];
      res.bin_sum_correct[b] += hit;
      res.nll[out] -= bg->log_p_label[i];
      res.brier[out] += bg->brier[i];
      res.accuracy[out] += hit;
    }
  }
}

/// adaECE of candidates [g0, g0 + gb) from their confidences in row order (`conf`, `correct`:
/// gb x N), the background rows filled in first.
void block_adaece(std::vector<double>& conf, std::vector<std::uint8_t>& correct, const background* bg, std::int64_t g0,
                  std::int64_t gb, std::int64_t num_samples, std::int32_t num_bins, sweep_result& res) {
  if (bg != nullptr) {
    for (std::int64_t g = 0; g < gb; ++g) {
      for (std::size_t i = 0; i < bg->rows.size(); ++i) {
        conf[g * num_samples + bg->rows[i]] = bg->confidence[i];
        correct[g * num_samples + bg->rows[i]] = bg->correct[i];
      }
    }
  }
  thread_errors errors;
#pragma omp parallel
  {
    detail::equal_mass_scratch scratch;
    // Contiguous candidate ranges per thread: each sort starts from its neighbour's order.
#pragma omp for schedule(static)
    for (std::int64_t g = 0; g < gb; ++g) {
      errors.run([&] {
        res.adaece[g0 + g] = detail::adaece_of(
            std::span<const double>(conf.data() + g * num_samples, static_cast<std::size_t>(num_samples)),
            std::span<const std::uint8_t>(correct.data() + g * num_samples, static_cast<std::size_t>(num_samples)),
            num_bins, scratch);
      });
    }
  }
  errors.rethrow();
}

/// The shared driver. `rows` (ascending) move with the candidates; `eval(row, g0, g1, out)`
/// fills out.terms[0..g1-g0) and out.correct[0..g1-g0). `bg` holds the other rows.
template <class Eval>
sweep_result drive(std::int64_t num_candidates, std::int64_t num_samples, std::span<const std::int64_t> rows,
                   const background* bg, const sweep_options& options, bool want_adaece, Eval&& eval) {
  const std::int32_t num_bins = options.num_bins;
  const binning rule = detail::top_label_rule(options.bin_rule);
  const std::int32_t m = bin_slots(rule, num_bins);  // slots per candidate
  sweep_result res;
  res.reset(num_candidates, m);
  const auto num_rows = static_cast<std::int64_t>(rows.size());
  const std::int64_t block =
      want_adaece ? std::clamp<std::int64_t>(k_confidence_budget / num_samples, 1, k_max_block) : k_max_block;
  const std::int64_t chunks = (num_rows + k_row_chunk - 1) / k_row_chunk;
  std::vector<chunk_partial> partials(static_cast<std::size_t>(chunks));
  std::vector<double> conf;           // block x N, row order, for equal-mass bins
  std::vector<std::uint8_t> correct;  // block x N

  std::optional<progress> shown;
  if (options.progress) shown.emplace("sweep-candidates", num_candidates, "candidates");
  for (std::int64_t g0 = 0; g0 < num_candidates; g0 += block) {
    const std::int64_t gb = std::min(block, num_candidates - g0);
    if (shown) shown->set(g0);
    if (want_adaece) {
      conf.resize(static_cast<std::size_t>(gb * num_samples));
      correct.resize(static_cast<std::size_t>(gb * num_samples));
    }
    thread_errors errors;
#pragma omp parallel
    {
      const auto padded = static_cast<std::size_t>((gb + k_lanes - 1) / k_lanes * k_lanes);
      std::vector<double> t_conf, t_logp, t_brier;
      std::vector<std::uint8_t> t_ok;
      std::vector<std::int32_t> t_bin;
      errors.run([&] {
        for (auto* v : {&t_conf, &t_logp, &t_brier}) v->resize(padded);
        t_ok.resize(padded);
        t_bin.resize(padded);
      });
      const row_output out{t_conf.data(), t_logp.data(), t_brier.data(), t_ok.data()};
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t c = 0; c < chunks; ++c) {
        errors.run([&] {
          auto& p = partials[static_cast<std::size_t>(c)];
          p.reset(gb, m);
          const std::int64_t end = std::min(num_rows, (c + 1) * k_row_chunk);
          for (std::int64_t r = c * k_row_chunk; r < end; ++r) {
            const std::int64_t row = rows[r];
            eval(row, g0, g0 + gb, out);
            accumulate_row(p, gb, m, rule, num_bins, t_conf.data(), t_logp.data(), t_brier.data(), t_ok.data(),
                           t_bin.data());
            if (!want_adaece) continue;
            for (std::int64_t g = 0; g < gb; ++g) {
              conf[g * num_samples + row] = t_conf[g];
              correct[g * num_samples + row] = t_ok[g];
            }
          }
        });
      }
    }
    errors.rethrow();
    reduce_block(partials, bg, g0, gb, m, rule, num_bins, res);
    if (want_adaece) block_adaece(conf, correct, bg, g0, gb, num_samples, num_bins, res);
  }
  detail::finish(res, num_samples);
  if (shown) shown->set(num_candidates);
  return res;
}

std::vector<std::int64_t> all_rows(std::int64_t n) {
  std::vector<std::int64_t> rows(static_cast<std::size_t>(n));
  std::iota(rows.begin(), rows.end(), std::int64_t{0});
  return rows;
}

/// Terms of `row` at inverse temperature b (one exp per class): also used for backgrounds.
candidate_terms<double> row_at_inverse_temperature(const logit_set& d, double max_logit, std::int64_t row, double b) {
  const std::int64_t k = d.num_classes;
  const float* z = d.logits.data() + row * k;
  double s = 0, q = 0;
  for (std::int64_t j = 0; j < k; ++j) {
    const double e = exp_nonpositive((static_cast<double>(z[j]) - max_logit) * b);
    s += e;
    q += e * e;
  }
  const double sy = (static_cast<double>(z[d.labels[row]]) - max_logit) * b;
  return terms_from_sums(s, q, sy, std::exp(sy));
}

/// Terms of one row (x = logits minus their maximum, as double) for candidates [g0, g1) at
/// inverse temperatures inv[g]: one exp per class and candidate, vectorised over lanes of
/// candidates so that any K runs at full SIMD width.
void explicit_temperature_lanes(const double* x, std::int64_t k, std::int32_t y, bool hit, const double* inv,
                                std::int64_t g0, std::int64_t g1, const row_output& out) {
  for (std::int64_t gs = g0; gs < g1; gs += k_lanes) {
    const std::int64_t last = g1 - 1;
    alignas(64) double b[k_lanes], s[k_lanes] = {}, q[k_lanes] = {};
    for (std::int64_t t = 0; t < k_lanes; ++t) b[t] = inv[std::min(gs + t, last)];
    for (std::int64_t j = 0; j < k; ++j) {
      const double xj = x[j];
#pragma omp simd aligned(b, s, q : 64)
      for (std::int64_t t = 0; t < k_lanes; ++t) {
        const double e = exp_nonpositive(xj * b[t]);
        s[t] += e;
        q[t] += e * e;
      }
    }
    const double xy = x[y];
    const std::int64_t o = gs - g0;
#pragma omp simd
    for (std::int64_t t = 0; t < k_lanes; ++t) {
      const double sy = xy * b[t];
      out.set(o + t, terms_from_sums(s[t], q[t], sy, exp_nonpositive(sy)), hit);
    }
  }
}

/// The same on an arithmetic inverse-temperature grid by the multiply recurrence: lane t of
/// a group holds exp(x_j b_{gs+t}); the next group multiplies by ratio_j = exp(x_j lanes
/// step). `e` is K x lanes scratch. Exact exps every k_anchor_groups groups.
void grid_temperature_lanes(const double* x, const double* ratio, double* e, std::int64_t k, std::int32_t y, bool hit,
                            const inverse_temperature_grid& grid, std::int64_t g0, std::int64_t g1,
                            const row_output& out) {
  std::int64_t group = 0;
  for (std::int64_t gs = g0; gs < g1; gs += k_lanes, ++group) {
    alignas(64) double s[k_lanes] = {}, q[k_lanes] = {};
    if (group % k_anchor_groups == 0) {
      alignas(64) double b[k_lanes];
      for (std::int64_t t = 0; t < k_lanes; ++t) b[t] = grid.at(std::min(gs + t, g1 - 1));
      for (std::int64_t j = 0; j < k; ++j) {
        const double xj = x[j];
        double* ej = e + j * k_lanes;
#pragma omp simd aligned(b, s, q : 64)
        for (std::int64_t t = 0; t < k_lanes; ++t) {
          ej[t] = exp_nonpositive(xj * b[t]);
          s[t] += ej[t];
          q[t] += ej[t] * ej[t];
        }
      }
    } else {
      for (std::int64_t j = 0; j < k; ++j) {
        const double r = ratio[j];
        double* ej = e + j * k_lanes;
#pragma omp simd aligned(s, q : 64)
        for (std::int64_t t = 0; t < k_lanes; ++t) {
          ej[t] *= r;
          s[t] += ej[t];
          q[t] += ej[t] * ej[t];
        }
      }
    }
    const double xy = x[y];
    const double* ey = e + static_cast<std::int64_t>(y) * k_lanes;
    const std::int64_t o = gs - g0;
#pragma omp simd
    for (std::int64_t t = 0; t < k_lanes; ++t) {
      out.set(o + t, terms_from_sums(s[t], q[t], xy * grid.at(gs + t), ey[t]), hit);
    }
  }
}

/// Terms of one row for `count` candidate inverse temperatures of class `cls`. Kept out of
/// line: GCC vectorises the loop here but not once it is inlined into the driver.
[[gnu::noinline]] void class_step_lanes(const class_step_state<double>& state, double zi, const double* inv,
                                        std::int64_t count, std::int32_t cls, std::int32_t y, const row_output& out) {
  const class_step_state<double> s = state;  // a local copy: no aliasing with the outputs
  for (std::int64_t gs = 0; gs < count; gs += k_lanes) {
    alignas(64) double u[k_lanes], conf[k_lanes], logp[k_lanes], brier[k_lanes];
    alignas(64) std::int32_t hit[k_lanes];
    for (std::int64_t t = 0; t < k_lanes; ++t) u[t] = zi * inv[std::min(gs + t, count - 1)];
#pragma omp simd aligned(u, conf, logp, brier, hit : 64)
    for (std::int64_t t = 0; t < k_lanes; ++t) {
      std::int32_t pred = 0;
      const auto terms = class_step_terms(s, u[t], cls, y, &pred);
      conf[t] = terms.confidence;
      logp[t] = terms.log_p_label;
      brier[t] = terms.brier;
      hit[t] = pred == y;
    }
    const std::int64_t w = std::min(k_lanes, count - gs);
    for (std::int64_t t = 0; t < w; ++t) {
      out.confidence[gs + t] = conf[t];
      out.log_p_label[gs + t] = logp[t];
      out.brier[gs + t] = brier[t];
      out.correct[gs + t] = static_cast<std::uint8_t>(hit[t]);
    }
  }
}

/// x_j = z_j - max z of one row, as double, into `x` (resized to K).
void centred_row(const logit_set& d, double max_logit, std::int64_t row, std::vector<double>& x) {
  const std::int64_t k = d.num_classes;
  x.resize(static_cast<std::size_t>(k));
  const float* z = d.logits.data() + row * k;
  for (std::int64_t j = 0; j < k; ++j) x[j] = static_cast<double>(z[j]) - max_logit;
}

/// Per-class temperature search on the CPU (see class_temperature_session).
class cpu_class_session final : public class_temperature_session {
 public:
  cpu_class_session(cpu_resident& data, std::span<const double> initial, const sweep_options& options)
      : class_temperature_session(data.host().num_classes, initial), data_(data), options_(options) {
    rows_.resize(static_cast<std::size_t>(data_.host().num_samples));
    do_refresh();
  }

 private:
  sweep_result do_sweep(std::int32_t cls, std::span<const double> inv) override {
    const auto& d = data_.host();
    const std::int64_t k = d.num_classes;
    const auto rows = all_rows(d.num_samples);
    return drive(static_cast<std::int64_t>(inv.size()), d.num_samples, rows, nullptr, options_, options_.adaece,
                 [&](std::int64_t row, std::int64_t g0, std::int64_t g1, const row_output& out) {
                   const float* z = d.logits.data() + row * k;
                   const std::int32_t y = d.labels[row];
                   const class_step_state<double> s = rest_state(row, cls);
                   class_step_lanes(s, z[cls], inv.data() + g0, g1 - g0, cls, y, out);
                 });
  }

  void do_commit(std::int32_t cls, double old_inverse, double new_inverse) override {
    const auto& d = data_.host();
    const std::int64_t k = d.num_classes;
    const double* inv = inverse().data();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < d.num_samples; ++i)
      commit_class_row(d.logits.data() + i * k, k, inv, cls, old_inverse, new_inverse, rows_[i]);
  }

  void do_refresh() override {
    const auto& d = data_.host();
    const double* inv = inverse().data();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < d.num_samples; ++i)
      refresh_class_row(d.logits.data() + i * d.num_classes, d.num_classes, inv, rows_[i]);
  }

  /// The state of row i with class `cls` removed (shared with the CUDA kernels).
  class_step_state<double> rest_state(std::int64_t i, std::int32_t cls) const {
    const auto& d = data_.host();
    return class_rest_state(d.logits.data() + i * d.num_classes, d.num_classes, inverse().data(), rows_[i], cls,
                            d.labels[i]);
  }

  cpu_resident& data_;
  sweep_options options_;
  std::vector<class_row_state> rows_;
};

class cpu_backend final : public sweep_backend {
 private:
  std::string do_name() const override { return fmt::format("cpu ({} threads)", omp_get_max_threads()); }
  std::string do_kind() const override { return "cpu"; }

  std::unique_ptr<resident_logits> do_prepare(const logit_set& data) override {
    return std::make_unique<cpu_resident>(data);
  }

  sweep_result do_temperature(resident_logits& data, std::span<const double> inv,
                              const sweep_options& options) override {
    auto& r = as_cpu(data);
    const auto& d = r.host();
    const std::int64_t k = d.num_classes;
    const auto rows = all_rows(d.num_samples);
    return drive(static_cast<std::int64_t>(inv.size()), d.num_samples, rows, nullptr, options, options.adaece,
                 [&](std::int64_t row, std::int64_t g0, std::int64_t g1, const row_output& out) {
                   thread_local std::vector<double> x;
                   centred_row(d, r.max_logit()[row], row, x);
                   const std::int32_t y = d.labels[row];
                   explicit_temperature_lanes(x.data(), k, y, r.prediction()[row] == y, inv.data(), g0, g1, out);
                 });
  }

  sweep_result do_inverse_temperature(resident_logits& data, const inverse_temperature_grid& grid,
                                      const sweep_options& options) override {
    auto& r = as_cpu(data);
    const auto& d = r.host();
    const std::int64_t k = d.num_classes;
    const auto rows = all_rows(d.num_samples);
    return drive(grid.count, d.num_samples, rows, nullptr, options, options.adaece,
                 [&](std::int64_t row, std::int64_t g0, std::int64_t g1, const row_output& out) {
                   thread_local std::vector<double> x, e, ratio;
                   centred_row(d, r.max_logit()[row], row, x);
                   e.resize(static_cast<std::size_t>(k * k_lanes));
                   ratio.resize(static_cast<std::size_t>(k));
                   const double lane_step = static_cast<double>(k_lanes) * grid.step;
                   for (std::int64_t j = 0; j < k; ++j) ratio[j] = exp_nonpositive(x[j] * lane_step);
                   const std::int32_t y = d.labels[row];
                   grid_temperature_lanes(x.data(), ratio.data(), e.data(), k, y, r.prediction()[row] == y, grid, g0,
                                          g1, out);
                 });
  }

  sweep_result do_weight(resident_logits& data, std::span<const double> weights,
                         const sweep_options& options) override {
    auto& r = as_cpu(data);
    const auto& d = r.host();
    const std::int64_t n = d.num_samples, k = d.num_classes;
    // Per-sample confidence, label probability and sum of squares, once.
    std::vector<double> conf(static_cast<std::size_t>(n)), p_label(static_cast<std::size_t>(n)),
        p_sq(static_cast<std::size_t>(n));
    std::vector<std::uint8_t> hit(static_cast<std::size_t>(n));
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const auto t = row_at_inverse_temperature(d, r.max_logit()[i], i, 1.0);
      conf[i] = t.confidence;
      p_label[i] = std::exp(t.log_p_label);
      // Q / S^2 is sum_j p_j^2; recover it from the Brier identity.
      p_sq[i] = t.brier + 2.0 * p_label[i] - 1.0;
      hit[i] = r.prediction()[i] == d.labels[i];
    }
    const double kd = static_cast<double>(k);
    const auto rows = all_rows(n);
    sweep_result res =
        drive(static_cast<std::int64_t>(weights.size()), n, rows, nullptr, options, false,
              [&](std::int64_t row, std::int64_t g0, std::int64_t g1, const row_output& out) {
                for (std::int64_t g = g0; g < g1; ++g) {
                  out.set(g - g0, weight_terms(weights[g], kd, conf[row], p_label[row], p_sq[row]), hit[row]);
                }
              });
    if (options.adaece) detail::weight_adaece(conf, hit, weights, kd, options.num_bins, res);
    return res;
  }

  sweep_result do_bin_temperature(resident_logits& data, const bin_temperature_problem& problem,
                                  std::span<const std::int64_t> moving, std::span<const double> inv,
                                  const sweep_options& options) override {
    auto& r = as_cpu(data);
    const auto& d = r.host();
    const std::int64_t n = d.num_samples, k = d.num_classes;
    background bg;
    for (std::int64_t i = 0; i < n; ++i) {
      if (problem.sample_bin[i] != problem.target_bin) bg.rows.push_back(i);
    }
    const auto nb = bg.rows.size();
    bg.confidence.resize(nb);
    bg.correct.resize(nb);
    bg.log_p_label.resize(nb);
    bg.brier.resize(nb);
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < nb; ++i) {
      const std::int64_t row = bg.rows[i];
      const auto t =
          row_at_inverse_temperature(d, r.max_logit()[row], row, 1.0 / problem.temperatures[problem.sample_bin[row]]);
      bg.confidence[i] = t.confidence;
      bg.correct[i] = r.prediction()[row] == d.labels[row];
      bg.log_p_label[i] = t.log_p_label;
      bg.brier[i] = t.brier;
    }
    return drive(static_cast<std::int64_t>(inv.size()), n, moving, &bg, options, options.adaece,
                 [&](std::int64_t row, std::int64_t g0, std::int64_t g1, const row_output& out) {
                   thread_local std::vector<double> x;
                   centred_row(d, r.max_logit()[row], row, x);
                   const std::int32_t y = d.labels[row];
                   explicit_temperature_lanes(x.data(), k, y, r.prediction()[row] == y, inv.data(), g0, g1, out);
                 });
  }

  std::unique_ptr<class_temperature_session> do_class_temperature(resident_logits& data,
                                                                  std::span<const double> initial,
                                                                  const sweep_options& options) override {
    return std::make_unique<cpu_class_session>(as_cpu(data), initial, options);
  }

  sweep_result do_probability_sets(std::span<const float> probs, std::span<const std::int32_t> labels,
                                   std::int64_t num_candidates, std::int64_t num_classes,
                                   const sweep_options& options) override {
    const auto n = static_cast<std::int64_t>(labels.size());
    const std::int64_t k = num_classes;
    const auto rows = all_rows(n);
    return drive(num_candidates, n, rows, nullptr, options, options.adaece,
                 [&](std::int64_t row, std::int64_t g0, std::int64_t g1, const row_output& out) {
                   const std::int32_t y = labels[row];
                   for (std::int64_t g = g0; g < g1; ++g) {
                     std::int32_t pred = 0;
                     const auto t = probability_row_terms(probs.data() + (g * n + row) * k, k, y, &pred);
                     out.set(g - g0, t, pred == y);
                   }
                 });
  }

  std::vector<double> do_sctl_grid(std::span<const double> l0, std::span<const double> l1,
                                   std::span<const double> normalised1, double mean_l1,
                                   const sctl_lattice& lattice) override {
    const auto k = static_cast<std::int64_t>(l0.size());
    const std::int64_t g = lattice.grid;
    // Alpha-major, endpoints exact. Each row caches the K sigmoids of its alpha; rows are
    // independent, so the values do not depend on the thread count.
    std::vector<double> values(static_cast<std::size_t>(g * g));
#pragma omp parallel
    {
      std::vector<double> t(static_cast<std::size_t>(k));
#pragma omp for schedule(static)
      for (std::int64_t j = 0; j < g; ++j) {
        const double alpha = kernels::sctl_lattice_axis(lattice.alpha_lo, lattice.alpha_hi, j, g);
        for (std::int64_t i = 0; i < k; ++i) t[i] = sctl_sigmoid(normalised1[i], alpha);
        for (std::int64_t c = 0; c < g; ++c) {
          const double beta = kernels::sctl_lattice_axis(lattice.beta_lo, lattice.beta_hi, c, g);
          double s = 0;
          for (std::int64_t i = 0; i < k; ++i) {
            const double res = l0[i] - (beta * t[i] - beta / 2.0) * (l1[i] - l0[i]) - mean_l1;
            s += res * res;
          }
          values[static_cast<std::size_t>(j * g + c)] = s;
        }
      }
    }
    return values;
  }
};

}  // namespace

std::unique_ptr<sweep_backend> make_cpu_backend() { return std::make_unique<cpu_backend>(); }

}  // namespace calibench
