// Index: the SQLite table that says which objects the cache holds, under which file name, with
// which ETag, and when each copy was last validated against S3 and last read.
//
// One connection (WAL, synchronous=NORMAL, busy timeout) guarded by one mutex; prepared
// statements are compiled once and reused. Every method is a short transaction: callers never
// hold the index across network I/O. The schema version lives in PRAGMA user_version and is
// migrated forward at Open.
//
// Rows have a state. CLEAN rows are plain copies of S3 objects and may be replaced or dropped
// at will. DIRTY rows hold data S3 does not have yet: only the write-back methods (MarkDirty,
// RecordUpload, Rekey, DeleteAny) change or drop them. UPLOADING is accepted (schema v1 reserved
// it) and treated as DIRTY; this code never writes it (a row stays DIRTY while it uploads).
//
// Schema version 2 added, per row: dirty_gen (bumped by every MarkDirty: an upload that started
// at generation g may mark the row CLEAN only if it is still g), base_etag (the ETag the local
// changes started from, for conflict detection; '' for files new here), local_mtime and the
// POSIX metadata (meta_mode/uid/gid/mtime, NULL when unknown).
//
// Durability: commits are synchronous=NORMAL (they survive a crash of the daemon, not a power
// loss), except MarkDirty, which is committed with synchronous=FULL: a DIRTY mark is on disk
// before the change it announces is made. Some marks need no FULL commit when the caller allows
// it (DirtyMark::allow_lazy), because no row on disk can then pass the changed file off as a
// CLEAN copy: the mark of a row that is already DIRTY; a new row for a key that has none, and
// the mark of an empty CLEAN row (its size check catches any change), both only while no row
// has left or been replaced since the last durable commit (so no older row can reappear after
// a power loss). The caller makes them durable with SyncLog before it promises anything.
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/write_types.h"
#include "s3/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace s3cachefs::cache {

enum class EntryState : int { kClean = 0, kDirty = 1, kUploading = 2 };

struct IndexEntry {
  std::string bucket;
  std::string key;
  std::string file_name;  // sha256 hex of "<bucket>/<key>"
  std::string etag;       // as S3 sent it, with quotes
  uint64_t size = 0;
  int64_t mtime = 0;         // Last-Modified, seconds since the epoch
  int64_t validated_at = 0;  // ms since the epoch: last time S3 confirmed etag
  int64_t accessed_at = 0;   // ms since the epoch: last open (flushed in batches)
  EntryState state = EntryState::kClean;
  // Write-back (schema v2).
  int64_t dirty_gen = 0;    // bumped by each MarkDirty
  std::string base_etag;    // ETag the local changes started from; "" for a file new here
  int64_t local_mtime = 0;  // seconds: mtime of the local file when last marked or uploaded
  FileMeta meta;            // POSIX metadata known for the object
};

// What MarkDirty records.
struct DirtyMark {
  std::string bucket;
  std::string key;
  std::string file_name;
  std::string base_etag_if_new;  // base_etag for a row created here (existing rows keep theirs,
                                 // or take their ETag when they were CLEAN)
  int64_t local_mtime = 0;
  std::optional<uint64_t> size;  // new size, when known (a file just created or truncated)
  FileMeta meta;
  // true: commit synchronous=NORMAL when that is safe (see the header comment); the caller then
  // calls SyncLog before it promises anything. A CLEAN row is always marked FULL: its file may
  // hold the change as soon as MarkDirty returns.
  bool allow_lazy = false;
};

// The answer to a finished upload of generation gen.
struct UploadRecord {
  std::string bucket;
  std::string key;
  int64_t gen = 0;
  bool may_clean = true;  // false: writes may be in flight, keep the row DIRTY regardless
  std::string etag;       // what S3 answered
  uint64_t size = 0;
  int64_t mtime = 0;
  int64_t validated_at = 0;
  int64_t local_mtime = 0;
  FileMeta meta;
};

// A batched update of the times of one row, applied only while the row still has etag (so a
// late flush never marks a newer copy as validated). Times only ever move forward.
struct TimeUpdate {
  std::string bucket;
  std::string key;
  std::string etag;
  int64_t validated_at = 0;  // 0 = unchanged
  int64_t accessed_at = 0;   // 0 = unchanged
};

// An owned prepared statement: finalized on destruction, reset (bindings cleared) by Reset().
class Statement {
 public:
  Statement() = default;
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  Statement(Statement&& other) noexcept : stmt_(other.stmt_) { other.stmt_ = nullptr; }
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  sqlite3_stmt* get() const { return stmt_; }
  void Reset();

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

class Index {
 public:
  // The schema this code writes. Older indexes are migrated at Open; newer ones are refused.
  static constexpr int kSchemaVersion = 2;

