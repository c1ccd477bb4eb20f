// Spec parsing and cell expansion of `calibench sweep` (host/experiment/spec.hpp).
#include "host/experiment/spec.hpp"

#include <glob.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <new>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include "common/error.hpp"
#include "host/calibrators/registry.hpp"
#include "host/io/dump.hpp"
#include "host/io/seg_dump.hpp"
#include "host/io/seg_synth.hpp"
#include "host/io/synth.hpp"

namespace calibench {
namespace {

namespace fs = std::filesystem;

/// The method name of the uncalibrated baseline in specs.
constexpr std::string_view k_uncalibrated = "uncalibrated";

[[noreturn]] void spec_fail(const std::string& file, const std::string& what) {
  throw input_error(fmt::format("{}: {}", file, what));
}

/// 64-bit FNV-1a, finished with the SplitMix64 mixer: stable across runs and machines.
struct hasher {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  }
  void add(const std::string& s) { add(s.data(), s.size()); }
  std::uint64_t value() const {
    std::uint64_t x = h + 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
  }
};

std::string file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(fmt::format("{}: cannot read the file", path));
  hasher h;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    h.add(buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
  return fmt::format("{:016x}", h.value());
}

/// A TOML scalar as the text a fit option takes.
std::string scalar_text(const toml::node& node, const std::string& file, const std::string& key) {
  if (auto s = node.value<std::string>()) return *s;
  if (node.is_boolean()) return *node.value<bool>() ? "on" : "off";
  if (node.is_integer()) return std::to_string(*node.value<std::int64_t>());
  if (node.is_floating_point()) return fmt::format("{}", *node.value<double>());
  spec_fail(file, fmt::format("{}: expected a string, number or boolean", key));
}

/// The bounds of spec values (docs/experiments.md, "Limits"): those of the CLI's flags.
constexpr std::int64_t k_max_bins = 1000000;
constexpr std::int64_t k_max_bootstrap = 1000000;
constexpr std::int64_t k_max_classes = std::int64_t{1} << 20;
constexpr std::int64_t k_max_rows = std::int64_t{1} << 40;
constexpr std::int64_t k_max_image_side = 65536;
constexpr std::int64_t k_max_images = 1000000;
constexpr std::int64_t k_max_configurations = 100000;  ///< of one [[methods]] entry's option lists
constexpr std::int64_t k_max_cells = 1000000;          ///< datasets x configurations x seeds

std::int64_t integer_at(const toml::table& t, const std::string& key, std::int64_t fallback, const std::string& file,
                        std::int64_t min_value, std::int64_t max_value = std::numeric_limits<std::int64_t>::max()) {
  const auto* node = t.get(key);
  if (node == nullptr) return fallback;
  const auto v = node->value<std::int64_t>();
  if (!v || !node->is_integer()) spec_fail(file, fmt::format("{}: expected an integer", key));
  if (*v < min_value) spec_fail(file, fmt::format("{} = {}: must be at least {}", key, *v, min_value));
  if (*v > max_value) spec_fail(file, fmt::format("{} = {}: must be at most {}", key, *v, max_value));
  return *v;
}

std::string string_at(const toml::table& t, const std::string& key, const std::string& fallback,
                      const std::string& file, const std::vector<std::string>& allowed = {}) {
  const auto* node = t.get(key);
  if (node == nullptr) return fallback;
  const auto v = node->value<std::string>();
  if (!v || !node->is_string()) spec_fail(file, fmt::format("{}: expected a string", key));
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), *v) == allowed.end())
    spec_fail(file, fmt::format("{} = '{}': expected one of {}", key, *v, fmt::join(allowed, ", ")));
  return *v;
}

/// The synthetic dumps a spec needs, written once every check of the spec has passed.
using pending_writes = std::vector<std::function<void()>>;

