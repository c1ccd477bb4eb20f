// Atomic file writes (host/io/atomic_file.hpp).
#include "host/io/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fmt/format.h>

#include "common/error.hpp"

namespace calibench {
namespace {

namespace fs = std::filesystem;

/// "PATH: WHAT: REASON" with the reason of errno.
std::string os_failure(const std::string& path, const char* what) {
  return fmt::format("{}: {}: {}", path, what, std::strerror(errno));
}

/// Writes all `size` bytes to `fd`, retrying short writes and EINTR; false on failure (errno set).
bool write_all(int fd, const char* data, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t w = ::write(fd, data + done, size - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = EIO;
      return false;
    }
    done += static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

void write_file_atomic(const std::string& path, const void* data, std::size_t size) {
  const fs::path target(path);
  const fs::path temp = target.parent_path() / (target.filename().string() + fmt::format(".tmp.{}", ::getpid()));
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw input_error(os_failure(path, "cannot create"));
  const auto give_up = [&](const char* what) {
    const int code = errno;
    const std::string message = os_failure(path, what);
    ::close(fd);
    ::unlink(temp.c_str());
    throw os_error(message, code);
  };
  if (!write_all(fd, static_cast<const char*>(data), size)) give_up("cannot write");
  if (::fsync(fd) != 0) give_up("cannot write (fsync)");
  if (::close(fd) != 0) {
    const int code = errno;
    const std::string message = os_failure(path, "cannot write (close)");
    ::unlink(temp.c_str());
    throw os_error(message, code);
  }
  std::error_code ec;
  fs::rename(temp, target, ec);
  if (ec) {
    ::unlink(temp.c_str());
    throw os_error(fmt::format("{}: cannot rename the finished temporary file into place: {}", path, ec.message()),
                   ec.value());
  }
  const int dir = ::open(target.parent_path().empty() ? "." : target.parent_path().c_str(), O_RDONLY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace calibench