  // Called (under the index lock) when SQLite reports the disk full, so that space can be
  // given back before the caller retries (see DiskReserve).
  void SetOnDiskFull(std::function<void()> on_full) { on_full_ = std::move(on_full); }

  // Opens or creates the index at path. Fails with a message naming the path when the file
  // cannot be opened, is not a database, or has a newer schema than kSchemaVersion.
  static Result<std::unique_ptr<Index>> Open(const std::string& path);
  ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  // The row of (bucket, key), or nullopt when there is none.
  Result<std::optional<IndexEntry>> Get(const std::string& bucket, const std::string& key);
  // Whether any row has this file name (reconciliation).
  Result<std::optional<IndexEntry>> GetByFileName(const std::string& file_name);

  // Inserts or replaces the row of (entry.bucket, entry.key) with entry (state CLEAN). Fails
  // with EBUSY, without calling anything, if the existing row is not CLEAN. before_write runs
  // inside the transaction, under the index mutex, right before the write: a failure from it
  // aborts the write. It must be a fast local operation (the cache renames the file into place
  // there, so that file and row change together with respect to other index users).
  Status PutClean(const IndexEntry& entry, const std::function<Status()>& before_write);

  // Deletes the row of (bucket, key) if it is CLEAN. after_delete runs under the index mutex
  // after the row is gone (the cache unlinks the file there). Returns false when there was no
  // CLEAN row (nothing deleted, after_delete not called).
  // keep, when given, runs under the index mutex before anything is deleted; true vetoes the
  // delete (the cache keeps rows of files open for writing).
  Result<bool> DeleteClean(const std::string& bucket, const std::string& key,
                           const std::function<void()>& after_delete,
                           const std::function<bool()>& keep = nullptr);

  // ---- Write-back (cache/index_write.cc) ----

  // Makes the row of (mark.bucket, mark.key) DIRTY with dirty_gen + 1 (creating it, with
  // dirty_gen 1, when there is none) and returns the new generation. before_write runs inside
  // the transaction, as for PutClean (the cache moves a new file into place there); its argument
  // says whether the commit will be synchronous=FULL (a new file's name must then be synced
  // first). Committed FULL before returning unless mark.allow_lazy and it is safe. ENOSPC/EIO
  // when it cannot be written.
  Result<int64_t> MarkDirty(const DirtyMark& mark,
                            const std::function<Status(bool synced)>& before_write);

  // Makes every commit so far durable, as if each had been synchronous=FULL: fsyncs the
  // write-ahead log (its frames carry every commit not yet checkpointed; a checkpoint syncs
  // what it copies into the database). EIO when the sync fails.
  Status SyncLog();

  // Commits made synchronous=FULL, and SyncLog calls, so far (each an fsync of the log).
  uint64_t durable_commits() const { return durable_commits_.load(); }

  // Records a finished upload: the row becomes CLEAN with record's ETag, size and times when it
  // is still at record.gen and may_clean; otherwise it stays DIRTY with base_etag = the uploaded
  // ETag (S3 has that version now). Returns true when the row became CLEAN; false also when the
  // row is gone (removed meanwhile).
  Result<bool> RecordUpload(const UploadRecord& record);

  // Replaces the metadata of the row, whatever its state. OK when there is no row.
  Status SetMeta(const std::string& bucket, const std::string& key, const FileMeta& meta);

  // A CLEAN row whose object was copied onto itself with new metadata: its ETag becomes
  // new_etag if it still is old_etag. Returns whether it changed.
  Result<bool> UpdateCleanEtag(const std::string& bucket, const std::string& key,
                               const std::string& old_etag, const std::string& new_etag,
                               int64_t validated_at, const FileMeta& meta);

  // Deletes the row of (bucket, key) whatever its state (the object was removed). after_delete
  // runs under the index mutex after the commit. Returns false when there was no row.
  Result<bool> DeleteAny(const std::string& bucket, const std::string& key,
                         const std::function<void()>& after_delete);

  // Moves the row of from to key to with file name to_file_name, first deleting any row of to
  // (whatever its state). With make_dirty the moved row becomes DIRTY at dirty_gen + 1 with an
  // empty base_etag (it is a new object to S3); otherwise it keeps its state and takes etag
  // (if not empty) and validated_at. before_write runs inside the transaction (the cache
  // renames the file there). ENOENT when from has no row. Returns the row's new dirty_gen.
  Result<int64_t> Rekey(const std::string& bucket, const std::string& from, const std::string& to,
                        const std::string& to_file_name, bool make_dirty, const std::string& etag,
                        int64_t validated_at, const std::function<Status()>& before_write);

  // Applies updates in one transaction.
  Status ApplyTimes(const std::vector<TimeUpdate>& updates);

  // Calls fn for every row, in no particular order, outside any transaction that fn could
  // observe. fn must not call back into the Index.
  Status ForEach(const std::function<void(const IndexEntry&)>& fn);

