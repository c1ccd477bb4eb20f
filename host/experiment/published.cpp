// Published cells beside ours (host/experiment/published.hpp).
#include "host/experiment/published.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iterator>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.hpp"
#include "host/metrics/metrics.hpp"

namespace calibench {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw input_error(fmt::format("{}: {}", file, what));
}

void only_keys(const toml::table& t, const std::set<std::string>& known, const std::string& file,
               const std::string& where) {
  for (const auto& [key, node] : t)
    if (!known.contains(std::string(key.str()))) fail(file, fmt::format("{}: unknown key '{}'", where, key.str()));
}

std::string text_at(const toml::table& t, const std::string& key, const std::string& file, const std::string& where,
                    bool required) {
  const auto* node = t.get(key);
  if (node == nullptr) {
    if (required) fail(file, fmt::format("{}: '{}' is missing", where, key));
    return "";
  }
  if (!node->is_string()) fail(file, fmt::format("{}.{}: expected a string", where, key));
  return *node->value<std::string>();
}

double number_at(const toml::table& t, const std::string& key, const std::string& file, const std::string& where) {
  const auto* node = t.get(key);
  if (node == nullptr) fail(file, fmt::format("{}: '{}' is missing", where, key));
  const auto v = node->value<double>();
  if (!v || !(node->is_floating_point() || node->is_integer()) || !std::isfinite(*v))
    fail(file, fmt::format("{}.{}: expected a finite number", where, key));
  return *v;
}

/// A TOML table of strings (`rows = { "paper row" = "dataset" }`) as a map.
std::map<std::string, std::string> text_map(const toml::table& t, const std::string& key, const std::string& file,
                                            const std::string& where) {
  std::map<std::string, std::string> out;
  const auto* node = t.get(key);
  if (node == nullptr) return out;
  if (!node->is_table()) fail(file, fmt::format("{}.{}: expected a table of strings", where, key));
  for (const auto& [k, v] : *node->as_table()) {
    if (!v.is_string()) fail(file, fmt::format("{}.{}.\"{}\": expected a string", where, key, k.str()));
    out[std::string(k.str())] = *v.value<std::string>();
  }
  return out;
}

void check_metric(const std::string& metric, const std::string& file, const std::string& where) {
  const auto fields = metric_fields();
  if (std::none_of(fields.begin(), fields.end(), [&](const metric_field& f) { return metric == f.name; }))
    fail(file, fmt::format("{}: metric '{}' is not a metric of calibench eval", where, metric));
}

std::vector<published_cell> load_cells(const toml::table& t, const std::string& metric, const std::string& file,
                                       const std::string& where) {
  std::vector<published_cell> cells;
  const auto* arr = t.get_as<toml::array>("cells");
  if (arr == nullptr || arr->empty()) fail(file, fmt::format("{}: no [[tables.cells]]", where));
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const std::string w = fmt::format("{}.cells[{}]", where, i);
    const auto* c = arr->get(i)->as_table();
    if (c == nullptr) fail(file, fmt::format("{}: expected a table", w));
    only_keys(*c, {"row", "column", "value", "metric", "line", "note", "temperature"}, file, w);
    published_cell cell{text_at(*c, "row", file, w, true),
                        text_at(*c, "column", file, w, true),
                        text_at(*c, "metric", file, w, false),
                        number_at(*c, "value", file, w),
                        0,
                        text_at(*c, "note", file, w, false)};
    if (cell.metric.empty()) cell.metric = metric;  // a quantity calibench lacks is fine until a spec maps it
    if (const auto* line = c->get("line")) {
      if (!line->is_integer() || *line->value<std::int64_t>() < 1)
        fail(file, fmt::format("{}.line: expected a line number (an integer >= 1)", w));
      cell.line = *line->value<std::int64_t>();
    }
    cells.push_back(std::move(cell));
  }
  return cells;
}

