#include "cache/index.h"

#include <sqlite3.h>

#include <cerrno>

#include "cache/index_internal.h"

namespace s3cachefs::cache {
namespace {

constexpr int kBusyTimeoutMs = 5000;

// Schema version 1. chunk_size/chunks are reserved for partially cached objects: NULL chunks
// means the file holds the whole object.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE entries (
  id INTEGER PRIMARY KEY,
  bucket TEXT NOT NULL,
  key TEXT NOT NULL,
  file_name TEXT NOT NULL UNIQUE,
  etag TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  validated_at INTEGER NOT NULL,
  accessed_at INTEGER NOT NULL,
  state INTEGER NOT NULL DEFAULT 0,
  chunk_size INTEGER NOT NULL DEFAULT 0,
  chunks BLOB,
  UNIQUE (bucket, key)
);
CREATE INDEX entries_by_access ON entries (accessed_at);
)sql";

// Schema version 2: write-back. See index.h for what the columns mean.
constexpr const char* kSchemaV2 = R"sql(
ALTER TABLE entries ADD COLUMN dirty_gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entries ADD COLUMN base_etag TEXT NOT NULL DEFAULT '';
ALTER TABLE entries ADD COLUMN local_mtime INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entries ADD COLUMN meta_mode INTEGER;
ALTER TABLE entries ADD COLUMN meta_uid INTEGER;
ALTER TABLE entries ADD COLUMN meta_gid INTEGER;
ALTER TABLE entries ADD COLUMN meta_mtime INTEGER;
CREATE INDEX entries_not_clean ON entries (state) WHERE state != 0;
)sql";

}  // namespace

const char* const kIndexColumns =
    "bucket, key, file_name, etag, size, mtime, validated_at, accessed_at, state, dirty_gen,"
    " base_etag, local_mtime, meta_mode, meta_uid, meta_gid, meta_mtime";

namespace {

template <typename T>
std::optional<T> ColumnOptional(sqlite3_stmt* stmt, int col) {
  if (sqlite3_column_type(stmt, col) == SQLITE_NULL) return std::nullopt;
  return static_cast<T>(sqlite3_column_int64(stmt, col));
}

IndexEntry ReadRow(sqlite3_stmt* stmt) {
  auto text = [stmt](int col) {
    const unsigned char* p = sqlite3_column_text(stmt, col);
    return std::string(p != nullptr ? reinterpret_cast<const char*>(p) : "",
                       static_cast<size_t>(sqlite3_column_bytes(stmt, col)));
  };
  IndexEntry e;
  e.bucket = text(0);
  e.key = text(1);
  e.file_name = text(2);
  e.etag = text(3);
  e.size = static_cast<uint64_t>(sqlite3_column_int64(stmt, 4));
  e.mtime = sqlite3_column_int64(stmt, 5);
  e.validated_at = sqlite3_column_int64(stmt, 6);
  e.accessed_at = sqlite3_column_int64(stmt, 7);
  e.state = static_cast<EntryState>(sqlite3_column_int(stmt, 8));
  e.dirty_gen = sqlite3_column_int64(stmt, 9);
  e.base_etag = text(10);
  e.local_mtime = sqlite3_column_int64(stmt, 11);
  e.meta.mode = ColumnOptional<uint32_t>(stmt, 12);
  e.meta.uid = ColumnOptional<uint32_t>(stmt, 13);
  e.meta.gid = ColumnOptional<uint32_t>(stmt, 14);
  e.meta.mtime = ColumnOptional<int64_t>(stmt, 15);
  return e;
}

}  // namespace

IndexEntry ReadIndexRow(sqlite3_stmt* stmt) {
  return ReadRow(stmt);
}

