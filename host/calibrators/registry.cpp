// The method registry (host/calibrators/registry.hpp): the table built from methods.def, the
// look-ups, and the one place a fit is dispatched.
#include "host/calibrators/registry.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.hpp"

namespace calibench {

// Each family's rows, defined in its own file.
#define CALIBENCH_METHODS(family) std::vector<method_info> family();
#include "host/calibrators/methods.def"
#undef CALIBENCH_METHODS

bool method_info::takes(std::string_view key) const {
  return std::find(options.begin(), options.end(), key) != options.end();
}

const std::vector<method_info>& method_table() {
  static const std::vector<method_info> table = [] {
    std::vector<method_info> rows;
    const auto add = [&rows](std::vector<method_info> family) {
      for (auto& row : family) rows.push_back(std::move(row));
    };
#define CALIBENCH_METHODS(family) add(family());
#include "host/calibrators/methods.def"
#undef CALIBENCH_METHODS
    return rows;
  }();
  return table;
}

const method_info* find_method(std::string_view name) {
  for (const auto& row : method_table()) {
    if (row.name == name) return &row;
  }
  return nullptr;
}

const method_info& method_named(std::string_view name) {
  if (const method_info* row = find_method(name)) return *row;
  throw input_error(fmt::format("unknown method '{}' (--method takes: {})", name, fmt::join(method_names(), ", ")));
}

std::vector<std::string> method_names() {
  std::vector<std::string> names;
  for (const auto& row : method_table()) names.push_back(row.name);
  return names;
}

calibrator fit_calibrator(const split_data& val, const fit_request& request, sweep_backend* backend) {
  const method_info& row = method_named(request.method);
  const bool on_backend = row.uses_backend(request);
  CALIBENCH_EXPECTS(!on_backend || backend != nullptr, "this fit runs on a sweep backend; none was given");
  fitted f = row.fit({val, request, on_backend ? backend : nullptr});
  return calibrator(row.name, std::move(f.map), std::move(f.curve), val.num_classes);
}

void check_fit_backend(const fit_request& request) {
  const method_info& row = method_named(request.method);
  if (request.backend != backend_choice::cuda || row.uses_backend(request)) return;
  // A method that fits on the backend under other options (ts) names the option that decides.
  const std::string which =
      row.on_backend != nullptr ? fmt::format(" --objective {}", objective_name(request.objective)) : "";
  throw input_error(
      fmt::format("--backend cuda: {}{} is fitted on the host (only the grid searches of ts --objective "
                  "ece|adaece, ws, cts_conf, cts_greedy run on the sweep backend); use --backend cpu "
                  "or auto",
                  row.name, which));
}

std::string fit_site_name(const fit_request& request, const sweep_backend* backend) {
  return method_named(request.method).uses_backend(request) && backend != nullptr ? backend->name() : "host";
}

}  // namespace calibench
