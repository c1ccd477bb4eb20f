// Host side of the (alpha, beta) grid kernel: device buffers, checked copies, one launch.
#include "host/sweep/cuda_sctl.hpp"

#include <numeric>

#include "host/sweep/device_buffer.hpp"
#include "kernels/sctl_grid.hpp"

namespace calibench {

std::vector<double> sctl_grid_values_cuda(std::span<const double> l0, std::span<const double> l1,
                                          std::span<const double> normalised1, const sctl_box& box, std::int64_t grid) {
  const std::size_t k = l0.size();
  CALIBENCH_EXPECTS(k >= 1 && l1.size() == k && normalised1.size() == k && grid >= 2, "sctl grid: shapes");
  double mean_l1 = 0;
  for (double v : l1) mean_l1 += v;
  mean_l1 /= static_cast<double>(k);
  device_buffer<double> d_l0(k), d_l1(k), d_norm(k), d_values(static_cast<std::size_t>(grid * grid));
  d_l0.upload(l0.data());
  d_l1.upload(l1.data());
  d_norm.upload(normalised1.data());
  kernels::launch_sctl_grid(d_l0.get(), d_l1.get(), d_norm.get(), static_cast<std::int64_t>(k), mean_l1,
                            {box.alpha_lo, box.alpha_hi, box.beta_lo, box.beta_hi, grid}, d_values.get());
  CALIBENCH_CUDA_TRY(cudaDeviceSynchronize());
  std::vector<double> values(static_cast<std::size_t>(grid * grid));
  d_values.download(values.data());
  return values;
}

}  // namespace calibench
