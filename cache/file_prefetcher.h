// FilePrefetcher: fetches in the background the files a directory scan is about to open, so
// that `cat dir/*`, `cp -r`, `tar`, `grep -r` or `rsync` do not wait for one GET after another.
//
// Tools that read a directory's files open them in listing order (the glob, readdir order and
// our listings are all sorted by name). When a file is opened right after its predecessor in
// its directory's listing, the next `lookahead` files of at most max_size bytes are handed to
// ObjectCache::Prefetch (cached or in-flight ones cost nothing). A prefetch holds its worker
// for one round trip (until the first answer is in), so there are lookahead + 1 workers: the
// whole lookahead in flight at once, and one to plan the next open's. Against a distant
// endpoint only requests in flight add up (through a proxy with 20 ms round trips, 1,000 files
// of 64 KiB: 63 files/s with 2 workers, 129 with 5, 306 with 17). A file opened out of order
// starts no prefetch, so random access to a directory costs nothing extra.
//
// Opened() never blocks on S3: the listing lookup and the prefetches run on the workers (the
// listing normally comes from the cache: the open has just looked the file up).
// Errors of a prefetch are logged at debug level: the open that follows reports its own.
// Thread-safe. The destructor waits for the prefetches in flight and joins the workers.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache/namespace.h"
#include "cache/object_cache.h"

namespace s3cachefs::cache {

struct FilePrefetchConfig {
  size_t lookahead = 16;           // files fetched ahead of a scan; 0 turns prefetching off
  uint64_t max_size = 8ull << 20;  // larger files are left to their open
};

class FilePrefetcher {
 public:
  FilePrefetcher(Namespace& names, ObjectCache& objects, FilePrefetchConfig config);
  ~FilePrefetcher();
  FilePrefetcher(const FilePrefetcher&) = delete;
  FilePrefetcher& operator=(const FilePrefetcher&) = delete;

  // File path was opened for reading.
  void Opened(const std::string& path);

  // Waits until nothing is queued or being prefetched (tests).
  void WaitIdle();
  // Prefetches asked of the object cache so far.
  uint64_t requested() const;

 private:
  struct DirScan {
    std::string last;   // name of the last file opened
    std::string ahead;  // last name queued for prefetching ("" = none)
  };
  void Work();
  // Decides what an open of path queues; runs on a worker without mu_.
  std::vector<std::string> Plan(const std::string& path);

  Namespace& names_;
  ObjectCache& objects_;
  const FilePrefetchConfig config_;

  mutable std::mutex mu_;         // guards everything below but the workers themselves
  std::condition_variable work_;  // an event or a key was queued, or stop_
  std::condition_variable idle_;  // a task was finished
  bool stop_ = false;
  std::deque<std::string> opened_;  // paths opened, oldest first
  std::deque<std::string> keys_;    // keys to prefetch, in order
  size_t busy_ = 0;                 // workers running a task
  uint64_t requested_ = 0;
  std::unordered_map<std::string, DirScan> scans_;  // by directory path; bounded
  bool planning_ = false;  // one worker plans at a time, so events are seen in order

  std::vector<std::thread> workers_;  // started last, joined first
};

}  // namespace s3cachefs::cache
