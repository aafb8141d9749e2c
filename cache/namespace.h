// Namespace: the directory tree that a bucket (or a prefix of it) presents, built from LIST.
//
// Paths are relative to the mount root, without leading or trailing '/': "" is the root,
// "a/b/c.txt" is the key <prefix>a/b/c.txt. A directory exists where a common prefix or a
// "dir/" marker object exists. Keys that cannot be a path (empty segments as in "a//b", "." or
// ".." segments, a segment over 255 bytes, a NUL byte) are skipped with one log line each and can
// never reach outside the mount. When both "a" and "a/..." exist, the directory wins and the
// file is reported in the log.
//
// Directory listings are cached for dir_ttl, so lookups, readdir and stat of many files cost one
// LIST per directory, not a HEAD per file. Names known to be absent are cached for negative_ttl.
// Concurrent requests for one uncached directory share one LIST; LISTs of different directories
// run in parallel. Thread-safe.
//
// The rules mapping keys to entries are in cache/namespace_listing.h.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "s3/client.h"
#include "s3/status.h"

namespace s3cachefs::cache {

namespace listing {
struct DirListing;  // cache/namespace_listing.h
}  // namespace listing

enum class NodeType { kFile, kDirectory };

struct NodeAttr {
  NodeType type = NodeType::kFile;
  uint64_t size = 0;  // 0 for directories
  time_t mtime = 0;   // Last-Modified for files; 0 for directories without a marker
  std::string etag;   // files only
  // When the LIST that produced this was answered: lets the object cache count a listing
  // that shows an unchanged ETag as a revalidation. Epoch (zero) when not from a listing.
  std::chrono::system_clock::time_point listed_at;
};

struct DirEntry {
  std::string name;  // one path segment
  NodeAttr attr;
};

struct NamespaceConfig {
  std::string prefix;  // "" or ending in '/': the part of the bucket that is mounted
  std::chrono::milliseconds dir_ttl{std::chrono::seconds(30)};
  std::chrono::milliseconds negative_ttl{std::chrono::seconds(5)};
  // Prefetch gives up (and leaves the subtree to per-directory listing) past this many keys, to
  // bound the memory of one flat listing.
  size_t prefetch_max_keys = 1000000;
};

// Logs a line for a skipped key or a file/dir conflict. Default: stderr.
using NamespaceLogger = std::function<void(const std::string& line)>;

class Namespace {
 public:
  Namespace(s3::Client& client, NamespaceConfig config, NamespaceLogger log = nullptr);
  Namespace(const Namespace&) = delete;
  Namespace& operator=(const Namespace&) = delete;

  // The S3 key of a file path (prefix + path) and the key prefix of a directory path
  // (prefix + path + "/", or prefix for the root).
  std::string FileKey(const std::string& path) const;
  std::string DirPrefix(const std::string& path) const;

  // Attributes of path ("" is the root, always a directory). ENOENT if absent (cached for
  // negative_ttl), ENOTDIR if a parent is a file, EINVAL/ENAMETOOLONG for a path that no valid
  // key can name, or the LIST's error. Answers from the parent's cached listing while it is
  // fresh; otherwise lists the parent directory (one LIST, paged) and caches it. A directory's
  // mtime is its marker's Last-Modified once a listing has shown the marker, else 0.
  Result<NodeAttr> Lookup(const std::string& path);

  // The entries of directory path, sorted by name (bytewise), without "." and "..". ENOENT if it
  // does not exist, ENOTDIR if it or a parent is a file, or the LIST's error (never cached).
  // Served from the cache while fresh. A directory its parent lists may turn out empty.
  Result<std::vector<DirEntry>> List(const std::string& path);

  // Lists directory path in the background's interest: returns at once (OK) when its listing
  // is fresh or a LIST of it is already in flight, else sends that LIST and caches the result as
  // List would. A concurrent List or Lookup waits for it rather than sending its own; if it
  // fails, they list the directory themselves, so its error reaches only this caller.
  Status Warm(const std::string& path);

  // Warms the listings of every directory under path with one flat (recursive) LIST, so that a
  // following walk (find, ls -lR) needs no further requests while they are fresh. The entries
  // are the ones List would give. Past config.prefetch_max_keys keys it stops and returns OK,
  // caching nothing (the walk then lists per directory). ENOENT/ENOTDIR as for List.
  Status Prefetch(const std::string& path);

  // Local changes made through the mount, called after S3 accepted them: update the cached
  // listings in place so the change is visible at once without waiting for the TTL (creating
  // a file, a mkdir, a delete). NoteFile adds or replaces the entry; NoteDirectory also caches
  // an empty listing for the new directory (mtime: now); NoteRemoved drops the entry and the
  // cached listings at and below path and caches path as absent. A LIST in flight meanwhile
  // gets the change replayed on its result. Invalid paths are ignored.
  void NoteFile(const std::string& path, const NodeAttr& attr);
  void NoteDirectory(const std::string& path);
  void NoteRemoved(const std::string& path);

