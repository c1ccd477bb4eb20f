// HDF5 primitives of the dump readers and writers (host/io/hdf5.hpp).
#include "host/io/hdf5.hpp"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <mutex>

#include <fmt/ranges.h>

#include "host/io/atomic_file.hpp"

namespace calibench::h5 {
namespace {

namespace fs = std::filesystem;

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

/// Reads a scalar or 1-D attribute as text (strings, integers, floats); nullopt for others.
std::optional<std::string> attribute_text(hid_t attr) {
  id type(H5Aget_type(attr), H5Tclose);
  id space(H5Aget_space(attr), H5Sclose);
  if (!type.valid() || !space.valid()) return std::nullopt;
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  if (count < 0 || count > 100000) return std::nullopt;
  const auto n = static_cast<std::size_t>(count);
  std::vector<std::string> parts;
  switch (H5Tget_class(type.get())) {
    case H5T_STRING: {
      if (H5Tis_variable_str(type.get()) > 0) {
        std::vector<char*> raw(n, nullptr);
        id mem(H5Tcopy(H5T_C_S1), H5Tclose);
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
    default: return std::nullopt;
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

std::map<std::string, std::string> root_attributes(hid_t file) {
  std::map<std::string, std::string> out;
  H5O_info_t info;
  if (H5Oget_info(file, &info) < 0) return out;
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    id attr(H5Aopen_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
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

/// Refuses a dataset whose values were never (fully) written: HDF5 would read its fill value
/// (zeros: "accuracy 100 %") for a declared dataset without storage, for the chunks that are
/// missing, and for a virtual dataset whose source file is gone.
void check_written(const std::string& file_path, const dataset_view& view, const std::string& path) {
  hsize_t points = 1;
  for (const hsize_t d : view.dims) points *= d;
  if (points == 0) return;
  id dcpl(H5Dget_create_plist(view.dataset.get()), H5Pclose);
  if (!dcpl.valid()) fail(file_path, fmt::format("{}: cannot read the storage layout", path));
  const H5D_layout_t layout = H5Pget_layout(dcpl.get());
  const auto element = static_cast<hsize_t>(H5Tget_size(view.type.get()));
  if (layout == H5D_CONTIGUOUS) {
    const hsize_t stored = H5Dget_storage_size(view.dataset.get());
    if (H5Dget_offset(view.dataset.get()) == HADDR_UNDEF && H5Pget_external_count(dcpl.get()) <= 0)
      fail(file_path, fmt::format("{}: shape {} declared but never written (no storage in the file)", path,
                                  shape_text(view.dims)));
    if (H5Pget_external_count(dcpl.get()) <= 0 && stored < points * element)
      fail(file_path, fmt::format("{}: shape {} needs {} bytes but the file stores {}", path, shape_text(view.dims),
                                  points * element, stored));
  } else if (layout == H5D_CHUNKED) {
    const int rank = H5Pget_chunk(dcpl.get(), 0, nullptr);
    std::vector<hsize_t> chunk(static_cast<std::size_t>(std::max(rank, 0)));
    if (rank <= 0 || H5Pget_chunk(dcpl.get(), rank, chunk.data()) < 0)
      fail(file_path, fmt::format("{}: cannot read the chunk shape", path));
    hsize_t expected = 1;
    for (std::size_t i = 0; i < chunk.size() && i < view.dims.size(); ++i)
      expected *= (view.dims[i] + chunk[i] - 1) / std::max<hsize_t>(chunk[i], 1);
    id space(H5Dget_space(view.dataset.get()), H5Sclose);
    hsize_t written = 0;
    if (!space.valid() || H5Dget_num_chunks(view.dataset.get(), space.get(), &written) < 0)
      fail(file_path, fmt::format("{}: cannot count the written chunks", path));
    if (written < expected)
      fail(file_path, fmt::format("{}: {} of its {} chunks were never written (HDF5 would read fill values)", path,
                                  expected - written, expected));
  } else if (layout == H5D_VIRTUAL) {
    std::size_t count = 0;
    if (H5Pget_virtual_count(dcpl.get(), &count) < 0)
      fail(file_path, fmt::format("{}: cannot read the virtual dataset's mappings", path));
    const fs::path folder = fs::path(file_path).parent_path();
    for (std::size_t i = 0; i < count; ++i) {
      const ssize_t len = H5Pget_virtual_filename(dcpl.get(), i, nullptr, 0);
      std::string name(static_cast<std::size_t>(std::max<ssize_t>(len, 0)), '\0');
      if (len > 0) H5Pget_virtual_filename(dcpl.get(), i, name.data(), name.size() + 1);
      if (name == ".") continue;
      const fs::path source = fs::path(name).is_absolute() ? fs::path(name) : folder / name;
      if (!fs::exists(source))
        fail(file_path, fmt::format("{}: virtual dataset whose source file {} is missing", path, source.string()));
    }
  }
}

}  // namespace

void silence() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

void fail(const std::string& file, const std::string& what) { throw input_error(fmt::format("{}: {}", file, what)); }

std::string shape_text(const std::vector<hsize_t>& dims) { return fmt::format("[{}]", fmt::join(dims, ", ")); }

id open_file(const std::string& path) {
  silence();
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) fail(path, "no such file");
  if (fs::is_directory(status)) fail(path, "is a directory, not an HDF5 file");
  if (::access(path.c_str(), R_OK) != 0) fail(path, "cannot read the file (permission denied)");
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 <= 0) fail(path, "not an HDF5 file");
  id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) fail(path, "cannot open as HDF5 (truncated or corrupt file)");
  return file;
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
    case H5T_FLOAT: return fmt::format("float{}", bits);
    case H5T_INTEGER: return fmt::format("{}int{}", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    default: return "non-numeric";
  }
}

dataset_view open_dataset(const std::string& file_path, hid_t file, const std::string& path) {
  const auto type = object_type(file, path);
  if (!type) fail(file_path, fmt::format("{}: dataset not found", path));
  if (*type != H5O_TYPE_DATASET) fail(file_path, fmt::format("{}: is not a dataset", path));
  dataset_view view;
  view.dataset = id(H5Dopen2(file, path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!view.dataset.valid()) fail(file_path, fmt::format("{}: cannot open dataset (corrupt file?)", path));
  view.type = id(H5Dget_type(view.dataset.get()), H5Tclose);
  id space(H5Dget_space(view.dataset.get()), H5Sclose);
  if (!view.type.valid() || !space.valid()) fail(file_path, fmt::format("{}: cannot read type or shape", path));
  view.type_class = H5Tget_class(view.type.get());
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) fail(file_path, fmt::format("{}: cannot read shape", path));
  view.dims.resize(static_cast<std::size_t>(rank));
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), view.dims.data(), nullptr);
  check_written(file_path, view, path);
  return view;
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
  id g(H5Gopen2(file, group.c_str(), H5P_DEFAULT), H5Gclose);
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

/// Reads the hyperslab starting at `start` with extent `count` of a dataset as `mem_type`.
bool read_slab(hid_t dataset, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count, hid_t mem_type,
               void* out) {
  id file_space(H5Dget_space(dataset), H5Sclose);
  if (!file_space.valid()) return false;
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0)
    return false;
  id mem_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
  if (!mem_space.valid()) return false;
  return H5Dread(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, out) >= 0;
}

void write_dump_header(hid_t file, std::int64_t num_classes) {
  write_string_attribute(file, "format", "calibench-logits");
  write_number_attribute<long long>(file, "version", H5T_STD_I64LE, H5T_NATIVE_LLONG, 1);
  write_number_attribute<long long>(file, "num_classes", H5T_STD_I64LE, H5T_NATIVE_LLONG, num_classes);
}

void write_string_attribute(hid_t file, const std::string& name, const std::string& value) {
  id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  id space(H5Screate(H5S_SCALAR), H5Sclose);
  id attr(H5Acreate2(file, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  const char* data = value.c_str();
  if (!attr.valid() || H5Awrite(attr.get(), type.get(), &data) < 0)
    throw error(fmt::format("cannot write attribute {}", name));
}

void create_parent_groups(hid_t file, const std::string& path) {
  id gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
  H5Pset_obj_track_times(gcpl.get(), 0);
  for (std::size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    const std::string parent = path.substr(0, pos);
    if (H5Lexists(file, parent.c_str(), H5P_DEFAULT) > 0) continue;
    id group(H5Gcreate2(file, parent.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
    if (!group.valid()) throw error(fmt::format("cannot create group {}", parent));
  }
}

void write_dataset(hid_t file, const std::string& path, std::vector<hsize_t> dims, hid_t file_type, hid_t mem_type,
                   const void* data) {
  create_parent_groups(file, path);
  id space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_obj_track_times(dcpl.get(), 0);
  id dataset(H5Dcreate2(file, path.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
  if (!dataset.valid() || H5Dwrite(dataset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw error(fmt::format("cannot write dataset {}", path));
}

void write_atomically(const std::string& path, const std::function<void(hid_t)>& fill) {
  silence();
  // The file is built in memory (HDF5's core driver, no backing store) and its image written by
  // write_file_atomic: a full disk is one error naming the file and the reason, and no HDF5 file
  // is left open in the library after a failed write (which crashed at exit, in H5_term_library).
  std::vector<char> image;
  try {
    id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    if (!fapl.valid() || H5Pset_fapl_core(fapl.get(), std::size_t{1} << 20, 0) < 0)
      throw error(fmt::format("{}: cannot set up the in-memory HDF5 file", path));
    id file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
    if (!file.valid()) throw error(fmt::format("{}: cannot create the in-memory HDF5 file", path));
    fill(file.get());
    if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) throw error(fmt::format("{}: flush failed", path));
    const ssize_t size = H5Fget_file_image(file.get(), nullptr, 0);
    if (size < 0) throw error(fmt::format("{}: cannot take the HDF5 file image", path));
    image.resize(static_cast<std::size_t>(size));
    if (H5Fget_file_image(file.get(), image.data(), image.size()) != size)
      throw error(fmt::format("{}: cannot take the HDF5 file image", path));
  } catch (const input_error&) {
    throw;
  } catch (const error& e) {
    const std::string what = e.what();
    throw error(what.rfind(path + ":", 0) == 0 ? what : fmt::format("{}: {}", path, what));
  }
  write_file_atomic(path, image.data(), image.size());
}

}  // namespace calibench::h5