/// The file DIR/data/NAME-HASH.h5 of a synthetic dataset. NAME becomes a file name, so it is
/// confined to one path component (docs/experiments.md, "Datasets"): letters, digits, '.', '_',
/// '+' and '-', not starting with '.' or '-', at most 100 characters.
fs::path synth_dump_path(const std::string& out_dir, const std::string& name, std::uint64_t hash,
                         const std::string& file, const std::string& where) {
  const bool safe_chars = std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '+' || c == '-';
  });
  if (name.empty() || name.size() > 100 || !safe_chars || name.front() == '.' || name.front() == '-')
    spec_fail(file, fmt::format("{}.name = '{}': a synthetic dataset's name is its file name under OUT/data: use 1-100 "
                                "letters, digits, '.', '_', '+' or '-', not starting with '.' or '-'",
                                where, name));
  return fs::path(out_dir) / "data" / fmt::format("{}-{:016x}.h5", name, hash);
}

/// Queues the writing of a synthetic dump at `path` (skipped when an earlier run wrote it: the
/// name holds the options' hash); out of memory names the spec, the dataset and its size.
void defer_synth_write(pending_writes& pending, const fs::path& path, const std::string& file, const std::string& where,
                       const std::string& size, std::function<void(const std::string&)> write) {
  pending.push_back([path, file, where, size, write = std::move(write)] {
    if (fs::exists(path)) return;
    fs::create_directories(path.parent_path());
    try {
      write(path.string());  // atomic: a partial file never appears
    } catch (const std::bad_alloc&) {
      throw error(fmt::format("{}: {}: out of memory generating {}", file, where, size));
    }
  });
}

/// `synth = { segmentation = true, ... }`: a segmentation dump generated into DIR/data.
std::vector<dataset_entry> seg_synth_dataset(const toml::table& synth, const std::string& file, pending_writes& pending,
                                             const std::string& out_dir, std::size_t index) {
  seg_synth_options o;
  const std::string where = fmt::format("datasets[{}].synth", index);
  for (const auto& [key, node] : synth) {
    const std::string k(key.str());
    static const std::set<std::string> known{"segmentation", "classes",     "images",        "height", "width",
                                             "seed",         "temperature", "augmentations", "name",   "label"};
    if (!known.contains(k)) spec_fail(file, fmt::format("{}: unknown key '{}'", where, k));
  }
  o.classes = integer_at(synth, "classes", o.classes, file, 2, k_max_classes);
  o.images = integer_at(synth, "images", o.images, file, 1, k_max_images);
  o.height = integer_at(synth, "height", o.height, file, 4, k_max_image_side);
  o.width = integer_at(synth, "width", o.width, file, 4, k_max_image_side);
  o.augmentations = integer_at(synth, "augmentations", o.augmentations, file, 0, 1000);
  o.seed = static_cast<std::uint64_t>(integer_at(synth, "seed", 0, file, 0));
  if (const auto* node = synth.get("temperature")) {
    const auto v = node->value<double>();
    if (!v || !(*v > 0)) spec_fail(file, fmt::format("{}.temperature: expected a number > 0", where));
    o.temperature = *v;
  }
  hasher h;
  h.add(fmt::format("seg {} {} {} {} {} {} {}", o.classes, o.images, o.height, o.width, o.seed, o.temperature,
                    o.augmentations));
  const std::string name = string_at(synth, "name", fmt::format("seg-k{}-s{}", o.classes, o.seed), file);
  const fs::path path = synth_dump_path(out_dir, name, h.value(), file, where);
  defer_synth_write(pending, path, file, where,
                    fmt::format("{} images of {} x {} x {} classes", o.images, o.height, o.width, o.classes),
                    [o](const std::string& target) { write_seg_synth_dump(target, o); });
  return {{path.string(), string_at(synth, "label", name, file), ""}};
}

