// Equal-mass (adaECE) groups of a chunk of candidates: each candidate's confidences sorted
// ascending by cub::DeviceSegmentedSort::StableSortPairs with the row index as value, so ties
// keep row order exactly as the CPU's stable radix sort does; then one block per
// (candidate, group) adds the group's confidences and correctness with a fixed-order shared
// memory tree (deterministic). Group sizes follow numpy.array_split: the first N mod M groups
// are one larger. The host turns the sums into adaECE with the CPU's formula.
#include <cub/device/device_segmented_sort.cuh>

#include "kernels/sweep_device.cuh"

namespace calibench::kernels {
namespace {

using detail::global_thread;
using detail::grid_threads;

constexpr int k_group_block = 256;

__global__ void segment_setup_kernel(std::int32_t* __restrict__ index, std::int64_t* __restrict__ offsets,
                                     std::int64_t num_samples, std::int64_t num_candidates) {
  const std::int64_t total = num_candidates * num_samples;
  for (std::int64_t t = global_thread(); t < total; t += grid_threads())
    index[t] = static_cast<std::int32_t>(t % num_samples);
  for (std::int64_t g = global_thread(); g <= num_candidates; g += grid_threads()) offsets[g] = g * num_samples;
}

__global__ void __launch_bounds__(k_group_block)
    group_sums_kernel(const double* __restrict__ sorted_confidence, const std::int32_t* __restrict__ index,
                      const std::uint8_t* __restrict__ correct, std::int64_t num_samples, std::int64_t num_candidates,
                      std::int32_t num_groups, double* __restrict__ group_confidence,
                      double* __restrict__ group_correct) {
  __shared__ double s_conf[k_group_block];
  __shared__ long long s_correct[k_group_block];
  const int tid = static_cast<int>(threadIdx.x);
  const std::int64_t q = num_samples / num_groups, rem = num_samples % num_groups;
  for (std::int64_t bt = blockIdx.x; bt < num_candidates * num_groups; bt += gridDim.x) {
    const std::int64_t g = bt / num_groups, m = bt % num_groups;
    const std::int64_t begin = m * q + (m < rem ? m : rem);
    const std::int64_t size = q + (m < rem ? 1 : 0);
    const std::int64_t seg = g * num_samples;
    double c = 0.0;
    long long a = 0;
    for (std::int64_t k = tid; k < size; k += k_group_block) {
      const std::int64_t at = seg + begin + k;
      c += sorted_confidence[at];
      a += correct[seg + index[at]];
    }
    s_conf[tid] = c;
    s_correct[tid] = a;
    __syncthreads();
    for (int stride = k_group_block / 2; stride > 0; stride /= 2) {
      if (tid < stride) {
        s_conf[tid] += s_conf[tid + stride];
        s_correct[tid] += s_correct[tid + stride];
      }
      __syncthreads();
    }
    if (tid == 0) {
      group_confidence[bt] = s_conf[0];
      group_correct[bt] = static_cast<double>(s_correct[0]);
    }
    __syncthreads();
  }
}

}  // namespace

std::size_t equal_mass_temp_bytes(std::int64_t num_candidates, std::int64_t num_samples) {
  std::size_t bytes = 0;
  CALIBENCH_CUDA_TRY(cub::DeviceSegmentedSort::StableSortPairs(
      nullptr, bytes, static_cast<const double*>(nullptr), static_cast<double*>(nullptr),
      static_cast<const std::int32_t*>(nullptr), static_cast<std::int32_t*>(nullptr), num_candidates * num_samples,
      num_candidates, static_cast<const std::int64_t*>(nullptr), static_cast<const std::int64_t*>(nullptr)));
  return bytes;
}

void launch_equal_mass_groups(terms_view in, std::int64_t num_candidates, std::int32_t num_bins,
                              equal_mass_scratch scratch, double* d_group_confidence, double* d_group_correct) {
  const std::int64_t n = in.num_samples;
  CALIBENCH_EXPECTS(num_candidates >= 0 && num_bins >= 1 && n >= 1, "bad shape");
  CALIBENCH_EXPECTS(n <= 0x7fffffff, "more samples than a 32-bit row index holds");
  if (num_candidates == 0) return;
  const std::int64_t items = num_candidates * n;
  segment_setup_kernel<<<detail::grid_for(items > num_candidates + 1 ? items : num_candidates + 1), detail::k_block>>>(
      scratch.index_in, scratch.offsets, n, num_candidates);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
  std::size_t temp_bytes = scratch.temp_bytes;
  CALIBENCH_CUDA_TRY(cub::DeviceSegmentedSort::StableSortPairs(
      scratch.temp, temp_bytes, static_cast<const double*>(in.confidence), scratch.sorted_confidence,
      static_cast<const std::int32_t*>(scratch.index_in), scratch.index_out, items, num_candidates,
      static_cast<const std::int64_t*>(scratch.offsets), static_cast<const std::int64_t*>(scratch.offsets + 1)));
  CALIBENCH_CUDA_TRY(cudaGetLastError());
  const std::int64_t blocks = num_candidates * num_bins;
  group_sums_kernel<<<static_cast<int>(blocks < detail::k_max_grid ? blocks : detail::k_max_grid), k_group_block>>>(
      scratch.sorted_confidence, scratch.index_out, in.correct, n, num_candidates, num_bins, d_group_confidence,
      d_group_correct);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

}  // namespace calibench::kernels
