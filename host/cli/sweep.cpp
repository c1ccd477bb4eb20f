// `calibench sweep` (a study from a TOML spec: datasets x methods x seeds, resumable, sharded
// over MPI ranks when launched by mpirun; docs/experiments.md) and `calibench
// sweep-candidates` (one batch sweep of a candidate family on one split; docs/sweeps.md).
#include <sys/wait.h>
#include <unistd.h>

#if defined(CALIBENCH_HAVE_MPI)
#define OMPI_SKIP_MPICXX 1  // the C API only: the deprecated C++ bindings need another library
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/progress.hpp"
#include "host/cli/commands.hpp"
#include "host/cli/options.hpp"
#include "host/experiment/reports.hpp"
#include "host/experiment/runner.hpp"
#include "host/io/grid.hpp"
#include "host/metrics/report.hpp"
#include "host/sweep/device.hpp"
#include "host/sweep/sweep_input.hpp"

namespace calibench::cli {
namespace {

// ---- sweep-candidates ------------------------------------------------------------------------

struct sweep_candidates_args {
  std::string file;
  std::string split = "val";
  std::string family = "temperature";
  std::string grid = "0.05:5:0.05";
  std::int32_t bins = 15;
  convention_names conventions;
  std::string backend = "cpu";
  bool no_adaece = false;
  std::int32_t cls = 0;           ///< class-temperature: the class swept
  double base_temperature = 1.0;  ///< class-/bin-temperature: temperature of everything else
  std::int32_t calib_bins = 5;    ///< bin-temperature: equal-mass calibration bins
  std::int32_t target_bin = 0;    ///< bin-temperature: the bin swept
  bool per_bin = false;           ///< also print per-candidate bin statistics
  std::string format = "json";
};

/// What one family's sweep needs.
struct family_input {
  const sweep_candidates_args& a;
  const split_data& split;
  sweep_backend& backend;
  resident_logits& data;
  const sweep_options& options;
};

/// One family: the candidates it swept (as printed) and the result.
using family_run = std::function<sweep_result(const family_input& in, std::vector<double>& candidates)>;

sweep_result sweep_class_temperature(const family_input& in, std::vector<double>& candidates) {
  const std::int64_t k = in.split.num_classes;
  if (in.a.cls < 0 || in.a.cls >= k) throw input_error(fmt::format("--class {} outside [0, {})", in.a.cls, k));
  auto session = in.backend.class_temperature(
      in.data, std::vector<double>(static_cast<std::size_t>(k), in.a.base_temperature), in.options);
  return session->sweep(in.a.cls, candidates);
}

sweep_result sweep_bin_temperature(const family_input& in, std::vector<double>& candidates) {
  const auto& a = in.a;
  if (a.target_bin < 0 || a.target_bin >= a.calib_bins)
    throw input_error(fmt::format("--target-bin {} outside [0, {})", a.target_bin, a.calib_bins));
  split_data copy = in.split;
  const std::vector<double> confidence = score_split(std::move(copy)).confidence;
  const auto sample_bin = equal_mass_assignment(confidence, a.calib_bins);
  const std::vector<double> bin_temps(static_cast<std::size_t>(a.calib_bins), a.base_temperature);
  return in.backend.bin_temperature(in.data, {sample_bin, bin_temps, a.target_bin}, candidates, in.options);
}

const std::vector<std::pair<std::string, family_run>>& families() {
  static const std::vector<std::pair<std::string, family_run>> table{
      {"temperature",
       [](const family_input& in, std::vector<double>& c) { return in.backend.temperature(in.data, c, in.options); }},
      {"inverse-temperature",
       [](const family_input& in, std::vector<double>& c) {
         const auto g = parse_arithmetic_grid(in.a.grid, "--grid");
         const inverse_temperature_grid grid{g.start, g.step, g.count};
         c.clear();
         for (std::int64_t i = 0; i < grid.count; ++i) c.push_back(grid.at(i));
         return in.backend.inverse_temperature(in.data, grid, in.options);
       }},
      {"weight",
       [](const family_input& in, std::vector<double>& c) { return in.backend.weight(in.data, c, in.options); }},
      {"class-temperature", sweep_class_temperature},
      {"bin-temperature", sweep_bin_temperature},
  };
  return table;
}

nlohmann::json candidates_json(const sweep_candidates_args& a, const sweep_result& r,
                               const std::vector<double>& candidates, const split_data& split,
                               const std::string& backend, double seconds, const metric_options& mo) {
  nlohmann::json j;
  j["file"] = a.file;
  j["split"] = a.split;
  j["family"] = a.family;
  j["backend"] = backend;
  j["seconds"] = seconds;
  j["n"] = split.num_samples;
  j["k"] = split.num_classes;
  j["bins"] = a.bins;
  j["binning"] = binning_name(mo.bin_rule);
  j["candidates"] = candidates;
  auto column = [](const std::vector<double>& v) {
    nlohmann::json out = nlohmann::json::array();
    for (double x : v) out.push_back(json_number(x));
    return out;
  };
  j["ece"] = column(r.ece);
  j["mce"] = column(r.mce);
  j["adaece"] = column(r.adaece);
  j["nll"] = column(r.nll);
  j["brier"] = column(r.brier);
  j["accuracy"] = column(r.accuracy);
  if (a.per_bin) {
    j["bin_count"] = r.bin_count;
    j["bin_sum_confidence"] = r.bin_sum_confidence;
    j["bin_sum_correct"] = r.bin_sum_correct;
  }
  const std::int64_t best = sweep_result::argmin(r.ece);
  j["best_ece"] = {{"index", best}, {"candidate", candidates[static_cast<std::size_t>(best)]}, {"ece", r.ece[best]}};
  return j;
}

int run_sweep_candidates(const sweep_candidates_args& a) {
  const split_data split = read_split(a.file, a.split);
  const sweep_input input = to_sweep_input(split);
  const metric_options mo = resolve_conventions(a.conventions, a.bins);
  const sweep_options options{a.bins, mo.bin_rule, !a.no_adaece, progress_settings().mode != progress_mode::off};
  auto backend = make_backend(backend_for_rule(parse_backend_choice(a.backend), mo.bin_rule));
  const auto started = std::chrono::steady_clock::now();
  auto data = backend->prepare(input.view());
  const auto& table = families();
  const auto family = std::find_if(table.begin(), table.end(), [&](const auto& f) { return f.first == a.family; });
  if (family == table.end()) throw input_error(fmt::format("unknown family '{}'", a.family));
  std::vector<double> candidates;
  if (a.family != "inverse-temperature") candidates = parse_grid(a.grid, "--grid");
  const sweep_result r = family->second({a, split, *backend, *data, options}, candidates);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (a.format == "json") {
    std::cout << candidates_json(a, r, candidates, split, backend->name(), seconds, mo).dump(1) << "\n";
    return 0;
  }
  std::cout << "candidate,ece,mce,adaece,nll,brier,accuracy\n";
  for (std::size_t g = 0; g < candidates.size(); ++g) {
    std::cout << fmt::format("{},{},{},{},{},{},{}\n", candidates[g], r.ece[g], r.mce[g], r.adaece[g], r.nll[g],
                             r.brier[g], r.accuracy[g]);
  }
  return 0;
}

// ---- sweep -----------------------------------------------------------------------------------

struct sweep_args {
  std::string spec;
  std::string out;
  bool verbose = false;
  bool list = false;   ///< print the cells and exit
  bool plots = true;   ///< run experiments/plot_sweep.py on the output (when it and matplotlib are there)
  bool report = true;  ///< run experiments/report_html.py on the output (after the plots)
  std::string shard;   ///< --shard I/N: run cells I, I + N, I + 2N, ... and write no reports
  bool merge = false;  ///< --merge: run nothing; write the reports from the cells on disk
};

/// This process's place among the processes of an MPI run (rank 0 of 1 without MPI), and how
/// their counts are combined (after a barrier) before rank 0 writes the reports.
struct sweep_ranks {
  std::int32_t rank = 0;
  std::int32_t size = 1;
  std::int32_t local_rank = -1;  ///< rank on this node under MPI, for the GPU choice
  bool shard = false;            ///< one of `--shard I/N`'s processes: rank I of size N, no reports
  std::function<sweep_summary(const sweep_summary&)> combine = [](const sweep_summary& s) { return s; };
};

/// Runs python3 on the script experiments/NAME with the sweep's output folder, stdout dropped,
/// stderr into OUT/LOG; returns its exit status (-1 when it did not exit, -2 when it is missing).
int run_output_script(const std::string& name, const std::string& out_dir, const std::string& log) {
  const std::string script = std::string(CALIBENCH_SOURCE_DIR) + "/experiments/" + name;
  if (::access(script.c_str(), R_OK) != 0) return -2;
  const std::string command = fmt::format("python3 {} {} > /dev/null 2> {}", shell_word(script), shell_word(out_dir),
                                          shell_word((std::filesystem::path(out_dir) / log).string()));
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// experiments/plot_sweep.py (Python with matplotlib) on a sweep's output; returns a line
/// saying what happened. Plots are a convenience: their absence is reported, not an error.
std::string make_plots(const std::string& out_dir) {
  const int code = run_output_script("plot_sweep.py", out_dir, "plots.log");
  if (code == 0) return fmt::format("Plots (PNG and SVG) in {}/plots.\n", out_dir);
  if (code == -2) return "Plots skipped: experiments/plot_sweep.py not found.\n";
  if (code == 4) return "Plots skipped: matplotlib is not installed (python3 -m pip install matplotlib).\n";
  return fmt::format("Plots failed (exit {}); see {}/plots.log.\n", code, out_dir);
}

/// experiments/report_html.py (standard library only): OUT/report.html, one self-contained
/// page of the tables, the plots and the failed cells.
std::string make_report(const std::string& out_dir) {
  const int code = run_output_script("report_html.py", out_dir, "report.log");
  if (code == 0) return fmt::format("Report: {}/report.html.\n", out_dir);
  if (code == -2) return "Report skipped: experiments/report_html.py not found.\n";
  return fmt::format("Report failed (exit {}); see {}/report.log.\n", code, out_dir);
}

/// `--shard I/N` as this process's place among N shards: cell i runs in shard i mod N, the
/// assignment of MPI ranks, so that shards and ranks split a study the same way.
sweep_ranks parse_shard(const std::string& text) {
  auto number = [](std::string_view digits, std::int64_t& value) {
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    return !digits.empty() && ec == std::errc{} && end == digits.data() + digits.size();
  };
  const std::string_view all(text);
  const auto slash = all.find('/');
  std::int64_t i = -1, n = 0;
  if (slash == std::string_view::npos || !number(all.substr(0, slash), i) || !number(all.substr(slash + 1), n) ||
      n < 1 || n > 1000000 || i < 0 || i >= n)
    throw input_error(fmt::format("--shard: expected I/N with 0 <= I < N <= 1000000, e.g. 0/4 (got '{}')", text));
  sweep_ranks shard;
  shard.rank = static_cast<std::int32_t>(i);
  shard.size = static_cast<std::int32_t>(n);
  shard.shard = true;
  return shard;
}

/// --list: this process's cells (every cell, or a shard's share) and their identities.
int list_cells(const std::vector<cell>& cells, const sweep_ranks& ranks) {
  if (ranks.rank != 0 && !ranks.shard) return 0;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (ranks.shard && static_cast<std::int32_t>(i % static_cast<std::size_t>(ranks.size)) != ranks.rank) continue;
    const cell& c = cells[i];
    std::cout << fmt::format("{}  {}  {}  seed {}\n", c.id, c.dataset->name, c.method->label, c.seed);
  }
  return 0;
}

/// The reports (table on stdout), the plots and the closing line of a run or a merge.
int write_outputs(const sweep_args& a, const experiment_spec& spec, const std::vector<cell>& cells,
                  const std::string& summary, bool failed) {
  std::cout << write_reports(spec, cells, a.out);
  if (a.plots) std::cout << "\n" << make_plots(a.out);
  if (a.report) std::cout << (a.plots ? "" : "\n") << make_report(a.out);
  std::cout << "\n" << summary;
  return failed ? k_exit_failed_cells : 0;
}

/// --merge: the reports of a study whose cells the shards ran; refuses while a cell has no
/// result file (a shard still running or never started), naming the first such cell.
int merge_cells(const sweep_args& a, const experiment_spec& spec, const std::vector<cell>& cells) {
  std::int64_t missing = 0, failed = 0, first = -1;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const nlohmann::json r = read_cell(cell_path(a.out, cells[i]));
    if (r.is_null() && first < 0) first = static_cast<std::int64_t>(i);
    missing += r.is_null() ? 1 : 0;
    failed += !r.is_null() && r.contains("error") ? 1 : 0;
  }
  if (missing > 0) {
    const cell& c = cells[static_cast<std::size_t>(first)];
    return report_error(fmt::format("--merge: {} of {} cells have no result in {} yet; the first is cell {} ({} | {} | "
                                    "seed {}: {}); wait for the shards that run them, or run the sweep without "
                                    "--shard or --merge to run them here",
                                    missing, cells.size(), (std::filesystem::path(a.out) / "cells").string(), first,
                                    c.dataset->name, c.method->label, c.seed, cell_path(a.out, c)),
                        k_exit_failed_cells);
  }
  return write_outputs(a, spec, cells,
                       fmt::format("{} cells merged from {}: {} failed. Output in {}\n", cells.size(),
                                   (std::filesystem::path(a.out) / "cells").string(), failed, a.out),
                       failed > 0);
}

/// Exit status 0 when every cell finished, 3 when some failed (their errors are recorded).
int run_sweep(const sweep_args& a, const sweep_ranks& ranks) {
  if (ranks.local_rank >= 0) select_device(ranks.local_rank);  // one GPU per rank
  const experiment_spec spec = load_spec(a.spec, a.out);
  const std::vector<cell> cells = expand_cells(spec);
  if (a.list) return list_cells(cells, ranks);
  if (a.merge) return merge_cells(a, spec, cells);
  sweep_run_options o;
  o.verbose = a.verbose;
  // Under mpirun rank 0 reports its own cells (the others stay quiet); a shard reports its own.
  if (ranks.rank != 0 && !ranks.shard) progress_settings().mode = progress_mode::off;
  if (a.verbose) progress_settings().mode = progress_mode::off;  // one line per cell instead
  o.progress = progress_settings().mode != progress_mode::off;
  o.rank = ranks.rank;
  o.ranks = ranks.size;
  sweep_summary s = run_cells(spec, cells, a.out, o);
  // Every rank's cells are on disk before rank 0 reads them all.
  s = ranks.combine(s);
  const std::string counts =
      fmt::format("{} cells: {} run, {} already done, {} failed; {:.2f} s ({:.1f} cells/s)", s.cells, s.ran, s.skipped,
                  s.failed, s.seconds, static_cast<double>(s.ran) / std::max(s.seconds, 1e-9));
  if (ranks.shard) {
    std::cout << fmt::format(
        "shard {}/{}: {}. Reports not written: once every shard has finished, run\n"
        "  calibench sweep {} --out {} --merge\n",
        ranks.rank, ranks.size, counts, a.spec, a.out);
    return s.failed > 0 ? k_exit_failed_cells : 0;
  }
  if (ranks.rank != 0) return s.failed > 0 ? k_exit_failed_cells : 0;
  return write_outputs(
      a, spec, cells,
      fmt::format("{}{}. Output in {}\n", counts, ranks.size > 1 ? fmt::format(", {} ranks", ranks.size) : "", a.out),
      s.failed > 0);
}

/// True when this process was started by an MPI launcher (Open MPI, MPICH/PMI, PMIx).
bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (std::getenv(var) != nullptr) return true;
  }
  return false;
}

