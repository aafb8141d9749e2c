// Index: the SQLite table that says which objects the cache holds, under which file name, with
// which ETag, and when each copy was last validated against S3 and last read.
//
// One connection (WAL, synchronous=NORMAL, busy timeout) guarded by one mutex; prepared
// statements are compiled once and reused. Every method is a short transaction: callers never
// hold the index across network I/O. The schema version lives in PRAGMA user_version and is
// migrated forward at Open.
//
// Rows have a state. CLEAN rows are plain copies of S3 objects and may be replaced or dropped
// at will. DIRTY and UPLOADING (reserved for write-back) hold data S3 does not have yet: the
// methods here never replace or drop them.
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

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
  static constexpr int kSchemaVersion = 1;

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
  Result<bool> DeleteClean(const std::string& bucket, const std::string& key,
                           const std::function<void()>& after_delete);

  // Applies updates in one transaction.
  Status ApplyTimes(const std::vector<TimeUpdate>& updates);

  // Calls fn for every row, in no particular order, outside any transaction that fn could
  // observe. fn must not call back into the Index.
  Status ForEach(const std::function<void(const IndexEntry&)>& fn);

  // Number of rows and sum of their sizes, kept in memory (no query).
  uint64_t entries() const;
  uint64_t bytes() const;

 private:
  explicit Index(sqlite3* db) : db_(db) {}
  Status Init(const std::string& path);
  Status Migrate(const std::string& path);
  Status Exec(const char* sql);
  Status Prepare(const char* sql, Statement* out);
  Status Error(const std::string& what) const;
  Result<std::optional<IndexEntry>> GetLocked(Statement& stmt);

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
  uint64_t entries_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace s3cachefs::cache