  // Number of rows and sum of their sizes, kept in memory (no query).
  uint64_t entries() const;
  uint64_t bytes() const;

  // ---- Eviction, statistics and offline checks (cache/index_budget.cc) ----

  // Up to limit CLEAN rows, least recently accessed first (ties in insertion order), after
  // skipping the first offset of them: the evictor pages with offset = rows it chose to keep.
  Result<std::vector<IndexEntry>> OldestClean(size_t limit, size_t offset);

  // Deletes the row of (seen.bucket, seen.key) only if it is still CLEAN with seen's etag, size
  // and accessed_at: a row read (and flushed), replaced or changed since it was listed stays.
  // keep, when given, runs under the index mutex first; true vetoes the delete (keys open for
  // writing). after_delete runs under the index mutex once the row is gone (the evictor
  // unlinks the file there, so it cannot remove a file PutClean or a writer is moving into
  // place). Returns false when nothing was deleted.
  Result<bool> DeleteCleanIfUnchanged(const IndexEntry& seen,
                                      const std::function<void()>& after_delete,
                                      const std::function<bool()>& keep = nullptr);

  // Records size for the row of (bucket, key) if it is not CLEAN (its file holds the only copy
  // of the data, so the file's size is the truth; start-up). False when there is no such row.
  Result<bool> SetLocalSize(const std::string& bucket, const std::string& key, uint64_t size);

  struct Summary {
    uint64_t entries = 0;
    uint64_t bytes = 0;
    uint64_t local_entries = 0;  // rows not CLEAN (local changes)
    uint64_t local_bytes = 0;
    int64_t oldest_access = 0;  // ms since the epoch; 0 when there are no rows
    int64_t newest_access = 0;
  };
  // One query over all rows.
  Result<Summary> Summarize();

  // Cumulative counters of the cache, kept across restarts in table `counters` (created on
  // first write, outside the versioned schema: older code ignores it).
  struct Counters {
    uint64_t hits = 0;
    uint64_t revalidated = 0;
    uint64_t misses = 0;
    uint64_t downloads = 0;
    uint64_t bytes_downloaded = 0;
    uint64_t evictions = 0;
    uint64_t evicted_bytes = 0;
    uint64_t not_kept = 0;  // downloads served but not cached (cache full)
  };
  // Adds delta to the stored counters in one transaction.
  Status AddCounters(const Counters& delta);
  // The stored counters; all zero when none were ever written.
  Result<Counters> ReadCounters();

 private:
  explicit Index(sqlite3* db) : db_(db) {}
  Status Init(const std::string& path);
  Status Migrate(const std::string& path);
  Status Exec(const char* sql);
  Status Prepare(const char* sql, Statement* out);
  Status Error(const std::string& what) const;
  Result<std::optional<IndexEntry>> GetLocked(Statement& stmt);
  // While alive, commits are synchronous=FULL. Requires mu_ for its whole life.
  class FullSyncLocked {
   public:
    explicit FullSyncLocked(Index* index);
    ~FullSyncLocked();
    FullSyncLocked(const FullSyncLocked&) = delete;
    FullSyncLocked& operator=(const FullSyncLocked&) = delete;

   private:
    Index* index_;
  };
  Result<std::optional<IndexEntry>> GetRowLocked(const std::string& bucket, const std::string& key);
  // Whether a DIRTY mark over old (the row now, if any) may be committed NORMAL. Requires mu_.
  bool LazyMarkSafeLocked(const std::optional<IndexEntry>& old) const;
  // BEGIN IMMEDIATE / COMMIT / ROLLBACK on the prepared statements. Require mu_.
  Status BeginLocked();
  Status CommitLocked(const std::string& what);
  void RollbackLocked();
  // Runs sql (one statement, parameters bound by bind) to completion. Requires mu_.
  Status RunLocked(const char* sql, const std::function<void(sqlite3_stmt*)>& bind,
                   const std::string& what);

  mutable std::mutex mu_;  // guards everything below, and the connection
  sqlite3* db_;
  Statement get_;
  Statement get_by_file_;
  Statement upsert_;
  Statement delete_;
  Statement update_times_;
  Statement begin_;
  Statement commit_;
  Statement rollback_;
  Statement sync_full_;                               // PRAGMA synchronous=FULL, for MarkDirty
  Statement sync_normal_;                             // and back
  std::unordered_map<const char*, Statement> adhoc_;  // RunLocked's, by SQL text address
  uint64_t entries_ = 0;
  uint64_t bytes_ = 0;
  std::atomic<uint64_t> durable_commits_{0};  // not guarded: read without mu_
  // A row may have left the index since the last durable commit, or what was read at open may
  // not be on disk yet: until the next durable commit no new row is committed lazily.
  bool removed_since_sync_ = true;
  std::function<void()> on_full_;  // set once before use; see SetOnDiskFull
};

}  // namespace s3cachefs::cache