std::vector<dataset_entry> synth_dataset(const toml::table& synth, const std::string& file, pending_writes& pending,
                                         const std::string& out_dir, std::size_t index) {
  if (synth.get("segmentation") != nullptr) {
    if (!synth.get("segmentation")->value<bool>().value_or(false))
      spec_fail(file, fmt::format("datasets[{}].synth.segmentation: expected true (or leave it out)", index));
    return seg_synth_dataset(synth, file, pending, out_dir, index);
  }
  synth_options o;
  const std::string where = fmt::format("datasets[{}].synth", index);
  for (const auto& [key, node] : synth) {
    const std::string k(key.str());
    static const std::set<std::string> known{"classes",     "n_val",       "n_test",           "seed",
                                             "logit_scale", "temperature", "class_distortion", "class_bias",
                                             "name",        "label"};
    if (!known.contains(k)) spec_fail(file, fmt::format("{}: unknown key '{}'", where, k));
  }
  o.num_classes = integer_at(synth, "classes", o.num_classes, file, 2, k_max_classes);
  o.n_val = integer_at(synth, "n_val", o.n_val, file, 1, k_max_rows);
  o.n_test = integer_at(synth, "n_test", o.n_test, file, 1, k_max_rows);
  o.seed = static_cast<std::uint64_t>(integer_at(synth, "seed", 0, file, 0));
  auto number = [&](const char* key, double fallback) {
    const auto* node = synth.get(key);
    if (node == nullptr) return fallback;
    const auto v = node->value<double>();
    if (!v) spec_fail(file, fmt::format("{}.{}: expected a number", where, key));
    return *v;
  };
  o.logit_scale = number("logit_scale", o.logit_scale);
  o.temperature = number("temperature", o.temperature);
  o.class_distortion = number("class_distortion", o.class_distortion);
  o.class_bias = number("class_bias", o.class_bias);
  hasher h;
  h.add(fmt::format("{} {} {} {} {} {} {} {}", o.num_classes, o.n_val, o.n_test, o.seed, o.logit_scale, o.temperature,
                    o.class_distortion, o.class_bias));
  const std::string name = string_at(synth, "name", fmt::format("synth-k{}-s{}", o.num_classes, o.seed), file);
  const fs::path path = synth_dump_path(out_dir, name, h.value(), file, where);
  defer_synth_write(pending, path, file, where,
                    fmt::format("{} + {} rows x {} classes", o.n_val, o.n_test, o.num_classes),
                    [o](const std::string& target) { write_synth_dump(target, o); });
  return {{path.string(), string_at(synth, "label", name, file), ""}};
}

std::vector<dataset_entry> path_datasets(const toml::table& t, const std::string& file, std::size_t index,
                                         std::vector<std::string>& notes) {
  const std::string pattern = string_at(t, "path", "", file);
  const bool optional = t.get("optional") != nullptr && t.get("optional")->value<bool>().value_or(false);
  const fs::path spec_dir = fs::path(file).parent_path();
  const fs::path full = fs::path(pattern).is_absolute() ? fs::path(pattern) : spec_dir / pattern;
  glob_t g{};
  const int rc = ::glob(full.c_str(), 0, nullptr, &g);
  std::vector<dataset_entry> out;
  if (rc == 0) {
    for (std::size_t i = 0; i < g.gl_pathc; ++i) {
      const fs::path p(g.gl_pathv[i]);
      if (!fs::is_regular_file(p))
        spec_fail(file,
                  fmt::format("datasets[{}].path = '{}': matches {}, which is not a file", index, pattern, p.string()));
      out.push_back({p.string(), p.stem().string(), ""});
    }
  }
  ::globfree(&g);
  if (out.empty()) {
    if (!optional)
      spec_fail(file, fmt::format("datasets[{}].path = '{}': no file matches {}", index, pattern, full.string()));
    notes.push_back(fmt::format("datasets[{}]: no file matches {} (optional, skipped)", index, full.string()));
  }
  if (const auto* name = t.get("name"); name != nullptr && out.size() == 1) {
    out[0].name = name->value<std::string>().value_or(out[0].name);
  }
  return out;
}

bool is_fit_option(const std::string& key) {
  const auto table = fit_option_table();
  return std::any_of(table.begin(), table.end(), [&](const fit_option& o) { return o.key == key; });
}

