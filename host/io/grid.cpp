// Grid parsing for candidate options (--grid start:stop:step).
#include "host/io/grid.hpp"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "common/error.hpp"

namespace calibench {
namespace {

double parse_number(const std::string& text, const std::string& option) {
  double v = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(first, last, v);
  if (ec != std::errc() || ptr != last || !std::isfinite(v))
    throw input_error(fmt::format("{}: '{}' is not a finite number", option, text));
  return v;
}

/// Largest grid we accept in one option (the sweep chunks internally; this bounds typos).
constexpr long long k_max_points = 10'000'000;

}  // namespace

arithmetic_grid parse_arithmetic_grid(const std::string& text, const std::string& option) {
  const auto a = text.find(':');
  const auto b = a == std::string::npos ? a : text.find(':', a + 1);
  if (a == std::string::npos || b == std::string::npos || text.find(':', b + 1) != std::string::npos)
    throw input_error(fmt::format("{}: '{}' is not start:stop:step", option, text));
  arithmetic_grid g;
  g.start = parse_number(text.substr(0, a), option);
  const double stop = parse_number(text.substr(a + 1, b - a - 1), option);
  g.step = parse_number(text.substr(b + 1), option);
  if (!(g.step > 0)) throw input_error(fmt::format("{}: step must be > 0 in '{}'", option, text));
  if (stop < g.start) throw input_error(fmt::format("{}: stop < start in '{}'", option, text));
  const double points = std::floor((stop - g.start) / g.step + 1e-9) + 1;
  if (points > static_cast<double>(k_max_points))
    throw input_error(fmt::format("{}: '{}' has {} points, more than {}", option, text, points, k_max_points));
  g.count = static_cast<long long>(points);
  return g;
}

std::vector<double> parse_grid(const std::string& text, const std::string& option) {
  std::vector<double> out;
  if (text.find(':') != std::string::npos) {
    const auto g = parse_arithmetic_grid(text, option);
    out.reserve(static_cast<std::size_t>(g.count));
    for (long long i = 0; i < g.count; ++i) out.push_back(g.start + static_cast<double>(i) * g.step);
    return out;
  }
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const auto comma = text.find(',', pos);
    const auto end = comma == std::string::npos ? text.size() : comma;
    out.push_back(parse_number(text.substr(pos, end - pos), option));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

}  // namespace calibench
