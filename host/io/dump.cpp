// HDF5 logit dumps (host/io/dump.hpp): structural inspection, validated block-wise reading,
// atomic writing. Every failure is one input_error line that names the file, the dataset path
// and the first offending index or shape.
#include "host/io/dump.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/io/hdf5.hpp"

namespace calibench {
namespace {

using namespace h5;

/// Largest number of values read per block (32 MiB of doubles): bounds memory spikes from
/// HDF5's type-conversion buffers and lets validation report positions block by block.
constexpr std::int64_t k_block_values = std::int64_t{1} << 22;

/// Structural checks of one split; returns its shape.
split_shape inspect_split(const std::string& file_path, hid_t file, const std::string& split) {
  const std::string group = "/" + split;
  const auto type = object_type(file, group);
  if (!type) fail(file_path, fmt::format("{}: group not found (a dump needs /val and /test)", group));
  if (*type != H5O_TYPE_GROUP) fail(file_path, fmt::format("{}: is not a group", group));
  const auto scores = score_dataset(file, split);
  if (!scores) fail(file_path, fmt::format("{}: no logits or probs dataset in the group", group));

  split_shape shape;
  shape.name = split;
  shape.is_probs = (*scores == "probs");
  const std::string values_path = group + "/" + *scores;
  const dataset_view values = open_dataset(file_path, file, values_path);
  if (values.type_class != H5T_FLOAT)
    fail(file_path,
         fmt::format("{}: expected floating-point values, found {}", values_path, type_text(values.type.get())));
  if (values.dims.size() == 4)
    fail(file_path, fmt::format("{}: rank 4 {} is a segmentation dump [B, K, H, W]; evaluate it with calibench "
                                "seg-eval (docs/segmentation.md)",
                                values_path, shape_text(values.dims)));
  // One score per row ([N] or [N, 1]) is a binary split: the log-odds or P(class 1).
  shape.binary = values.dims.size() == 1 || (values.dims.size() == 2 && values.dims[1] == 1);
  if (values.dims.size() != 2 && !shape.binary)
    fail(file_path, fmt::format("{}: expected rank 2 [N, K] (or a binary [N] or [N, 1]), found rank {} shape {}",
                                values_path, values.dims.size(), shape_text(values.dims)));
  shape.num_samples = static_cast<std::int64_t>(values.dims[0]);
  shape.num_classes = shape.binary ? 2 : static_cast<std::int64_t>(values.dims[1]);
  shape.value_type = type_text(values.type.get());
  if (shape.num_samples == 0)
    fail(file_path, fmt::format("{}: N = 0 samples (shape {})", values_path, shape_text(values.dims)));
  if (shape.num_classes < 2)
    fail(file_path, fmt::format("{}: K = {} class (shape {}); need at least 2 classes", values_path, shape.num_classes,
                                shape_text(values.dims)));
  if (shape.num_classes > std::numeric_limits<std::int32_t>::max())
    fail(file_path, fmt::format("{}: K = {} classes is more than calibench supports", values_path, shape.num_classes));

  const std::string labels_path = group + "/labels";
  const dataset_view labels = open_dataset(file_path, file, labels_path);
  if (labels.type_class != H5T_INTEGER)
    fail(file_path, fmt::format("{}: expected integer labels, found {}", labels_path, type_text(labels.type.get())));
  const bool column = labels.dims.size() == 2 && labels.dims[1] == 1;
  if (labels.dims.size() != 1 && !column)
    fail(file_path, fmt::format("{}: expected shape [N] or [N, 1], found {}", labels_path, shape_text(labels.dims)));
  if (static_cast<std::int64_t>(labels.dims[0]) != shape.num_samples)
    fail(file_path, fmt::format("{}: length {} differs from {} rows {}", labels_path, labels.dims[0], values_path,
                                shape.num_samples));
  shape.label_type = type_text(labels.type.get());
  for (const auto& name : group_datasets(file, group)) {
    if (name != *scores && name != "labels") shape.extra_datasets.push_back(name);
  }
  return shape;
}

dump_layout inspect_open(const std::string& path, hid_t file) {
  dump_layout layout;
  layout.file = path;
  layout.attributes = checked_root_attributes(path, file);
  for (const auto& split : required_splits()) layout.splits.push_back(inspect_split(path, file, split));
  for (const auto& group : child_groups(file)) {
    if (std::find(required_splits().begin(), required_splits().end(), group) != required_splits().end()) continue;
    // Other groups (train, or segmentation groups handled elsewhere) are classification
    // splits only when they hold rank-2 (or binary rank-1) scores.
    const auto scores = score_dataset(file, group);
    if (!scores) continue;
    const dataset_view values = open_dataset(path, file, "/" + group + "/" + *scores);
    if (values.dims.size() != 2 && values.dims.size() != 1) continue;
    layout.splits.push_back(inspect_split(path, file, group));
  }
  const split_shape& first = layout.splits.front();
  const std::int64_t k = first.num_classes;
  for (const auto& s : layout.splits) {
    if (s.num_classes == k) continue;
    const char* binary_note = s.binary       ? " (a binary split: one score per row, read as K = 2)"
                              : first.binary ? " (/val is binary: one score per row, read as K = 2)"
                                             : "";
    fail(path, fmt::format("/{}/{}: K = {} differs from /val K = {}{}", s.name, s.is_probs ? "probs" : "logits",
                           s.num_classes, k, binary_note));
  }
  if (auto it = layout.attributes.find("num_classes"); it != layout.attributes.end()) {
    const auto declared = parse_integer(it->second);
    const bool binary_one = layout.splits.front().binary && declared && *declared == 1;  // one stored score
    if (!binary_one && (!declared || *declared != k))
      fail(path, fmt::format("attribute num_classes = '{}' disagrees with /val K = {}", it->second, k));
  }
  return layout;
}

/// Reads rows [row0, row0 + rows) of a rank-2 dataset as doubles into `out`.
bool read_rows(hid_t dataset, std::int64_t row0, std::int64_t rows, std::int64_t cols, double* out) {
  return read_slab(dataset, {static_cast<hsize_t>(row0), 0}, {static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)},
                   H5T_NATIVE_DOUBLE, out);
}

/// Whether rows [0, rows) hold only finite values: one pass whose sum of v * 0 turns NaN at any
/// infinity or NaN, in lanes so that it vectorises (no early exit).
template <class In>
bool all_finite(const In* values, std::int64_t rows, std::int64_t k, std::int64_t row_stride) {
  double poison = 0;
#pragma omp parallel for schedule(static) reduction(+ : poison) if (rows * k > (std::int64_t{1} << 20))
  for (std::int64_t r = 0; r < rows; ++r) {
    const In* row = values + r * row_stride;
    double lanes[8] = {};
    std::int64_t j = 0;
    for (; j + 8 <= k; j += 8) {
      for (int l = 0; l < 8; ++l) lanes[l] += static_cast<double>(row[j + l]) * 0.0;
    }
    for (int l = 0; j + l < k; ++l) lanes[l] += static_cast<double>(row[j + l]) * 0.0;
    for (const double v : lanes) poison += v;
  }
  return poison == 0.0;
}

/// The values of a rank-2 split, block by block, each block validated as it is read.
void read_score_rows(const std::string& path, const dataset_view& values, split_data& out) {
  const std::int64_t n = out.num_samples;
  const std::int64_t k = out.num_classes;
  const std::int64_t rows_per_block = std::max<std::int64_t>(1, k_block_values / k);
  for (std::int64_t row0 = 0; row0 < n; row0 += rows_per_block) {
    const std::int64_t rows = std::min(rows_per_block, n - row0);
    double* block = out.values.data() + row0 * k;
    if (!read_rows(values.dataset.get(), row0, rows, k, block))
      fail(path, fmt::format("{}: read failed at rows [{}, {}) (truncated or corrupt file)", out.values_path(), row0,
                             row0 + rows));
    check_scores(path + ": " + out.values_path(), block, rows, k, out.is_probs, row0);
  }
}

/// A binary split ([N] or [N, 1]): each score s becomes the row [0, s] (logits) or [1 - s, s]
/// (probabilities, which must lie in [0, 1]).
void read_binary_scores(const std::string& path, const dataset_view& values, split_data& out) {
  const std::int64_t n = out.num_samples;
  const bool column = values.dims.size() == 2;  // [N, 1]: indices print as [i, 0]
  std::vector<double> scores;
  for (std::int64_t row0 = 0; row0 < n; row0 += k_block_values) {
    const std::int64_t rows = std::min(k_block_values, n - row0);
    scores.resize(static_cast<std::size_t>(rows));
    std::vector<hsize_t> start{static_cast<hsize_t>(row0)}, count{static_cast<hsize_t>(rows)};
    if (column) {
      start.push_back(0);
      count.push_back(1);
    }
    if (!read_slab(values.dataset.get(), start, count, H5T_NATIVE_DOUBLE, scores.data()))
      fail(path, fmt::format("{}: read failed at rows [{}, {}) (truncated or corrupt file)", out.values_path(), row0,
                             row0 + rows));
    for (std::int64_t r = 0; r < rows; ++r) {
      const double v = scores[static_cast<std::size_t>(r)];
      const std::string index = column ? fmt::format("[{}, 0]", row0 + r) : fmt::format("[{}]", row0 + r);
      if (!std::isfinite(v))
        fail(path, fmt::format("{}: non-finite value {} at index {}", out.values_path(), v, index));
      if (out.is_probs && !(v >= 0.0 && v <= 1.0))
        fail(path, fmt::format("{}: probability {} at index {} outside [0, 1] (a binary split stores P(class 1))",
                               out.values_path(), v, index));
      double* row = out.values.data() + (row0 + r) * 2;
      row[0] = out.is_probs ? 1.0 - v : 0.0;
      row[1] = v;
    }
  }
}

/// The labels of a split, checked against [0, K).
void read_labels(const std::string& path, hid_t file, const std::string& split, split_data& out) {
  const std::int64_t n = out.num_samples;
  const std::int64_t k = out.num_classes;
  const std::string labels_path = "/" + split + "/labels";
  const dataset_view labels = open_dataset(path, file, labels_path);
  out.labels.resize(static_cast<std::size_t>(n));
  // Unsigned labels are read unsigned so that a huge value is reported as stored, not clamped.
  const bool is_unsigned = H5Tget_sign(labels.type.get()) == H5T_SGN_NONE;
  auto check_labels = [&](const auto& raw) {
    for (std::int64_t i = 0; i < n; ++i) {
      const auto y = raw[static_cast<std::size_t>(i)];
      if (y < 0 || y >= static_cast<std::decay_t<decltype(y)>>(k))
        fail(path, fmt::format("{}: label {} at index {} outside [0, {})", labels_path, y, i, k));
      out.labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(y);
    }
  };
  if (is_unsigned) {
    std::vector<unsigned long long> raw(static_cast<std::size_t>(n));
    if (H5Dread(labels.dataset.get(), H5T_NATIVE_ULLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0)
      fail(path, fmt::format("{}: read failed (truncated or corrupt file)", labels_path));
    check_labels(raw);
  } else {
    std::vector<long long> raw(static_cast<std::size_t>(n));
    if (H5Dread(labels.dataset.get(), H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0)
      fail(path, fmt::format("{}: read failed (truncated or corrupt file)", labels_path));
    check_labels(raw);
  }
}

}  // namespace

template <class In>
void check_score_rows(const std::string& where, const In* values, std::int64_t rows, std::int64_t k,
                      std::int64_t row_stride, bool is_probs, std::int64_t first_row) {
  if (!is_probs && all_finite(values, rows, k, row_stride)) return;
  for (std::int64_t r = 0; r < rows; ++r) {
    const In* row = values + r * row_stride;
    double sum = 0.0;
    for (std::int64_t j = 0; j < k; ++j) {
      const double v = static_cast<double>(row[j]);
      if (!std::isfinite(v))
        throw input_error(fmt::format("{}: non-finite value {} at index [{}, {}]", where, v, first_row + r, j));
      if (is_probs && v < 0.0)
        throw input_error(fmt::format("{}: negative probability {} at index [{}, {}]", where, v, first_row + r, j));
      sum += v;
    }
    if (is_probs && !(std::fabs(sum - 1.0) <= k_prob_sum_tolerance))
      throw input_error(fmt::format("{}: probabilities at index {} sum to {:.9g}, not 1 (tolerance {})", where,
                                    first_row + r, sum, k_prob_sum_tolerance));
  }
}
template void check_score_rows(const std::string&, const float*, std::int64_t, std::int64_t, std::int64_t, bool,
                               std::int64_t);
template void check_score_rows(const std::string&, const double*, std::int64_t, std::int64_t, std::int64_t, bool,
                               std::int64_t);

void check_scores(const std::string& where, const double* values, std::int64_t rows, std::int64_t k, bool is_probs,
                  std::int64_t first_row) {
  check_score_rows(where, values, rows, k, k, is_probs, first_row);
}

dump_layout inspect_dump(const std::string& path) {
  id file = open_file(path);
  return inspect_open(path, file.get());
}

split_data read_split(const std::string& path, const std::string& split) {
  id file = open_file(path);
  const dump_layout layout = inspect_open(path, file.get());
  const auto shape =
      std::find_if(layout.splits.begin(), layout.splits.end(), [&](const split_shape& s) { return s.name == split; });
  if (shape == layout.splits.end())
    fail(path, fmt::format("/{}: group not found or holds no classification split", split));

  split_data out;
  out.file = path;
  out.name = split;
  out.num_samples = shape->num_samples;
  out.num_classes = shape->num_classes;
  out.is_probs = shape->is_probs;
  out.binary = shape->binary;
  out.value_type = shape->value_type;
  const std::int64_t n = out.num_samples;
  const std::int64_t k = out.num_classes;

  const dataset_view values = open_dataset(path, file.get(), out.values_path());
  // A header can declare any shape; refuse what cannot fit rather than dying on allocation:
  // the float64 values, the labels and the per-row scores (confidence, prediction, log p).
  const double bytes = 8.0 * static_cast<double>(n) * static_cast<double>(k) + 24.0 * static_cast<double>(n);
  const double memory = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  if (memory > 0 && bytes > memory)
    fail(path, fmt::format("{}: shape [{}, {}] needs {:.1f} GiB (float64 values, labels and scores), more than this "
                           "machine's {:.1f} GiB",
                           out.values_path(), n, k, bytes / (1 << 30), memory / (1 << 30)));
  try {
    out.values.resize(static_cast<std::size_t>(n * k));
  } catch (const std::bad_alloc&) {
    throw error(
        fmt::format("{}: {}: out of memory allocating shape [{}, {}] as float64", path, out.values_path(), n, k));
  }
  if (shape->binary) {
    read_binary_scores(path, values, out);
  } else {
    read_score_rows(path, values, out);
  }
  read_labels(path, file.get(), split, out);
  return out;
}

void write_dump(const std::string& path, const std::map<std::string, std::string>& string_attributes,
                const std::map<std::string, double>& number_attributes, std::int64_t num_classes,
                const std::vector<split_to_write>& splits, const std::vector<vector_to_write>& vectors) {
  write_atomically(path, [&](hid_t file) {
    write_dump_header(file, num_classes);
    for (const auto& [name, value] : string_attributes) write_string_attribute(file, name, value);
    for (const auto& [name, value] : number_attributes)
      write_number_attribute<double>(file, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, value);
    for (const auto& s : splits) {
      const auto n = static_cast<hsize_t>(s.num_samples);
      const auto k = static_cast<hsize_t>(s.num_classes);
      if (s.probs != nullptr) {
        write_dataset(file, "/" + s.name + "/probs", {n, k}, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, s.probs);
      } else {
        write_dataset(file, "/" + s.name + "/logits", {n, k}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, s.logits);
      }
      write_dataset(file, "/" + s.name + "/labels", {n}, H5T_STD_I32LE, H5T_NATIVE_INT32, s.labels);
      if (s.true_probs != nullptr)
        write_dataset(file, "/" + s.name + "/true_probs", {n, k}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, s.true_probs);
    }
    for (const auto& v : vectors) {
      std::vector<hsize_t> dims{static_cast<hsize_t>(v.values.size())};
      if (v.columns > 0) dims = {dims[0] / static_cast<hsize_t>(v.columns), static_cast<hsize_t>(v.columns)};
      write_dataset(file, v.path, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v.values.data());
    }
  });
}

void write_attribute_groups(const std::string& path,
                            const std::vector<std::pair<std::string, std::map<std::string, std::string>>>& groups) {
  write_atomically(path, [&](hid_t file) {
    id gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
    H5Pset_obj_track_times(gcpl.get(), 0);
    for (const auto& [group_path, attrs] : groups) {
      create_parent_groups(file, group_path);
      id group(H5Gcreate2(file, group_path.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
      if (!group.valid()) throw error(fmt::format("{}: cannot create group {}", path, group_path));
      for (const auto& [name, value] : attrs) write_string_attribute(group.get(), name, value);
    }
  });
}

}  // namespace calibench
