// `calibench info` (the splits, shapes, accuracy and mean confidence of a dump, and the CUDA
// devices) and `calibench version`.
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "host/cli/commands.hpp"
#include "host/cli/options.hpp"
#include "host/metrics/report.hpp"
#include "host/sweep/device.hpp"

namespace calibench::cli {
namespace {

nlohmann::json info_json(const std::string& file, const dump_layout& layout, const device_report& dev) {
  nlohmann::json j;
  j["file"] = file;
  j["attributes"] = layout.attributes;
  j["splits"] = nlohmann::json::array();
  for (const auto& shape : layout.splits) {
    split_data split = read_split(file, shape.name);
    const std::string scores = scores_text(split);
    const scored_split s = score_split(std::move(split));
    const metric_set m = compute_metrics(s, {});
    double mean_conf = 0;
    for (double c : s.confidence) mean_conf += c;
    mean_conf /= static_cast<double>(s.num_samples);
    j["splits"].push_back({{"name", shape.name},
                           {"n", shape.num_samples},
                           {"k", shape.num_classes},
                           {"scores", scores},
                           {"labels", shape.label_type},
                           {"other_datasets", shape.extra_datasets},
                           {"accuracy", json_number(m.accuracy)},
                           {"mean_confidence", json_number(mean_conf)},
                           {"ece", json_number(m.ece)}});
  }
  j["cuda"] = {{"built", dev.cuda_built}, {"devices", dev.device_count}, {"device", dev.name}, {"reason", dev.reason}};
  return j;
}

std::string info_table(const std::string& file, const dump_layout& layout, const device_report& dev,
                       const nlohmann::json& j) {
  std::string out = fmt::format("{}\n", file);
  for (const auto& [name, value] : layout.attributes) out += fmt::format("  {} = {}\n", name, value);
  out += fmt::format("\n{:<8}{:>9}{:>7}  {:<22}{:<8}{:>12}{:>19}{:>10}\n", "split", "N", "K", "scores", "labels",
                     "accuracy %", "mean confidence %", "ECE15 %");
  for (const auto& s : j["splits"]) {
    out += fmt::format("{:<8}{:>9}{:>7}  {:<22}{:<8}{:>12.2f}{:>19.2f}{:>10.2f}\n", s["name"].get<std::string>(),
                       s["n"].get<std::int64_t>(), s["k"].get<std::int64_t>(), s["scores"].get<std::string>(),
                       s["labels"].get<std::string>(), 100.0 * s["accuracy"].get<double>(),
                       100.0 * s["mean_confidence"].get<double>(), 100.0 * s["ece"].get<double>());
    if (!s["other_datasets"].empty())
      out += fmt::format("        also: {}\n", fmt::join(s["other_datasets"].get<std::vector<std::string>>(), ", "));
  }
  out += fmt::format("\nCUDA backend: {}", dev.cuda_built ? "built" : "not built");
  out += dev.device_count > 0 ? fmt::format(", {} device(s), first: {}\n", dev.device_count, dev.name)
                              : fmt::format(", no device ({})\n", dev.reason);
  return out;
}

int run_info(const std::string& file, const std::string& format) {
  const dump_layout layout = inspect_dump(file);
  const device_report dev = discover_devices();
  const nlohmann::json j = info_json(file, layout, dev);
  std::cout << (format == "json" ? j.dump(2) + "\n" : info_table(file, layout, dev, j));
  return 0;
}

int run_version() {
  const device_report dev = discover_devices();
#if defined(CALIBENCH_HAVE_MPI)
  constexpr const char* mpi = "built";
#else
  constexpr const char* mpi = "not built";
#endif
  std::cout << fmt::format("calibench {}\nCUDA backend: {}\nMPI sharding: {}\n", CALIBENCH_VERSION,
                           dev.cuda_built ? "built" : "not built", mpi);
  if (dev.device_count > 0) {
    std::cout << fmt::format("devices: {} (first: {})\n", dev.device_count, dev.name);
  } else {
    std::cout << fmt::format("devices: none ({})\n", dev.reason);
  }
  return 0;
}

struct info_args {
  std::string file;
  std::string format = "table";
};

}  // namespace

command_runner setup_info(CLI::App& cmd) {
  auto a = std::make_shared<info_args>();
  cmd.add_option("file", a->file, "HDF5 logit dump")->required();
  cmd.add_option("--format", a->format, "table | json")->check(CLI::IsMember({"table", "json"}));
  return [a] { return run_info(a->file, a->format); };
}

command_runner setup_version(CLI::App&) { return run_version; }

}  // namespace calibench::cli
