// OpenModes: see open_modes.h.
#include "fs/open_modes.h"

namespace s3cachefs::fs {

OpenMode OpenModes::Begin(Ino ino, std::optional<FileId> backing,
                          const RegisterFn& register_backing, int32_t* backing_id, bool join_only,
                          bool direct_ok) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto start = std::chrono::steady_clock::now();
  const auto upgrade_deadline = start + upgrade_wait_;
  for (;;) {
    Counts& c = inodes_[ino];  // looked up after each wait: End may have erased it
    const auto now = std::chrono::steady_clock::now();
    if (backing && c.cached == 0 && c.passthrough > 0 && c.file == *backing) {
      ++c.passthrough;
      *backing_id = c.backing_id;
      return OpenMode::kPassthrough;
    }
    if (backing && !join_only && c.passthrough == 0) {
      // A direct open may have been mmapped, which puts the kernel's inode in page-cache mode.
      if (c.cached == 0 && c.direct == 0) {
        if (const int32_t id = register_backing(); id > 0) {
          c.passthrough = 1;
          c.backing_id = id;
          c.file = *backing;
          *backing_id = id;
          return OpenMode::kPassthrough;
        }
      } else if (now < upgrade_deadline) {
        released_.wait_until(lock, upgrade_deadline);  // they may be on their way out
        continue;
      }
    }
    if (direct_ok && !backing && c.passthrough == 0) {
      ++c.direct;
      return OpenMode::kDirect;
    }
    if (c.passthrough == 0) {
      ++c.cached;
      return OpenMode::kCached;
    }
    return OpenMode::kConflict;
  }
}

bool OpenModes::HasPassthrough(Ino ino) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = inodes_.find(ino);
  return it != inodes_.end() && it->second.passthrough > 0;
}

void OpenModes::End(Ino ino, OpenMode mode, const UnregisterFn& unregister) {
  if (mode == OpenMode::kConflict) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  Counts& c = it->second;
  if (mode == OpenMode::kCached && c.cached > 0) --c.cached;
  if (mode == OpenMode::kDirect && c.direct > 0) --c.direct;
  if (mode == OpenMode::kPassthrough && c.passthrough > 0 && --c.passthrough == 0) {
    unregister(c.backing_id);
    c.backing_id = 0;
  }
  if (c.cached == 0 && c.passthrough == 0 && c.direct == 0) inodes_.erase(it);
  released_.notify_all();
}

}  // namespace s3cachefs::fs