void BindText(sqlite3_stmt* stmt, int col, const std::string& value) {
  sqlite3_bind_text(stmt, col, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
}

void BindMeta(sqlite3_stmt* stmt, int first_col, const FileMeta& meta) {
  auto bind = [stmt](int col, auto value) {
    if (value) {
      sqlite3_bind_int64(stmt, col, static_cast<int64_t>(*value));
    } else {
      sqlite3_bind_null(stmt, col);
    }
  };
  bind(first_col, meta.mode);
  bind(first_col + 1, meta.uid);
  bind(first_col + 2, meta.gid);
  bind(first_col + 3, meta.mtime);
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    stmt_ = other.stmt_;
    other.stmt_ = nullptr;
  }
  return *this;
}

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Result<std::unique_ptr<Index>> Index::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<Index> index(new Index(db));  // owns db even when open failed
  if (rc != SQLITE_OK) {
    return Status::Error(EIO, "cannot open cache index " + path + ": " +
                                  (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
  }
  Status s = index->Init(path);
  if (!s.ok()) return s;
  return index;
}

Index::~Index() {
  // Statements must be finalized before the connection closes.
  get_ = Statement();
  get_by_file_ = Statement();
  upsert_ = Statement();
  delete_ = Statement();
  update_times_ = Statement();
  begin_ = Statement();
  commit_ = Statement();
  rollback_ = Statement();
  sync_full_ = Statement();
  sync_normal_ = Statement();
  adhoc_.clear();
  sqlite3_close(db_);
}

Status Index::Error(const std::string& what) const {
  // A full disk is the one failure callers act on differently (ENOSPC reaches the writer).
  const bool full = sqlite3_errcode(db_) == SQLITE_FULL;
  if (full && on_full_) on_full_();
  int code = full ? ENOSPC : EIO;
  return Status::Error(code, "cache index: " + what + ": " + sqlite3_errmsg(db_));
}

Status Index::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    return Status::Error(EIO, "cache index: " + message);
  }
  return Status::Ok();
}

Status Index::Prepare(const char* sql, Statement* out) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
    return Error(std::string("prepare \"") + sql + "\"");
  }
  *out = Statement(stmt);
  return Status::Ok();
}

Status Index::Init(const std::string& path) {
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  // The first real read of the file: a file that is not a database fails here.
  Status s = Exec("PRAGMA journal_mode=WAL");
  if (!s.ok()) return s.WithContext("cannot use cache index " + path);
  s = Exec("PRAGMA synchronous=NORMAL");
  if (!s.ok()) return s;
  s = Migrate(path);
  if (!s.ok()) return s;

  std::string cols = kIndexColumns;
  if (!(s = Prepare(("SELECT " + cols + " FROM entries WHERE bucket = ?1 AND key = ?2").c_str(),
                    &get_))
           .ok() ||
      !(s = Prepare(("SELECT " + cols + " FROM entries WHERE file_name = ?1").c_str(),
                    &get_by_file_))
           .ok() ||
      !(s = Prepare("INSERT INTO entries (bucket, key, file_name, etag, size, mtime, validated_at,"
                    " accessed_at, state, meta_mode, meta_uid, meta_gid, meta_mtime)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, ?11, ?12)"
                    " ON CONFLICT (bucket, key) DO UPDATE SET file_name = excluded.file_name,"
                    " etag = excluded.etag, size = excluded.size, mtime = excluded.mtime,"
                    " validated_at = excluded.validated_at, accessed_at = excluded.accessed_at,"
                    " state = 0, chunk_size = 0, chunks = NULL, base_etag = '',"
                    " meta_mode = excluded.meta_mode, meta_uid = excluded.meta_uid,"
                    " meta_gid = excluded.meta_gid, meta_mtime = excluded.meta_mtime",
                    &upsert_))
           .ok() ||
      !(s = Prepare("DELETE FROM entries WHERE bucket = ?1 AND key = ?2 AND state = 0", &delete_))
           .ok() ||
      !(s = Prepare("UPDATE entries SET validated_at = MAX(validated_at, ?4),"
                    " accessed_at = MAX(accessed_at, ?5)"
                    " WHERE bucket = ?1 AND key = ?2 AND etag = ?3",
                    &update_times_))
           .ok() ||
      !(s = Prepare("BEGIN IMMEDIATE", &begin_)).ok() || !(s = Prepare("COMMIT", &commit_)).ok() ||
      !(s = Prepare("ROLLBACK", &rollback_)).ok() ||
      !(s = Prepare("PRAGMA synchronous=FULL", &sync_full_)).ok() ||
      !(s = Prepare("PRAGMA synchronous=NORMAL", &sync_normal_)).ok()) {
    return s;
  }

  Statement totals;
  if (!(s = Prepare("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries", &totals)).ok()) {
    return s;
  }
  if (sqlite3_step(totals.get()) != SQLITE_ROW) return Error("count entries");
  entries_ = static_cast<uint64_t>(sqlite3_column_int64(totals.get(), 0));
  bytes_ = static_cast<uint64_t>(sqlite3_column_int64(totals.get(), 1));
  return Status::Ok();
}

