// Writing a file so that readers see the old content or the new, never a part: a temporary
// file in the same folder, fsync, rename, fsync of the folder.
#pragma once

#include <string>

namespace calibench {

/// Writes `content` to `path` atomically; throws error naming the file when it cannot.
void write_file_atomic(const std::string& path, const std::string& content);

}  // namespace calibench
