// `calibench synth --segmentation`: a segmentation dump of elliptic blobs with known true
// probabilities, an over-confident "network" and perturbed test domains (docs/segmentation.md).
#pragma once

#include <cstdint>
#include <string>

namespace calibench {

/// Options of `calibench synth --segmentation` (docs/segmentation.md).
struct seg_synth_options {
  std::int64_t classes = 4;  ///< K: background + K-1 blob classes
  std::int64_t images = 8;   ///< B per group
  std::int64_t height = 96, width = 96;
  std::uint64_t seed = 0;
  double temperature = 2.5;        ///< over-confidence: observed logits = T x true logits (+ noise)
  double boundary = 2.0;           ///< blur width of blob boundaries in pixels
  std::int64_t augmentations = 4;  ///< A stored augmented logits per image
};

/// Writes a segmentation dump with groups val, test, test_noise, test_bias_field, test_shift
/// (each with labels, logits, a temperature map and augmented logits).
void write_seg_synth_dump(const std::string& path, const seg_synth_options& options);

}  // namespace calibench
