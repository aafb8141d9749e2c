// Uploader: the background write-back threads of the object cache.
//
// A queue of WriteEntries (cache/write_entry.h), each due at a time (now, or later for a retry
// with backoff). `threads` workers take the earliest due entry that is not already being run
// and call the cache's upload function with it; one entry never runs on two workers at once.
// An entry is queued at most once; queuing it again moves it earlier if that is sooner. The
// uploader knows nothing of S3 or the index: what an attempt does is the RunFn's business.
//
// Lock: mu_ guards everything below it; it is a leaf (RunFn runs without it).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "cache/write_entry.h"

namespace s3cachefs::cache {

class Uploader {
 public:
  // One attempt for entry. Returns the delay before the next attempt when it must be retried,
  // nullopt when the entry needs nothing more (uploaded, clean, removed, or given up).
  using RunFn =
      std::function<std::optional<std::chrono::milliseconds>(const std::shared_ptr<WriteEntry>&)>;

  Uploader(int threads, RunFn run);
  ~Uploader();  // Shutdown()
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  // Starts the workers. Entries queued before run as soon as they are due.
  void Start();
  // Queues entry to run after delay; see the header comment for duplicates.
  void Enqueue(const std::shared_ptr<WriteEntry>& entry, std::chrono::milliseconds delay);
  // Drops entry from the queue (an attempt already running goes on).
  void Remove(const WriteEntry* entry);
  // Entries queued or running.
  size_t pending() const;
  std::vector<std::shared_ptr<WriteEntry>> PendingEntries() const;
  // Stops the workers once their current attempt is over and joins them. Queued entries are
  // dropped (their rows stay DIRTY for the next start). Idempotent.
  void Shutdown();

 private:
  struct Item {
    std::shared_ptr<WriteEntry> entry;
    std::chrono::steady_clock::time_point due;
  };
  void Run();

  const int threads_;
  const RunFn run_;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // an item was queued or handed on, or stop
  std::map<const WriteEntry*, Item> queue_;
  std::map<const WriteEntry*, std::shared_ptr<WriteEntry>> running_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace s3cachefs::cache