/// The table named `name` of the side file `path`.
void load_side_table(const std::string& path, const std::string& name, published_table& out) {
  if (!fs::is_regular_file(path)) fail(path, "no such file (a [[published]] entry's 'file')");
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    fail(path, fmt::format("line {}: {}", e.source().begin.line, e.description()));
  }
  only_keys(root, {"paper", "source", "tables"}, path, "the file");
  out.paper = text_at(root, "paper", path, "the file", true);
  out.source = text_at(root, "source", path, "the file", true);
  const auto* tables = root.get_as<toml::array>("tables");
  const toml::table* found = nullptr;
  std::string where;
  for (std::size_t i = 0; tables != nullptr && i < tables->size(); ++i) {
    const auto* t = tables->get(i)->as_table();
    const std::string w = fmt::format("tables[{}]", i);
    if (t == nullptr) fail(path, fmt::format("{}: expected a table", w));
    if (text_at(*t, "table", path, w, true) != name) continue;
    if (found != nullptr) fail(path, fmt::format("{} and {} are both table = '{}'", where, w, name));
    found = t;
    where = w;
  }
  if (found != nullptr) {
    const toml::table* t = found;
    only_keys(*t, {"table", "caption", "metric", "unit", "bins", "source_lines", "cells", "note"}, path, where);
    out.caption = text_at(*t, "caption", path, where, false);
    out.unit = text_at(*t, "unit", path, where, false);
    out.source_lines = text_at(*t, "source_lines", path, where, false);
    const std::string metric = text_at(*t, "metric", path, where, true);
    check_metric(metric, path, where);
    out.metric = metric;
    out.cells = load_cells(*t, metric, path, where);
    return;
  }
  fail(path, fmt::format("no [[tables]] entry with table = '{}'", name));
}

double mean_test_value(const std::vector<nlohmann::json>& results, const std::string& dataset, const std::string& label,
                       const std::string& metric, bool& found) {
  double sum = 0;
  std::int64_t n = 0;
  for (const auto& r : results) {
    if (r.value("dataset", "") != dataset || r.value("label", "") != label || r.contains("error")) continue;
    const auto it = r.find("test");
    if (it == r.end() || !it->contains(metric) || !(*it)[metric].is_number()) continue;
    sum += (*it)[metric].get<double>();
    ++n;
  }
  found = n > 0;
  return n > 0 ? sum / static_cast<double>(n) : NAN;
}

/// Text for a Markdown table cell: '|' escaped (the reports' converters read "\\|"), line breaks
/// as spaces (a newline would end the row).
std::string md_cell(const std::string& text) {
  std::string out;
  for (char ch : text)
    out += ch == '|' ? std::string("\\|") : ch == '\n' || ch == '\r' ? std::string(" ") : std::string(1, ch);
  return out;
}

/// The first 8 names joined by "; ", then how many more.
std::string some_of(const std::set<std::string>& names) {
  constexpr std::size_t k_shown = 8;
  std::vector<std::string> shown(names.begin(), std::next(names.begin(), std::min(names.size(), k_shown)));
  std::string text = fmt::format("{}", fmt::join(shown, "; "));
  if (names.size() > k_shown) text += fmt::format("; and {} more", names.size() - k_shown);
  return text;
}

/// Decimals a published value was printed with, from its shortest text (2.1 -> 1; at most 6).
int printed_decimals(double v) {
  const std::string t = fmt::format("{}", v);
  const auto dot = t.find('.');
  if (dot == std::string::npos || t.find('e') != std::string::npos) return 0;
  return std::min<int>(6, static_cast<int>(t.size() - dot - 1));
}

std::string reason_of(const published_table& t, const std::string& dataset, const std::string& label) {
  if (const auto it = t.reasons.find(dataset + " / " + label); it != t.reasons.end()) return it->second;
  if (const auto it = t.reasons.find(label); it != t.reasons.end()) return it->second;
  return "";
}

