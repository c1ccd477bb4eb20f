// Segmentation dumps (host/io/seg_dump.hpp): structural checks of every group, image-by-image
// validated reading, atomic writing.
#include "host/io/seg_dump.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.hpp"
#include "host/io/dump.hpp"
#include "host/io/hdf5.hpp"

namespace calibench {
namespace {

using namespace h5;

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
    fail(path,
         fmt::format("{}: expected floating-point values, found {}", g.values_path(), type_text(values.type.get())));
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
      fail(path, fmt::format("{}: shape {} is not [B, 1|K, H, W] for {} {}", tpath, shape_text(t.dims), g.values_path(),
                             shape_text(values.dims)));
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
  id file = open_file(path);
  return inspect_seg_open(path, file.get());
}

seg_reader::seg_reader(const std::string& path) {
  id file = open_file(path);
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
  const auto where = [&](std::int64_t c, std::int64_t p) {
    return fmt::format("[{}, {}, {}, {}]", image, c, p / w, p % w);
  };

  out.values.resize(static_cast<std::size_t>(k * hw));
  {
    const dataset_view v = open_dataset(path, file, g.values_path());
    if (!read_slab(v.dataset.get(), {b, 0, 0, 0}, {1, hk, hh, hwid}, H5T_NATIVE_DOUBLE, out.values.data()))
      fail(path, fmt::format("{}: read failed at image {} (truncated or corrupt file)", g.values_path(), image));
    for (std::int64_t c = 0; c < k; ++c) {
      for (std::int64_t p = 0; p < hw; ++p) {
        const double x = out.values[c * hw + p];
        if (!std::isfinite(x))
          fail(path, fmt::format("{}: non-finite value {} at index {}", g.values_path(), x, where(c, p)));
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
        fail(path,
             fmt::format("{}: label {} at index [{}, {}, {}] outside [0, {})", lpath, raw[p], image, p / w, p % w, k));
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
        fail(path,
             fmt::format("{}: temperature {} at index {} is not a finite number > 0", tpath, t, where(i / hw, i % hw)));
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
  write_atomically(path, [&](hid_t file) {
    write_dump_header(file, num_classes);
    write_string_attribute(file, "task", "segmentation");
    for (const auto& [name, value] : string_attributes) write_string_attribute(file, name, value);
    const auto k = static_cast<hsize_t>(num_classes);
    for (const auto& g : groups) {
      const auto b = static_cast<hsize_t>(g.images), h = static_cast<hsize_t>(g.height),
                 w = static_cast<hsize_t>(g.width);
      write_dataset(file, "/" + g.name + "/logits", {b, k, h, w}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, g.logits);
      write_dataset(file, "/" + g.name + "/labels", {b, h, w}, H5T_STD_I32LE, H5T_NATIVE_INT32, g.labels);
      if (g.temperature != nullptr)
        write_dataset(file, "/" + g.name + "/temperature", {b, 1, h, w}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                      g.temperature);
      if (g.augmented != nullptr)
        write_dataset(file, "/" + g.name + "/augmented_logits", {b, static_cast<hsize_t>(g.augmentations), k, h, w},
                      H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, g.augmented);
      if (g.roi != nullptr)
        write_dataset(file, "/" + g.name + "/roi", {b, h, w}, H5T_STD_U8LE, H5T_NATIVE_UINT8, g.roi);
    }
  });
}

}  // namespace calibench
