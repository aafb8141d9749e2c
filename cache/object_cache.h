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
// download. Objects are fetched as parallel ranged GETs of up to chunk_size; a reader waits
// only for the blocks its range needs (those are fetched first), not for the whole object.
// Small objects are fetched whole; large ones as they are read (with read-ahead for sequential
// readers), so a random reader fetches about what it reads. Only complete objects are kept.
// Chunks after the first carry If-Match: if the object changes during the download, the
// download fails with ESTALE (it is not restarted, since handles already promised the old size
// and ETag) and the next open fetches the new version.
//
// A single-part object's MD5 is checked as the chunks arrive; readers are served before the
// check can finish, but a handle that read the object from its start gets the verdict (EIO on
// a mismatch) before its last bytes. Access and validation times are noted in memory on the
// read path and written to the index in batches.
//
// Write-back (cache/write_types.h). Writers change the cached file in place; a key that is
// open for writing or DIRTY is served from that file without revalidation and is never
// replaced by a download or dropped by Forget or reconciliation. A change is recorded DIRTY
// durably before it is made; Flush uploads it (sync) or queues it (async); failed uploads keep
// the data DIRTY and are retried with exponential backoff; DIRTY entries found at start-up are
// uploaded first. Uploads of one key run one at a time, and an upload marks the row CLEAN
// (with the ETag S3 answered, so the copy is not downloaded again) only if nothing changed
// while it ran.
// Conflicts: a file whose local changes started from a known ETag is checked with a HEAD
// before its upload (unless that ETag came from our own upload less than `revalidate` ago, the
// window in which a cached copy is served unchecked too); if S3 has another version (another
// client wrote it), the local version still wins — it is uploaded over it — and a warning names
// the key and the remote ETag. There is no merge and no lock: last writer wins, as in S3 itself.
// Durability of the marks and when fsyncs happen: cache/write_back.cc.
// Thread-safe. Implementation: cache/object_cache_impl.h lists the files.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "cache/write_types.h"
#include "s3/client.h"
#include "s3/status.h"
#include "s3/transfer.h"

namespace s3cachefs::cache {

struct ObjectCacheConfig {
  std::string cache_dir;
  std::string bucket;  // part of each file's hash, so two buckets can share a directory
  std::chrono::seconds revalidate{std::chrono::seconds(30)};
  // The largest ranged GET, and (below) how many run at once. Against a distant endpoint each
  // connection is slow and only GETs in flight add up: the first 512 MiB of a cold read through
  // a proxy with 20 ms round trips and 25 MB/s per connection ran at 160-206 MB/s with 16 GETs
  // of 16 MiB in flight, 231-295 with 32; from the local s3rver both read alike (medians of 8
  // alternating rounds 451 and 449 MB/s; 8 MiB GETs and fewer in flight were slower there).
  // See bench/README.md. Random readers are not affected (their requests are as large as what
  // they wait for).
  uint64_t chunk_size = 16ull << 20;
  // Partial fetches (cache/download.h): objects up to fetch_whole_max bytes are fetched whole
  // when opened; larger ones in blocks of block_size as they are read, plus a read-ahead of
  // 4 times the reader's sequential run (16 times a run from offset 0) up to readahead_max, or
  // up to parallel_per_object whole requests of chunk_size if that is more (DownloadHandle).
  // The GET that opens a download asks for
  // first_request bytes. An unfinished download is kept for partial_grace (at most revalidate)
  // after its last reader closed, for a new open to join; then it is completed if at least
  // half of it is in, else dropped. block_size and first_request are clamped to chunk_size.
  uint64_t block_size = 256ull << 10;
  uint64_t first_request = 1ull << 20;
  uint64_t fetch_whole_max = 8ull << 20;
  uint64_t readahead_max = 64ull << 20;
  std::chrono::milliseconds partial_grace{std::chrono::seconds(30)};
  int download_threads = 32;     // ranged GETs in flight, all downloads together
  int parallel_per_object = 32;  // ranged GETs in flight for one object
  std::chrono::milliseconds read_timeout{std::chrono::seconds(120)};  // a reader's deadline
  bool verify_md5 = true;  // check single-part ETags against the bytes
  // How often access and validation times, kept in memory on the read path, are written to
  // the index (also on destruction).
  std::chrono::milliseconds flush_interval{std::chrono::seconds(5)};
  // Wall clock for validation times; tests move it forward. Default: system_clock::now.
  std::function<std::chrono::system_clock::time_point()> clock;
  // Budget (cache/evictor.h): total bytes of cached objects (0 = no limit), free space to keep
  // on the cache's file system (statvfs of cache_dir; 0 = no floor), and how long an unread
  // entry is kept (unset = forever). Least recently read entries go first; entries open or with
  // local changes never. A background pass runs every eviction_interval.
  uint64_t cache_size = 0;
  unsigned cache_min_free_percent = 10;
  std::optional<std::chrono::seconds> cache_max_age;
  std::chrono::milliseconds eviction_interval{std::chrono::seconds(5)};

