// DirPrefetcher: lists in the background the directories a tree walk (find, ls -R, du, rsync) is
// about to enter, so that the LIST of the next directory is under way while the walk is still
// busy with the current one and S3 never waits for the walk, nor the walk for a round trip.
//
// A walk reads a directory, then enters its subdirectories one after another in the order the
// listing gave them. Entering one of them (Entering) queues the next `lookahead` siblings, which
// a few worker threads list through Namespace::Warm: one LIST each, none for a listing that is
// fresh or already being fetched; the walk joins a LIST in flight rather than sending its own.
// So S3 sees each directory once, as without prefetching, and reading a directory without
// entering any subdirectory (`ls`) costs nothing extra; entering one costs at most `lookahead`
// LISTs beyond where the walk has got.
//
// Not a flat (recursive) LIST of the subtree (Namespace::Prefetch): s3rver spends as much CPU or
// more on its 10 pages as on the 100 per-directory LISTs they replace (each page walks and sorts
// the rest of the subtree again; bench/README.md), its pages can only be fetched one after
// another, and the walk would wait for a whole page, not for the one directory it needs.
//
// Errors of a background LIST are logged and never returned to anyone. Thread-safe. The
// destructor waits for the LISTs in flight (bounded by the client's timeouts) and joins the
// workers.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cache/namespace.h"

namespace s3cachefs::cache {

struct DirPrefetchConfig {
  // Sibling directories listed ahead of the walk; 0 turns prefetching off (no threads).
  size_t lookahead = 16;
  // Worker threads, i.e. background LISTs at once (at most lookahead); 0: lookahead, so that
  // all of it is in flight at once. A LIST is a round trip: against a distant endpoint the
  // walk goes as fast as the LISTs in flight (through a proxy with 20 ms round trips, `find`
  // over 50 directories: 490 ms with 4, 360 with 8, 325 with 16).
  size_t threads = 0;
};

class DirPrefetcher {
 public:
  DirPrefetcher(Namespace& names, DirPrefetchConfig config);
  ~DirPrefetcher();
  DirPrefetcher(const DirPrefetcher&) = delete;
  DirPrefetcher& operator=(const DirPrefetcher&) = delete;

  // Directory path was read and holds entries (sorted by name, as Namespace::List returns them):
  // remembers its subdirectories, in order, for when the walk enters one of them.
  void Read(const std::string& path, const std::vector<DirEntry>& entries);

  // The walk is about to read directory path (call it before listing path): queues the
  // lookahead subdirectories that follow path in its parent's last Read, nearest first, ahead of
  // anything queued before. Does nothing when the parent was not read (recently). Never blocks
  // on S3.
  void Entering(const std::string& path);

  // Waits until nothing is queued or being listed (tests).
  void WaitIdle();

  // Directories warmed (a LIST sent, or none needed) and background LISTs failed, so far.
  uint64_t warmed() const;
  uint64_t failed() const;

 private:
  void Work();
  // Forgets the least recently used parents past the bound. Requires mu_.
  void TrimParentsLocked();

  Namespace& names_;
  const DirPrefetchConfig config_;

  // guards everything below but the workers themselves
  mutable std::mutex mu_;
  std::condition_variable work_;  // queue_ gained an item, or stop_
  std::condition_variable idle_;  // an item was finished
  bool stop_ = false;
  std::deque<std::string> queue_;           // directories to warm, the most urgent first
  std::unordered_set<std::string> active_;  // directories being warmed (not in queue_)
  uint64_t warmed_ = 0;
  uint64_t failed_ = 0;
  // Subdirectory names of recently read directories, by path, with their recency (front = most
  // recent). A walk needs only the directories on its current path, so a few suffice.
  struct Parent {
    std::vector<std::string> subdirs;  // sorted
    std::list<std::string>::iterator lru;
  };
  std::unordered_map<std::string, Parent> parents_;
  std::list<std::string> lru_;

  std::vector<std::thread> workers_;  // started last, joined first
};

}  // namespace s3cachefs::cache
