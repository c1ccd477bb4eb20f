// Launcher of the class-wise loss scaling grid kernel: the (alpha, beta) objective of DESIGN
// section 4 at every pair of a grid x grid lattice. Device pointers; compiles with g++ (no CUDA
// types in the interface).
#pragma once

#include <cstdint>

namespace calibench::kernels {

/// The lattice: alpha_j = alpha_lo + (alpha_hi - alpha_lo) j / (grid - 1) (alpha_hi exactly at
/// j = grid - 1), beta likewise; the pair (j, c) is written to d_values[j * grid + c].
struct sctl_lattice {
  double alpha_lo, alpha_hi, beta_lo, beta_hi;
  std::int64_t grid;
};

/// d_values[j * grid + c] = sum over the K classes, in class order, of
/// (l0_i - (beta t_i - beta / 2) (l1_i - l0_i) - mean_l1)^2 with t_i = sctl_sigmoid(normalised_i,
/// alpha_j): the squared objective, as the host grid computes it. One thread per pair, grid-stride.
/// Asynchronous on the default stream; throws cuda_error if the launch fails.
void launch_sctl_grid(const double* d_l0, const double* d_l1, const double* d_normalised, std::int64_t num_classes,
                      double mean_l1, const sctl_lattice& lattice, double* d_values);

}  // namespace calibench::kernels
