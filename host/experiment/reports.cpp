// The reports of a study (host/experiment/reports.hpp): classification studies get one row per
// dataset and one column per method configuration; segmentation studies per dataset, methods
// as rows and domain groups as columns.
#include "host/experiment/reports.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "host/experiment/runner.hpp"
#include "host/io/atomic_file.hpp"
#include "host/io/dump.hpp"

namespace calibench {
namespace {

namespace fs = std::filesystem;

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

std::string latex_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (std::string("&%$#_{}").find(ch) != std::string::npos) out += '\\';
    if (ch == '~' || ch == '^' || ch == '\\') {
      out += fmt::format("\\char{}", static_cast<int>(ch));
      continue;
    }
    out += ch;
  }
  return out;
}

/// "right-closed" for the default conventions, else e.g. "conventions netcal: binning left-closed, ...".
std::string conventions_label(const experiment_spec& spec) {
  const metric_options o = resolve_conventions(spec.conventions, spec.bins);
  if (conventions_json(o) == conventions_json(resolve_conventions({}, spec.bins))) return binning_name(o.bin_rule);
  return fmt::format("conventions {}: binning {}, classwise binning {}, adaptive {}, classwise {}, brier {}{}",
                     o.preset, binning_name(o.bin_rule), binning_name(o.classwise_binning()), adaptive_name(o.adaptive),
                     classwise_reduction_name(o.reduction), brier_name(o.brier),
                     o.nll_clip > 0 ? fmt::format(", nll clip {:g}", o.nll_clip) : std::string());
}