/// `calibench sweep`, sharded over MPI ranks when launched by mpirun (and built with MPI).
int run_sweep_maybe_mpi(const sweep_args& a) {
  if (!launched_by_mpi()) return run_sweep(a, a.shard.empty() ? sweep_ranks{} : parse_shard(a.shard));
  if (!a.shard.empty() || a.merge)
    throw input_error(
        fmt::format("{}: run it as one process, not under mpirun (the ranks already share the cells and "
                    "rank 0 writes the reports)",
                    a.merge ? "--merge" : "--shard"));
#if defined(CALIBENCH_HAVE_MPI)
  MPI_Init(nullptr, nullptr);
  sweep_ranks ranks;
  MPI_Comm_rank(MPI_COMM_WORLD, &ranks.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks.size);
  if (const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK")) ranks.local_rank = std::atoi(local);
  ranks.combine = [](const sweep_summary& mine) {
    long long in[4] = {mine.cells, mine.skipped, mine.ran, mine.failed}, out[4] = {};
    MPI_Allreduce(in, out, 4, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);  // also the barrier
    double seconds = 0;
    MPI_Allreduce(&mine.seconds, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return sweep_summary{out[0], out[1], out[2], out[3], seconds};
  };
  int status = 1;
  try {
    status = run_sweep(a, ranks);
  } catch (const input_error& e) {
    status = report_error(e.what(), k_exit_input);
  } catch (const std::exception& e) {
    status = report_error(e.what(), k_exit_runtime);
  }
  MPI_Finalize();
  return status;
#else
  throw input_error(
      "this calibench was built without MPI: rebuild with libopenmpi-dev installed "
      "(CALIBENCH_MPI=AUTO|ON) to shard a sweep over mpirun ranks");
#endif
}

}  // namespace

command_runner setup_sweep_candidates(CLI::App& cmd) {
  auto a = std::make_shared<sweep_candidates_args>();
  cmd.add_option("file", a->file, "HDF5 logit dump")->required();
  cmd.add_option("--split", a->split, "Split")->check(CLI::IsMember({"val", "test", "train"}));
  cmd.add_option("--family", a->family,
                 "temperature | inverse-temperature | weight | class-temperature | bin-temperature")
      ->check(CLI::IsMember({"temperature", "inverse-temperature", "weight", "class-temperature", "bin-temperature"}));
  cmd.add_option("--grid", a->grid, "Candidates: start:stop:step (inclusive) or v1,v2,...");
  cmd.add_option("--bins", a->bins, "Number of bins M")->check(CLI::Range(1, 1000000));
  add_convention_options(cmd, a->conventions, false);
  cmd.add_option("--backend", a->backend, "cpu | cuda | auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd.add_flag("--no-adaece", a->no_adaece, "Skip equal-mass bins (no per-candidate sort)");
  cmd.add_option("--class", a->cls, "class-temperature: the class whose temperature is swept");
  cmd.add_option("--base-temperature", a->base_temperature, "class-/bin-temperature: temperature of the rest")
      ->check(finite_number(0.0, 1e300, true, false, "a finite number > 0"));
  cmd.add_option("--calib-bins", a->calib_bins, "bin-temperature: equal-mass calibration bins")
      ->check(CLI::Range(1, 1000000));
  cmd.add_option("--target-bin", a->target_bin, "bin-temperature: the bin whose temperature is swept");
  cmd.add_flag("--per-bin", a->per_bin, "Also print every candidate's bin statistics");
  cmd.add_option("--format", a->format, "json | csv")->check(CLI::IsMember({"json", "csv"}));
  add_progress_options(cmd);
  return [a] { return run_sweep_candidates(*a); };
}

command_runner setup_sweep(CLI::App& cmd) {
  auto a = std::make_shared<sweep_args>();
  cmd.add_option("spec", a->spec, "Spec file (TOML)")->required();
  cmd.add_option("--out", a->out, "Output folder (finished cells there are not run again)")->required();
  cmd.add_flag("--verbose", a->verbose, "One line per finished cell on stderr");
  cmd.add_flag("--list", a->list, "Print the cells and their identities, run nothing");
  cmd.add_flag("!--no-plots", a->plots, "Do not run experiments/plot_sweep.py on the output");
  cmd.add_flag("!--no-report", a->report, "Do not write OUT/report.html (experiments/report_html.py)");
  auto* shard = cmd.add_option("--shard", a->shard,
                               "I/N: run cells I, I+N, I+2N, ... (0 <= I < N; the MPI ranks' assignment) and write no "
                               "reports; then --merge");
  auto* merge = cmd.add_flag("--merge", a->merge,
                             "Run nothing: write the reports from the cells in DIR/cells (after every shard finished)");
  merge->excludes(shard);
  cmd.get_option("--list")->excludes(merge);
  add_progress_options(cmd);
  return [a] { return run_sweep_maybe_mpi(*a); };
}

}  // namespace calibench::cli