std::vector<method_config> expand_method(const toml::table& t, const std::string& file, std::size_t index) {
  const std::string where = fmt::format("methods[{}]", index);
  const std::string method = string_at(t, "method", "", file);
  if (method.empty()) spec_fail(file, fmt::format("{}: 'method' is required", where));
  if (method != k_uncalibrated && find_method(method) == nullptr) {
    try {
      method_named(method);
    } catch (const input_error& e) {
      spec_fail(file, fmt::format("{}: {}", where, e.what()));
    }
  }
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  for (const auto& [key, node] : t) {
    const std::string k(key.str());
    if (k == "method" || k == "label") continue;
    if (!is_fit_option(k)) spec_fail(file, fmt::format("{}: unknown option '{}'", where, k));
    std::vector<std::string> values;
    if (const auto* arr = node.as_array()) {
      for (const auto& v : *arr) values.push_back(scalar_text(v, file, where + "." + k));
      if (values.empty()) spec_fail(file, fmt::format("{}.{}: empty list", where, k));
    } else {
      values.push_back(scalar_text(node, file, where + "." + k));
    }
    axes.emplace_back(k, values);
  }
  std::int64_t configurations = 1;
  for (const auto& [key, values] : axes) {
    configurations *= static_cast<std::int64_t>(values.size());
    if (configurations > k_max_configurations)
      spec_fail(file,
                fmt::format("{}: its option lists make more than {} configurations", where, k_max_configurations));
  }
  const std::string label_template = string_at(t, "label", "", file);
  std::vector<method_config> out{{"", method, {}}};
  for (const auto& [key, values] : axes) {
    std::vector<method_config> next;
    for (const auto& m : out) {
      for (const auto& v : values) {
        auto copy = m;
        copy.options[key] = v;
        next.push_back(std::move(copy));
      }
    }
    out = std::move(next);
  }
  for (auto& m : out) {
    if (!label_template.empty()) {
      m.label = label_template;
      for (const auto& [key, value] : m.options) {
        const std::string placeholder = "{" + key + "}";
        for (auto pos = m.label.find(placeholder); pos != std::string::npos; pos = m.label.find(placeholder))
          m.label.replace(pos, placeholder.size(), value);
      }
      for (auto open = label_template.find('{'); open != std::string::npos; open = label_template.find('{', open + 1)) {
        const auto close = label_template.find('}', open);
        const std::string key = label_template.substr(open + 1, close == std::string::npos ? close : close - open - 1);
        if (close == std::string::npos || m.options.count(key) == 0)
          spec_fail(file,
                    fmt::format("{}.label = '{}': '{{{}}}' names no option of this entry", where, label_template, key));
      }
    } else {
      m.label = method == k_uncalibrated ? "uncal" : method;
      for (const auto& [key, values] : axes) {
        if (values.size() > 1) m.label += fmt::format(" {}={}", key, m.options[key]);
      }
    }
  }
  return out;
}

const std::vector<std::string>& seg_method_names() {
  static const std::vector<std::string> names{"uncalibrated", "ts", "temperature-map", "augmented-mean"};
  return names;
}

/// The segmentation part of a spec: `methods` is a list of seg-eval method names; one dump's
/// own groups are the domains, so there are no re-splits (seeds) and no bootstrap.
experiment_spec load_seg_spec(const toml::table& root, const std::string& path, experiment_spec spec) {
  if (spec.seeds != std::vector<std::uint64_t>{0}) spec_fail(path, "seeds: a segmentation study has no re-splits");
  if (spec.bootstrap > 0) spec_fail(path, "bootstrap: not available for segmentation studies");
  spec.roi = string_at(root, "roi", "dilate", path, {"dilate", "stored", "all"});
  spec.roi_dilation = static_cast<std::int32_t>(integer_at(root, "roi_dilation", 10, path, 0, k_max_image_side));
  spec.background = static_cast<std::int32_t>(integer_at(root, "background", 0, path, 0, k_max_classes));
  const auto* methods = root.get_as<toml::array>("methods");
  if (methods == nullptr || methods->empty())
    spec_fail(path, fmt::format("methods: expected a list of {}", fmt::join(seg_method_names(), ", ")));
  for (const auto& node : *methods) {
    const auto name = node.value<std::string>();
    if (!name || std::find(seg_method_names().begin(), seg_method_names().end(), *name) == seg_method_names().end())
      spec_fail(path, fmt::format("methods: expected names from {}", fmt::join(seg_method_names(), ", ")));
    spec.methods.push_back({*name, *name, {}});
  }
  return spec;
}

