// Atomic file writes (host/io/atomic_file.hpp).
#include "host/io/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>

#include "common/error.hpp"

namespace calibench {

void write_file_atomic(const std::string& path, const std::string& content) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path temp = target.parent_path() / (target.filename().string() + fmt::format(".tmp.{}", ::getpid()));
  {
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) throw error(fmt::format("{}: cannot create", temp.string()));
    std::size_t done = 0;
    while (done < content.size()) {
      const ssize_t w = ::write(fd, content.data() + done, content.size() - done);
      if (w <= 0) {
        ::close(fd);
        throw error(fmt::format("{}: write failed", temp.string()));
      }
      done += static_cast<std::size_t>(w);
    }
    ::fsync(fd);
    ::close(fd);
  }
  fs::rename(temp, target);
  const int dir = ::open(target.parent_path().empty() ? "." : target.parent_path().c_str(), O_RDONLY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace calibench
