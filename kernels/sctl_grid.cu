// Class-wise loss scaling grid kernel (kernels/sctl_grid.hpp): one thread per (alpha, beta)
// pair, the per-element math of kernels/sctl_math.hpp, the class sum in class order as on the host.
#include "kernels/cuda_check.hpp"
#include "kernels/sctl_grid.hpp"
#include "kernels/sctl_math.hpp"

namespace calibench::kernels {
namespace {

__global__ void sctl_grid_kernel(const double* __restrict__ l0, const double* __restrict__ l1,
                                 const double* __restrict__ normalised, std::int64_t k, double mean_l1,
                                 sctl_lattice lattice, double* __restrict__ values) {
  const std::int64_t g = lattice.grid;
  const std::int64_t pairs = g * g;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < pairs;
       idx += stride) {
    const double alpha = sctl_lattice_axis(lattice.alpha_lo, lattice.alpha_hi, idx / g, g);
    const double beta = sctl_lattice_axis(lattice.beta_lo, lattice.beta_hi, idx % g, g);
    double s = 0;
    for (std::int64_t i = 0; i < k; ++i) {
      const double t = sctl_sigmoid(normalised[i], alpha);
      const double res = l0[i] - (beta * t - beta / 2.0) * (l1[i] - l0[i]) - mean_l1;
      s += res * res;
    }
    values[idx] = s;
  }
}

}  // namespace

void launch_sctl_grid(const double* d_l0, const double* d_l1, const double* d_normalised, std::int64_t num_classes,
                      double mean_l1, const sctl_lattice& lattice, double* d_values) {
  CALIBENCH_EXPECTS(num_classes >= 1 && lattice.grid >= 2, "sctl grid: K >= 1 and grid >= 2");
  constexpr int block = 256;
  const std::int64_t pairs = lattice.grid * lattice.grid;
  const std::int64_t wanted = (pairs + block - 1) / block;
  const int grid = static_cast<int>(wanted < 65535 ? wanted : 65535);
  sctl_grid_kernel<<<grid, block>>>(d_l0, d_l1, d_normalised, num_classes, mean_l1, lattice, d_values);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

}  // namespace calibench::kernels
