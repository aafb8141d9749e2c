// Evictor: keeps a cache directory within its budget (total bytes, free space on its disk, age
// of unused entries) by dropping CLEAN entries, least recently accessed first.
//
// It never drops a row that is not CLEAN (local changes S3 does not have yet) nor an entry its
// owner reports as pinned (a handle open on it, open for writing, or read since the access
// times were last written to the index). Before it orders entries by access time it has the
// owner flush the times kept in memory, so the order is current. Dropping an entry deletes its
// row and unlinks its file; descriptors already open on the file keep working.
//
// Passes run on a background thread (every interval, at once when Signal()ed), synchronously
// for a download about to enter the cache (MakeRoom), and on demand (RunPass at start-up,
// EvictTo for `s3cachefs cache evict`).
//
// Locks: pass_mu_ serializes passes and is held across the index calls, the unlinks and the
// owner's hooks, which therefore must not call back into the Evictor; it is taken before any
// lock of the owner and before the Index mutex. mu_ is a leaf: thread state and counters.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "cache/index.h"
#include "s3/status.h"

namespace s3cachefs::cache {

// What the cache may hold. All limits are optional; with none set the evictor never runs.
struct CacheBudget {
  uint64_t max_bytes = 0;         // sum of the entries' sizes; 0 = no limit
  unsigned min_free_percent = 0;  // of the cache's file system to keep free; 0 = no floor
  std::optional<std::chrono::seconds> max_age;  // drop entries not read for this long

  bool enabled() const { return max_bytes > 0 || min_free_percent > 0 || max_age.has_value(); }
};

struct DiskSpace {
  uint64_t total = 0;      // bytes of the file system
  uint64_t available = 0;  // bytes available to unprivileged users
};

// statvfs() of path.
Result<DiskSpace> StatDiskSpace(const std::string& path);

// Start-up, after reconciliation: sets the recorded size of every row that is not CLEAN to the
// size of its file, which holds the only copy of the data (and the budget counts recorded
// sizes). CLEAN rows whose file has another size were already dropped by reconciliation.
// Returns how many rows were fixed.
Result<uint64_t> FixLocalSizes(Index& index, const std::string& cache_dir);

// "512 B", "4.0 KiB", "48.0 MiB", ...: sizes in log lines and command output.
std::string FormatBytes(uint64_t bytes);

// What the evictor needs from its owner. Each is called with pass_mu_ held and must not call
// into the Evictor.
struct EvictorHooks {
  // True while the entry must stay although it is CLEAN (open, just read). Default: nothing is
  // pinned.
  std::function<bool(const std::string& bucket, const std::string& key)> is_pinned;
  // Asked again under the Index mutex right before the row is deleted, for pins that must not
  // race with the delete (a key being opened for writing takes over the file). May take only
  // locks that come after the Index mutex. Default: none.
  std::function<bool(const std::string& bucket, const std::string& key)> keep_locked;
  // Writes access times kept in memory to the index. Default: none are kept.
  std::function<void()> flush_times;
  // Space on the cache's file system. Default: StatDiskSpace(cache_dir).
  std::function<Result<DiskSpace>()> disk_space;
  // The clock access times were taken with (max_age). Default: system_clock::now.
  std::function<std::chrono::system_clock::time_point()> clock;
};

struct EvictionStats {
  uint64_t entries = 0;       // entries dropped
  uint64_t bytes = 0;         // their sizes
  uint64_t expired = 0;       // of those, dropped for max_age
  uint64_t pinned = 0;        // candidates kept because they were pinned
  bool within_budget = true;  // the budget holds after the pass
};

// Cumulative, since the Evictor was made.
struct EvictorCounters {
  uint64_t evictions = 0;
  uint64_t evicted_bytes = 0;
  uint64_t not_kept = 0;  // MakeRoom refusals: downloads served without being cached
};

class Evictor {
 public:
  // index must outlive the Evictor. Files are <cache_dir>/objects/<ab>/<file_name>.
  Evictor(Index* index, const std::string& cache_dir, CacheBudget budget, EvictorHooks hooks);
  ~Evictor();  // Stop()
  Evictor(const Evictor&) = delete;
  Evictor& operator=(const Evictor&) = delete;

  const CacheBudget& budget() const { return budget_; }

  // Drops expired entries, then the least recently used until the budget holds. Fails only on
  // index errors; an unmet budget (everything left is pinned or dirty) is within_budget=false.
  Result<EvictionStats> RunPass();

  // Drops the least recently used entries until their total is at most max_bytes, whatever
  // the budget says (`s3cachefs cache evict --size`).
  Result<EvictionStats> EvictTo(uint64_t max_bytes);

  // Called before size bytes of key are written into the cache: evicts until the budget holds
  // with them. True when they fit. False when they cannot (the object alone is over the
  // budget, or all else is pinned or dirty): the caller serves the object without keeping it,
  // and a log line says why (at most one every few seconds; the others are counted in it).
  // When true, the size bytes count against the budget as in flight until Release(size), so
  // that concurrent downloads (and prefetches) cannot overshoot it together.
  bool MakeRoom(const std::string& key, uint64_t size);
  // The download that MakeRoom admitted with size bytes is in the index now, or was dropped.
  void Release(uint64_t size) { in_flight_.fetch_sub(size); }

  // Starts the background thread: a pass every interval, or soon after Signal().
  void Start(std::chrono::milliseconds interval);
  void Signal();
  // Stops and joins the background thread. Idempotent.
  void Stop();

  EvictorCounters counters() const;

 private:
  // Why the budget does not hold with incoming more bytes, as "cache full (cache_size 50.0
  // MiB)"; "" when it holds. limit
  // overrides budget_.max_bytes when nonzero.
  std::string OverBudget(uint64_t incoming, uint64_t limit);
  // One pass; pass_mu_ held. expire: also drop entries older than max_age.
  Result<EvictionStats> EvictLocked(uint64_t incoming, uint64_t limit, bool expire);
  void Loop(std::chrono::milliseconds interval);

  Index* const index_;
  const std::string objects_dir_;
  std::atomic<uint64_t> in_flight_{0};  // bytes admitted by MakeRoom and not yet released
  const CacheBudget budget_;
  EvictorHooks hooks_;

  std::mutex pass_mu_;  // held for a whole pass; see the header comment for the order
  std::atomic<bool> disk_space_warned_{false};

  mutable std::mutex mu_;  // guards the fields below; a leaf
  std::condition_variable cv_;
  bool stop_ = false;
  bool signalled_ = false;
  EvictorCounters counters_;
  std::chrono::steady_clock::time_point last_full_log_;
  uint64_t unlogged_not_kept_ = 0;
  std::thread thread_;
};

}  // namespace s3cachefs::cache
