#include "fs/descriptors.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>

#include "cache/file_util.h"

namespace s3cachefs::fs {
namespace {

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};
using UniqueDir = std::unique_ptr<DIR, DirCloser>;

struct FdInfo {
  int flags = 0;
  std::optional<uint64_t> ino;  // older kernels do not show it
};

// The value after "<field>:" in fdinfo text, or nullopt.
std::optional<uint64_t> Field(std::string_view text, std::string_view field, int base) {
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    if (line.size() > field.size() && line.substr(0, field.size()) == field &&
        line[field.size()] == ':') {
      std::string value(line.substr(field.size() + 1));
      char* stop = nullptr;
      unsigned long long v = strtoull(value.c_str(), &stop, base);
      if (stop == value.c_str()) return std::nullopt;
      return static_cast<uint64_t>(v);
    }
    at = end + 1;
  }
  return std::nullopt;
}

std::optional<FdInfo> ReadFdInfo(int fdinfo_dir, const char* name) {
  cache::UniqueFd fd(openat(fdinfo_dir, name, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  char buf[512];
  ssize_t n = read(fd.get(), buf, sizeof(buf) - 1);
  if (n <= 0) return std::nullopt;
  std::string_view text(buf, static_cast<size_t>(n));
  std::optional<uint64_t> flags = Field(text, "flags", 8);
  if (!flags) return std::nullopt;
  return FdInfo{static_cast<int>(*flags), Field(text, "ino", 10)};
}

}  // namespace

bool HoldsWriter(pid_t pid, const std::string& root, uint64_t ino, int max_fds) {
  if (pid <= 0 || root.empty() || root[0] != '/') return false;
  const std::string proc = "/proc/" + std::to_string(pid);
  UniqueDir fds(opendir((proc + "/fd").c_str()));
  if (!fds) return false;
  cache::UniqueFd fdinfo(open((proc + "/fdinfo").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fdinfo.valid()) return false;
  const std::string prefix = root == "/" ? root : root + "/";
  int seen = 0;
  char target[4096];
  while (dirent* e = readdir(fds.get())) {
    if (e->d_name[0] == '.') continue;
    if (++seen > max_fds) return false;
    ssize_t n = readlinkat(dirfd(fds.get()), e->d_name, target, sizeof(target));
    if (n <= 0 || static_cast<size_t>(n) >= sizeof(target)) continue;
    std::string_view path(target, static_cast<size_t>(n));
    if (path.size() <= prefix.size() || path.substr(0, prefix.size()) != prefix) continue;
    std::optional<FdInfo> info = ReadFdInfo(fdinfo.get(), e->d_name);
    // Without the inode number a path match is not proof enough: another file of that name.
    if (!info || !info->ino || *info->ino != ino) continue;
    if ((info->flags & O_ACCMODE) != O_RDONLY) return true;
  }
  return false;
}

}  // namespace s3cachefs::fs