/// The metric conventions keys of the spec root (docs/metrics.md).
void load_conventions(const toml::table& root, const std::string& path, experiment_spec& spec) {
  auto& c = spec.conventions;
  c.preset = string_at(root, "conventions", "calibench", path);
  c.binning = string_at(root, "binning", "", path);
  c.classwise_binning = string_at(root, "classwise_binning", "", path);
  c.adaptive = string_at(root, "adaptive", "", path);
  c.classwise_reduction = string_at(root, "classwise_reduction", "", path);
  c.brier = string_at(root, "brier", "", path);
  if (const auto* node = root.get("nll_clip")) {
    const auto v = node->value<double>();
    if (!v) spec_fail(path, "nll_clip: expected a number");
    c.nll_clip = *v;
  }
  try {
    resolve_conventions(c, spec.bins);
  } catch (const input_error& e) {
    spec_fail(path, e.what());
  }
}

void load_notes(const toml::table& root, const std::string& path, experiment_spec& spec) {
  const auto* notes = root.get("notes");
  if (notes == nullptr) return;
  const auto* arr = notes->as_array();
  if (arr == nullptr) spec_fail(path, "notes: expected a list of strings");
  for (const auto& n : *arr) {
    const auto text = n.value<std::string>();
    if (!text) spec_fail(path, "notes: expected a list of strings");
    spec.notes.push_back(*text);
  }
}

void load_seeds(const toml::table& root, const std::string& path, experiment_spec& spec) {
  const auto* seeds = root.get("seeds");
  if (seeds == nullptr) return;
  spec.seeds.clear();
  if (const auto* arr = seeds->as_array()) {
    for (const auto& s : *arr) {
      const auto v = s.value<std::int64_t>();
      if (!v || *v < 0) spec_fail(path, "seeds: expected non-negative integers");
      spec.seeds.push_back(static_cast<std::uint64_t>(*v));
    }
  } else {
    spec.seeds.push_back(static_cast<std::uint64_t>(integer_at(root, "seeds", 0, path, 0)));
  }
  if (spec.seeds.empty()) spec_fail(path, "seeds: empty list");
}

/// The `model` attribute of a dump ("" when absent or when the dump is bad: it then fails in
/// its cells, with the reader's message).
std::string model_of(const std::string& dump, const toml::table& root) {
  try {
    const auto* task = root.get("task");
    const auto layout = task != nullptr && task->value<std::string>().value_or("") == "segmentation"
                            ? dump_layout{dump, inspect_segmentation(dump).attributes, {}}
                            : inspect_dump(dump);
    const auto it = layout.attributes.find("model");
    return it == layout.attributes.end() ? std::string() : it->second;
  } catch (const input_error&) {
    return std::string();
  }
}

/// Names and labels are table cells (Markdown, LaTeX, CSV): no control characters (a newline
/// ends a row) and no '|' (a Markdown column separator).
void check_table_text(const std::string& file, const std::string& what, const std::string& text) {
  const auto bad = std::find_if(text.begin(), text.end(),
                                [](char c) { return c == '|' || (static_cast<unsigned char>(c) < 0x20) || c == 0x7f; });
  if (bad != text.end())
    spec_fail(file, fmt::format("{} has {} at position {}: names and labels are table cells (no '|' and no control "
                                "characters)",
                                what, *bad == '|' ? std::string("'|'") : fmt::format("character 0x{:02x}", *bad),
                                bad - text.begin()));
}

/// Dataset names are rows of the tables, so they must differ. A name taken from a file's stem
/// that another dataset also has becomes the file's path relative to the spec's folder (a glob
/// over two folders); any other clash is an error.
void unique_dataset_names(std::vector<dataset_entry>& datasets, const std::string& file) {
  const auto count = [&](const std::string& name) {
    return std::count_if(datasets.begin(), datasets.end(), [&](const dataset_entry& d) { return d.name == name; });
  };
  const fs::path spec_dir = fs::absolute(fs::path(file)).parent_path();
  std::vector<std::string> renamed(datasets.size());
  for (std::size_t i = 0; i < datasets.size(); ++i) {
    const fs::path p(datasets[i].path);
    if (datasets[i].name == p.stem().string() && count(datasets[i].name) > 1)
      renamed[i] = fs::absolute(p).lexically_relative(spec_dir).replace_extension().generic_string();
  }
  for (std::size_t i = 0; i < datasets.size(); ++i)
    if (!renamed[i].empty()) datasets[i].name = renamed[i];
  for (std::size_t i = 0; i < datasets.size(); ++i) {
    check_table_text(file, fmt::format("dataset name '{}' ({})", datasets[i].name, datasets[i].path), datasets[i].name);
    for (std::size_t j = i + 1; j < datasets.size(); ++j) {
      if (datasets[i].name == datasets[j].name)
        spec_fail(file, fmt::format("datasets {} and {} are both named '{}'; give them distinct 'name's",
                                    datasets[i].path, datasets[j].path, datasets[i].name));
    }
  }
}