  // Write-back (cache/write_types.h).
  WriteBackMode write_back = WriteBackMode::kSync;
  int upload_threads = 16;      // background uploads in flight (async and retries)
  s3::TransferTuning transfer;  // multipart threshold, part size, parallel parts
  std::chrono::milliseconds upload_retry_max_delay{std::chrono::seconds(30)};
  // First retry delay of a failed upload; it doubles with each failure up to the maximum.
  std::chrono::milliseconds upload_retry_min_delay{std::chrono::seconds(1)};
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
  uint64_t downloads = 0;    // downloads started (including prefetches)
  uint64_t prefetches = 0;   // downloads started by Prefetch, before any open asked
  uint64_t bytes_downloaded = 0;
  uint64_t entries = 0;          // rows in the index
  uint64_t bytes_cached = 0;     // sum of their sizes
  uint64_t uploads = 0;          // uploads S3 accepted
  uint64_t bytes_uploaded = 0;   // their sizes
  uint64_t upload_failures = 0;  // upload attempts that failed (each is retried)
  uint64_t dirty_entries = 0;    // keys with local changes S3 does not have yet
  uint64_t write_syncs = 0;      // fsyncs the write path waited for (data, directories, index)
  uint64_t evictions = 0;        // entries dropped to keep the budget
  uint64_t evicted_bytes = 0;
  uint64_t not_kept = 0;     // downloads served without being cached: no room could be made
  uint64_t downloading = 0;  // downloads in flight, until their commit is done
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
  // True when fd() holds the whole object, checked: nothing will be added to it (a cached
  // copy, or a download that finished).
  virtual bool complete() const { return false; }
};

class ObjectCache {
 public:
  // Waits for WritableFile calls in progress (later ones fail with ESHUTDOWN), stops the
  // uploaders after the upload each is running (queued ones stay DIRTY and resume at the next
  // Open; call DrainUploads first to finish them), cancels downloads in flight (their readers
  // get ECANCELED), joins the download threads, flushes the in-memory times and releases the
  // directory lock. No other ObjectCache method may be running; handles of both kinds may
  // outlive the cache and keep their descriptors.
  virtual ~ObjectCache() = default;

  // Opens (creating if needed) the cache directory: takes its lock (EBUSY with a clear message
  // if another daemon holds it), opens or creates the index, and reconciles it with the files
  // (unfinished downloads removed, files without a row removed, rows without a file dropped).
  // Then it takes the size of entries with local changes from their files, runs one eviction
  // pass to bring the directory within its budget and starts the background evictor.
  static Result<std::unique_ptr<ObjectCache>> Open(s3::Client& client, ObjectCacheConfig config);

