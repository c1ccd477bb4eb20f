// Writing a file so that readers see the old content or the new, never a part: a temporary
// file in the same folder, fsync, rename, fsync of the folder. On any failure the temporary is
// removed and the error names the file and the system's reason (strerror: "No space left on
// device", ...).
#pragma once

#include <cstddef>
#include <string>

namespace calibench {

/// Writes `size` bytes at `data` to `path` atomically. Throws input_error when the file cannot
/// be created (a missing folder, no permission: the path given is wrong) and os_error when the
/// write, fsync or rename fails (a full disk, an I/O error); both name `path` and the reason.
void write_file_atomic(const std::string& path, const void* data, std::size_t size);

/// Writes `content` to `path` atomically (as above).
inline void write_file_atomic(const std::string& path, const std::string& content) {
  write_file_atomic(path, content.data(), content.size());
}

}  // namespace calibench
