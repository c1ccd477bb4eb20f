// Device discovery: asks the CUDA runtime when the backend is built, treats every failure
// as "no device" with the runtime's reason (ggml's ggml_cuda_init does the same).
#include "host/sweep/device.hpp"

#if defined(CALIBENCH_HAVE_CUDA)
#include <cuda_runtime.h>
#endif

namespace calibench {

device_report discover_devices() noexcept {
  device_report r;
#if defined(CALIBENCH_HAVE_CUDA)
  r.cuda_built = true;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    r.reason = cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return r;
  }
  if (count == 0) {
    r.reason = "no CUDA device";
    return r;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) r.name = prop.name;
  r.device_count = count;
#else
  r.reason = "built without CUDA";
#endif
  return r;
}

void select_device(int index) noexcept {
#if defined(CALIBENCH_HAVE_CUDA)
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();
    return;
  }
  if (cudaSetDevice(index % count) != cudaSuccess) cudaGetLastError();
#else
  (void)index;
#endif
}

}  // namespace calibench