  // Opens key for reading: a valid cached copy, a revalidated one, or a download that the
  // handle can read from as it arrives. ENOENT if the object does not exist (any cached copy is
  // then dropped).
  virtual Result<std::shared_ptr<ObjectHandle>> OpenRead(
      const std::string& key, const std::optional<ListingHint>& hint) = 0;

  // Starts fetching key in the background when it is neither cached nor being fetched, so
  // that an open soon after finds it (a reader scanning a directory). Returns once the first
  // request is answered; an object of at most fetch_whole_max bytes is then fetched whole and
  // kept. Keys open for writing or changed locally are left alone.
  virtual Status Prefetch(const std::string& key) = 0;

  // Drops key from the cache (its file and row); open handles keep reading their copy. A
  // download in flight goes on for its readers but is not kept. Rows with local changes are
  // left alone. OK when key is not cached.
  virtual Status Forget(const std::string& key) = 0;

  virtual CacheCounters counters() const = 0;

  // ---- Write path (see cache/write_types.h) ----

  // Opens key for writing. With truncate the old body is never downloaded: the file starts
  // empty and counts as changed. Otherwise the whole current object is fetched first (ENOENT if
  // it does not exist, unless create, which starts a new empty file). Writers of one key share
  // one local file; while any is open or the entry is DIRTY it is never evicted, revalidated or
  // replaced. ENOSPC when the cache disk is full.
  virtual Result<std::shared_ptr<WritableFile>> OpenWrite(
      const std::string& key, bool truncate, bool create,
      const std::optional<ListingHint>& hint) = 0;
  // A new file for key (open(O_CREAT | O_TRUNC)): OpenWrite(key, true, true) with meta set as
  // SetMeta would, in the same index write as the DIRTY mark when the file is made here, so a
  // crash cannot leave the new file without the mode and owner it was created with.
  virtual Result<std::shared_ptr<WritableFile>> Create(const std::string& key,
                                                       const FileMeta& meta) = 0;

  // What the cache knows locally about key / about every key under prefix that S3 may not show
  // yet (open for writing, DIRTY, or being uploaded): listings and attributes show these.
  virtual std::optional<LocalFile> Local(const std::string& key) = 0;
  virtual std::vector<LocalFile> LocalUnder(const std::string& prefix) = 0;

  // POSIX metadata known locally for key: from its last upload, a GET/HEAD answer, or SetMeta.
  virtual std::optional<FileMeta> Meta(const std::string& key) = 0;
  // Changes key's metadata (fields set in meta). For a DIRTY or open file it goes with the
  // next upload; for a clean one a CopyObject onto itself replaces it in S3 now, and the ETag
  // recorded is the new one (so the cached body stays valid).
  virtual Status SetMeta(const std::string& key, const FileMeta& meta) = 0;

  // Deletes key in S3 and drops it from the cache, cancelling a pending upload; writers still
  // open keep their fd but their Flush no longer uploads. OK if the key does not exist.
  virtual Status Remove(const std::string& key) = 0;

  // Renames the object from -> to, replacing to. A clean object is copied server-side and then
  // deleted, its cached copy moving with it (no download); a DIRTY or open one is re-keyed
  // locally, written back under the new key (sync mode: before returning) and the old key is
  // deleted in S3. ENOENT if from exists neither in S3 nor locally.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;

  // Blocks until no upload is pending or running (unmount), logging progress every few
  // seconds; gives up after timeout (the rest stays DIRTY and resumes at the next mount).
  virtual Status DrainUploads(std::chrono::seconds timeout) = 0;
  virtual size_t pending_uploads() const = 0;
};

class UniqueFd;

// Takes the flock() of cache directory dir (<dir>/lock, created if needed) and writes our pid
// in it; held while the returned descriptor is open. EBUSY naming the holder's pid when another
// process (a daemon, or `s3cachefs cache evict`) has it.
Result<UniqueFd> LockCacheDirectory(const std::string& dir);

}  // namespace s3cachefs::cache
