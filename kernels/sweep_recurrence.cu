// Inverse-temperature sweep on an arithmetic grid b_g = start + g step by the multiply
// recurrence exp(x b_{g+1}) = exp(x b_g) exp(x step): one multiply per logit and candidate,
// re-anchored with exact exps at every multiple of `anchor_every` (32), so that rounding stays
// below about 32 ulps (1e-14 relative). The CPU anchors differently (lanes of 16 candidates),
// so the two agree to that rounding, not bit for bit.
// Mapping: a work unit is (row, anchor block of candidates); it starts at its anchor even when
// the chunk starts later, so results do not depend on chunking. Rows of at most 32 classes:
// one thread per unit holding the row's e_j and ratios in registers (template on the padded
// width). Wider rows, of any width: one lane per unit, the lanes of a warp on the blocks of
// the same row (or of a few rows when there are fewer than 32 blocks), so that each logit
// load is a broadcast to the lanes of one row (with one block per row, G <= 32, the 32 lanes
// read 32 rows: such chunks are small). A lane walks the row's classes once and keeps each of its candidates'
// sums in registers: per logit, two exps (the anchor and the ratio), then one multiply, one
// add and one FMA per candidate, no reductions across lanes. The label's term follows its own
// copy of the recurrence (the same multiplies, so the same value as the row's entry).
#include "kernels/sweep_device.cuh"

namespace calibench::kernels {
namespace {

using detail::global_thread;
using detail::grid_threads;

constexpr int k_recurrence_block = 128;
/// Candidates a lane of the wide-row kernel carries: the largest anchor block.
constexpr int k_lane_candidates = 32;

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
      static_assert(KMax % 4 == 0, "rows are padded to a multiple of 4 classes");
      double ps[4] = {}, pq[4] = {};
#pragma unroll
      for (int j = 0; j < KMax; ++j) {
        ps[j % 4] += e[j];
        pq[j % 4] += e[j] * e[j];
      }
      const double s = (ps[0] + ps[1]) + (ps[2] + ps[3]), q = (pq[0] + pq[1]) + (pq[2] + pq[3]);
      if (g >= grid.g_begin)
        detail::store_terms(out, g - grid.g_begin, i, terms_from_sums(s, q, xy * grid.at(g), ey), hit);
    }
  }
}

/// Lane per (row, anchor block), `lanes_per_row` lanes per row (a power of two <= 32). Every
/// lane runs all C = 32 steps of its block, also when the chunk needs fewer (at most 32 times
/// the work of a one-candidate chunk, but one instantiation: code generated for a shorter
/// block may fuse multiplies and adds differently, and results must not depend on chunking).
__global__ void __launch_bounds__(k_recurrence_block)
    recurrence_lane_kernel(const float* __restrict__ logits, const std::int32_t* __restrict__ labels,
                           const double* __restrict__ max_logit, const std::int32_t* __restrict__ prediction,
                           std::int64_t num_samples, std::int64_t num_classes, arithmetic_grid_view grid,
                           int lanes_per_row, terms_view out) {
  const int lane = detail::lane_id();
  const int rows_per_warp = detail::k_warp / lanes_per_row;
  const std::int64_t blocks = grid.num_blocks();
  const std::int64_t block_groups = (blocks + lanes_per_row - 1) / lanes_per_row;
  const std::int64_t row_groups = (num_samples + rows_per_warp - 1) / rows_per_warp;
  const std::int64_t total = row_groups * block_groups;
  // No shuffles: lanes past the last row or block simply skip their unit.
  for (std::int64_t w = detail::global_warp(); w < total; w += detail::grid_warps()) {
    // Consecutive warps take the block groups of one row group, so its rows stay in L1.
    const std::int64_t i = (w / block_groups) * rows_per_warp + lane / lanes_per_row;
    const std::int64_t a_local = (w % block_groups) * lanes_per_row + lane % lanes_per_row;
    if (i >= num_samples || a_local >= blocks) continue;
    const std::int64_t g_anchor = (grid.first_block() + a_local) * grid.anchor_every;
    const std::int64_t g_stop = min(g_anchor + grid.anchor_every, grid.g_end);
    const float* z = logits + i * num_classes;
    const double mx = max_logit[i];
    const double b_anchor = grid.at(g_anchor);
    constexpr int C = k_lane_candidates;
    double s[C], q[C];
#pragma unroll
    for (int c = 0; c < C; ++c) s[c] = q[c] = 0.0;
    for (std::int64_t j = 0; j < num_classes; ++j) {
      const double x = static_cast<double>(z[j]) - mx;
      const double r = grid.ratio(x);
      double e = exp(x * b_anchor);
#pragma unroll
      for (int c = 0; c < C; ++c) {
        s[c] += e;
        q[c] += e * e;
        e *= r;
      }
    }
    const std::int32_t y = labels[i];
    const bool hit = prediction[i] == y;
    const double xy = static_cast<double>(z[y]) - mx;
    const double ry = grid.ratio(xy);
    double ey = exp(xy * b_anchor);  // class y's e, by the same multiplies
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const std::int64_t g = g_anchor + c;
      if (g < g_stop && g >= grid.g_begin)
        detail::store_terms(out, g - grid.g_begin, i, terms_from_sums(s[c], q[c], xy * grid.at(g), ey), hit);
      ey *= ry;
    }
  }
}

template <int KMax>
void launch_thread(const float* d_logits, const std::int32_t* d_labels, const double* d_max_logit,
                   const std::int32_t* d_prediction, std::int64_t n, std::int64_t k, arithmetic_grid_view grid,
                   terms_view out) {
  recurrence_thread_kernel<KMax><<<detail::grid_for(grid.num_blocks() * n, k_recurrence_block), k_recurrence_block>>>(
      d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
}

void launch_lanes(const float* d_logits, const std::int32_t* d_labels, const double* d_max_logit,
                  const std::int32_t* d_prediction, std::int64_t n, std::int64_t k, arithmetic_grid_view grid,
                  terms_view out) {
  int lanes_per_row = 1;
  while (lanes_per_row < detail::k_warp && lanes_per_row < grid.num_blocks()) lanes_per_row *= 2;
  const std::int64_t rows_per_warp = detail::k_warp / lanes_per_row;
  const std::int64_t warps =
      (n + rows_per_warp - 1) / rows_per_warp * ((grid.num_blocks() + lanes_per_row - 1) / lanes_per_row);
  recurrence_lane_kernel<<<detail::grid_for(warps * detail::k_warp, k_recurrence_block), k_recurrence_block>>>(
      d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, lanes_per_row, out);
}

}  // namespace

void launch_inverse_temperature_terms(const float* d_logits, const std::int32_t* d_labels, const double* d_max_logit,
                                      const std::int32_t* d_prediction, std::int64_t num_samples,
                                      std::int64_t num_classes, double start, double step, std::int64_t g_begin,
                                      std::int64_t g_end, std::int64_t anchor_every, terms_view out) {
  CALIBENCH_EXPECTS(num_samples >= 0 && num_classes >= 1 && out.num_samples == num_samples, "bad shape");
  CALIBENCH_EXPECTS(anchor_every >= 1 && g_begin >= 0 && g_end >= g_begin, "bad candidate range");
  CALIBENCH_EXPECTS(anchor_every <= k_lane_candidates, "a lane holds at most 32 candidates' sums");
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
  } else {
    launch_lanes(d_logits, d_labels, d_max_logit, d_prediction, n, k, grid, out);
  }
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

}  // namespace calibench::kernels
