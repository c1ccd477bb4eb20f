// Segmentation dumps (docs/segmentation.md): groups of /<group>/logits (or probs) [B, K, H, W]
// with labels [B, H, W] and optional ROI masks, temperature maps and augmented logits;
// structural inspection, validated reading one image at a time, atomic writing.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace calibench {

/// One group of a segmentation dump: /<name>/logits (or probs) [B, K, H, W], /<name>/labels
/// [B, H, W], optional /<name>/roi [B, H, W] (non-zero: in the region of interest),
/// /<name>/temperature [B, 1|K, H, W] and /<name>/augmented_logits [B, A, K, H, W].
struct seg_group {
  std::string name;
  std::int64_t images = 0, classes = 0, height = 0, width = 0;
  bool is_probs = false;
  std::string value_type;
  bool has_roi = false;
  std::int64_t temperature_channels = 0;  ///< 0: no temperature map; else 1 or K
  std::int64_t augmentations = 0;         ///< A, 0: no augmented logits
  std::int64_t pixels() const { return images * height * width; }
  std::string values_path() const { return "/" + name + (is_probs ? "/probs" : "/logits"); }
};

/// The groups of a segmentation dump: val first, then test, then the others by name.
struct seg_layout {
  std::string file;
  std::map<std::string, std::string> attributes;
  std::vector<seg_group> groups;
  const seg_group& group(const std::string& name) const;  ///< input_error when absent
};

/// One image of a group, validated, in float64: values[k][i][j], labels[i][j], and the
/// optional datasets when asked for.
struct seg_image {
  std::vector<double> values;        ///< K x H x W
  std::vector<std::int32_t> labels;  ///< H x W
  std::vector<std::uint8_t> roi;     ///< H x W (when read)
  std::vector<double> temperature;   ///< C x H x W, C = 1 or K (when read)
  std::vector<double> augmented;     ///< A x K x H x W (when read)
};

/// Structural checks of every segmentation group (rank, matching shapes, types, K >= 2).
seg_layout inspect_segmentation(const std::string& path);

/// Reads images of one file, validating each as it is read (non-finite values, probability
/// pixels, labels outside [0, K), temperatures that are not finite and > 0), with messages
/// naming the file, the dataset and the index [b, k, i, j].
class seg_reader {
 public:
  explicit seg_reader(const std::string& path);
  ~seg_reader();
  seg_reader(const seg_reader&) = delete;
  seg_reader& operator=(const seg_reader&) = delete;
  const seg_layout& layout() const { return layout_; }
  void read(const seg_group& g, std::int64_t image, seg_image& out, bool roi, bool temperature, bool augmented);

 private:
  seg_layout layout_;
  std::int64_t file_ = -1;  ///< hid_t of the open file
};

/// What write_segmentation_dump stores for one group (float32 logits, int32 labels).
struct seg_group_to_write {
  std::string name;
  std::int64_t images = 0, height = 0, width = 0;
  const float* logits = nullptr;         ///< B x K x H x W
  const std::int32_t* labels = nullptr;  ///< B x H x W
  const float* temperature = nullptr;    ///< optional B x 1 x H x W
  const float* augmented = nullptr;      ///< optional B x A x K x H x W
  std::int64_t augmentations = 0;
  const std::uint8_t* roi = nullptr;  ///< optional B x H x W
};

/// Writes a segmentation dump atomically (same attributes as write_dump).
void write_segmentation_dump(const std::string& path, const std::map<std::string, std::string>& string_attributes,
                             std::int64_t num_classes, const std::vector<seg_group_to_write>& groups);

}  // namespace calibench
