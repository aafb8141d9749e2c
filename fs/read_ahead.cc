#include "fs/read_ahead.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "cache/file_util.h"

namespace s3cachefs::fs {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const std::string digits = field.substr(i + 1, 3);
      if (digits.size() == 3 && digits.find_first_not_of("01234567") == std::string::npos) {
        out += static_cast<char>(std::stoi(digits, nullptr, 8));
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

}  // namespace

std::optional<std::string> MountDevice(const std::string& mountinfo,
                                       const std::string& mountpoint) {
  std::optional<std::string> device;
  std::istringstream lines(mountinfo);
  std::string line;
  while (std::getline(lines, line)) {
    // "36 35 0:38 / /mnt/point rw,... - fuse.s3cachefs bucket rw,..."
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    if (!(fields >> id >> parent >> dev >> root >> point)) continue;
    if (Unescape(point) == mountpoint) device = dev;
  }
  return device;
}

Status SetReadAhead(const std::string& mountpoint, uint64_t bytes) {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream text;
  text << in.rdbuf();
  std::optional<std::string> dev = MountDevice(text.str(), mountpoint);
  if (!dev) return Status::Error(ENOENT, "no mount on " + mountpoint + " in /proc/self/mountinfo");
  const std::string path = "/sys/class/bdi/" + *dev + "/read_ahead_kb";
  cache::UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return cache::ErrnoStatus(errno, "cannot open", path);
  const std::string value = std::to_string(bytes / 1024) + "\n";
  if (write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return cache::ErrnoStatus(errno, "cannot write", path);
  }
  return Status::Ok();
}

}  // namespace s3cachefs::fs
