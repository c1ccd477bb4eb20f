// Equal-width bin statistics of a chunk of candidates from their per-sample terms: per
// candidate, bin counts, sums of confidence and correctness, and the NLL and Brier sums.
// Determinism: a block owns one (candidate, tile of k_tile samples); its warps walk the tile
// 32 samples at a time and, for each bin present among those 32, add the butterfly sum of the
// bin's confidences into warp-private shared accumulators (one writer per warp, in a fixed
// order). Counts are integers (ballot + popc, integer shared atomics are exact). The warps'
// accumulators are added in warp order, then a second kernel adds the tiles in tile order.
// No floating-point atomics anywhere, and the tile size is fixed, so every bit of the result
// is independent of the device, the grid size and the chunking.
#include "kernels/sweep_device.cuh"

namespace calibench::kernels {
namespace {

using detail::global_thread;
using detail::grid_threads;

/// Samples per (candidate, tile) block.
constexpr std::int64_t k_tile = 2048;
/// Shared memory a block may use without opting in.
constexpr std::size_t k_default_shared = 48 * 1024;

std::size_t shared_bytes(int warps, std::int32_t num_bins) {
  return static_cast<std::size_t>(warps) * static_cast<std::size_t>(num_bins) * sizeof(double) +
         2 * static_cast<std::size_t>(warps) * sizeof(double) +
         2 * static_cast<std::size_t>(num_bins) * sizeof(std::int32_t);
}

__global__ void bin_partials_kernel(terms_view in, std::int64_t num_candidates, std::int32_t num_bins, binning rule,
                                    bin_partials out) {
  extern __shared__ double shared[];
  const int warps = static_cast<int>(blockDim.x) / detail::k_warp;
  const int warp = static_cast<int>(threadIdx.x) / detail::k_warp;
  const int lane = detail::lane_id();
  double* conf_w = shared;  // warps x M, warp-private rows
  double* nll_w = conf_w + warps * num_bins;
  double* brier_w = nll_w + warps;
  auto* count = reinterpret_cast<std::int32_t*>(brier_w + warps);
  std::int32_t* correct = count + num_bins;
  double* my_conf = conf_w + warp * num_bins;

  const std::int64_t n = in.num_samples;
  const std::int64_t tiles = (n + k_tile - 1) / k_tile;
  for (std::int64_t bt = blockIdx.x; bt < num_candidates * tiles; bt += gridDim.x) {
    const std::int64_t g = bt / tiles, tile = bt % tiles;
    for (int k = static_cast<int>(threadIdx.x); k < warps * num_bins; k += static_cast<int>(blockDim.x))
      conf_w[k] = 0.0;
    for (int k = static_cast<int>(threadIdx.x); k < num_bins; k += static_cast<int>(blockDim.x)) {
      count[k] = 0;
      correct[k] = 0;
    }
    __syncthreads();
    const std::int64_t i0 = tile * k_tile;
    const std::int64_t i1 = min(n, i0 + k_tile);
    double nll = 0, brier = 0;
    // `base` is warp-uniform: the whole warp runs every iteration (ballots and shuffles need it).
    for (std::int64_t base = i0 + static_cast<std::int64_t>(warp) * detail::k_warp; base < i1;
         base += static_cast<std::int64_t>(warps) * detail::k_warp) {
      const std::int64_t i = base + lane;
      const bool active = i < i1;
      double c = 0.0;
      bool ok = false;
      std::int32_t b = -1;
      if (active) {
        const std::int64_t at = g * n + i;
        c = in.confidence[at];
        ok = in.correct[at] != 0;
        b = bin_index(rule, c, num_bins);
        nll -= in.log_p_label[at];
        brier += in.brier[at];
      }
      unsigned pending = __ballot_sync(detail::k_full_mask, active);
      const unsigned ok_mask = __ballot_sync(detail::k_full_mask, ok);
      while (pending != 0) {
        const int leader = __ffs(static_cast<int>(pending)) - 1;
        const std::int32_t bin = __shfl_sync(detail::k_full_mask, b, leader);
        const unsigned peers = __ballot_sync(detail::k_full_mask, b == bin);
        const double sum = detail::warp_sum(b == bin ? c : 0.0);
        if (lane == leader) {
          my_conf[bin] += sum;
          atomicAdd(&count[bin], __popc(peers));
          atomicAdd(&correct[bin], __popc(peers & ok_mask));
        }
        __syncwarp();
        pending &= ~peers;
      }
    }
    nll = detail::warp_sum(nll);
    brier = detail::warp_sum(brier);
    if (lane == 0) {
      nll_w[warp] = nll;
      brier_w[warp] = brier;
    }
    __syncthreads();
    const std::int64_t p = g * tiles + tile;
    for (int k = static_cast<int>(threadIdx.x); k < num_bins; k += static_cast<int>(blockDim.x)) {
      double s = 0.0;
      for (int w = 0; w < warps; ++w) s += conf_w[w * num_bins + k];
      out.sum_confidence[p * num_bins + k] = s;
      out.count[p * num_bins + k] = count[k];
      out.correct[p * num_bins + k] = correct[k];
    }
    if (threadIdx.x == 0) {
      double a = 0.0, bsum = 0.0;
      for (int w = 0; w < warps; ++w) {
        a += nll_w[w];
        bsum += brier_w[w];
      }
      out.nll[p] = a;
      out.brier[p] = bsum;
    }
    __syncthreads();  // the accumulators are reset for the next (candidate, tile)
  }
}

__global__ void bin_totals_kernel(bin_partials in, std::int64_t num_candidates, std::int64_t tiles,
                                  std::int32_t num_bins, bin_totals out) {
  const std::int64_t total = num_candidates * num_bins;
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t g = t / num_bins, b = t % num_bins;
    double s = 0.0;
    std::int64_t count = 0, correct = 0;
    for (std::int64_t tile = 0; tile < tiles; ++tile) {
      const std::int64_t p = (g * tiles + tile) * num_bins + b;
      s += in.sum_confidence[p];
      count += in.count[p];
      correct += in.correct[p];
    }
    out.count[t] = count;
    out.sum_confidence[t] = s;
    out.sum_correct[t] = static_cast<double>(correct);
  }
}

__global__ void candidate_totals_kernel(bin_partials in, std::int64_t num_candidates, std::int64_t tiles,
                                        std::int32_t num_bins, bin_totals out) {
  for (std::int64_t g = global_thread(); g < num_candidates; g += grid_threads()) {
    double nll = 0.0, brier = 0.0, correct = 0.0;
    for (std::int64_t tile = 0; tile < tiles; ++tile) {
      nll += in.nll[g * tiles + tile];
      brier += in.brier[g * tiles + tile];
    }
    for (std::int32_t b = 0; b < num_bins; ++b) correct += out.sum_correct[g * num_bins + b];  // integers: exact
    out.nll[g] = nll;
    out.brier[g] = brier;
    out.correct[g] = correct;
  }
}

std::size_t optin_shared_bytes() {
  int device = 0, bytes = 0;
  CALIBENCH_CUDA_TRY(cudaGetDevice(&device));
  CALIBENCH_CUDA_TRY(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return static_cast<std::size_t>(bytes);
}

}  // namespace

std::int64_t bin_tiles(std::int64_t num_samples) { return (num_samples + k_tile - 1) / k_tile; }

std::int32_t max_bins() {
  const std::size_t available = optin_shared_bytes();
  const std::size_t per_bin = sizeof(double) + 2 * sizeof(std::int32_t);
  const std::size_t fixed = 2 * sizeof(double);
  if (available <= fixed) return 0;
  const std::size_t bins = (available - fixed) / per_bin;
  return static_cast<std::int32_t>(bins < 0x7fffffff ? bins : 0x7fffffff);
}

void launch_bin_statistics(terms_view in, std::int64_t num_candidates, std::int32_t num_bins, binning rule,
                           bin_partials scratch, bin_totals out) {
  CALIBENCH_EXPECTS(num_candidates >= 0 && num_bins >= 1 && in.num_samples >= 1, "bad shape");
  if (num_candidates == 0) return;
  int warps = 8;
  while (warps > 1 && shared_bytes(warps, num_bins) > k_default_shared) warps /= 2;
  const std::size_t smem = shared_bytes(warps, num_bins);
  if (smem > k_default_shared) {
    CALIBENCH_EXPECTS(smem <= optin_shared_bytes(), "too many bins for the CUDA bin reduction");
    CALIBENCH_CUDA_TRY(
        cudaFuncSetAttribute(bin_partials_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  }
  const std::int64_t tiles = bin_tiles(in.num_samples);
  const std::int64_t blocks = num_candidates * tiles;
  const int grid = static_cast<int>(blocks < detail::k_max_grid ? blocks : detail::k_max_grid);
  bin_partials_kernel<<<grid, warps * detail::k_warp, smem>>>(in, num_candidates, num_bins, rule, scratch);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
  bin_totals_kernel<<<detail::grid_for(num_candidates * num_bins), detail::k_block>>>(scratch, num_candidates, tiles,
                                                                                      num_bins, out);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
  candidate_totals_kernel<<<detail::grid_for(num_candidates), detail::k_block>>>(scratch, num_candidates, tiles,
                                                                                 num_bins, out);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

}  // namespace calibench::kernels