  // Directory changes made through the mount (cache/namespace_mutate.cc). MakeDirectory puts
  // the empty "path/" marker object with metadata and notes the new directory.
  // RemoveDirectoryMarker deletes the marker (the caller checked that the directory is empty)
  // and notes the removal. ListKeysUnder lists every key below directory path (flat, all
  // pages), marker included, for renaming a directory.
  Status MakeDirectory(const std::string& path, const s3::Metadata& metadata);
  Status RemoveDirectoryMarker(const std::string& path);
  Result<std::vector<s3::ObjectInfo>> ListKeysUnder(const std::string& path);

  // Drops the cached listing of directory path (and the negative entries below it).
  void Invalidate(const std::string& path);

  // ListObjectsV2 requests sent (pages), for tests and stats.
  uint64_t list_requests() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Listing;
  struct Flight;
  struct Change;
  using ListingPtr = std::shared_ptr<const Listing>;
  static bool IsUnreachable(int code);

  // The listing of directory dir_path from the cache or one (shared) LIST. ENOENT/ENOTDIR when
  // dir_path is not a directory. background (Warm): a null listing instead of waiting when a
  // LIST of dir_path is in flight already.
  Result<ListingPtr> GetListing(const std::string& dir_path, bool background = false);
  // The LIST itself plus, when it comes back empty, the parent check that tells an empty
  // directory from a missing one. Runs without mu_.
  Result<std::shared_ptr<Listing>> FetchListing(const std::string& dir_path, bool exists_known);
  // Pages of ListObjectsV2 with the delimiter "/" turned into a listing. Runs without mu_.
  Result<std::shared_ptr<Listing>> ListDirectory(const std::string& dir_path, bool* saw_anything);
  // The flat listing under path as one listing per directory; nullopt past prefetch_max_keys.
  // Runs without mu_.
  using Tree = std::unordered_map<std::string, listing::DirListing>;
  Result<std::optional<Tree>> ListTree(const std::string& path);

  // Helpers below require mu_.
  ListingPtr FreshListingLocked(const std::string& dir_path, Clock::time_point now);
  bool FreshNegativeLocked(const std::string& path, Clock::time_point now);
  Listing* MutableListingLocked(const std::string& dir_path);
  void InstallLocked(const std::string& dir_path, std::shared_ptr<Listing> listing);
  void LearnMarkerLocked(const std::string& dir_path, bool has_marker, time_t mtime);
  void ApplyLocked(const Change& change);
  void RecordLocked(const Change& change);
  void SweepLocked(Clock::time_point now);

  // Reports a skipped key or prefix once per Namespace lifetime.
  void ReportOnce(const std::string& item, const std::string& why);

  s3::Client& client_;
  const NamespaceConfig config_;
  NamespaceLogger log_;
  std::atomic<uint64_t> list_requests_{0};

  // Lock order: mu_ before log_mu_ is never needed (logging happens outside mu_); neither is
  // held across a call to client_ or log_.
  // guards flight_done_'s waits, listings_, negative_, dir_mtime_, flights_, prefetches_,
  // changes_, sweep_at_
  mutable std::mutex mu_;
  std::condition_variable flight_done_;  // signalled under mu_ when a Flight completes
  // Cached listings by directory path. Shared with readers that copy them outside mu_; a writer
  // clones one that a reader still holds (copy-on-write), see MutableListingLocked.
  std::unordered_map<std::string, std::shared_ptr<Listing>> listings_;
  // Paths known to be absent, with their expiry.
  std::unordered_map<std::string, Clock::time_point> negative_;
  // Marker Last-Modified times learned from any listing, by directory path: a parent's listing
  // cannot see them (S3 folds "x/" into the common prefix), the child's own listing can.
  std::unordered_map<std::string, time_t> dir_mtime_;
  // LISTs in progress: per directory (single-flight), and Prefetch runs over subtrees. Changes
  // noted meanwhile are recorded in them and replayed on their result.
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;
  std::vector<std::shared_ptr<Flight>> prefetches_;
  // Note*/Invalidate calls so far: a LIST's "absent" is not cached if one came meanwhile.
  uint64_t changes_ = 0;
  uint64_t stale_served_ = 0;  // expired listings answered while S3 was out of reach
  size_t sweep_at_ = 1024;     // sweep expired entries when the caches grow past this

  std::mutex log_mu_;  // guards reported_
  std::unordered_set<std::string> reported_;
};

// True if name is usable as one path segment (non-empty, not "." or "..", <= 255 bytes, no '/'
// and no NUL).
bool IsValidSegment(const std::string& name);

}  // namespace s3cachefs::cache
