// Host adapter of the top-label kernel: copies float logits to the device, runs the kernel,
// copies the per-row results back. Only built with the CUDA backend.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace calibench {

struct top_label_rows {
  std::vector<float> confidence;
  std::vector<std::int32_t> prediction;
  std::vector<float> log_p_label;
};

/// Per-row softmax top-label statistics on the first CUDA device (throws cuda_error).
top_label_rows top_label_cuda(std::span<const float> logits, std::span<const std::int32_t> labels,
                              std::int64_t num_classes, float inv_t);

}  // namespace calibench
