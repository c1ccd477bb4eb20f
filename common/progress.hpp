// Progress with an ETA on stderr for the long operations (fit cycles, iterations and folds,
// seg-eval groups, sweep-candidates, sweep cells). The front ends choose the mode once
// (`progress_settings()`): off (the default: the library prints nothing unless asked), a live
// line rewritten in place (a terminal), or whole lines at most every `interval` seconds (a log
// file, `--progress`). Tasks nest: a `progress` object opened while another is open shows as
// "outer > inner" on the same line. Each thread has its own stack (two Python threads fitting
// at once report apart); only the calling thread of a computation reports (the outer loops of
// the fits are sequential; their parallel regions do not touch this). Nothing
// goes to stdout, so `--format json` stays clean. docs/architecture.md, "Progress".
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace calibench {

enum class progress_mode { off, live, lines };

struct progress_config {
  progress_mode mode = progress_mode::off;
  double interval = 5.0;  ///< lines mode: seconds between lines (CALIBENCH_PROGRESS_INTERVAL overrides)
  std::FILE* out = stderr;
  /// When set, each line goes here instead of `out` (the Python module's callback); it is
  /// called on the computation's calling thread and must not throw.
  std::function<void(const std::string&)> sink;
};

/// The process-wide settings (set by the CLI from --progress / --quiet / isatty(2)).
inline progress_config& progress_settings() {
  static progress_config config;
  return config;
}

class progress {
 public:
  /// A task of `total` steps named `what` (e.g. "cts_greedy cycle 1"), counted in `unit`
  /// ("classes"). `bounded`: `total` is an upper bound (an iteration limit the fit may stop
  /// before), so the ETA is an upper bound too and says so.
  progress(std::string what, std::int64_t total, std::string unit, bool bounded = false)
      : what_(std::move(what)),
        unit_(std::move(unit)),
        total_(std::max<std::int64_t>(total, 0)),
        bounded_(bounded),
        start_(clock::now()) {
    if (progress_settings().mode == progress_mode::off) return;
    state().stack.push_back(this);
    active_ = true;
  }
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;

  ~progress() {
    if (!active_) return;
    auto& st = state();
    const bool outermost = st.stack.size() == 1;
    if (outermost && st.printed && progress_settings().mode == progress_mode::lines)
      print_locked(true);  // the closing line of a task that reported
    if (outermost && st.printed && progress_settings().mode == progress_mode::live && !progress_settings().sink)
      std::fputs("\n", progress_settings().out);
    st.stack.erase(std::remove(st.stack.begin(), st.stack.end(), this), st.stack.end());
    if (outermost) st.printed = false;
  }

  /// `n` more steps done; prints when the mode's interval has passed.
  void step(std::int64_t n = 1) { set(done_ + n); }

  /// `n` steps found done already (a resumed sweep's cells): counted, but not in the rate the
  /// ETA extrapolates.
  void skip(std::int64_t n = 1) {
    skipped_ += n;
    set(done_ + n);
  }

  /// `done` steps done so far.
  void set(std::int64_t done) {
    done_ = std::min(done, total_);
    if (!active_) return;
    const auto now = clock::now();
    auto& st = state();
    const double wait = progress_settings().mode == progress_mode::live ? 0.2 : interval();
    if (st.printed && seconds(st.last, now) < wait) return;
    if (!st.printed && seconds(st.stack.front()->start_, now) < std::min(wait, 1.0)) return;
    st.last = now;
    print_locked(false);
  }

  /// A short status shown after the count ("ECE 2.31 %").
  void detail(std::string text) { detail_ = std::move(text); }

 private:
  using clock = std::chrono::steady_clock;
  struct shared_state {
    std::vector<progress*> stack;
    clock::time_point last{};
    bool printed = false;
    std::size_t width = 0;  ///< of the last live line, to blank its tail
  };
  static shared_state& state() {
    thread_local shared_state s;
    return s;
  }
  static double seconds(clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }
  static double interval() {
    static const double from_env = [] {
      const char* text = std::getenv("CALIBENCH_PROGRESS_INTERVAL");
      char* end = nullptr;
      const double v = text != nullptr ? std::strtod(text, &end) : -1.0;
      return text != nullptr && end != text && std::isfinite(v) && v >= 0 ? v : -1.0;
    }();
    return from_env >= 0 ? from_env : progress_settings().interval;
  }

  std::string text(clock::time_point now, bool finished) const {
    const double elapsed = seconds(start_, now);
    std::string t = what_ + ": " + std::to_string(done_) + "/" + std::to_string(total_) + " " + unit_;
    if (!detail_.empty()) t += ", " + detail_;
    char buf[96];
    if (finished) {
      std::snprintf(buf, sizeof buf, ", done in %.1f s", elapsed);
    } else if (done_ > skipped_ && total_ > done_) {
      const double eta = elapsed * static_cast<double>(total_ - done_) / static_cast<double>(done_ - skipped_);
      std::snprintf(buf, sizeof buf, ", %.1f s, ETA %s%.0f s", elapsed, bounded_ ? "at most " : "", eta);
    } else {
      std::snprintf(buf, sizeof buf, ", %.1f s", elapsed);
    }
    return t + buf;
  }

  void print_locked(bool finished) {
    auto& st = state();
    const auto now = clock::now();
    std::string line;
    for (const progress* p : st.stack) {
      if (!line.empty()) line += " > ";
      line += p->text(now, finished && p == this);
      if (finished && p == this) break;
    }
    std::FILE* out = progress_settings().out;
    if (progress_settings().sink) {
      progress_settings().sink(line);
      st.printed = true;
      return;
    }
    if (progress_settings().mode == progress_mode::live) {
      const std::size_t width = line.size();
      line.append(st.width > width ? st.width - width : 0, ' ');
      st.width = width;
      std::fprintf(out, "\r%s", line.c_str());
    } else {
      std::fprintf(out, "progress: %s\n", line.c_str());
    }
    std::fflush(out);
    st.printed = true;
  }

  std::string what_, unit_, detail_;
  std::int64_t total_, done_ = 0, skipped_ = 0;
  bool bounded_, active_ = false;
  clock::time_point start_;
};

}  // namespace calibench