/// The published cells of the rows that map to no dataset here, as the paper prints them (rows
/// and columns in the side file's order; a cell of another metric than the table's in
/// parentheses), so that the reader sees them too; "" when every row maps.
std::string unmatched_grid(const published_table& t) {
  std::vector<std::string> rows, columns;
  std::map<std::pair<std::string, std::string>, std::string> text;
  for (const auto& c : t.cells) {
    if (t.rows.contains(c.row)) continue;
    if (std::find(rows.begin(), rows.end(), c.row) == rows.end()) rows.push_back(c.row);
    if (std::find(columns.begin(), columns.end(), c.column) == columns.end()) columns.push_back(c.column);
    const std::string v = fmt::format("{:.{}f}", c.value, std::max(2, printed_decimals(c.value)));
    auto& cell = text[{c.row, c.column}];
    cell += (cell.empty() ? "" : " ") + (c.metric == t.metric ? v : "(" + v + ")");
  }
  if (rows.empty()) return "";
  std::string md = "\nPublished cells of the rows without a dump here (not compared):\n\n| paper row |";
  for (const auto& c : columns) md += fmt::format(" {} |", md_cell(c));
  md += "\n|---|";
  for (std::size_t i = 0; i < columns.size(); ++i) md += "---|";
  md += "\n";
  for (const auto& r : rows) {
    md += fmt::format("| {} |", md_cell(r));
    for (const auto& c : columns) md += fmt::format(" {} |", text.contains({r, c}) ? text[{r, c}] : "-");
    md += "\n";
  }
  return md;
}

/// One table's summary section; fills the annotations of the table-metric cells.
void compare_table(const published_table& t, const std::vector<nlohmann::json>& results,
                   const std::string& table_metric, published_report& out) {
  const bool percent = t.unit == "%";
  std::string rows_md;
  std::int64_t compared = 0, reproduced = 0, no_result = 0;
  std::set<std::string> unmatched_rows, unmatched_columns;
  for (const auto& c : t.cells) {
    const auto row = t.rows.find(c.row);
    const auto column = t.columns.find(c.column);
    if (row == t.rows.end()) unmatched_rows.insert(c.row);
    if (column == t.columns.end()) unmatched_columns.insert(c.column);
    if (row == t.rows.end() || column == t.columns.end()) continue;
    bool found = false;
    const double ours =
        (percent ? 100.0 : 1.0) * mean_test_value(results, row->second, column->second, c.metric, found);
    const std::string shown = fmt::format("{:.{}f}", c.value, std::max(2, printed_decimals(c.value)));
    const std::string where = fmt::format("{} | {} | {} | {}", md_cell(c.row), md_cell(c.column), c.metric, shown);
    if (!found) {
      ++no_result;
      rows_md += fmt::format("| {} | - | - | no result in this run ({} / {}) |\n", where, row->second, column->second);
      continue;
    }
    ++compared;
    // Ours is rounded as the paper printed the cell (at least 2 decimals) before comparing.
    const int decimals = std::max(2, printed_decimals(c.value));
    const double scale = std::pow(10.0, decimals);
    const double delta = ours - c.value;
    const bool ok = std::fabs(std::round(ours * scale) / scale - c.value) <= t.tolerance + 1e-9;
    reproduced += ok ? 1 : 0;
    const std::string reason = ok ? "" : reason_of(t, row->second, column->second);
    rows_md +=
        fmt::format("| {} | {:.2f} | {:+.2f} | {} |\n", where, ours, delta,
                    ok ? "yes" : (reason.empty() ? "**no** (no reason recorded)" : "**no**: " + md_cell(reason)));
    if (c.metric == table_metric) {
      const auto key = std::make_pair(row->second, column->second);
      out.md_note[key] += fmt::format("<br>pub. {} (Δ {:+.2f})", shown, delta);
      out.tex_note[key] += fmt::format(" / \\textit{{{}}}", shown);
    }
  }
  out.md += fmt::format("\n## Published cells: {}, {}\n\n", t.table, t.paper);
  out.md += fmt::format(
      "{}{}Transcribed in `{}` from `{}`{}. A cell is reproduced when ours, rounded as the paper prints the cell, is "
      "within {} {} of it.\n\n",
      t.caption, t.caption.empty() ? "" : ". ", t.file, t.source,
      t.source_lines.empty() ? "" : ", lines " + t.source_lines, t.tolerance,
      t.unit.empty() ? "" : "(" + t.unit + ", absolute)");
  out.md += fmt::format("**Reproduced: {} of {} compared cells.**", reproduced, compared);
  if (no_result > 0) out.md += fmt::format(" {} mapped cells have no result in this run.", no_result);
  const std::size_t elsewhere = std::count_if(t.cells.begin(), t.cells.end(), [&](const published_cell& c) {
    return !t.rows.contains(c.row) || !t.columns.contains(c.column);
  });
  if (elsewhere > 0) {
    out.md += fmt::format(" {} published cells have no counterpart here", elsewhere);
    if (!unmatched_rows.empty()) out.md += fmt::format(" (rows without a dump: {})", some_of(unmatched_rows));
    if (!unmatched_columns.empty())
      out.md += fmt::format(" (columns without a method: {})", some_of(unmatched_columns));
    out.md += ".";
  }
  if (!rows_md.empty())
    out.md +=
        "\n\n| paper row | paper column | metric | published | ours | Δ | reproduced "
        "|\n|---|---|---|---|---|---|---|\n" +
        rows_md;
  out.md += "\n" + unmatched_grid(t);
}

