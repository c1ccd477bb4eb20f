// HDF5 logit dumps: structural inspection, validated block-wise reading, atomic writing.
// HDF5's own error printer is switched off; every failure becomes one input_error line that
// names the file, the dataset path and the first offending index or shape.
#include "host/io/dump.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.hpp"

namespace calibench {
namespace {

namespace fs = std::filesystem;

/// Largest number of values read per block (32 MiB of doubles): bounds memory spikes from
/// HDF5's type-conversion buffers and lets validation report positions block by block.
constexpr std::int64_t k_block_values = std::int64_t{1} << 22;

/// Probability rows must sum to 1 within this (DESIGN section 2).
constexpr double k_prob_sum_tolerance = 1e-3;

void silence_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

/// Owns an HDF5 identifier and closes it with the matching function.
class h5_id {
 public:
  h5_id() = default;
  h5_id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  h5_id(const h5_id&) = delete;
  h5_id& operator=(const h5_id&) = delete;
  h5_id(h5_id&& other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = H5I_INVALID_HID; }
  h5_id& operator=(h5_id&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.id_;
      close_ = other.close_;
      other.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  ~h5_id() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && close_ != nullptr) close_(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  herr_t (*close_)(hid_t) = nullptr;
};

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw input_error(fmt::format("{}: {}", file, what));
}

std::string shape_text(const std::vector<hsize_t>& dims) { return fmt::format("[{}]", fmt::join(dims, ", ")); }

h5_id open_file(const std::string& path) {
  silence_hdf5();
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) fail(path, "no such file");
  if (fs::is_directory(status)) fail(path, "is a directory, not an HDF5 file");
  if (::access(path.c_str(), R_OK) != 0) fail(path, "cannot read the file (permission denied)");
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 <= 0) fail(path, "not an HDF5 file");
  h5_id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) fail(path, "cannot open as HDF5 (truncated or corrupt file)");
  return file;
}

/// True when `path` names a link that exists (checking every parent first, as HDF5 requires).
bool link_exists(hid_t file, const std::string& path) {
  std::size_t pos = 1;
  while (true) {
    const std::size_t next = path.find('/', pos);
    const std::string prefix = path.substr(0, next);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (next == std::string::npos) return true;
    pos = next + 1;
  }
}

std::optional<H5O_type_t> object_type(hid_t file, const std::string& path) {
  if (!link_exists(file, path)) return std::nullopt;
  H5O_info_t info;
  if (H5Oget_info_by_name(file, path.c_str(), &info, H5P_DEFAULT) < 0) return std::nullopt;
  return info.type;
}

std::string type_text(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t bits = 8 * H5Tget_size(type);
  switch (cls) {
    case H5T_FLOAT:
      return fmt::format("float{}", bits);
    case H5T_INTEGER:
      return fmt::format("{}int{}", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    default:
      return "non-numeric";
  }
}

/// An opened dataset with its type and shape.
struct dataset_view {
  h5_id dataset;
  h5_id type;
  H5T_class_t type_class = H5T_NO_CLASS;
  std::vector<hsize_t> dims;
};

dataset_view open_dataset(const std::string& file_path, hid_t file, const std::string& path) {
  const auto type = object_type(file, path);
  if (!type) fail(file_path, fmt::format("{}: dataset not found", path));
  if (*type != H5O_TYPE_DATASET) fail(file_path, fmt::format("{}: is not a dataset", path));
  dataset_view view;
  view.dataset = h5_id(H5Dopen2(file, path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!view.dataset.valid()) fail(file_path, fmt::format("{}: cannot open dataset (corrupt file?)", path));
  view.type = h5_id(H5Dget_type(view.dataset.get()), H5Tclose);
  h5_id space(H5Dget_space(view.dataset.get()), H5Sclose);
  if (!view.type.valid() || !space.valid()) fail(file_path, fmt::format("{}: cannot read type or shape", path));
  view.type_class = H5Tget_class(view.type.get());
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) fail(file_path, fmt::format("{}: cannot read shape", path));
  view.dims.resize(static_cast<std::size_t>(rank));
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), view.dims.data(), nullptr);
  return view;
}

