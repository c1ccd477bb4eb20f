// Device helpers shared by the sweep kernels (kernels/sweep_*.cu): launch geometry, warp
// sums, the terms writer and the per-row softmax sums. Needs nvcc; included by .cu files only.
#pragma once

#include <cstdint>

#include "kernels/calib_math.hpp"
#include "kernels/cuda_check.hpp"
#include "kernels/sweep_launch.hpp"

namespace calibench::kernels::detail {

constexpr unsigned k_full_mask = 0xffffffffu;
constexpr int k_warp = 32;
/// Threads per block of the element-wise kernels.
constexpr int k_block = 256;
/// Grid-stride loops cover the rest; enough blocks to fill any current GPU many times.
constexpr std::int64_t k_max_grid = 65536;
/// Rows at most this wide are handled by one thread; wider rows by a warp striding over classes.
constexpr std::int64_t k_thread_per_row_classes = 32;

/// Blocks for `threads` grid-stride threads (at least 1).
inline int grid_for(std::int64_t threads, int block = k_block) {
  const std::int64_t wanted = (threads + block - 1) / block;
  return static_cast<int>(wanted < 1 ? 1 : (wanted < k_max_grid ? wanted : k_max_grid));
}

__device__ __forceinline__ std::int64_t global_thread() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::int64_t grid_threads() { return static_cast<std::int64_t>(gridDim.x) * blockDim.x; }
__device__ __forceinline__ std::int64_t global_warp() { return global_thread() / k_warp; }
__device__ __forceinline__ std::int64_t grid_warps() { return grid_threads() / k_warp; }
__device__ __forceinline__ int lane_id() { return static_cast<int>(threadIdx.x % k_warp); }

/// Butterfly sum over the warp. Addition is commutative, so every lane ends with the same bits,
/// and the association order is fixed, so the result is reproducible.
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int offset = k_warp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(k_full_mask, v, offset);
  return v;
}

/// Writes the terms of (local candidate g, sample i).
__device__ __forceinline__ void store_terms(const terms_view& out, std::int64_t g, std::int64_t i,
                                            const candidate_terms<double>& t, bool correct) {
  const std::int64_t at = g * out.num_samples + i;
  // +0.0 turns a -0.0 into +0.0 so that the sort sees the keys the CPU's radix sort sees.
  out.confidence[at] = t.confidence + 0.0;
  out.correct[at] = correct ? 1 : 0;
  out.log_p_label[at] = t.log_p_label;
  out.brier[at] = t.brier;
}

/// S = sum_j exp(x_j b) and Q = sum_j exp(2 x_j b) of one row, x_j = z_j - max, classes in order.
__device__ __forceinline__ void row_sums(const float* __restrict__ z, std::int64_t num_classes, double max_logit,
                                         double b, double& s, double& q) {
  s = 0;
  q = 0;
  for (std::int64_t j = 0; j < num_classes; ++j) {
    const double e = exp((static_cast<double>(z[j]) - max_logit) * b);
    s += e;
    q += e * e;
  }
}

/// The same sums for a warp: lanes stride over the classes, then a warp sum (all lanes agree).
__device__ __forceinline__ void warp_row_sums(const float* __restrict__ z, std::int64_t num_classes, double max_logit,
                                              double b, int lane, double& s, double& q) {
  double ls = 0, lq = 0;
  for (std::int64_t j = lane; j < num_classes; j += k_warp) {
    const double e = exp((static_cast<double>(z[j]) - max_logit) * b);
    ls += e;
    lq += e * e;
  }
  s = warp_sum(ls);
  q = warp_sum(lq);
}

/// Terms of one row at inverse temperature b from its sums (the CPU's row_at_inverse_temperature).
__device__ __forceinline__ candidate_terms<double> row_terms(const float* __restrict__ z, std::int32_t label,
                                                             double max_logit, double b, double s, double q) {
  const double sy = (static_cast<double>(z[label]) - max_logit) * b;
  return terms_from_sums(s, q, sy, exp(sy));
}

}  // namespace calibench::kernels::detail
