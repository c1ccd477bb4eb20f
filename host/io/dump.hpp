// The HDF5 logit dump (DESIGN section 2): validated reading of one split, structural
// inspection of a whole file, and writing. Every failure is an input_error naming the file,
// the dataset path and the first offending index or shape.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace calibench {

/// One split of a dump, held in memory as float64 (float16/32 convert exactly).
struct split_data {
  std::string file;                  ///< path it was read from (for messages)
  std::string name;                  ///< "val", "test", ...
  std::int64_t num_samples = 0;      ///< N
  std::int64_t num_classes = 0;      ///< K
  bool is_probs = false;             ///< values are probabilities (/<split>/probs), not logits
  std::string value_type;            ///< storage type in the file, e.g. "float16"
  std::vector<double> values;        ///< row-major N x K logits or probabilities
  std::vector<std::int32_t> labels;  ///< N labels in [0, K)

  /// Where the values came from, e.g. "/test/logits" (for messages).
  std::string values_path() const { return "/" + name + (is_probs ? "/probs" : "/logits"); }
};

/// Shape of one split as stored, without reading its values.
struct split_shape {
  std::string name;
  std::int64_t num_samples = 0;
  std::int64_t num_classes = 0;
  bool is_probs = false;
  std::string value_type;
  std::string label_type;
  std::vector<std::string> extra_datasets;  ///< other datasets in the group (e.g. true_probs)
};

/// Structure of a dump: root attributes as text and the shapes of its splits.
struct dump_layout {
  std::string file;
  std::map<std::string, std::string> attributes;
  std::vector<split_shape> splits;  ///< val, test first, then any other classification split
};

/// Splits every dump must have.
inline const std::vector<std::string>& required_splits() {
  static const std::vector<std::string> names{"val", "test"};
  return names;
}

/// Opens `path`, validates the root attributes and the structure (groups, ranks, shapes,
/// types) of every split without reading values. Throws input_error on the first problem.
dump_layout inspect_dump(const std::string& path);

/// Reads and fully validates one split (after the structural checks of inspect_dump):
/// non-finite values, probability rows, label range. Reads in row blocks of bounded size.
split_data read_split(const std::string& path, const std::string& split);

/// What write_dump stores for one split.
struct split_to_write {
  std::string name;
  std::int64_t num_samples = 0;
  std::int64_t num_classes = 0;
  const float* logits = nullptr;             ///< N x K, stored as float32 /<name>/logits
  const std::int32_t* labels = nullptr;      ///< N, stored as int32 /<name>/labels
  const float* true_probs = nullptr;         ///< optional N x K, stored as /<name>/true_probs
  const double* probs = nullptr;             ///< instead of logits: N x K float64 /<name>/probs
};

/// An extra float64 vector dataset at an absolute path (e.g. "/truth/class_scale").
struct vector_to_write {
  std::string path;
  std::vector<double> values;
};

/// Writes a dump atomically (temporary file in the same directory, then rename).
/// String attributes are stored as variable-length UTF-8 strings; `num_classes` and `version`
/// as 64-bit integers.
void write_dump(const std::string& path, const std::map<std::string, std::string>& string_attributes,
                const std::map<std::string, double>& number_attributes, std::int64_t num_classes,
                const std::vector<split_to_write>& splits, const std::vector<vector_to_write>& vectors = {});

/// Writes an HDF5 file (atomically) holding one group per entry (absolute paths, e.g.
/// "/cells/0123abcd") with the given string attributes.
void write_attribute_groups(const std::string& path,
                            const std::vector<std::pair<std::string, std::map<std::string, std::string>>>& groups);

}  // namespace calibench

namespace calibench {

// ---- Segmentation dumps (DESIGN section 2; docs/segmentation.md) ------------------------------

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
  std::vector<double> values;       ///< K x H x W
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
  const float* logits = nullptr;                ///< B x K x H x W
  const std::int32_t* labels = nullptr;         ///< B x H x W
  const float* temperature = nullptr;           ///< optional B x 1 x H x W
  const float* augmented = nullptr;             ///< optional B x A x K x H x W
  std::int64_t augmentations = 0;
  const std::uint8_t* roi = nullptr;            ///< optional B x H x W
};

/// Writes a segmentation dump atomically (same attributes as write_dump).
void write_segmentation_dump(const std::string& path, const std::map<std::string, std::string>& string_attributes,
                             std::int64_t num_classes, const std::vector<seg_group_to_write>& groups);

}  // namespace calibench