/// Reads a scalar or 1-D attribute as text (strings, integers, floats); nullopt for others.
std::optional<std::string> attribute_text(hid_t attr) {
  h5_id type(H5Aget_type(attr), H5Tclose);
  h5_id space(H5Aget_space(attr), H5Sclose);
  if (!type.valid() || !space.valid()) return std::nullopt;
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  if (count < 0 || count > 100000) return std::nullopt;
  const auto n = static_cast<std::size_t>(count);
  std::vector<std::string> parts;
  switch (H5Tget_class(type.get())) {
    case H5T_STRING: {
      if (H5Tis_variable_str(type.get()) > 0) {
        std::vector<char*> raw(n, nullptr);
        h5_id mem(H5Tcopy(H5T_C_S1), H5Tclose);
        H5Tset_size(mem.get(), H5T_VARIABLE);
        H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
        if (H5Aread(attr, mem.get(), raw.data()) < 0) return std::nullopt;
        for (char* s : raw) parts.emplace_back(s ? s : "");
        H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, raw.data());
      } else {
        const std::size_t size = H5Tget_size(type.get());
        std::vector<char> raw(n * size + 1, '\0');
        if (H5Aread(attr, type.get(), raw.data()) < 0) return std::nullopt;
        for (std::size_t i = 0; i < n; ++i) {
          std::string s(raw.data() + i * size, size);
          s.erase(std::find(s.begin(), s.end(), '\0'), s.end());
          parts.push_back(std::move(s));
        }
      }
      break;
    }
    case H5T_INTEGER: {
      std::vector<long long> raw(n);
      if (H5Aread(attr, H5T_NATIVE_LLONG, raw.data()) < 0) return std::nullopt;
      for (long long v : raw) parts.push_back(std::to_string(v));
      break;
    }
    case H5T_FLOAT: {
      std::vector<double> raw(n);
      if (H5Aread(attr, H5T_NATIVE_DOUBLE, raw.data()) < 0) return std::nullopt;
      for (double v : raw) parts.push_back(fmt::format("{}", v));
      break;
    }
    default:
      return std::nullopt;
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

std::map<std::string, std::string> root_attributes(hid_t file) {
  std::map<std::string, std::string> out;
  H5O_info_t info;
  if (H5Oget_info(file, &info) < 0) return out;
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    h5_id attr(H5Aopen_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    if (!attr.valid()) continue;
    const ssize_t len = H5Aget_name(attr.get(), 0, nullptr);
    if (len < 0) continue;
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    H5Aget_name(attr.get(), name.size(), name.data());
    name.resize(static_cast<std::size_t>(len));
    if (auto text = attribute_text(attr.get())) out[name] = *text;
  }
  return out;
}

std::optional<long long> parse_integer(const std::string& text) {
  long long v = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  while (first < last && *first == ' ') ++first;
  const auto [ptr, ec] = std::from_chars(first, last, v);
  if (ec != std::errc() || ptr != last) return std::nullopt;
  return v;
}

/// Names of the root's child groups (sorted by name).
std::vector<std::string> child_groups(hid_t file) {
  std::vector<std::string> names;
  H5G_info_t info;
  if (H5Gget_info(file, &info) < 0) return names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) continue;
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
    name.resize(static_cast<std::size_t>(len));
    if (object_type(file, "/" + name) == H5O_TYPE_GROUP) names.push_back(name);
  }
  return names;
}

std::vector<std::string> group_datasets(hid_t file, const std::string& group) {
  std::vector<std::string> names;
  h5_id g(H5Gopen2(file, group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.valid()) return names;
  H5G_info_t info;
  if (H5Gget_info(g.get(), &info) < 0) return names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) continue;
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
    name.resize(static_cast<std::size_t>(len));
    names.push_back(name);
  }
  return names;
}

