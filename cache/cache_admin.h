// CacheAdmin: work on a cache directory without a mount, behind `s3cachefs cache
// stats|evict|verify`: what it holds, evicting it down to a size, and checking every file
// against its entry. No FUSE, no S3: the tests run it on a directory an ObjectCache filled.
//
// Reading (Stats, Verify without repair) works beside a running daemon: the index is SQLite in
// WAL mode, and an entry that changes while it is checked is not reported. Changing (Evict,
// Verify with repair) takes the directory lock, so it refuses while a daemon uses the directory
// and no daemon can start until it is done.
// Not thread-safe: one command at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache/evictor.h"
#include "cache/index.h"
#include "s3/status.h"

namespace s3cachefs::cache {

struct CacheStats {
  Index::Summary summary;         // entries, bytes, entries with local changes, access times
  Index::Counters counters;       // cumulative, as persisted by daemons
  std::optional<DiskSpace> disk;  // of the cache's file system, when statvfs works
  std::optional<std::string> daemon_pid;  // set while a daemon holds the directory
};

struct BadEntry {
  IndexEntry entry;
  std::string problem;   // e.g. "file has 3 bytes, expected 5"
  bool dropped = false;  // repaired: the entry (CLEAN only) and its file were removed
};

struct VerifyReport {
  uint64_t checked = 0;      // entries looked at
  uint64_t md5_checked = 0;  // of them, read in full and hashed
  std::vector<BadEntry> bad;
};

class CacheAdmin {
 public:
  // Opens the index of cache directory dir. ENOENT "cache directory X does not exist",
  // ENOTDIR "X is not a directory", EINVAL "X is not an s3cachefs cache directory" (no index),
  // or the index's own errors (not a database, newer schema).
  static Result<std::unique_ptr<CacheAdmin>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }

  Result<CacheStats> Stats();

  // Takes the directory lock (EBUSY naming the daemon's pid when one runs), then drops CLEAN
  // entries, least recently read first, until their total is at most max_bytes. Entries with
  // local changes stay: within_budget says whether max_bytes was reached.
  Result<EvictionStats> Evict(uint64_t max_bytes);

  // Checks every entry: its file exists and, for CLEAN entries, has the recorded size and, for
  // single-part ETags (32 hex digits), that MD5 (reads the whole file). Entries with local
  // changes are only checked for their file (their size is fixed at the next mount). With
  // repair it takes the directory lock and drops the bad CLEAN entries with their files.
  Result<VerifyReport> Verify(bool repair);

 private:
  CacheAdmin(std::string dir, std::unique_ptr<Index> index)
      : dir_(std::move(dir)), index_(std::move(index)) {}
  // The problem with entry's file ("" when there is none); md5_checked counts full reads.
  std::string Check(const IndexEntry& entry, uint64_t* md5_checked);
  std::string ObjectPath(const IndexEntry& e) const {
    return dir_ + "/objects/" + e.file_name.substr(0, 2) + "/" + e.file_name;
  }

  const std::string dir_;
  std::unique_ptr<Index> index_;
};

// The pid written in dir's lock file while a daemon (or a changing command) holds it;
// nullopt when nobody holds it. Does not take the lock, or change the file.
std::optional<std::string> CacheDirectoryHolder(const std::string& dir);

}  // namespace s3cachefs::cache
