// CALIBENCH_CUDA_TRY: wraps every CUDA runtime call and launch; throws cuda_error with the
// call, file and line. Define CALIBENCH_CUDA_SYNC_DEBUG to synchronise after each call.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "common/error.hpp"

namespace calibench::detail {
inline void cuda_check(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) {
    throw cuda_error(std::string(call) + ": " + cudaGetErrorString(status) + " at " + file + ":" +
                     std::to_string(line));
  }
#if defined(CALIBENCH_CUDA_SYNC_DEBUG)
  const cudaError_t sync = cudaDeviceSynchronize();
  if (sync != cudaSuccess) {
    throw cuda_error(std::string(call) + " (sync): " + cudaGetErrorString(sync) + " at " + file + ":" +
                     std::to_string(line));
  }
#endif
}
}  // namespace calibench::detail

#define CALIBENCH_CUDA_TRY(call) ::calibench::detail::cuda_check((call), #call, __FILE__, __LINE__)