void load_datasets(const toml::table& root, const std::string& path, const std::string& out_dir, experiment_spec& spec,
                   pending_writes& pending) {
  const auto* datasets = root.get_as<toml::array>("datasets");
  if (datasets == nullptr || datasets->empty()) spec_fail(path, "no [[datasets]]");
  for (std::size_t i = 0; i < datasets->size(); ++i) {
    const auto* t = (*datasets)[i].as_table();
    if (t == nullptr) spec_fail(path, fmt::format("datasets[{}]: expected a table", i));
    std::vector<dataset_entry> found;
    if (t->get("synth") != nullptr && t->get("path") != nullptr)
      spec_fail(path, fmt::format("datasets[{}]: has both 'path' and 'synth'; give one", i));
    if (const auto* synth = t->get_as<toml::table>("synth")) {
      found = synth_dataset(*synth, path, pending, out_dir, i);
    } else if (t->get("path") != nullptr) {
      found = path_datasets(*t, path, i, spec.notes);
    } else {
      spec_fail(path, fmt::format("datasets[{}]: needs 'path' or 'synth'", i));
    }
    spec.datasets.insert(spec.datasets.end(), found.begin(), found.end());
  }
  unique_dataset_names(spec.datasets, path);
}

/// The [[methods]] of a classification study, expanded, each configuration's options checked
/// as a fit request, labels unique.
void load_methods(const toml::table& root, const std::string& path, experiment_spec& spec) {
  const auto* methods = root.get_as<toml::array>("methods");
  if (methods == nullptr || methods->empty()) spec_fail(path, "no [[methods]]");
  for (std::size_t i = 0; i < methods->size(); ++i) {
    const auto* t = (*methods)[i].as_table();
    if (t == nullptr) spec_fail(path, fmt::format("methods[{}]: expected a table", i));
    for (auto& m : expand_method(*t, path, i)) {
      if (m.method != k_uncalibrated) {
        try {
          cell_request(spec, m);
        } catch (const input_error& e) {
          spec_fail(path, fmt::format("methods[{}] ({}): {}", i, m.label, e.what()));
        }
      }
      spec.methods.push_back(std::move(m));
    }
  }
  std::set<std::string> labels;
  for (const auto& m : spec.methods) {
    check_table_text(path, fmt::format("label '{}'", m.label), m.label);
    if (!labels.insert(m.label).second)
      spec_fail(path, fmt::format("two method configurations share the label '{}'; set 'label'", m.label));
  }
}

toml::table parse_spec_file(const std::string& path) {
  if (!fs::exists(path)) throw input_error(fmt::format("{}: no such file", path));
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw input_error(fmt::format("{}: line {}: {}", path, e.source().begin.line, e.description()));
  }
  static const std::set<std::string> known{"name",         "description",       "bins",     "binning",
                                           "conventions",  "classwise_binning", "adaptive", "classwise_reduction",
                                           "brier",        "nll_clip",          "backend",  "seeds",
                                           "bootstrap",    "bootstrap_seed",    "datasets", "methods",
                                           "notes",        "table_metric",      "task",     "roi",
                                           "roi_dilation", "background",        "published"};
  for (const auto& [key, node] : root) {
    if (!known.contains(std::string(key.str()))) spec_fail(path, fmt::format("unknown key '{}'", key.str()));
  }
  return root;
}

}  // namespace

