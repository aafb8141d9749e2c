// DiskReserve: a few MiB of the cache disk set aside in a file, given back when the disk is
// full so that the index can still commit what frees space again (dropping an entry, recording
// an upload) instead of failing with the disk. Taken again once space is back.
// Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

namespace s3cachefs::cache {

class DiskReserve {
 public:
  DiskReserve(std::string path, uint64_t bytes) : path_(std::move(path)), bytes_(bytes) {}
  DiskReserve(const DiskReserve&) = delete;
  DiskReserve& operator=(const DiskReserve&) = delete;

  // Gives the reserved space back (the disk is full). Logs once per release.
  void Release();
  // Takes the space again if it is missing and at least four times as much is free.
  void Replenish();
  bool held() const;

 private:
  const std::string path_;
  const uint64_t bytes_;
  mutable std::mutex mu_;  // serializes Release/Replenish; guards held_
  bool held_ = false;
};

}  // namespace s3cachefs::cache
