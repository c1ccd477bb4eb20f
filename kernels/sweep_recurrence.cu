// Inverse-temperature sweep on an arithmetic grid b_g = start + g step by the multiply
// recurrence exp(x b_{g+1}) = exp(x b_g) exp(x step): one multiply per logit and candidate,
// re-anchored with exact exps at every multiple of `anchor_every` (32), so that rounding stays
// below about 32 ulps (1e-14 relative). The CPU anchors differently (lanes of 16 candidates),
// so the two agree to that rounding, not bit for bit.
// Mapping: a work unit is (row, anchor block of candidates); it starts at its anchor even when
// the chunk starts later, so results do not depend on chunking. Rows of at most 32 classes:
// one thread per unit holding the row's e_j and ratios in registers (template on the padded
// width). Wider rows (up to 1024 classes): one warp per unit, each lane holding ceil(K/32)
// classes in registers, butterfly warp sums for two candidates at a time, and each lane
// finishing one candidate's terms at the end of the unit. The label's term follows its own
// copy of the recurrence (the same multiplies, so the same value as the row's entry). Wider still: one exact exp per
// logit and candidate, a warp per (row, candidate).
#include "kernels/sweep_device.cuh"

namespace calibench::kernels {
namespace {

using detail::global_thread;
using detail::grid_threads;

constexpr int k_recurrence_block = 128;
constexpr std::int64_t k_max_lane_classes = 32;

struct arithmetic_grid_view {
  double start, step;
  std::int64_t g_begin, g_end, anchor_every;
  __device__ double at(std::int64_t g) const { return start + static_cast<double>(g) * step; }
  /// exp(x step); 1 for a zero step, so that a -inf logit (x step = NaN) keeps e = 0.
  __device__ double ratio(double x) const { return step == 0.0 ? 1.0 : exp(x * step); }
  __host__ __device__ std::int64_t first_block() const { return g_begin / anchor_every; }
  __host__ __device__ std::int64_t num_blocks() const { return (g_end - 1) / anchor_every - first_block() + 1; }
};

template <int KMax>
__global__ void __launch_bounds__(k_recurrence_block)
    recurrence_thread_kernel(const float* __restrict__ logits, const std::int32_t* __restrict__ labels,
                             const double* __restrict__ max_logit, const std::int32_t* __restrict__ prediction,
                             std::int64_t num_samples, std::int64_t num_classes, arithmetic_grid_view grid,
                             terms_view out) {
  const std::int64_t blocks = grid.num_blocks();
  const std::int64_t total = blocks * num_samples;
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t a = grid.first_block() + t / num_samples, i = t % num_samples;
    const std::int64_t g_anchor = a * grid.anchor_every;
    const std::int64_t g_stop = min(g_anchor + grid.anchor_every, grid.g_end);
    const float* z = logits + i * num_classes;
    const double mx = max_logit[i];
    const std::int32_t y = labels[i];
    const bool hit = prediction[i] == y;
    const double xy = static_cast<double>(z[y]) - mx;
    const double b_anchor = grid.at(g_anchor);
    // Padding classes hold e = ratio = 0: they add exact zeros to S and Q.
    double e[KMax], ratio[KMax];
#pragma unroll
    for (int j = 0; j < KMax; ++j) {
      if (j < num_classes) {
        const double x = static_cast<double>(z[j]) - mx;
        ratio[j] = grid.ratio(x);
        e[j] = exp(x * b_anchor);
      } else {
        ratio[j] = 0.0;
        e[j] = 0.0;
      }
    }
    // The label's term follows the same multiplies as e[y], so it equals e[y] bit for bit,
    // without a select over the row per candidate (selects keep e in registers).
    double ey = 0, ry = 0;
#pragma unroll
    for (int j = 0; j < KMax; ++j) {
      ey = j == y ? e[j] : ey;
      ry = j == y ? ratio[j] : ry;
    }
    for (std::int64_t g = g_anchor; g < g_stop; ++g) {
      if (g != g_anchor) {
#pragma unroll
        for (int j = 0; j < KMax; ++j) e[j] *= ratio[j];
        ey *= ry;
      }
      // Four partial sums: dependent add chains of KMax / 4, not KMax.
      constexpr int parts = KMax < 4 ? KMax : 4;
      double ps[parts] = {}, pq[parts] = {};
#pragma unroll
      for (int j = 0; j < KMax; ++j) {
        ps[j % parts] += e[j];
        pq[j % parts] += e[j] * e[j];
      }
      const double s = detail::sum_parts<parts>(ps), q = detail::sum_parts<parts>(pq);
      if (g >= grid.g_begin)
        detail::store_terms(out, g - grid.g_begin, i, terms_from_sums(s, q, xy * grid.at(g), ey), hit);
    }
  }
}

template <int Cpl>
__global__ void __launch_bounds__(k_recurrence_block)
    recurrence_warp_kernel(const float* __restrict__ logits, const std::int32_t* __restrict__ labels,
                           const double* __restrict__ max_logit, const std::int32_t* __restrict__ prediction,
                           std::int64_t num_samples, std::int64_t num_classes, arithmetic_grid_view grid,
                           terms_view out) {
  const int lane = detail::lane_id();
  const std::int64_t blocks = grid.num_blocks();
  const std::int64_t total = blocks * num_samples;
  for (std::int64_t w = detail::global_warp(); w < total; w += detail::grid_warps()) {
    // Consecutive warps take the anchor blocks of one row, so the row stays in L1.
    const std::int64_t i = w / blocks, a = grid.first_block() + w % blocks;
    const std::int64_t g_anchor = a * grid.anchor_every;
    const std::int64_t g_stop = min(g_anchor + grid.anchor_every, grid.g_end);
    const float* z = logits + i * num_classes;
    const double mx = max_logit[i];
    const std::int32_t y = labels[i];
    const bool hit = prediction[i] == y;
    const double xy = static_cast<double>(z[y]) - mx;
    const double b_anchor = grid.at(g_anchor);
    const int y_lane = y % detail::k_warp, y_slot = y / detail::k_warp;
    double e[Cpl], ratio[Cpl];
#pragma unroll
    for (int c = 0; c < Cpl; ++c) {
      const std::int64_t j = lane + static_cast<std::int64_t>(c) * detail::k_warp;
      if (j < num_classes) {
        const double x = static_cast<double>(z[j]) - mx;
        ratio[c] = grid.ratio(x);
        e[c] = exp(x * b_anchor);
      } else {
        ratio[c] = 0.0;
        e[c] = 0.0;
      }
    }
    // The label's term by its own recurrence: the same multiplies as e[y] on lane y_lane, so
    // the same value, on every lane, without a select over the row per candidate.
    double ey_lane = 0, ry_lane = 0;
#pragma unroll
    for (int c = 0; c < Cpl; ++c) {
      ey_lane = c == y_slot ? e[c] : ey_lane;
      ry_lane = c == y_slot ? ratio[c] : ry_lane;
    }
    double ey = __shfl_sync(detail::k_full_mask, ey_lane, y_lane);
    const double ry = __shfl_sync(detail::k_full_mask, ry_lane, y_lane);
    // Lane c keeps the sums of candidate g_anchor + c (anchor_every <= 32), and the lanes turn
    // them into terms together at the end, instead of lane 0 alone per candidate. Candidates
    // go in pairs so that four independent warp sums hide each other's shuffle latency; an odd
    // block's last pair computes one candidate too many and drops it.
    const int count = static_cast<int>(g_stop - g_anchor);
    double my_s = 1, my_q = 1, my_ey = 0;
    constexpr int parts = Cpl < 4 ? Cpl : 4;  // dependent add chains of Cpl / 4, not Cpl
    for (int c0 = 0; c0 < count; c0 += 2) {
      if (c0 != 0) {
#pragma unroll
        for (int c = 0; c < Cpl; ++c) e[c] *= ratio[c];
        ey *= ry;
      }
      double pa[parts] = {}, qa[parts] = {}, pb[parts] = {}, qb[parts] = {};
#pragma unroll
      for (int c = 0; c < Cpl; ++c) {
        pa[c % parts] += e[c];
        qa[c % parts] += e[c] * e[c];
        e[c] *= ratio[c];
        pb[c % parts] += e[c];
        qb[c % parts] += e[c] * e[c];
      }
      const double ey_b = ey * ry;
      const double sa = detail::warp_sum(detail::sum_parts<parts>(pa));
      const double sqa = detail::warp_sum(detail::sum_parts<parts>(qa));
      const double sb = detail::warp_sum(detail::sum_parts<parts>(pb));
      const double sqb = detail::warp_sum(detail::sum_parts<parts>(qb));
      if (lane == c0) {
        my_s = sa;
        my_q = sqa;
        my_ey = ey;
      } else if (lane == c0 + 1) {
        my_s = sb;
        my_q = sqb;
        my_ey = ey_b;
      }
      ey = ey_b;
    }
    const std::int64_t g = g_anchor + lane;
    if (lane < count && g >= grid.g_begin)
      detail::store_terms(out, g - grid.g_begin, i, terms_from_sums(my_s, my_q, xy * grid.at(g), my_ey), hit);
  }
}

/// Rows too wide for registers: one exact exp per logit and candidate.
__global__ void arithmetic_exact_kernel(const float* __restrict__ logits, const std::int32_t* __restrict__ labels,
                                        const double* __restrict__ max_logit,
                                        const std::int32_t* __restrict__ prediction, std::int64_t num_samples,
                                        std::int64_t num_classes, arithmetic_grid_view grid, terms_view out) {
  const int lane = detail::lane_id();
  const std::int64_t count = grid.g_end - grid.g_begin;
  const std::int64_t total = count * num_samples;
  for (std::int64_t w = detail::global_warp(); w < total; w += detail::grid_warps()) {
    const std::int64_t i = w / count, g = w % count;
    const float* z = logits + i * num_classes;
    const double b = grid.at(grid.g_begin + g), mx = max_logit[i];
    double s, q;
    detail::warp_row_sums(z, num_classes, mx, b, lane, s, q);
    if (lane == 0)
      detail::store_terms(out, g, i, detail::row_terms(z, labels[i], mx, b, s, q), prediction[i] == labels[i]);
  }
}

template <int KMax>
void launch_thread(const float* d_logits, const std::int32_t* d_labels, const double* d_max_logit,
                   const std::int32_t* d_prediction, std::int64_t n, std::int64_t k, arithmetic_grid_view grid,
                   terms_view out) {
  recurrence_thread_kernel<KMax><<<detail::grid_for(grid.num_blocks() * n, k_recurrence_block), k_recurrence_block>>>(
      d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
}

template <int Cpl>
void launch_warp(const float* d_logits, const std::int32_t* d_labels, const double* d_max_logit,
                 const std::int32_t* d_prediction, std::int64_t n, std::int64_t k, arithmetic_grid_view grid,
                 terms_view out) {
  recurrence_warp_kernel<Cpl>
      <<<detail::grid_for(grid.num_blocks() * n * detail::k_warp, k_recurrence_block), k_recurrence_block>>>(
          d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
}

}  // namespace

std::int64_t recurrence_max_classes() { return k_max_lane_classes * detail::k_warp; }

void launch_inverse_temperature_terms(const float* d_logits, const std::int32_t* d_labels, const double* d_max_logit,
                                      const std::int32_t* d_prediction, std::int64_t num_samples,
                                      std::int64_t num_classes, double start, double step, std::int64_t g_begin,
                                      std::int64_t g_end, std::int64_t anchor_every, terms_view out) {
  CALIBENCH_EXPECTS(num_samples >= 0 && num_classes >= 1 && out.num_samples == num_samples, "bad shape");
  CALIBENCH_EXPECTS(anchor_every >= 1 && g_begin >= 0 && g_end >= g_begin, "bad candidate range");
  CALIBENCH_EXPECTS(anchor_every <= detail::k_warp, "the warp kernel holds one anchor block's sums in its lanes");
  if (num_samples == 0 || g_end == g_begin) return;
  const arithmetic_grid_view grid{start, step, g_begin, g_end, anchor_every};
  const std::int64_t k = num_classes, n = num_samples;
  if (k <= 4) {
    launch_thread<4>(d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
  } else if (k <= 8) {
    launch_thread<8>(d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
  } else if (k <= 16) {
    launch_thread<16>(d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
  } else if (k <= detail::k_thread_per_row_classes) {
    launch_thread<32>(d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
  } else if (k <= 2 * detail::k_warp) {
    launch_warp<2>(d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
  } else if (k <= 4 * detail::k_warp) {
    launch_warp<4>(d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
  } else if (k <= 8 * detail::k_warp) {
    launch_warp<8>(d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
  } else if (k <= 16 * detail::k_warp) {
    launch_warp<16>(d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
  } else if (k <= k_max_lane_classes * detail::k_warp) {
    launch_warp<k_max_lane_classes>(d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
  } else {
    arithmetic_exact_kernel<<<detail::grid_for((g_end - g_begin) * n * detail::k_warp), detail::k_block>>>(
        d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
  }
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

}  // namespace calibench::kernels