double mean_of(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double std_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

void write_in(const std::string& out_dir, const char* name, const std::string& content) {
  write_file_atomic((fs::path(out_dir) / name).string(), content);
}

/// Every cell's JSON in cell order; a cell that has not run reads as an error "not run".
std::vector<nlohmann::json> read_results(const std::vector<cell>& cells, const std::string& out_dir, bool with_model) {
  std::vector<nlohmann::json> results;
  for (const auto& c : cells) {
    nlohmann::json r = read_cell(cell_path(out_dir, c));
    if (r.is_null()) {
      r = {{"id", c.id}, {"dataset", c.dataset->name}, {"label", c.method->label}, {"error", "not run"}};
      if (with_model) r["seed"] = c.seed;
    }
    if (with_model) r["model"] = c.dataset->model;  // from the dump, so that older cell files report it too
    results.push_back(std::move(r));
  }
  return results;
}

// ---- segmentation studies --------------------------------------------------------------------

/// results.csv of a segmentation study: one row per cell and group.
std::string seg_results_csv(const std::vector<nlohmann::json>& results) {
  std::string csv = "id,dataset,method,group,roi_pixels,pixels,accuracy,ece,mce,sce,nll,brier,mean_dice,params,error\n";
  for (const auto& r : results) {
    if (r.contains("error")) {
      csv += fmt::format("{},{},{},,,,,,,,,,,,{}\n", r.value("id", ""), csv_field(r.value("dataset", "")),
                         r.value("label", ""), csv_field(r.value("error", "")));
      continue;
    }
    for (const auto& [group, m] : r["groups"].items()) {
      csv += fmt::format("{},{},{},{},{},{}", r.value("id", ""), csv_field(r.value("dataset", "")),
                         r.value("label", ""), group, m["roi_pixels"].dump(), m["pixels"].dump());
      for (const char* key : {"accuracy", "ece", "mce", "sce", "nll", "brier", "mean_dice"})
        csv += fmt::format(",{}", m[key].is_null() ? "" : m[key].dump());
      csv += fmt::format(",{},\n", csv_field(r["params"].dump()));
    }
  }
  return csv;
}

/// The domain groups of a dataset's cells: val, test, then the others by name.
std::vector<std::string> seg_groups(const std::vector<nlohmann::json>& results, const std::string& dataset) {
  std::vector<std::string> groups;
  for (const auto& r : results) {
    if (r.value("dataset", "") != dataset || r.contains("error")) continue;
    for (const auto& [group, m] : r["groups"].items()) {
      if (std::find(groups.begin(), groups.end(), group) == groups.end()) groups.push_back(group);
    }
  }
  std::sort(groups.begin(), groups.end(), [](const std::string& a, const std::string& b) {
    const auto rank = [](const std::string& s) { return s == "val" ? 0 : (s == "test" ? 1 : 2); };
    return std::make_pair(rank(a), a) < std::make_pair(rank(b), b);
  });
  return groups;
}

/// One metric's table of one dataset (methods as rows, groups as columns), Markdown and LaTeX.
void seg_metric_table(const experiment_spec& spec, const std::vector<nlohmann::json>& results,
                      const std::string& dataset, const std::vector<std::string>& groups, const std::string& title,
                      const std::string& key, std::string& md, std::string& tex) {
  md += fmt::format("\n| {} |", title);
  for (const auto& g : groups) md += fmt::format(" {} |", g);
  md += "\n|---|";
  for (std::size_t i = 0; i < groups.size(); ++i) md += "---|";
  md += "\n";
  tex += latex_escape(title);
  for (const auto& g : groups) tex += fmt::format(" & {}", latex_escape(g));
  tex += " \\\\\n\\midrule\n";
  for (const auto& m : spec.methods) {
    md += fmt::format("| {} |", m.label);
    tex += latex_escape(m.label);
    const nlohmann::json* row = nullptr;
    for (const auto& r : results) {
      if (r.value("dataset", "") == dataset && r.value("label", "") == m.label) row = &r;
    }
    for (const auto& g : groups) {
      std::string text = "n/a";
      if (row != nullptr && row->contains("error")) {
        text = "failed";
      } else if (row != nullptr && (*row)["groups"].contains(g) && !(*row)["groups"][g][key].is_null()) {
        text = fmt::format("{:.2f}", 100.0 * (*row)["groups"][g][key].get<double>());
      }
      md += fmt::format(" {} |", text);
      tex += fmt::format(" & {}", text);
    }
    md += "\n";
    tex += " \\\\\n";
  }
  tex += "\\midrule\n";
}

/// Reports of a segmentation study: results.json, results.csv (one row per cell and group)
/// and table.md / table.tex shaped like the paper's Table 1: per dataset, methods as rows and
/// groups (domains) as columns, ECE % and SCE %, then mean Dice %.
std::string write_seg_reports(const experiment_spec& spec, const std::vector<cell>& cells, const std::string& out_dir) {
  const std::vector<nlohmann::json> results = read_results(cells, out_dir, false);
  write_in(out_dir, "results.json", nlohmann::json(results).dump(1));
  write_in(out_dir, "results.csv", seg_results_csv(results));
  std::string md = fmt::format(
      "# {}\n\nSegmentation calibration over ROI pixels ({}{}), {} bins {}; methods as rows, "
      "domain groups as columns; ECE and SCE %, mean Dice % over all pixels. Spec: `{}`.\n",
      spec.name, spec.roi,
      spec.roi == "dilate" ? fmt::format(": foreground dilated by r = {} px", spec.roi_dilation) : std::string(),
      spec.bins, conventions_label(spec), spec.file);
  std::string tex =
      fmt::format("% {} -- generated by calibench sweep from {}\n", latex_escape(spec.name), latex_escape(spec.file));
  for (const auto& d : spec.datasets) {
    const std::vector<std::string> groups = seg_groups(results, d.name);
    md += fmt::format("\n## {}\n", d.name);
    tex += fmt::format("% {}\n\\begin{{tabular}}{{l{}}}\n\\toprule\n", latex_escape(d.name),
                       std::string(groups.size(), 'r'));
    for (const auto& [title, key] : std::vector<std::pair<std::string, std::string>>{
             {"ECE %", "ece"}, {"SCE %", "sce"}, {"mean Dice %", "mean_dice"}})
      seg_metric_table(spec, results, d.name, groups, title, key, md, tex);
    tex += "\\bottomrule\n\\end{tabular}\n";
  }
  write_in(out_dir, "table.md", md);
  write_in(out_dir, "table.tex", tex);
  return md;
}

// ---- classification studies ------------------------------------------------------------------

/// results.json and results.csv: one row per cell and split.
std::string results_csv(const std::vector<nlohmann::json>& results) {
  const auto fields = metric_fields();
  std::string csv = "id,dataset,model,file,method,label,options,seed,split,n,k";
  // The on-request metrics (skce, skce_pvalue) are not computed in sweeps: no columns.
  for (const auto& f : fields)
    if (!f.on_request) csv += fmt::format(",{}", f.name);
  csv += ",order_inversions,params,seconds,backend,error\n";
  for (const auto& r : results) {
    for (const char* split : {"val", "test"}) {
      csv += fmt::format("{},{},{},{},{},{},{},{},{}", r.value("id", ""), csv_field(r.value("dataset", "")),
                         csv_field(r.value("model", "")), csv_field(r.value("file", "")), r.value("method", ""),
                         csv_field(r.value("label", "")), csv_field(r.contains("options") ? r["options"].dump() : "{}"),
                         r.value("seed", 0), split);
      const bool ok = !r.contains("error");
      const auto& m = ok ? r[split] : nlohmann::json::object();
      csv += fmt::format(",{},{}", ok ? m["n"].dump() : "", ok ? m["k"].dump() : "");
      for (const auto& f : fields) {
        if (f.on_request) continue;
        csv += fmt::format(",{}", ok && m.contains(f.name) && !m[f.name].is_null() ? m[f.name].dump() : "");
      }
      csv += fmt::format(",{},{},{},{},{}\n", ok ? r["order_inversions"][split].dump() : "",
                         csv_field(ok ? r["params"].dump() : ""), r.contains("seconds") ? r["seconds"].dump() : "",
                         csv_field(r.value("backend", "")), csv_field(r.value("error", "")));
    }
  }
  return csv;
}

/// results.h5: every cell's parameters (JSON) as attributes of /cells/<id>.
void write_results_h5(const std::vector<nlohmann::json>& results, const std::string& out_dir) {
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> groups;
  for (const auto& r : results) {
    std::map<std::string, std::string> attrs{{"dataset", r.value("dataset", "")},
                                             {"label", r.value("label", "")},
                                             {"method", r.value("method", "")},
                                             {"seed", std::to_string(r.value("seed", 0))}};
    if (r.contains("params")) attrs["params"] = r["params"].dump();
    if (r.contains("error")) attrs["error"] = r["error"].get<std::string>();
    groups.emplace_back("/cells/" + r.value("id", ""), std::move(attrs));
  }
  write_attribute_groups((fs::path(out_dir) / "results.h5").string(), groups);
}

/// One table entry (dataset, method configuration) over the seeds.
struct entry {
  std::vector<double> value, acc;  ///< the table metric and the accuracy of each seed
  bool failed = false;
  nlohmann::json ci;
  std::vector<double> boot;  ///< the first seed's bootstrap ECEs
};
using entry_table = std::map<std::pair<std::string, std::string>, entry>;

entry_table aggregate(const experiment_spec& spec, const std::vector<nlohmann::json>& results) {
  entry_table table;
  for (const auto& r : results) {
    auto& a = table[{r.value("dataset", ""), r.value("label", "")}];
    if (r.contains("error")) {
      a.failed = true;
      continue;
    }
    const auto& value = r["test"][spec.table_metric];
    if (value.is_null()) continue;  // undefined for this cell (e.g. auroc with one class)
    a.value.push_back(value.get<double>());
    a.acc.push_back(r["test"]["accuracy"].get<double>());
    if (r.contains("test_ci95") && a.ci.is_null()) a.ci = r["test_ci95"]["ece"];
    if (r.contains("test_bootstrap_ece") && a.boot.empty()) {
      for (const auto& x : r["test_bootstrap_ece"]) a.boot.push_back(x.is_null() ? NAN : x.get<double>());
    }
  }
  return table;
}

/// How entries are printed: the metric's scale and direction, seeds, intervals.
struct table_format {
  const experiment_spec& spec;
  const metric_field& field;
  bool lower_is_better, many_seeds;

  std::string text(const entry& a, bool latex) const {
    const double scale = field.percent ? 100.0 : 1.0;
    if (a.value.empty()) return std::string(a.failed ? "failed" : "-");
    std::string t = many_seeds ? fmt::format("{:.2f} {} {:.2f}", scale * mean_of(a.value), latex ? "$\\pm$" : "±",
                                             scale * std_of(a.value))
                               : fmt::format("{:.2f}", scale * a.value[0]);
    if (!many_seeds && spec.table_metric == "ece" && a.ci.is_array() && !a.ci[0].is_null())
      t += fmt::format(" [{:.2f}, {:.2f}]", 100 * a.ci[0].get<double>(), 100 * a.ci[1].get<double>());
    t += fmt::format(" ({:.2f})", 100 * mean_of(a.acc));
    if (a.failed) t += latex ? "$^{*}$" : " *";
    return t;
  }
};

table_format format_of(const experiment_spec& spec) {
  const auto fields = metric_fields();
  const auto field =
      std::find_if(fields.begin(), fields.end(), [&](const metric_field& f) { return spec.table_metric == f.name; });
  const bool lower_is_better = spec.table_metric != "accuracy" && spec.table_metric != "auroc" &&
                               spec.table_metric != "precision" && spec.table_metric != "recall" &&
                               spec.table_metric != "f1" && spec.table_metric != "r_auc";
  return {spec, *field, lower_is_better, spec.seeds.size() > 1};
}

/// The table's rows (Markdown and LaTeX), the best entry of each row in bold; true when
/// some entry failed.
bool table_rows(const experiment_spec& spec, entry_table& table, const table_format& f,
                const published_report& published, std::string& md, std::string& tex) {
  bool any_failed = false;
  for (const auto& d : spec.datasets) {
    const std::string& row = d.name;
    double best = f.lower_is_better ? INFINITY : -INFINITY;
    for (const auto& m : spec.methods) {
      const auto& a = table[{row, m.label}];
      if (!a.value.empty())
        best = f.lower_is_better ? std::min(best, mean_of(a.value)) : std::max(best, mean_of(a.value));
    }
    md += fmt::format("| {} |", row);
    tex += latex_escape(row);
    for (const auto& m : spec.methods) {
      const auto& a = table[{row, m.label}];
      any_failed = any_failed || a.failed;
      const bool is_best = !a.value.empty() && mean_of(a.value) == best;
      const std::string t = f.text(a, false);
      const auto md_note = published.md_note.find({row, m.label});
      md += is_best ? fmt::format(" **{}**", t) : fmt::format(" {}", t);
      md += md_note == published.md_note.end() ? " |" : md_note->second + " |";
      const std::string tt = latex_escape(f.text(a, true));
      tex += is_best ? fmt::format(" & \\textbf{{{}}}", tt) : fmt::format(" & {}", tt);
      if (const auto tex_note = published.tex_note.find({row, m.label}); tex_note != published.tex_note.end())
        tex += tex_note->second;
    }
    md += "\n";
    tex += " \\\\\n";
  }
  return any_failed;
}

/// The Markdown table and its LaTeX twin: rows datasets, columns method labels.
std::pair<std::string, std::string> render_table(const experiment_spec& spec, entry_table& table,
                                                 const published_report& published) {
  const table_format f = format_of(spec);
  std::string md = fmt::format(
      "# {}\n\nTest {}{} ({} bins, {}){}{}, test accuracy % in parentheses; "
      "the best value of each row in bold. Spec: `{}`.\n\n",
      spec.name, spec.table_metric, f.field.percent ? " %" : "", spec.bins, conventions_label(spec),
      f.many_seeds ? fmt::format(", mean ± std over {} seeds", spec.seeds.size()) : "",
      spec.bootstrap > 0 && !f.many_seeds ? fmt::format(", [95% bootstrap interval, {} resamples]", spec.bootstrap)
                                          : "",
      spec.file);
  std::string tex = fmt::format("% {} -- generated by calibench sweep from {}\n\\begin{{tabular}}{{l{}}}\n\\toprule\n",
                                spec.name, spec.file, std::string(spec.methods.size(), 'r'));
  md += "| dataset |";
  tex += "dataset";
  for (const auto& m : spec.methods) {
    md += fmt::format(" {} |", m.label);
    tex += fmt::format(" & {}", latex_escape(m.label));
  }
  md += "\n|---|";
  for (std::size_t i = 0; i < spec.methods.size(); ++i) md += "---|";
  md += "\n";
  tex += " \\\\\n\\midrule\n";
  const bool any_failed = table_rows(spec, table, f, published, md, tex);
  tex += "\\bottomrule\n\\end{tabular}\n";
  if (any_failed) md += "\n`failed` / `*`: some cells of that entry failed; see results.csv for the errors.\n";
  if (!published.md_note.empty())
    md +=
        "\n`pub.`: the paper's published value of that cell and our difference from it (ours - published); "
        "the sections \"Published cells\" below list every published cell.\n";
  for (const auto& note : spec.notes) md += fmt::format("\nNote: {}\n", note);
  md += published.md;
  return {md, tex};
}

/// Paired bootstrap comparisons: P(ECE of the row method < ECE of the column method) over
/// the same test resamples (first seed).
std::string paired_comparisons(const experiment_spec& spec, entry_table& table) {
  std::string md = fmt::format(
      "\n## Paired bootstrap comparisons\n\nP(row method has lower test ECE than column method) "
      "over {} paired resamples of the test split (seed {}).\n",
      spec.bootstrap, spec.seeds.front());
  for (const auto& d : spec.datasets) {
    md += fmt::format("\n**{}**\n\n| |", d.name);
    for (const auto& m : spec.methods) md += fmt::format(" {} |", m.label);
    md += "\n|---|";
    for (std::size_t i = 0; i < spec.methods.size(); ++i) md += "---|";
    md += "\n";
    for (const auto& ma : spec.methods) {
      md += fmt::format("| {} |", ma.label);
      const auto& a = table[{d.name, ma.label}].boot;
      for (const auto& mb : spec.methods) {
        const auto& b = table[{d.name, mb.label}].boot;
        if (ma.label == mb.label || a.empty() || a.size() != b.size()) {
          md += " - |";
          continue;
        }
        std::int64_t wins = 0, total = 0;
        for (std::size_t i = 0; i < a.size(); ++i) {
          if (std::isnan(a[i]) || std::isnan(b[i])) continue;
          ++total;
          wins += a[i] < b[i] ? 1 : 0;
        }
        md += total > 0 ? fmt::format(" {:.2f} |", static_cast<double>(wins) / static_cast<double>(total)) : " - |";
      }
      md += "\n";
    }
  }
  return md;
}

}  // namespace

std::string write_reports(const experiment_spec& spec, const std::vector<cell>& cells, const std::string& out_dir) {
  if (spec.task == "segmentation") return write_seg_reports(spec, cells, out_dir);
  const std::vector<nlohmann::json> results = read_results(cells, out_dir, true);
  write_in(out_dir, "results.json", nlohmann::json(results).dump(1));
  write_in(out_dir, "results.csv", results_csv(results));
  write_results_h5(results, out_dir);
  entry_table table = aggregate(spec, results);
  auto [md, tex] = render_table(spec, table, compare_published(spec.published, results, spec.table_metric));
  if (spec.bootstrap > 0 && spec.methods.size() > 1) md += paired_comparisons(spec, table);
  write_in(out_dir, "table.md", md);
  write_in(out_dir, "table.tex", tex);
  return md;
}

}  // namespace calibench
