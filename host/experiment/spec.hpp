// `calibench sweep SPEC.toml`: a study described once (datasets x methods with option grids x
// seeds), parsed with toml++ and expanded into cells with stable identities
// (docs/experiments.md). Method options are fit options (host/calibrators/request.hpp),
// checked when the spec is loaded.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "host/calibrators/request.hpp"
#include "host/experiment/published.hpp"
#include "host/metrics/conventions.hpp"

namespace calibench {

/// One method configuration after expanding option lists.
struct method_config {
  std::string label;                           ///< column name in tables
  std::string method;                          ///< a fit method, or "uncalibrated"
  std::map<std::string, std::string> options;  ///< fit options (objective, grid, ...) as text
  /// The options as an option_list (key order), for parse_fit_request.
  option_list option_pairs() const { return {options.begin(), options.end()}; }
};

/// One dataset of a spec: a dump file, or a synthetic dump generated into DIR/data.
struct dataset_entry {
  std::string path;   ///< resolved file path
  std::string name;   ///< row name in tables
  std::string model;  ///< the dump's `model` attribute ("" when absent)
};

/// A parsed and expanded spec.
struct experiment_spec {
  std::string name;
  std::string file;  ///< the spec's path
  std::int32_t bins = 15;
  convention_names conventions;  ///< metric conventions (docs/metrics.md); binning etc. keys of the spec
  std::string backend = "auto";
  std::vector<std::uint64_t> seeds{0};
  std::int64_t bootstrap = 0;
  std::uint64_t bootstrap_seed = 0;
  std::vector<dataset_entry> datasets;
  std::vector<method_config> methods;
  std::string table_metric = "ece";        ///< the metric of the tables' cells (any eval metric key)
  std::vector<std::string> notes;          ///< the spec's own notes, then e.g. unmatched optional globs
  std::vector<published_table> published;  ///< the paper's cells printed beside ours (paper specs)
  /// "classification", or "segmentation" (docs/segmentation.md): methods are seg-eval methods,
  /// one cell per dataset and method, tables with methods as rows and domain groups as columns.
  std::string task = "classification";
  std::string roi = "dilate";      ///< segmentation: ROI rule
  std::int32_t roi_dilation = 10;  ///< segmentation: r of the square dilation
  std::int32_t background = 0;     ///< segmentation: the class outside the foreground

  /// The metric options of the spec's bins and conventions.
  metric_options metrics() const { return resolve_conventions(conventions, bins); }
};

/// One unit of work.
struct cell {
  std::string id;  ///< 16 hex digits: hash of the resolved configuration and the dump's bytes
  const dataset_entry* dataset = nullptr;
  const method_config* method = nullptr;
  std::uint64_t seed = 0;
};

/// Parses SPEC.toml; synthetic datasets are generated into `out_dir`/data (once).
/// Throws input_error naming the spec file and the offending key.
experiment_spec load_spec(const std::string& path, const std::string& out_dir);

/// The Cartesian product datasets x methods x seeds with stable identities.
std::vector<cell> expand_cells(const experiment_spec& spec);

/// The fit request of a classification cell's method configuration (not "uncalibrated").
fit_request cell_request(const experiment_spec& spec, const method_config& method);

}  // namespace calibench
