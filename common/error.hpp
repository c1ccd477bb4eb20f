// Error types of calibench. Library code throws; only the CLI turns errors into exit codes
// (2 for usage and input errors, 1 for runtime errors). Messages are one line.
#pragma once

#include <stdexcept>
#include <string>

namespace calibench {

/// Any calibench failure.
struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Bad input from the user: a malformed file, a value out of range, an impossible option.
struct input_error : error {
  using error::error;
};

/// A failed system call on a file (a full disk, an I/O error): the message names the file and
/// the reason; `code` is the errno (Python raises OSError with it).
struct os_error : error {
  os_error(const std::string& what, int errno_code) : error(what), code(errno_code) {}
  int code;
};

/// A CUDA runtime or launch failure.
struct cuda_error : error {
  using error::error;
};

namespace detail {
[[noreturn]] inline void throw_expects(const char* condition, const char* file, int line, const std::string& what) {
  throw error(what + " (precondition " + condition + " failed at " + file + ":" + std::to_string(line) + ")");
}
}  // namespace detail

}  // namespace calibench

/// Precondition check for library code: throws calibench::error (never aborts).
#define CALIBENCH_EXPECTS(cond, what)                                                   \
  do {                                                                                  \
    if (!(cond)) ::calibench::detail::throw_expects(#cond, __FILE__, __LINE__, (what)); \
  } while (0)