// Each step migrates from version i to i + 1 (steps[0]: empty database to version 1). A later
// schema change appends a step; existing caches then keep their contents across the upgrade.
Status Index::Migrate(const std::string& path) {
  static const char* const kSteps[] = {kSchemaV1, kSchemaV2};
  static_assert(sizeof(kSteps) / sizeof(kSteps[0]) == kSchemaVersion);

  Statement version_stmt;
  Status s = Prepare("PRAGMA user_version", &version_stmt);
  if (!s.ok()) return s;
  if (sqlite3_step(version_stmt.get()) != SQLITE_ROW) return Error("read user_version");
  int version = sqlite3_column_int(version_stmt.get(), 0);
  version_stmt = Statement();
  if (version > kSchemaVersion) {
    return Status::Error(ENOTSUP, "cache index " + path + " has schema version " +
                                      std::to_string(version) + ", newer than this s3cachefs (" +
                                      std::to_string(kSchemaVersion) +
                                      "); use a newer s3cachefs or another cache directory");
  }
  for (; version < kSchemaVersion; ++version) {
    std::string sql = std::string("BEGIN IMMEDIATE;") + kSteps[version] +
                      "PRAGMA user_version = " + std::to_string(version + 1) + ";COMMIT;";
    s = Exec(sql.c_str());
    if (!s.ok()) {
      Exec("ROLLBACK");
      return s.WithContext("migrating cache index " + path + " to schema version " +
                           std::to_string(version + 1));
    }
  }
  return Status::Ok();
}

Result<std::optional<IndexEntry>> Index::GetLocked(Statement& stmt) {
  int rc = sqlite3_step(stmt.get());
  std::optional<IndexEntry> out;
  if (rc == SQLITE_ROW) {
    out = ReadRow(stmt.get());
  } else if (rc != SQLITE_DONE) {
    Status s = Error("read entry");
    stmt.Reset();
    return s;
  }
  stmt.Reset();
  return out;
}

Result<std::optional<IndexEntry>> Index::Get(const std::string& bucket, const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  BindText(get_.get(), 1, bucket);
  BindText(get_.get(), 2, key);
  return GetLocked(get_);
}

Result<std::optional<IndexEntry>> Index::GetByFileName(const std::string& file_name) {
  std::lock_guard<std::mutex> lock(mu_);
  BindText(get_by_file_.get(), 1, file_name);
  return GetLocked(get_by_file_);
}