/// A `rows` key that is no row of the table, a `columns` key that is no column, or a `reasons`
/// key that names no label ("label" or "dataset / label"): a typo, refused.
void check_keys(const published_table& p, const std::string& spec_file, const std::string& where,
                const std::vector<std::string>& labels) {
  auto has = [&](auto member, const std::string& v) {
    return std::any_of(p.cells.begin(), p.cells.end(), [&](const published_cell& c) { return c.*member == v; });
  };
  for (const auto& [row, dataset] : p.rows)
    if (!has(&published_cell::row, row))
      fail(spec_file, fmt::format("{}.rows.\"{}\": no cell of {} in {} has that row", where, row, p.table, p.file));
  for (const auto& [column, label] : p.columns)
    if (!has(&published_cell::column, column))
      fail(spec_file,
           fmt::format("{}.columns.\"{}\": no cell of {} in {} has that column", where, column, p.table, p.file));
  for (const auto& [key, reason] : p.reasons) {
    const auto slash = key.rfind(" / ");
    const std::string label = slash == std::string::npos ? key : key.substr(slash + 3);
    if (std::find(labels.begin(), labels.end(), label) == labels.end())
      fail(spec_file, fmt::format("{}.reasons.\"{}\": '{}' is no method label (keys: \"label\" or \"dataset / label\")",
                                  where, key, label));
  }
}

}  // namespace

std::vector<published_table> load_published(const toml::node* published, const std::string& spec_file,
                                            const std::vector<std::string>& labels) {
  std::vector<published_table> out;
  if (published == nullptr) return out;
  const auto* arr = published->as_array();
  if (arr == nullptr) fail(spec_file, "published: expected [[published]] entries");
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const std::string where = fmt::format("published[{}]", i);
    const auto* t = arr->get(i)->as_table();
    if (t == nullptr) fail(spec_file, fmt::format("{}: expected a table", where));
    only_keys(*t, {"file", "table", "tolerance", "rows", "columns", "reasons"}, spec_file, where);
    published_table p;
    p.file = text_at(*t, "file", spec_file, where, true);
    p.table = text_at(*t, "table", spec_file, where, true);
    p.tolerance = number_at(*t, "tolerance", spec_file, where);
    if (p.tolerance < 0) fail(spec_file, fmt::format("{}.tolerance: must be at least 0", where));
    p.rows = text_map(*t, "rows", spec_file, where);
    p.columns = text_map(*t, "columns", spec_file, where);
    p.reasons = text_map(*t, "reasons", spec_file, where);
    for (const auto& [column, label] : p.columns)
      if (std::find(labels.begin(), labels.end(), label) == labels.end())
        fail(spec_file, fmt::format("{}.columns.\"{}\" = '{}': no method has that label", where, column, label));
    load_side_table((fs::path(spec_file).parent_path() / p.file).string(), p.table, p);
    for (const auto& c : p.cells)  // a paper column printed as one of our labels maps to it
      if (!p.columns.contains(c.column) && std::find(labels.begin(), labels.end(), c.column) != labels.end())
        p.columns[c.column] = c.column;
    for (const auto& c : p.cells)
      if (p.columns.contains(c.column))
        check_metric(c.metric, spec_file, fmt::format("{} (column '{}' of {})", where, c.column, p.file));
    check_keys(p, spec_file, where, labels);
    out.push_back(std::move(p));
  }
  return out;
}

published_report compare_published(const std::vector<published_table>& tables,
                                   const std::vector<nlohmann::json>& results, const std::string& table_metric) {
  published_report out;
  for (const auto& t : tables) compare_table(t, results, table_metric, out);
  return out;
}

}  // namespace calibench