/// Which dataset holds the scores of `split`: "logits" (preferred) or "probs"; nullopt if neither.
std::optional<std::string> score_dataset(hid_t file, const std::string& split) {
  for (const char* name : {"logits", "probs"}) {
    if (object_type(file, "/" + split + "/" + name)) return std::string(name);
  }
  return std::nullopt;
}

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
    fail(file_path, fmt::format("{}: expected floating-point values, found {}", values_path, type_text(values.type.get())));
  if (values.dims.size() == 4)
    fail(file_path, fmt::format("{}: rank 4 {} is a segmentation dump [B, K, H, W]; evaluate it with calibench "
                                "seg-eval (docs/segmentation.md)", values_path, shape_text(values.dims)));
  if (values.dims.size() != 2)
    fail(file_path, fmt::format("{}: expected rank 2 [N, K], found rank {} shape {}", values_path, values.dims.size(),
                                shape_text(values.dims)));
  shape.num_samples = static_cast<std::int64_t>(values.dims[0]);
  shape.num_classes = static_cast<std::int64_t>(values.dims[1]);
  shape.value_type = type_text(values.type.get());
  if (shape.num_samples == 0)
    fail(file_path, fmt::format("{}: N = 0 samples (shape {})", values_path, shape_text(values.dims)));
  if (shape.num_classes < 2)
    fail(file_path, fmt::format("{}: K = {} class (shape {}); need at least 2 classes", values_path,
                                shape.num_classes, shape_text(values.dims)));
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

/// The root attributes of a dump, with `format` and `version` checked (both optional).
std::map<std::string, std::string> checked_root_attributes(const std::string& path, hid_t file) {
  auto attributes = root_attributes(file);
  if (auto it = attributes.find("format"); it != attributes.end() && it->second != "calibench-logits")
    fail(path, fmt::format("attribute format = '{}' (expected 'calibench-logits')", it->second));
  if (auto it = attributes.find("version"); it != attributes.end()) {
    const auto version = parse_integer(it->second);
    if (!version || *version > 1)
      fail(path, fmt::format("attribute version = '{}': this calibench reads version 1", it->second));
  }
  return attributes;
}

dump_layout inspect_open(const std::string& path, hid_t file) {
  dump_layout layout;
  layout.file = path;
  layout.attributes = checked_root_attributes(path, file);
  for (const auto& split : required_splits()) layout.splits.push_back(inspect_split(path, file, split));
  for (const auto& group : child_groups(file)) {
    if (std::find(required_splits().begin(), required_splits().end(), group) != required_splits().end()) continue;
    // Other groups (train, or segmentation groups handled elsewhere) are classification
    // splits only when they hold rank-2 scores.
    const auto scores = score_dataset(file, group);
    if (!scores) continue;
    const dataset_view values = open_dataset(path, file, "/" + group + "/" + *scores);
    if (values.dims.size() != 2) continue;
    layout.splits.push_back(inspect_split(path, file, group));
  }
  const std::int64_t k = layout.splits.front().num_classes;
  for (const auto& s : layout.splits) {
    if (s.num_classes != k)
      fail(path, fmt::format("/{}/{}: K = {} differs from /val K = {}", s.name, s.is_probs ? "probs" : "logits",
                             s.num_classes, k));
  }
  if (auto it = layout.attributes.find("num_classes"); it != layout.attributes.end()) {
    const auto declared = parse_integer(it->second);
    if (!declared || *declared != k)
      fail(path, fmt::format("attribute num_classes = '{}' disagrees with /val K = {}", it->second, k));
  }
  return layout;
}

/// Reads rows [row0, row0 + rows) of a rank-2 dataset as doubles into `out`.
bool read_rows(hid_t dataset, std::int64_t row0, std::int64_t rows, std::int64_t cols, double* out) {
  h5_id file_space(H5Dget_space(dataset), H5Sclose);
  if (!file_space.valid()) return false;
  const hsize_t start[2] = {static_cast<hsize_t>(row0), 0};
  const hsize_t count[2] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)};
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) < 0) return false;
  h5_id mem_space(H5Screate_simple(2, count, nullptr), H5Sclose);
  if (!mem_space.valid()) return false;
  return H5Dread(dataset, H5T_NATIVE_DOUBLE, mem_space.get(), file_space.get(), H5P_DEFAULT, out) >= 0;
}

