// Index: the write-back half (MarkDirty, RecordUpload, SetMeta, UpdateCleanEtag, DeleteAny,
// Rekey). Every method is one short transaction under Index::mu_; see index.h for contracts.
#include <sqlite3.h>

#include <cerrno>

#include "cache/index.h"
#include "cache/index_internal.h"

namespace s3cachefs::cache {

Status Index::BeginLocked() {
  int rc = sqlite3_step(begin_.get());
  begin_.Reset();
  if (rc != SQLITE_DONE) return Error("begin");
  return Status::Ok();
}

Status Index::CommitLocked(const std::string& what) {
  int rc = sqlite3_step(commit_.get());
  commit_.Reset();
  if (rc != SQLITE_DONE) {
    Status s = Error("commit " + what);
    RollbackLocked();
    return s;
  }
  return Status::Ok();
}

void Index::RollbackLocked() {
  sqlite3_step(rollback_.get());
  rollback_.Reset();
}

Status Index::RunLocked(const char* sql, const std::function<void(sqlite3_stmt*)>& bind,
                        const std::string& what) {
  auto it = adhoc_.find(sql);
  if (it == adhoc_.end()) {
    Statement stmt;
    Status s = Prepare(sql, &stmt);
    if (!s.ok()) return s;
    it = adhoc_.emplace(sql, std::move(stmt)).first;
  }
  sqlite3_stmt* st = it->second.get();
  if (bind) bind(st);
  int rc = sqlite3_step(st);
  Status s = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? Status::Ok() : Error(what);
  it->second.Reset();
  return s;
}

Result<std::optional<IndexEntry>> Index::GetRowLocked(const std::string& bucket,
                                                      const std::string& key) {
  BindText(get_.get(), 1, bucket);
  BindText(get_.get(), 2, key);
  return GetLocked(get_);
}

Index::FullSyncLocked::FullSyncLocked(Index* index) : index_(index) {
  sqlite3_step(index_->sync_full_.get());
  index_->sync_full_.Reset();
  index_->durable_commits_.fetch_add(1);
}

Index::FullSyncLocked::~FullSyncLocked() {
  if (index_ == nullptr) return;
  sqlite3_step(index_->sync_normal_.get());
  index_->sync_normal_.Reset();
}

Result<int64_t> Index::MarkDirty(const DirtyMark& mark,
                                 const std::function<Status(bool synced)>& before_write) {
  std::lock_guard<std::mutex> lock(mu_);
  // Read before BEGIN, under mu_: this connection is the directory's only writer.
  Result<std::optional<IndexEntry>> old = GetRowLocked(mark.bucket, mark.key);
  if (!old.ok()) return old.status();
  // FULL for this one commit: the WAL is synced before COMMIT returns, so the mark is on disk
  // before the change it announces. Other commits stay NORMAL (losing them is harmless), and so
  // may a mark that no row on disk can contradict (see the header comment).
  const bool lazy = mark.allow_lazy && LazyMarkSafeLocked(*old);
  std::optional<FullSyncLocked> full;
  if (!lazy) full.emplace(this);

  Status s = BeginLocked();
  if (!s.ok()) return s;
  if (before_write) {
    s = before_write(!lazy);
    if (!s.ok()) {
      RollbackLocked();
      return s;
    }
  }
  // Binding an index a statement does not use is a harmless SQLITE_RANGE.
  auto bind = [&](sqlite3_stmt* st) {
    BindText(st, 1, mark.bucket);
    BindText(st, 2, mark.key);
    BindText(st, 3, mark.file_name);
    sqlite3_bind_int64(st, 4, mark.local_mtime);
    if (mark.size) {
      sqlite3_bind_int64(st, 5, static_cast<int64_t>(*mark.size));
    } else {
      sqlite3_bind_null(st, 5);
    }
    BindMeta(st, 6, mark.meta);
    BindText(st, 10, mark.base_etag_if_new);
  };
  int64_t gen;
  if (old->has_value()) {
    s = RunLocked(
        "UPDATE entries SET state = 1, dirty_gen = dirty_gen + 1, file_name = ?3,"
        " base_etag = CASE WHEN state = 0 THEN etag ELSE base_etag END, local_mtime = ?4,"
        " size = COALESCE(?5, size), meta_mode = ?6, meta_uid = ?7, meta_gid = ?8,"
        " meta_mtime = ?9, chunk_size = 0, chunks = NULL"
        " WHERE bucket = ?1 AND key = ?2",
        bind, "mark " + mark.key + " dirty");
    gen = (*old)->dirty_gen + 1;
  } else {
    s = RunLocked(
        "INSERT INTO entries (bucket, key, file_name, etag, size, mtime, validated_at,"
        " accessed_at, state, dirty_gen, base_etag, local_mtime, meta_mode, meta_uid, meta_gid,"
        " meta_mtime) VALUES (?1, ?2, ?3, '', COALESCE(?5, 0), ?4, 0, 0, 1, 1, ?10, ?4, ?6, ?7,"
        " ?8, ?9)",
        bind, "mark " + mark.key + " dirty");
    gen = 1;
  }
  if (!s.ok()) {
    RollbackLocked();
    return s;
  }
  s = CommitLocked("dirty mark of " + mark.key);
  if (!s.ok()) return s;
  if (!lazy) removed_since_sync_ = false;
  if (!old->has_value()) {
    ++entries_;
    bytes_ += mark.size.value_or(0);
  } else if (mark.size) {
    bytes_ = bytes_ - (*old)->size + *mark.size;
  }
  return gen;
}

bool Index::LazyMarkSafeLocked(const std::optional<IndexEntry>& old) const {
  // A DIRTY row: whatever of its history is on disk is DIRTY or no row at all.
  if (old && old->state != EntryState::kClean) return true;
  // No row, or an empty CLEAN one, and no row left or was replaced since the last durable
  // commit: on disk there is no row, or this one. An empty CLEAN row cannot pass off a changed
  // file as its version: any change makes the file non-empty, and a CLEAN copy whose size is
  // not the row's is dropped (at open and at start-up).
  return !removed_since_sync_ && (!old || old->size == 0);
}

Status Index::SyncLog() {
  std::lock_guard<std::mutex> lock(mu_);
  sqlite3_file* log = nullptr;
  int rc = sqlite3_file_control(db_, "main", SQLITE_FCNTL_JOURNAL_POINTER, &log);
  if (rc != SQLITE_OK) return Error("find the write-ahead log");
  durable_commits_.fetch_add(1);
  // No log open: nothing was committed through it yet, so there is nothing to sync.
  if (log != nullptr && log->pMethods != nullptr) {
    rc = log->pMethods->xSync(log, SQLITE_SYNC_NORMAL);
    if (rc != SQLITE_OK) return Status::Error(EIO, "cannot sync the cache index's write-ahead log");
  }
  removed_since_sync_ = false;
  return Status::Ok();
}

Result<bool> Index::RecordUpload(const UploadRecord& r) {
  std::lock_guard<std::mutex> lock(mu_);
  Status s = BeginLocked();
  if (!s.ok()) return s;
  Result<std::optional<IndexEntry>> old = GetRowLocked(r.bucket, r.key);
  if (!old.ok() || !old->has_value()) {
    RollbackLocked();
    if (!old.ok()) return old.status();
    return false;
  }
  const bool clean = r.may_clean && (*old)->dirty_gen == r.gen;
  // Binding an index a statement does not use is a harmless SQLITE_RANGE.
  auto bind = [&](sqlite3_stmt* st) {
    BindText(st, 1, r.bucket);
    BindText(st, 2, r.key);
    BindText(st, 3, r.etag);
    sqlite3_bind_int64(st, 4, static_cast<int64_t>(r.size));
    sqlite3_bind_int64(st, 5, r.mtime);
    sqlite3_bind_int64(st, 6, r.validated_at);
    sqlite3_bind_int64(st, 7, r.local_mtime);
    BindMeta(st, 8, r.meta);
  };
  if (clean) {
    s = RunLocked(
        "UPDATE entries SET state = 0, etag = ?3, size = ?4, mtime = ?5, validated_at = ?6,"
        " accessed_at = MAX(accessed_at, ?6), base_etag = '', local_mtime = ?7, meta_mode = ?8,"
        " meta_uid = ?9, meta_gid = ?10, meta_mtime = ?11 WHERE bucket = ?1 AND key = ?2",
        bind, "record upload of " + r.key);
  } else {
    // S3 has this version now: later conflicts are judged against it.
    s = RunLocked("UPDATE entries SET base_etag = ?3 WHERE bucket = ?1 AND key = ?2", bind,
                  "record upload of " + r.key);
  }
  if (!s.ok()) {
    RollbackLocked();
    return s;
  }
  s = CommitLocked("upload of " + r.key);
  if (!s.ok()) return s;
  if (clean) bytes_ = bytes_ - (*old)->size + r.size;
  return clean;
}

Status Index::SetMeta(const std::string& bucket, const std::string& key, const FileMeta& meta) {
  std::lock_guard<std::mutex> lock(mu_);
  return RunLocked(
      "UPDATE entries SET meta_mode = ?3, meta_uid = ?4, meta_gid = ?5, meta_mtime = ?6"
      " WHERE bucket = ?1 AND key = ?2",
      [&](sqlite3_stmt* st) {
        BindText(st, 1, bucket);
        BindText(st, 2, key);
        BindMeta(st, 3, meta);
      },
      "set metadata of " + key);
}

Result<bool> Index::UpdateCleanEtag(const std::string& bucket, const std::string& key,
                                    const std::string& old_etag, const std::string& new_etag,
                                    int64_t validated_at, const FileMeta& meta) {
  std::lock_guard<std::mutex> lock(mu_);
  Status s = RunLocked(
      "UPDATE entries SET etag = ?4, validated_at = MAX(validated_at, ?5), meta_mode = ?6,"
      " meta_uid = ?7, meta_gid = ?8, meta_mtime = ?9"
      " WHERE bucket = ?1 AND key = ?2 AND etag = ?3 AND state = 0",
      [&](sqlite3_stmt* st) {
        BindText(st, 1, bucket);
        BindText(st, 2, key);
        BindText(st, 3, old_etag);
        BindText(st, 4, new_etag);
        sqlite3_bind_int64(st, 5, validated_at);
        BindMeta(st, 6, meta);
      },
      "update ETag of " + key);
  if (!s.ok()) return s;
  return sqlite3_changes(db_) > 0;
}

Result<bool> Index::DeleteAny(const std::string& bucket, const std::string& key,
                              const std::function<void()>& after_delete) {
  std::lock_guard<std::mutex> lock(mu_);
  Result<std::optional<IndexEntry>> old = GetRowLocked(bucket, key);
  if (!old.ok()) return old.status();
  if (!old->has_value()) return false;
  Status s = RunLocked(
      "DELETE FROM entries WHERE bucket = ?1 AND key = ?2",
      [&](sqlite3_stmt* st) {
        BindText(st, 1, bucket);
        BindText(st, 2, key);
      },
      "delete entry for " + key);
  if (!s.ok()) return s;
  removed_since_sync_ = true;
  --entries_;
  bytes_ -= (*old)->size;
  if (after_delete) after_delete();
  return true;
}

Result<int64_t> Index::Rekey(const std::string& bucket, const std::string& from,
                             const std::string& to, const std::string& to_file_name,
                             bool make_dirty, const std::string& etag, int64_t validated_at,
                             const std::function<Status()>& before_write) {
  std::lock_guard<std::mutex> lock(mu_);
  // A DIRTY row that moves must not move back after a power loss (its file has moved).
  std::optional<FullSyncLocked> full;
  if (make_dirty) full.emplace(this);
  Status s = BeginLocked();
  if (!s.ok()) return s;
  Result<std::optional<IndexEntry>> src = GetRowLocked(bucket, from);
  Result<std::optional<IndexEntry>> dst = GetRowLocked(bucket, to);
  if (!src.ok() || !dst.ok()) {
    RollbackLocked();
    return !src.ok() ? src.status() : dst.status();
  }
  if (!src->has_value()) {
    RollbackLocked();
    return Status::Error(ENOENT, "cache index: no entry for " + from);
  }
  if (before_write) {
    s = before_write();
    if (!s.ok()) {
      RollbackLocked();
      return s;
    }
  }
  if (dst->has_value()) {
    s = RunLocked(
        "DELETE FROM entries WHERE bucket = ?1 AND key = ?2",
        [&](sqlite3_stmt* st) {
          BindText(st, 1, bucket);
          BindText(st, 2, to);
        },
        "delete entry for " + to);
  }
  if (s.ok()) {
    s = RunLocked(
        "UPDATE entries SET key = ?3, file_name = ?4,"
        " state = CASE WHEN ?5 THEN 1 ELSE state END, dirty_gen = dirty_gen + ?5,"
        " base_etag = CASE WHEN ?5 THEN '' ELSE base_etag END,"
        " etag = CASE WHEN ?6 != '' THEN ?6 ELSE etag END,"
        " validated_at = MAX(validated_at, ?7) WHERE bucket = ?1 AND key = ?2",
        [&](sqlite3_stmt* st) {
          BindText(st, 1, bucket);
          BindText(st, 2, from);
          BindText(st, 3, to);
          BindText(st, 4, to_file_name);
          sqlite3_bind_int(st, 5, make_dirty ? 1 : 0);
          BindText(st, 6, etag);
          sqlite3_bind_int64(st, 7, validated_at);
        },
        "rename entry " + from + " to " + to);
  }
  if (!s.ok()) {
    RollbackLocked();
    return s;
  }
  s = CommitLocked("rename of " + from);
  if (!s.ok()) return s;
  removed_since_sync_ = !make_dirty;  // FULL when make_dirty: the move is on disk
  if (dst->has_value()) {
    --entries_;
    bytes_ -= (*dst)->size;
  }
  return (*src)->dirty_gen + (make_dirty ? 1 : 0);
}

}  // namespace s3cachefs::cache
