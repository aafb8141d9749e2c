// ObjectCache: object bodies faulted into a sharded local disk cache, tracked in SQLite.
//
// Layout of a cache directory (0700; files 0600):
//   <dir>/index.sqlite            the index (WAL), schema version in PRAGMA user_version
//   <dir>/objects/ab/<sha256hex>  one file per object: sha256 of "<bucket>/<key>"; ab = its
//                                 first 2 hex digits
//   <dir>/tmp/                    downloads in progress; moved into objects/ only when complete
//   <dir>/lock                    flock()ed by the one daemon using the directory
//
// A cached copy is only ever visible in objects/ as complete and correct: its size is checked
// and, for single-part objects, the MD5 in the ETag. It is served only while its ETag is still
// the object's: within `revalidate` of the last check without asking S3, after that after one
// conditional GET (304 refreshes the check time, 200 replaces the content, 404 drops it).
//
// Downloads are single-flight per key: concurrent opens of an uncached object share one
// download. Large objects are fetched as parallel ranged GETs of chunk_size; a reader waits
// only for the chunks its range needs (those are fetched first), not for the whole object.
// Chunks after the first carry If-Match: if the object changes during the download, the
// download fails with ESTALE (it is not restarted, since handles already promised the old size
// and ETag) and the next open fetches the new version.
//
// A single-part object's MD5 is checked as the chunks arrive; readers are served before the
// check can finish, but a handle that read the object from its start gets the verdict (EIO on
// a mismatch) before its last bytes. Access and validation times are noted in memory on the
// read path and written to the index in batches. Rows not CLEAN (local changes, for the
// coming write-back) are served as they are and never replaced or dropped here.
// Thread-safe. Implementation: cache/object_cache.cc, cache/download.{h,cc}, cache/index.{h,cc}.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "s3/client.h"
#include "s3/status.h"

namespace s3cachefs::cache {

struct ObjectCacheConfig {
  std::string cache_dir;
  std::string bucket;  // part of each file's hash, so two buckets can share a directory
  std::chrono::seconds revalidate{std::chrono::seconds(30)};
  uint64_t chunk_size = 8ull << 20;  // ranged GET size for large objects
  int download_threads = 8;          // ranged GETs in flight, all downloads together
  int parallel_per_object = 4;       // ranged GETs in flight for one object
  std::chrono::milliseconds read_timeout{std::chrono::seconds(120)};  // a reader's deadline
  bool verify_md5 = true;  // check single-part ETags against the bytes
  // How often access and validation times, kept in memory on the read path, are written to
  // the index (also on destruction).
  std::chrono::milliseconds flush_interval{std::chrono::seconds(5)};
  // Wall clock for validation times; tests move it forward. Default: system_clock::now.
  std::function<std::chrono::system_clock::time_point()> clock;
};

// What a recent LIST said about a key. When it was listed after the cached copy was last
// validated and shows the same ETag, the copy counts as validated at listed_at (so it is a hit
// while listed_at is within `revalidate`); with another ETag the copy is stale and is
// downloaded again without a conditional GET. Hints older than the last validation are ignored.
struct ListingHint {
  std::string etag;
  uint64_t size = 0;
  std::chrono::system_clock::time_point listed_at;
};

struct CacheCounters {
  uint64_t hits = 0;         // opens served from a valid cached copy without a request
  uint64_t revalidated = 0;  // conditional GETs answered 304
  uint64_t misses = 0;       // opens that started or joined a download
  uint64_t downloads = 0;    // downloads started
  uint64_t bytes_downloaded = 0;
  uint64_t entries = 0;       // rows in the index
  uint64_t bytes_cached = 0;  // sum of their sizes
};

// One open of one object. The fd stays valid (and the content it shows unchanged) for the
// handle's lifetime, even if the object is replaced in the cache meanwhile.
class ObjectHandle {
 public:
  virtual ~ObjectHandle() = default;
  // Read-only descriptor of the cached (or downloading) file; use pread() or splice from it.
  virtual int fd() const = 0;
  virtual uint64_t size() const = 0;
  virtual const std::string& etag() const = 0;
  virtual time_t mtime() const = 0;
  // Blocks until bytes [offset, offset + length), clamped to size(), are in the file. Fails
  // with ETIMEDOUT when the reader's deadline passes (the download goes on for others) and with
  // the download's error (EIO, ENOENT, ...) when it failed.
  virtual Status WaitReadable(uint64_t offset, uint64_t length) = 0;
};

class ObjectCache {
 public:
  // Cancels downloads in flight (their readers get ECANCELED), joins the download threads,
  // flushes the in-memory times and releases the directory lock. No OpenRead/Forget may be
  // running; handles may outlive the cache and keep their descriptors.
  virtual ~ObjectCache() = default;

  // Opens (creating if needed) the cache directory: takes its lock (EBUSY with a clear message
  // if another daemon holds it), opens or creates the index, and reconciles it with the files
  // (unfinished downloads removed, files without a row removed, rows without a file dropped).
  static Result<std::unique_ptr<ObjectCache>> Open(s3::Client& client, ObjectCacheConfig config);

  // Opens key for reading: a valid cached copy, a revalidated one, or a download that the
  // handle can read from as it arrives. ENOENT if the object does not exist (any cached copy is
  // then dropped).
  virtual Result<std::shared_ptr<ObjectHandle>> OpenRead(
      const std::string& key, const std::optional<ListingHint>& hint) = 0;

  // Drops key from the cache (its file and row); open handles keep reading their copy. A
  // download in flight goes on for its readers but is not kept. Rows with local changes are
  // left alone. OK when key is not cached.
  virtual Status Forget(const std::string& key) = 0;

  virtual CacheCounters counters() const = 0;
};

}  // namespace s3cachefs::cache
