// A typed device allocation freed on scope exit, with checked copies (CUDA builds only).
#pragma once

#include <cstddef>

#include "kernels/cuda_check.hpp"

namespace calibench {

template <class T>
class device_buffer {
 public:
  explicit device_buffer(std::size_t count) : count_(count) {
    if (count_ > 0) CALIBENCH_CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&ptr_), count_ * sizeof(T)));
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  T* get() const { return ptr_; }
  void upload(const T* h_src) { CALIBENCH_CUDA_TRY(cudaMemcpy(ptr_, h_src, count_ * sizeof(T), cudaMemcpyHostToDevice)); }
  void download(T* h_dst) const {
    CALIBENCH_CUDA_TRY(cudaMemcpy(h_dst, ptr_, count_ * sizeof(T), cudaMemcpyDeviceToHost));
  }

 private:
  std::size_t count_;
  T* ptr_ = nullptr;
};

}  // namespace calibench