Status Index::PutClean(const IndexEntry& entry, const std::function<Status()>& before_write) {
  std::lock_guard<std::mutex> lock(mu_);
  int rc = sqlite3_step(begin_.get());
  begin_.Reset();
  if (rc != SQLITE_DONE) return Error("begin");
  auto fail = [this](Status s) {
    sqlite3_step(rollback_.get());
    rollback_.Reset();
    return s;
  };

  BindText(get_.get(), 1, entry.bucket);
  BindText(get_.get(), 2, entry.key);
  Result<std::optional<IndexEntry>> old = GetLocked(get_);
  if (!old.ok()) return fail(old.status());
  if (old->has_value() && (*old)->state != EntryState::kClean) {
    return fail(Status::Error(
        EBUSY, "cache entry for " + entry.key + " has local changes; not replacing it"));
  }
  if (before_write) {
    Status s = before_write();
    if (!s.ok()) return fail(s);
  }

  sqlite3_stmt* st = upsert_.get();
  BindText(st, 1, entry.bucket);
  BindText(st, 2, entry.key);
  BindText(st, 3, entry.file_name);
  BindText(st, 4, entry.etag);
  sqlite3_bind_int64(st, 5, static_cast<int64_t>(entry.size));
  sqlite3_bind_int64(st, 6, entry.mtime);
  sqlite3_bind_int64(st, 7, entry.validated_at);
  sqlite3_bind_int64(st, 8, entry.accessed_at);
  BindMeta(st, 9, entry.meta);
  rc = sqlite3_step(st);
  upsert_.Reset();
  if (rc != SQLITE_DONE) return fail(Error("write entry for " + entry.key));
  rc = sqlite3_step(commit_.get());
  commit_.Reset();
  if (rc != SQLITE_DONE) return fail(Error("commit entry for " + entry.key));

  if (old->has_value()) {
    removed_since_sync_ = true;  // the old row, not this one, may be what is on disk
    bytes_ -= (*old)->size;
  } else {
    ++entries_;
  }
  bytes_ += entry.size;
  return Status::Ok();
}

Result<bool> Index::DeleteClean(const std::string& bucket, const std::string& key,
                                const std::function<void()>& after_delete,
                                const std::function<bool()>& keep) {
  std::lock_guard<std::mutex> lock(mu_);
  BindText(get_.get(), 1, bucket);
  BindText(get_.get(), 2, key);
  Result<std::optional<IndexEntry>> old = GetLocked(get_);
  if (!old.ok()) return old.status();
  if (!old->has_value() || (*old)->state != EntryState::kClean) return false;
  if (keep && keep()) return false;

  BindText(delete_.get(), 1, bucket);
  BindText(delete_.get(), 2, key);
  int rc = sqlite3_step(delete_.get());
  delete_.Reset();
  if (rc != SQLITE_DONE) return Error("delete entry for " + key);
  if (sqlite3_changes(db_) == 0) return false;
  removed_since_sync_ = true;
  --entries_;
  bytes_ -= (*old)->size;
  if (after_delete) after_delete();
  return true;
}

Status Index::ApplyTimes(const std::vector<TimeUpdate>& updates) {
  if (updates.empty()) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  int rc = sqlite3_step(begin_.get());
  begin_.Reset();
  if (rc != SQLITE_DONE) return Error("begin");
  for (const TimeUpdate& u : updates) {
    sqlite3_stmt* st = update_times_.get();
    BindText(st, 1, u.bucket);
    BindText(st, 2, u.key);
    BindText(st, 3, u.etag);
    sqlite3_bind_int64(st, 4, u.validated_at);
    sqlite3_bind_int64(st, 5, u.accessed_at);
    rc = sqlite3_step(st);
    update_times_.Reset();
    if (rc != SQLITE_DONE) {
      Status s = Error("update times of " + u.key);
      sqlite3_step(rollback_.get());
      rollback_.Reset();
      return s;
    }
  }
  rc = sqlite3_step(commit_.get());
  commit_.Reset();
  if (rc != SQLITE_DONE) {
    Status s = Error("commit times");
    sqlite3_step(rollback_.get());
    rollback_.Reset();
    return s;
  }
  return Status::Ok();
}

Status Index::ForEach(const std::function<void(const IndexEntry&)>& fn) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement all;
  Status s = Prepare((std::string("SELECT ") + kIndexColumns + " FROM entries").c_str(), &all);
  if (!s.ok()) return s;
  int rc;
  while ((rc = sqlite3_step(all.get())) == SQLITE_ROW) fn(ReadRow(all.get()));
  if (rc != SQLITE_DONE) return Error("list entries");
  return Status::Ok();
}

uint64_t Index::entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_;
}

uint64_t Index::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

}  // namespace s3cachefs::cache
