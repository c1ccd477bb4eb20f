// HDF5 primitives of the dump readers and writers (host/io/dump.cpp, host/io/seg_dump.cpp):
// an owning identifier, opening with checks, inspecting datasets and attributes, reading
// hyperslabs, and writing files atomically without modification times. HDF5's own error
// printer is switched off; every failure becomes one input_error naming the file. Included
// only by host/io's own sources (it includes hdf5.h).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/error.hpp"

namespace calibench::h5 {

/// Turns HDF5's automatic error printing off (once per process).
void silence();

/// Owns an HDF5 identifier and closes it with the matching function.
class id {
 public:
  id() = default;
  id(hid_t value, herr_t (*close)(hid_t)) : id_(value), close_(close) {}
  id(const id&) = delete;
  id& operator=(const id&) = delete;
  id(id&& other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = H5I_INVALID_HID; }
  id& operator=(id&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.id_;
      close_ = other.close_;
      other.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  ~id() { reset(); }
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

/// input_error "FILE: WHAT".
[[noreturn]] void fail(const std::string& file, const std::string& what);

/// "[2, 3]".
std::string shape_text(const std::vector<hsize_t>& dims);

/// Opens an existing HDF5 file read-only; input_error naming why it cannot.
id open_file(const std::string& path);

/// The type of the object at `path` (every parent link checked first); nullopt when absent.
std::optional<H5O_type_t> object_type(hid_t file, const std::string& path);

/// "float32", "int64", "uint8", "string", ...
std::string type_text(hid_t type);

/// An opened dataset with its type and shape.
struct dataset_view {
  id dataset;
  id type;
  H5T_class_t type_class = H5T_NO_CLASS;
  std::vector<hsize_t> dims;
};

/// Opens the dataset at `path`; input_error naming `file_path` when absent or unreadable.
dataset_view open_dataset(const std::string& file_path, hid_t file, const std::string& path);

/// The root attributes of a dump, with `format` and `version` checked (both optional).
std::map<std::string, std::string> checked_root_attributes(const std::string& path, hid_t file);

/// An integer in text (leading spaces allowed); nullopt otherwise.
std::optional<long long> parse_integer(const std::string& text);

/// Names of the root's child groups (sorted by name).
std::vector<std::string> child_groups(hid_t file);

/// Names of the links in `group` (sorted by name).
std::vector<std::string> group_datasets(hid_t file, const std::string& group);

/// Which dataset holds the scores of `split`: "logits" (preferred) or "probs"; nullopt if neither.
std::optional<std::string> score_dataset(hid_t file, const std::string& split);

/// Reads the hyperslab starting at `start` with extent `count` of a dataset as `mem_type`.
bool read_slab(hid_t dataset, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count, hid_t mem_type,
               void* out);

void write_string_attribute(hid_t file, const std::string& name, const std::string& value);

template <class T>
void write_number_attribute(hid_t file, const std::string& name, hid_t file_type, hid_t mem_type, T value) {
  id space(H5Screate(H5S_SCALAR), H5Sclose);
  id attr(H5Acreate2(file, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.valid() || H5Awrite(attr.get(), mem_type, &value) < 0)
    throw error(fmt::format("cannot write attribute {}", name));
}

/// The attributes every dump starts with: format, version and num_classes.
void write_dump_header(hid_t file, std::int64_t num_classes);

/// Creates the parent groups of `path` without modification times (see write_dataset).
void create_parent_groups(hid_t file, const std::string& path);

/// Writes a dataset without modification times: the same content gives the same bytes, so
/// file hashes (the sweep's cell identities) are reproducible.
void write_dataset(hid_t file, const std::string& path, std::vector<hsize_t> dims, hid_t file_type, hid_t mem_type,
                   const void* data);

/// Creates an HDF5 file at a temporary path next to `path`, lets `fill` write into it, then
/// flushes, fsyncs and renames it over `path`: readers never see a partial file.
void write_atomically(const std::string& path, const std::function<void(hid_t)>& fill);

}  // namespace calibench::h5
