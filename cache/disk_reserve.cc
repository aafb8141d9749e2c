#include "cache/disk_reserve.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "s3/log.h"

namespace s3cachefs::cache {

void DiskReserve::Release() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!held_) return;
  if (unlink(path_.c_str()) != 0 && errno != ENOENT) {
    LOG_ERROR("cannot release the disk reserve %s: %s", path_.c_str(), strerror(errno));
    return;
  }
  held_ = false;
  LOG_WARN("cache disk full: released the %llu MiB reserve so that the cache index can go on",
           static_cast<unsigned long long>(bytes_ >> 20));
}

void DiskReserve::Replenish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (held_) return;
  const std::string dir = path_.substr(0, path_.rfind('/') + 1);
  struct statvfs st {};
  if (statvfs(dir.c_str(), &st) != 0) return;
  const uint64_t free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  if (free_bytes < 4 * bytes_) return;
  const int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  // fallocate: the blocks are really taken (a sparse file would free nothing when deleted).
  const int rc = posix_fallocate(fd, 0, static_cast<off_t>(bytes_));
  close(fd);
  if (rc != 0) {
    unlink(path_.c_str());
    return;
  }
  held_ = true;
}

bool DiskReserve::held() const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_;
}

}  // namespace s3cachefs::cache
