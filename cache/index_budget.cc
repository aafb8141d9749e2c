// Index: the half used by the cache budget and the offline tools (OldestClean,
// DeleteCleanIfUnchanged, SetLocalSize, Summarize, counters). See index.h for contracts. These
// prepare their statements per call: they run every few seconds at most, not per read.
#include <sqlite3.h>

#include <cerrno>
#include <string_view>
#include <utility>

#include "cache/index.h"
#include "cache/index_internal.h"

namespace s3cachefs::cache {

Result<std::vector<IndexEntry>> Index::OldestClean(size_t limit, size_t offset) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement stmt;
  // ORDER BY accessed_at, id walks entries_by_access (which ends in the rowid): no sort.
  Status s = Prepare((std::string("SELECT ") + kIndexColumns +
                      " FROM entries WHERE state = 0 ORDER BY accessed_at, id LIMIT ?1 OFFSET ?2")
                         .c_str(),
                     &stmt);
  if (!s.ok()) return s;
  sqlite3_bind_int64(stmt.get(), 1, static_cast<int64_t>(limit));
  sqlite3_bind_int64(stmt.get(), 2, static_cast<int64_t>(offset));
  std::vector<IndexEntry> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) out.push_back(ReadIndexRow(stmt.get()));
  if (rc != SQLITE_DONE) return Error("list entries by access time");
  return out;
}

Result<bool> Index::DeleteCleanIfUnchanged(const IndexEntry& seen,
                                           const std::function<void()>& after_delete,
                                           const std::function<bool()>& keep) {
  std::lock_guard<std::mutex> lock(mu_);
  if (keep && keep()) return false;
  Statement stmt;
  Status s = Prepare(
      "DELETE FROM entries WHERE bucket = ?1 AND key = ?2 AND state = 0 AND etag = ?3"
      " AND size = ?4 AND accessed_at = ?5",
      &stmt);
  if (!s.ok()) return s;
  BindText(stmt.get(), 1, seen.bucket);
  BindText(stmt.get(), 2, seen.key);
  BindText(stmt.get(), 3, seen.etag);
  sqlite3_bind_int64(stmt.get(), 4, static_cast<int64_t>(seen.size));
  sqlite3_bind_int64(stmt.get(), 5, seen.accessed_at);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return Error("evict entry for " + seen.key);
  if (sqlite3_changes(db_) == 0) return false;
  removed_since_sync_ = true;
  --entries_;
  bytes_ -= seen.size;
  if (after_delete) after_delete();
  return true;
}

Result<bool> Index::SetLocalSize(const std::string& bucket, const std::string& key, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  Result<std::optional<IndexEntry>> old = GetRowLocked(bucket, key);
  if (!old.ok()) return old.status();
  if (!old->has_value() || (*old)->state == EntryState::kClean) return false;
  Statement stmt;
  Status s =
      Prepare("UPDATE entries SET size = ?3 WHERE bucket = ?1 AND key = ?2 AND state != 0", &stmt);
  if (!s.ok()) return s;
  BindText(stmt.get(), 1, bucket);
  BindText(stmt.get(), 2, key);
  sqlite3_bind_int64(stmt.get(), 3, static_cast<int64_t>(size));
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return Error("fix size of " + key);
  if (sqlite3_changes(db_) == 0) return false;
  bytes_ = bytes_ - (*old)->size + size;
  return true;
}

Result<Index::Summary> Index::Summarize() {
  std::lock_guard<std::mutex> lock(mu_);
  Statement stmt;
  Status s = Prepare(
      "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(state != 0), 0),"
      " COALESCE(SUM(CASE WHEN state != 0 THEN size ELSE 0 END), 0),"
      " COALESCE(MIN(accessed_at), 0), COALESCE(MAX(accessed_at), 0) FROM entries",
      &stmt);
  if (!s.ok()) return s;
  if (sqlite3_step(stmt.get()) != SQLITE_ROW) return Error("summarize entries");
  Summary out;
  out.entries = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 0));
  out.bytes = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 1));
  out.local_entries = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 2));
  out.local_bytes = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 3));
  out.oldest_access = sqlite3_column_int64(stmt.get(), 4);
  out.newest_access = sqlite3_column_int64(stmt.get(), 5);
  return out;
}

namespace {

// Names of the rows of table `counters`: part of the on-disk format, never renamed.
constexpr std::pair<const char*, uint64_t Index::Counters::*> kCounterNames[] = {
    {"hits", &Index::Counters::hits},
    {"revalidated", &Index::Counters::revalidated},
    {"misses", &Index::Counters::misses},
    {"downloads", &Index::Counters::downloads},
    {"bytes_downloaded", &Index::Counters::bytes_downloaded},
    {"evictions", &Index::Counters::evictions},
    {"evicted_bytes", &Index::Counters::evicted_bytes},
    {"not_kept", &Index::Counters::not_kept},
};

}  // namespace

Status Index::AddCounters(const Counters& delta) {
  std::lock_guard<std::mutex> lock(mu_);
  Status s = Exec(
      "BEGIN IMMEDIATE;"
      "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)");
  if (!s.ok()) return s;
  Statement stmt;
  s = Prepare(
      "INSERT INTO counters (name, value) VALUES (?1, ?2)"
      " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
      &stmt);
  for (const auto& [name, field] : kCounterNames) {
    if (!s.ok()) break;
    if (delta.*field == 0) continue;
    sqlite3_bind_text(stmt.get(), 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt.get(), 2, static_cast<int64_t>(delta.*field));
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) s = Error(std::string("add to counter ") + name);
    stmt.Reset();
  }
  if (s.ok()) s = Exec("COMMIT");
  if (!s.ok()) Exec("ROLLBACK");
  return s;
}

Result<Index::Counters> Index::ReadCounters() {
  std::lock_guard<std::mutex> lock(mu_);
  Counters out;
  Statement exists;
  Status s =
      Prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'counters'", &exists);
  if (!s.ok()) return s;
  if (sqlite3_step(exists.get()) != SQLITE_ROW) return out;  // no daemon ever wrote any
  Statement stmt;
  s = Prepare("SELECT name, value FROM counters", &stmt);
  if (!s.ok()) return s;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    const char* name = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0));
    for (const auto& [known, field] : kCounterNames) {
      if (name != nullptr && std::string_view(name) == known) {
        out.*field = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 1));
      }
    }
  }
  if (rc != SQLITE_DONE) return Error("read counters");
  return out;
}

}  // namespace s3cachefs::cache