void validate_block(const split_data& s, std::int64_t row0, std::int64_t rows, const double* block) {
  const std::int64_t k = s.num_classes;
  for (std::int64_t r = 0; r < rows; ++r) {
    const double* row = block + r * k;
    double sum = 0.0;
    for (std::int64_t j = 0; j < k; ++j) {
      const double v = row[j];
      if (!std::isfinite(v))
        fail(s.file, fmt::format("{}: non-finite value {} at index [{}, {}]", s.values_path(), v, row0 + r, j));
      if (s.is_probs && v < 0.0)
        fail(s.file, fmt::format("{}: negative probability {} at index [{}, {}]", s.values_path(), v, row0 + r, j));
      sum += v;
    }
    if (s.is_probs && !(std::fabs(sum - 1.0) <= k_prob_sum_tolerance))
      fail(s.file, fmt::format("{}: probabilities at index {} sum to {:.9g}, not 1 (tolerance {})", s.values_path(),
                               row0 + r, sum, k_prob_sum_tolerance));
  }
}

}  // namespace

dump_layout inspect_dump(const std::string& path) {
  h5_id file = open_file(path);
  return inspect_open(path, file.get());
}

split_data read_split(const std::string& path, const std::string& split) {
  h5_id file = open_file(path);
  const dump_layout layout = inspect_open(path, file.get());
  const auto shape = std::find_if(layout.splits.begin(), layout.splits.end(),
                                  [&](const split_shape& s) { return s.name == split; });
  if (shape == layout.splits.end()) fail(path, fmt::format("/{}: group not found or holds no classification split", split));

  split_data out;
  out.file = path;
  out.name = split;
  out.num_samples = shape->num_samples;
  out.num_classes = shape->num_classes;
  out.is_probs = shape->is_probs;
  out.value_type = shape->value_type;
  const std::int64_t n = out.num_samples;
  const std::int64_t k = out.num_classes;

  const dataset_view values = open_dataset(path, file.get(), out.values_path());
  // A header can declare any shape; refuse what cannot fit rather than dying on allocation.
  const double bytes = 8.0 * static_cast<double>(n) * static_cast<double>(k);
  const double memory = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  if (memory > 0 && bytes > memory)
    fail(path, fmt::format("{}: shape [{}, {}] needs {:.1f} GiB as float64, more than this machine's {:.1f} GiB",
                           out.values_path(), n, k, bytes / (1 << 30), memory / (1 << 30)));
  try {
    out.values.resize(static_cast<std::size_t>(n * k));
  } catch (const std::bad_alloc&) {
    fail(path, fmt::format("{}: out of memory allocating shape [{}, {}] as float64", out.values_path(), n, k));
  }
  const std::int64_t rows_per_block = std::max<std::int64_t>(1, k_block_values / k);
  for (std::int64_t row0 = 0; row0 < n; row0 += rows_per_block) {
    const std::int64_t rows = std::min(rows_per_block, n - row0);
    double* block = out.values.data() + row0 * k;
    if (!read_rows(values.dataset.get(), row0, rows, k, block))
      fail(path, fmt::format("{}: read failed at rows [{}, {}) (truncated or corrupt file)", out.values_path(), row0,
                             row0 + rows));
    validate_block(out, row0, rows, block);
  }

  const std::string labels_path = "/" + split + "/labels";
  const dataset_view labels = open_dataset(path, file.get(), labels_path);
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
  return out;
}

