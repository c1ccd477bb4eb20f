// The HDF5 logit dump (docs/metrics.md, "Inputs"): validated reading of one split, structural
// inspection of a whole file, and writing. Every failure is an input_error naming the file,
// the dataset path and the first offending index or shape.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace calibench {

/// Probability rows must sum to 1 within this (docs/metrics.md, "Inputs"); they are not
/// renormalised.
inline constexpr double k_prob_sum_tolerance = 1e-3;

/// The value checks of a dump split: finite values; for probabilities no negative entry and
/// rows summing to 1 within k_prob_sum_tolerance. input_error "WHERE: non-finite value v at
/// index [r, j]" (r counted from `first_row`) for the first bad entry.
void check_scores(const std::string& where, const double* values, std::int64_t rows, std::int64_t num_classes,
                  bool is_probs, std::int64_t first_row = 0);
/// The same checks on float32 or float64 rows `row_stride` elements apart, read where they lie.
/// Logits are checked in one vectorised pass, and entry by entry only when it finds a bad one.
template <class In>
void check_score_rows(const std::string& where, const In* values, std::int64_t rows, std::int64_t num_classes,
                      std::int64_t row_stride, bool is_probs, std::int64_t first_row = 0);

/// One split of a dump, held in memory as float64 (float16/32 convert exactly).
struct split_data {
  std::string file;                  ///< path it was read from (for messages)
  std::string name;                  ///< "val", "test", ...
  std::int64_t num_samples = 0;      ///< N
  std::int64_t num_classes = 0;      ///< K
  bool is_probs = false;             ///< values are probabilities (/<split>/probs), not logits
  bool binary = false;               ///< stored as one score per row ([N] or [N, 1]), read as K = 2
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
  bool binary = false;  ///< one score per row ([N] or [N, 1]): K = 2, logits [0, s] or probs [1 - p, p]
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
  const float* logits = nullptr;         ///< N x K, stored as float32 /<name>/logits
  const std::int32_t* labels = nullptr;  ///< N, stored as int32 /<name>/labels
  const float* true_probs = nullptr;     ///< optional N x K, stored as /<name>/true_probs
  const double* probs = nullptr;         ///< instead of logits: N x K float64 /<name>/probs
};

/// An extra float64 dataset at an absolute path (e.g. "/truth/class_scale"): a vector, or with
/// `columns` > 0 a matrix of values.size() / columns rows (row-major).
struct vector_to_write {
  std::string path;
  std::vector<double> values;
  std::int64_t columns = 0;
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