experiment_spec load_spec(const std::string& path, const std::string& out_dir) {
  const toml::table root = parse_spec_file(path);
  experiment_spec spec;
  spec.file = path;
  spec.name = string_at(root, "name", fs::path(path).stem().string(), path);
  check_table_text(path, "name", spec.name);
  spec.bins = static_cast<std::int32_t>(integer_at(root, "bins", 15, path, 1, k_max_bins));
  load_conventions(root, path, spec);
  spec.backend = string_at(root, "backend", "auto", path, {"cpu", "cuda", "auto"});
  spec.bootstrap = integer_at(root, "bootstrap", 0, path, 0, k_max_bootstrap);
  spec.bootstrap_seed = static_cast<std::uint64_t>(integer_at(root, "bootstrap_seed", 0, path, 0));
  std::vector<std::string> metrics;
  for (const auto& f : metric_fields())
    if (!f.on_request) metrics.emplace_back(f.name);  // sweeps compute the default selection
  spec.table_metric = string_at(root, "table_metric", "ece", path, metrics);
  load_notes(root, path, spec);
  load_seeds(root, path, spec);
  pending_writes pending;
  load_datasets(root, path, out_dir, spec, pending);
  spec.task = string_at(root, "task", "classification", path, {"classification", "segmentation"});
  if (spec.task == "segmentation") {
    if (root.contains("published")) spec_fail(path, "published: published cells are for classification tables");
    spec = load_seg_spec(root, path, std::move(spec));
  } else {
    load_methods(root, path, spec);
    std::vector<std::string> labels;
    for (const auto& m : spec.methods) labels.push_back(m.label);
    spec.published = load_published(root.get("published"), path, labels);
  }
  const auto cells = static_cast<double>(spec.datasets.size()) * static_cast<double>(spec.methods.size()) *
                     static_cast<double>(spec.seeds.size());
  if (cells > static_cast<double>(k_max_cells))
    spec_fail(path, fmt::format("{} datasets x {} method configurations x {} seeds make {:.0f} cells, more than {}",
                                spec.datasets.size(), spec.methods.size(), spec.seeds.size(), cells, k_max_cells));
  // Every check passed: now the synthetic dumps are written (once; atomic), and the models read.
  for (const auto& write : pending) write();
  for (auto& d : spec.datasets) d.model = model_of(d.path, root);
  return spec;
}

fit_request cell_request(const experiment_spec& spec, const method_config& method) {
  return parse_fit_request(method.method, method.option_pairs(), spec.metrics(), parse_backend_choice(spec.backend));
}

std::vector<cell> expand_cells(const experiment_spec& spec) {
  std::vector<cell> cells;
  const metric_options mo = resolve_conventions(spec.conventions, spec.bins);
  // The default conventions keep the identities cells had before conventions existed.
  nlohmann::json conventions = conventions_json(mo);
  const bool default_conventions =
      conventions == conventions_json(resolve_conventions({}, spec.bins)) ||
      (mo.preset == "calibench" && spec.conventions.classwise_binning.empty() && spec.conventions.adaptive.empty() &&
       spec.conventions.classwise_reduction.empty() && spec.conventions.brier.empty() && !spec.conventions.nll_clip);
  std::vector<std::string> contents;
  for (const auto& d : spec.datasets) contents.push_back(file_hash(d.path));
  for (std::size_t i = 0; i < spec.datasets.size(); ++i) {
    const dataset_entry& d = spec.datasets[i];
    // Identical files under two names are two rows: their cells carry the name too (cells of
    // files that no other dataset repeats keep their identities).
    const bool repeated = std::count(contents.begin(), contents.end(), contents[i]) > 1;
    const std::string content = repeated ? contents[i] + " " + d.name : contents[i];
    for (const auto& m : spec.methods) {
      for (const auto seed : spec.seeds) {
        const nlohmann::json identity{{"data", content},
                                      {"method", m.method},
                                      {"options", m.options},
                                      {"seed", seed},
                                      {"bins", spec.bins},
                                      {"binning", binning_name(mo.bin_rule)},
                                      {"bootstrap", spec.bootstrap},
                                      {"bootstrap_seed", spec.bootstrap_seed},
                                      {"engine", CALIBENCH_VERSION}};
        hasher h;
        h.add(default_conventions ? identity.dump() : identity.dump() + conventions.dump());
        if (spec.task == "segmentation")
          h.add(nlohmann::json{{"task", spec.task},
                               {"roi", spec.roi},
                               {"roi_dilation", spec.roi_dilation},
                               {"background", spec.background}}
                    .dump());
        cells.push_back({fmt::format("{:016x}", h.value()), &d, &m, seed});
      }
    }
  }
  return cells;
}

}  // namespace calibench