namespace {

void write_string_attribute(hid_t file, const std::string& name, const std::string& value) {
  h5_id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  h5_id space(H5Screate(H5S_SCALAR), H5Sclose);
  h5_id attr(H5Acreate2(file, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  const char* data = value.c_str();
  if (!attr.valid() || H5Awrite(attr.get(), type.get(), &data) < 0)
    throw error(fmt::format("cannot write attribute {}", name));
}

template <class T>
void write_number_attribute(hid_t file, const std::string& name, hid_t file_type, hid_t mem_type, T value) {
  h5_id space(H5Screate(H5S_SCALAR), H5Sclose);
  h5_id attr(H5Acreate2(file, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.valid() || H5Awrite(attr.get(), mem_type, &value) < 0)
    throw error(fmt::format("cannot write attribute {}", name));
}

/// Creates the parent groups of `path` without modification times (see write_dataset).
void create_parent_groups(hid_t file, const std::string& path) {
  h5_id gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
  H5Pset_obj_track_times(gcpl.get(), 0);
  for (std::size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    const std::string parent = path.substr(0, pos);
    if (H5Lexists(file, parent.c_str(), H5P_DEFAULT) > 0) continue;
    h5_id group(H5Gcreate2(file, parent.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
    if (!group.valid()) throw error(fmt::format("cannot create group {}", parent));
  }
}

void write_dataset(hid_t file, const std::string& path, std::vector<hsize_t> dims, hid_t file_type, hid_t mem_type,
                   const void* data) {
  // No object modification times: the same content gives the same bytes, so file hashes (the
  // sweep's cell identities) are reproducible.
  create_parent_groups(file, path);
  h5_id space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  h5_id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_obj_track_times(dcpl.get(), 0);
  h5_id dataset(H5Dcreate2(file, path.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                H5Dclose);
  if (!dataset.valid() || H5Dwrite(dataset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw error(fmt::format("cannot write dataset {}", path));
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

/// Creates an HDF5 file at a temporary path next to `path`, lets `fill` write into it, then
/// flushes, fsyncs and renames it over `path`: readers never see a partial file.
void write_hdf5_atomically(const std::string& path, const std::function<void(hid_t)>& fill) {
  silence_hdf5();
  const fs::path target(path);
  const fs::path temp = target.parent_path() / (target.filename().string() + fmt::format(".tmp.{}", ::getpid()));
  try {
    {
      h5_id file(H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
      if (!file.valid()) throw input_error(fmt::format("{}: cannot create file", path));
      fill(file.get());
      if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) throw error(fmt::format("{}: flush failed", path));
    }
    fsync_path(temp.string());
    fs::rename(temp, target);
  } catch (...) {
    std::error_code ec;
    fs::remove(temp, ec);
    throw;
  }
}

}  // namespace

void write_dump(const std::string& path, const std::map<std::string, std::string>& string_attributes,
                const std::map<std::string, double>& number_attributes, std::int64_t num_classes,
                const std::vector<split_to_write>& splits, const std::vector<vector_to_write>& vectors) {
  write_hdf5_atomically(path, [&](hid_t file) {
    write_string_attribute(file, "format", "calibench-logits");
    write_number_attribute<long long>(file, "version", H5T_STD_I64LE, H5T_NATIVE_LLONG, 1);
    write_number_attribute<long long>(file, "num_classes", H5T_STD_I64LE, H5T_NATIVE_LLONG, num_classes);
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
    for (const auto& v : vectors)
      write_dataset(file, v.path, {static_cast<hsize_t>(v.values.size())}, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                    v.values.data());
  });
}

void write_attribute_groups(const std::string& path,
                            const std::vector<std::pair<std::string, std::map<std::string, std::string>>>& groups) {
  write_hdf5_atomically(path, [&](hid_t file) {
    h5_id gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
    H5Pset_obj_track_times(gcpl.get(), 0);
    for (const auto& [group_path, attrs] : groups) {
      create_parent_groups(file, group_path);
      h5_id group(H5Gcreate2(file, group_path.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
      if (!group.valid()) throw error(fmt::format("{}: cannot create group {}", path, group_path));
      for (const auto& [name, value] : attrs) write_string_attribute(group.get(), name, value);
    }
  });
}

}  // namespace calibench

// ---- Segmentation dumps ------------------------------------------------------------------------

namespace calibench {
namespace {

/// Reads the hyperslab starting at `start` with extent `count` of a dataset as `mem_type`.
bool read_slab(hid_t dataset, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count, hid_t mem_type,
               void* out) {
  h5_id file_space(H5Dget_space(dataset), H5Sclose);
  if (!file_space.valid()) return false;
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0)
    return false;
  h5_id mem_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
  if (!mem_space.valid()) return false;
  return H5Dread(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, out) >= 0;
}

/// Structural checks of one segmentation group; nullopt when the group holds no rank-4 scores.
std::optional<seg_group> inspect_seg_group(const std::string& path, hid_t file, const std::string& name) {
  const auto scores = score_dataset(file, name);
  if (!scores) return std::nullopt;
  seg_group g;
  g.name = name;
  g.is_probs = *scores == "probs";
  const dataset_view values = open_dataset(path, file, g.values_path());
  if (values.dims.size() != 4) return std::nullopt;
  if (values.type_class != H5T_FLOAT)
    fail(path, fmt::format("{}: expected floating-point values, found {}", g.values_path(), type_text(values.type.get())));
  g.images = static_cast<std::int64_t>(values.dims[0]);
  g.classes = static_cast<std::int64_t>(values.dims[1]);
  g.height = static_cast<std::int64_t>(values.dims[2]);
  g.width = static_cast<std::int64_t>(values.dims[3]);
  g.value_type = type_text(values.type.get());
  if (g.images == 0 || g.height == 0 || g.width == 0)
    fail(path, fmt::format("{}: no pixels (shape {})", g.values_path(), shape_text(values.dims)));
  if (g.classes < 2)
    fail(path, fmt::format("{}: K = {} class (shape {}); need at least 2 classes", g.values_path(), g.classes,
                           shape_text(values.dims)));
  const std::vector<hsize_t> image_dims{values.dims[0], values.dims[2], values.dims[3]};
  const auto check_image_shaped = [&](const std::string& ds, bool integer) {
    const dataset_view v = open_dataset(path, file, ds);
    if (integer ? v.type_class != H5T_INTEGER : v.type_class != H5T_FLOAT)
      fail(path, fmt::format("{}: expected {} values, found {}", ds, integer ? "integer" : "floating-point",
                             type_text(v.type.get())));
    if (v.dims != image_dims)
      fail(path, fmt::format("{}: shape {} differs from [B, H, W] = {} of {}", ds, shape_text(v.dims),
                             shape_text(image_dims), g.values_path()));
  };
  check_image_shaped("/" + name + "/labels", true);
  if (object_type(file, "/" + name + "/roi")) {
    check_image_shaped("/" + name + "/roi", true);
    g.has_roi = true;
  }
  const std::string tpath = "/" + name + "/temperature";
  if (object_type(file, tpath)) {
    const dataset_view t = open_dataset(path, file, tpath);
    if (t.type_class != H5T_FLOAT)
      fail(path, fmt::format("{}: expected floating-point values, found {}", tpath, type_text(t.type.get())));
    if (t.dims.size() != 4 || t.dims[0] != values.dims[0] || (t.dims[1] != 1 && t.dims[1] != values.dims[1]) ||
        t.dims[2] != values.dims[2] || t.dims[3] != values.dims[3])
      fail(path, fmt::format("{}: shape {} is not [B, 1|K, H, W] for {} {}", tpath, shape_text(t.dims),
                             g.values_path(), shape_text(values.dims)));
    g.temperature_channels = static_cast<std::int64_t>(t.dims[1]);
  }
  const std::string apath = "/" + name + "/augmented_logits";
  if (object_type(file, apath)) {
    const dataset_view a = open_dataset(path, file, apath);
    if (a.type_class != H5T_FLOAT)
      fail(path, fmt::format("{}: expected floating-point values, found {}", apath, type_text(a.type.get())));
    if (a.dims.size() != 5 || a.dims[0] != values.dims[0] || a.dims[1] == 0 || a.dims[2] != values.dims[1] ||
        a.dims[3] != values.dims[2] || a.dims[4] != values.dims[3])
      fail(path, fmt::format("{}: shape {} is not [B, A, K, H, W] for {} {}", apath, shape_text(a.dims),
                             g.values_path(), shape_text(values.dims)));
    g.augmentations = static_cast<std::int64_t>(a.dims[1]);
  }
  return g;
}

seg_layout inspect_seg_open(const std::string& path, hid_t file) {
  seg_layout layout;
  layout.file = path;
  layout.attributes = checked_root_attributes(path, file);
  std::vector<std::string> names = child_groups(file);
  std::stable_sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    const auto rank = [](const std::string& s) { return s == "val" ? 0 : (s == "test" ? 1 : 2); };
    return rank(a) < rank(b);
  });
  for (const auto& name : names) {
    if (auto g = inspect_seg_group(path, file, name)) layout.groups.push_back(std::move(*g));
  }
  if (layout.groups.empty())
    fail(path, "no segmentation group (a group with /<name>/logits or /<name>/probs of rank 4 [B, K, H, W])");
  const std::int64_t k = layout.groups.front().classes;
  for (const auto& g : layout.groups) {
    if (g.classes != k)
      fail(path, fmt::format("{}: K = {} differs from {} K = {}", g.values_path(), g.classes,
                             layout.groups.front().values_path(), k));
  }
  if (auto it = layout.attributes.find("num_classes"); it != layout.attributes.end()) {
    const auto declared = parse_integer(it->second);
    if (!declared || *declared != k)
      fail(path, fmt::format("attribute num_classes = '{}' disagrees with K = {}", it->second, k));
  }
  return layout;
}

}  // namespace

const seg_group& seg_layout::group(const std::string& name) const {
  for (const auto& g : groups) {
    if (g.name == name) return g;
  }
  std::vector<std::string> names;
  for (const auto& g : groups) names.push_back(g.name);
  fail(file, fmt::format("/{}: no such segmentation group (groups: {})", name, fmt::join(names, ", ")));
}

seg_layout inspect_segmentation(const std::string& path) {
  h5_id file = open_file(path);
  return inspect_seg_open(path, file.get());
}

seg_reader::seg_reader(const std::string& path) {
  h5_id file = open_file(path);
  layout_ = inspect_seg_open(path, file.get());
  file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file_ < 0) fail(path, "cannot open as HDF5 (truncated or corrupt file)");
}

seg_reader::~seg_reader() {
  if (file_ >= 0) H5Fclose(static_cast<hid_t>(file_));
}

void seg_reader::read(const seg_group& g, std::int64_t image, seg_image& out, bool roi, bool temperature,
                      bool augmented) {
  const std::string& path = layout_.file;
  const auto file = static_cast<hid_t>(file_);
  const std::int64_t k = g.classes, h = g.height, w = g.width, hw = h * w;
  const auto b = static_cast<hsize_t>(image);
  const auto hk = static_cast<hsize_t>(k), hh = static_cast<hsize_t>(h), hwid = static_cast<hsize_t>(w);
  const auto where = [&](std::int64_t c, std::int64_t p) { return fmt::format("[{}, {}, {}, {}]", image, c, p / w, p % w); };

  out.values.resize(static_cast<std::size_t>(k * hw));
  {
    const dataset_view v = open_dataset(path, file, g.values_path());
    if (!read_slab(v.dataset.get(), {b, 0, 0, 0}, {1, hk, hh, hwid}, H5T_NATIVE_DOUBLE, out.values.data()))
      fail(path, fmt::format("{}: read failed at image {} (truncated or corrupt file)", g.values_path(), image));
    for (std::int64_t c = 0; c < k; ++c) {
      for (std::int64_t p = 0; p < hw; ++p) {
        const double x = out.values[c * hw + p];
        if (!std::isfinite(x)) fail(path, fmt::format("{}: non-finite value {} at index {}", g.values_path(), x, where(c, p)));
        if (g.is_probs && x < 0.0)
          fail(path, fmt::format("{}: negative probability {} at index {}", g.values_path(), x, where(c, p)));
      }
    }
    if (g.is_probs) {
      for (std::int64_t p = 0; p < hw; ++p) {
        double sum = 0;
        for (std::int64_t c = 0; c < k; ++c) sum += out.values[c * hw + p];
        if (!(std::fabs(sum - 1.0) <= k_prob_sum_tolerance))
          fail(path, fmt::format("{}: probabilities at index [{}, :, {}, {}] sum to {:.9g}, not 1 (tolerance {})",
                                 g.values_path(), image, p / w, p % w, sum, k_prob_sum_tolerance));
      }
    }
  }
  {
    const std::string lpath = "/" + g.name + "/labels";
    const dataset_view v = open_dataset(path, file, lpath);
    std::vector<long long> raw(static_cast<std::size_t>(hw));
    if (!read_slab(v.dataset.get(), {b, 0, 0}, {1, hh, hwid}, H5T_NATIVE_LLONG, raw.data()))
      fail(path, fmt::format("{}: read failed at image {} (truncated or corrupt file)", lpath, image));
    out.labels.resize(static_cast<std::size_t>(hw));
    for (std::int64_t p = 0; p < hw; ++p) {
      if (raw[p] < 0 || raw[p] >= k)
        fail(path, fmt::format("{}: label {} at index [{}, {}, {}] outside [0, {})", lpath, raw[p], image, p / w, p % w, k));
      out.labels[p] = static_cast<std::int32_t>(raw[p]);
    }
  }
  if (roi) {
    const std::string rpath = "/" + g.name + "/roi";
    const dataset_view v = open_dataset(path, file, rpath);
    out.roi.resize(static_cast<std::size_t>(hw));
    if (!read_slab(v.dataset.get(), {b, 0, 0}, {1, hh, hwid}, H5T_NATIVE_UINT8, out.roi.data()))
      fail(path, fmt::format("{}: read failed at image {} (truncated or corrupt file)", rpath, image));
  }
  if (temperature) {
    const std::string tpath = "/" + g.name + "/temperature";
    const dataset_view v = open_dataset(path, file, tpath);
    const auto c = static_cast<hsize_t>(g.temperature_channels);
    out.temperature.resize(static_cast<std::size_t>(g.temperature_channels * hw));
    if (!read_slab(v.dataset.get(), {b, 0, 0, 0}, {1, c, hh, hwid}, H5T_NATIVE_DOUBLE, out.temperature.data()))
      fail(path, fmt::format("{}: read failed at image {} (truncated or corrupt file)", tpath, image));
    for (std::int64_t i = 0; i < g.temperature_channels * hw; ++i) {
      const double t = out.temperature[i];
      if (!std::isfinite(t) || !(t > 0))
        fail(path, fmt::format("{}: temperature {} at index {} is not a finite number > 0", tpath, t,
                               where(i / hw, i % hw)));
    }
  }
  if (augmented) {
    const std::string apath = "/" + g.name + "/augmented_logits";
    const dataset_view v = open_dataset(path, file, apath);
    const auto a = static_cast<hsize_t>(g.augmentations);
    out.augmented.resize(static_cast<std::size_t>(g.augmentations * k * hw));
    if (!read_slab(v.dataset.get(), {b, 0, 0, 0, 0}, {1, a, hk, hh, hwid}, H5T_NATIVE_DOUBLE, out.augmented.data()))
      fail(path, fmt::format("{}: read failed at image {} (truncated or corrupt file)", apath, image));
    for (std::size_t i = 0; i < out.augmented.size(); ++i) {
      if (!std::isfinite(out.augmented[i])) {
        const auto per = static_cast<std::size_t>(k * hw);
        fail(path, fmt::format("{}: non-finite value {} at index [{}, {}, {}, {}, {}]", apath, out.augmented[i], image,
                               i / per, (i % per) / hw, (i % hw) / w, i % w));
      }
    }
  }
}

void write_segmentation_dump(const std::string& path, const std::map<std::string, std::string>& string_attributes,
                             std::int64_t num_classes, const std::vector<seg_group_to_write>& groups) {
  write_hdf5_atomically(path, [&](hid_t file) {
    write_string_attribute(file, "format", "calibench-logits");
    write_number_attribute<long long>(file, "version", H5T_STD_I64LE, H5T_NATIVE_LLONG, 1);
    write_number_attribute<long long>(file, "num_classes", H5T_STD_I64LE, H5T_NATIVE_LLONG, num_classes);
    write_string_attribute(file, "task", "segmentation");
    for (const auto& [name, value] : string_attributes) write_string_attribute(file, name, value);
    const auto k = static_cast<hsize_t>(num_classes);
    for (const auto& g : groups) {
      const auto b = static_cast<hsize_t>(g.images), h = static_cast<hsize_t>(g.height), w = static_cast<hsize_t>(g.width);
      write_dataset(file, "/" + g.name + "/logits", {b, k, h, w}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, g.logits);
      write_dataset(file, "/" + g.name + "/labels", {b, h, w}, H5T_STD_I32LE, H5T_NATIVE_INT32, g.labels);
      if (g.temperature != nullptr)
        write_dataset(file, "/" + g.name + "/temperature", {b, 1, h, w}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                      g.temperature);
      if (g.augmented != nullptr)
        write_dataset(file, "/" + g.name + "/augmented_logits", {b, static_cast<hsize_t>(g.augmentations), k, h, w},
                      H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, g.augmented);
      if (g.roi != nullptr) write_dataset(file, "/" + g.name + "/roi", {b, h, w}, H5T_STD_U8LE, H5T_NATIVE_UINT8, g.roi);
    }
  });
}

}  // namespace calibench
