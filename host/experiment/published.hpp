// Published cells beside ours: a paper spec's `[[published]]` entries name a side file of
// transcribed result tables (experiments/papers/published/*.toml) and map the paper's rows and
// columns onto the spec's datasets and method labels; the reports print each published value
// beside ours with the difference, and a per-table summary (docs/experiments.md, "Published
// cells").
#pragma once

#include <map>
#include <string>
#include <vector>

#include <toml++/toml.h>
#include <nlohmann/json.hpp>

namespace calibench {

/// One transcribed cell of a paper's table.
struct published_cell {
  std::string row, column;  ///< the paper's row and column, as printed
  std::string metric;       ///< calibench's metric key (the table's unless the cell says otherwise)
  double value = 0;         ///< as printed (in `unit`)
  std::int64_t line = 0;    ///< line of the source text where it is printed (0: not given)
  std::string note;         ///< the transcriber's remark (an ambiguous extraction, ...)
};

/// One `[[published]]` entry of a spec: a table of a side file and how it maps onto the spec.
struct published_table {
  std::string file;  ///< the side file, as the spec names it (relative to the spec's folder)
  std::string paper, source, table, caption, unit, source_lines;
  std::string metric;                          ///< the table's metric (a cell may name another)
  double tolerance = 0;                        ///< |ours - published| <= tolerance counts as reproduced (in `unit`)
  std::map<std::string, std::string> rows;     ///< paper row -> dataset name of the spec
  std::map<std::string, std::string> columns;  ///< paper column -> method label of the spec
  std::map<std::string, std::string> reasons;  ///< "label" or "dataset / label" -> why it misses
  std::vector<published_cell> cells;
};

/// Parses the spec's `published` array (null: none). Every column must map to a method label
/// in `labels` (a paper column equal to a label maps to it); rows map to dataset names, which
/// may be absent from a run (optional globs). Throws input_error naming the spec or side file.
std::vector<published_table> load_published(const toml::node* published, const std::string& spec_file,
                                            const std::vector<std::string>& labels);

/// What the reports print: annotations of the table-metric cells, and the summary section.
struct published_report {
  std::map<std::pair<std::string, std::string>, std::string> md_note, tex_note;  ///< (dataset, label) -> text
  std::string md;  ///< "## Published cells" sections, one per table ("" without published tables)
};

/// Compares every published cell with the mean over seeds of the test `metric` of its (dataset,
/// label) in `results` (the cells of results.json); `table_metric` picks the cells annotated in
/// the main table.
published_report compare_published(const std::vector<published_table>& tables,
                                   const std::vector<nlohmann::json>& results, const std::string& table_metric);

}  // namespace calibench
