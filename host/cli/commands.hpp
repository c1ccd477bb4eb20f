// The CLI's commands as functions: each parses nothing, prints its output on stdout only
// after everything succeeded, and throws calibench errors for the caller to report.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "host/metrics/conventions.hpp"
#include "host/experiment/experiment.hpp"
#include "host/calibrators/trained/trained_fit.hpp"

namespace calibench::cli {

struct eval_args {
  std::string file;
  std::string split = "test";
  std::int32_t bins = 15;
  convention_names conventions;
  bool compare_conventions = false;
  std::int64_t bootstrap = 0;
  std::uint64_t seed = 0;
  double level = 0.95;
  bool reliability = false;
  std::string inversions_against;
  std::string format = "table";
};
int run_eval(const eval_args& a);

int run_info(const std::string& file, const std::string& format);

int run_version();

struct seg_eval_args {
  std::string file;
  std::int32_t bins = 15;
  convention_names conventions;
  std::string roi = "dilate";
  std::int32_t roi_dilation = 10;
  std::int32_t background = 0;
  std::string methods = "uncalibrated";  ///< comma-separated
  std::string groups;                    ///< comma-separated; empty: all
  std::string backend = "auto";
  bool reliability = false;
  std::string format = "table";
};
int run_seg_eval(const seg_eval_args& a);

struct sweep_candidates_args {
  std::string file;
  std::string split = "val";
  std::string family = "temperature";
  std::string grid = "0.05:5:0.05";
  std::int32_t bins = 15;
  convention_names conventions;
  std::string backend = "cpu";
  bool no_adaece = false;
  std::int32_t cls = 0;              ///< class-temperature: the class swept
  double base_temperature = 1.0;     ///< class-/bin-temperature: temperature of everything else
  std::int32_t calib_bins = 5;       ///< bin-temperature: equal-mass calibration bins
  std::int32_t target_bin = 0;       ///< bin-temperature: the bin swept
  bool per_bin = false;              ///< also print per-candidate bin statistics
  std::string format = "json";
};
int run_sweep_candidates(const sweep_candidates_args& a);

/// Options of the loss-trained methods (host/calibrators/trained/trained_fit.hpp) as the command line gives them.
struct train_args {
  train_options options;               ///< numbers and paths, written directly
  std::string focal_gradient = "full";  ///< full | detached
  std::string lsplus_perfect = "uniform";
  std::string sctl_norm = "nd";
  std::string sctl_solver = "grid";
  std::int64_t sctl_grid = 256;
  std::vector<std::string> given;       ///< train_option_keys() the command line set explicitly
};
/// The train_options of `a` (throws input_error on a bad name).
train_options to_train_options(const train_args& a);

struct fit_args {
  std::string file;
  std::string method = "ts";
  std::string objective = "nll";
  std::string grid;
  std::string calib_bins = "15";
  std::int64_t iterations = -1;
  std::string accuracy_constraint = "on";
  std::string cts_search = "grid";
  double odir_lambda = -1;  ///< ms_odir, dir_odir: -1 = cross-validate
  double odir_mu = -1;
  train_args train;
  std::int32_t bins = 15;
  convention_names conventions;
  std::string backend = "auto";
  std::string save;
  std::string format = "table";
};
int run_fit(const fit_args& a);

struct apply_args {
  std::string calibrator_file;  ///< a file written by `fit --save`
  std::string file;             ///< the dump to calibrate
  std::int32_t bins = 15;
  convention_names conventions;
  std::string save;
  std::string format = "table";
};
int run_apply(const apply_args& a);

/// `calibench sctl-weights` (host/cli/commands_sctl.cpp; docs/calibrators.md).
struct sctl_weights_args {
  std::string l0, l1;         ///< comma-separated class losses at the first and second loss evaluation
  std::string norm = "nd";    ///< nd | mm | cm
  std::int32_t grid = 256;    ///< candidates per axis
  std::string backend = "cpu";  ///< where the grid is evaluated: cpu | cuda | auto
  std::string at;             ///< optional "ALPHA,BETA": also evaluate the objective and weights there
  std::string format = "table";
};
int run_sctl_weights(const sctl_weights_args& a);

/// `calibench lsplus-priors` (host/cli/commands_sctl.cpp; docs/calibrators.md).
struct lsplus_priors_args {
  std::string file;
  std::string out;                  ///< per-class CSV
  std::string split = "val";
  std::string perfect = "uniform";  ///< uniform | half | keep (classes with accuracy 1)
  std::string matrix;               ///< optional K x K CSV of the prior vectors v^k
};
int run_lsplus_priors(const lsplus_priors_args& a);

struct sweep_args {
  std::string spec;
  std::string out;
  bool verbose = false;
  bool list = false;  ///< print the cells and exit
  bool plots = true;  ///< run experiments/plot_sweep.py on the output (when it and matplotlib are there)
};
/// This process's place among the processes of an MPI run (rank 0 of 1 without MPI), and how
/// their counts are combined (after a barrier) before rank 0 writes the reports.
struct sweep_ranks {
  std::int32_t rank = 0;
  std::int32_t size = 1;
  std::int32_t local_rank = -1;  ///< rank on this node under MPI, for the GPU choice
  std::function<sweep_summary(const sweep_summary&)> combine = [](const sweep_summary& s) { return s; };
};

/// Exit status 0 when every cell finished, 3 when some failed (their errors are recorded).
int run_sweep(const sweep_args& a, const sweep_ranks& ranks);

}  // namespace calibench::cli
