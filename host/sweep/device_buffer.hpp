// The one RAII type for device memory of the CUDA backend: a grow-only allocation freed on
// scope exit, with typed views and checked copies (CUDA builds only).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda_check.hpp"

namespace calibench {

class device_buffer {
 public:
  device_buffer() = default;
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() { release(); }

  /// At least `bytes` bytes (the previous contents are lost when it grows).
  void* ensure(std::size_t bytes) {
    if (bytes > size_) {
      release();
      CALIBENCH_CUDA_TRY(cudaMalloc(&ptr_, bytes));
      size_ = bytes;
    }
    return ptr_;
  }
  /// Room for `count` values of T.
  template <class T>
  T* as(std::int64_t count) {
    return static_cast<T*>(ensure(static_cast<std::size_t>(count) * sizeof(T)));
  }
  std::size_t size() const { return size_; }

 private:
  void release() {
    if (ptr_ != nullptr) cudaFree(ptr_);  // never throws from a destructor
    ptr_ = nullptr;
    size_ = 0;
  }
  void* ptr_ = nullptr;
  std::size_t size_ = 0;
};

/// Copies `count` values from the host to the device (nothing for count 0).
template <class T>
void upload(T* d_dst, const T* h_src, std::int64_t count) {
  if (count > 0)
    CALIBENCH_CUDA_TRY(cudaMemcpy(d_dst, h_src, static_cast<std::size_t>(count) * sizeof(T), cudaMemcpyHostToDevice));
}

/// Copies `count` values from the device to the host (nothing for count 0).
template <class T>
void download(T* h_dst, const T* d_src, std::int64_t count) {
  if (count > 0)
    CALIBENCH_CUDA_TRY(cudaMemcpy(h_dst, d_src, static_cast<std::size_t>(count) * sizeof(T), cudaMemcpyDeviceToHost));
}

}  // namespace calibench
