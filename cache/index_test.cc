// Tests of the cache index: schema versioning, the CLEAN-only rules, batched time updates.
#include "cache/index.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace s3cachefs::cache {
namespace {

namespace fs = std::filesystem;

class IndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/index_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/index.sqlite";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Index> MustOpen() {
    Result<std::unique_ptr<Index>> r = Index::Open(path_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(*r) : nullptr;
  }
  // Runs sql on a second connection, as another tool (or a later write-back) would.
  void Sql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err != nullptr ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }
  static IndexEntry Entry(const std::string& key, uint64_t size, const std::string& etag) {
    IndexEntry e;
    e.bucket = "b";
    e.key = key;
    e.file_name = "f-" + key;
    e.etag = etag;
    e.size = size;
    e.mtime = 1700000000;
    e.validated_at = 1000;
    e.accessed_at = 1000;
    return e;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(IndexTest, CreatesVersionedSchemaAndKeepsRowsAcrossOpens) {
  {
    std::unique_ptr<Index> index = MustOpen();
    ASSERT_NE(index, nullptr);
    ASSERT_TRUE(index->PutClean(Entry("a", 10, "\"e1\""), nullptr).ok());
    ASSERT_TRUE(index->PutClean(Entry("b", 20, "\"e2\""), nullptr).ok());
    ASSERT_TRUE(index->PutClean(Entry("a", 15, "\"e3\""), nullptr).ok());  // replaces
    EXPECT_EQ(index->entries(), 2u);
    EXPECT_EQ(index->bytes(), 35u);
  }
  std::unique_ptr<Index> index = MustOpen();
  EXPECT_EQ(index->entries(), 2u);
  EXPECT_EQ(index->bytes(), 35u);
  Result<std::optional<IndexEntry>> a = index->Get("b", "a");
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->etag, "\"e3\"");
  EXPECT_EQ((*a)->size, 15u);
  EXPECT_EQ((*a)->file_name, "f-a");
  EXPECT_FALSE(index->Get("other-bucket", "a")->has_value());
  EXPECT_EQ(index->GetByFileName("f-b").value()->key, "b");

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), Index::kSchemaVersion);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST_F(IndexTest, RefusesNewerSchemaAndNonDatabases) {
  MustOpen();
  Sql("PRAGMA user_version = 99");
  Result<std::unique_ptr<Index>> r = Index::Open(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ENOTSUP);
  EXPECT_NE(r.status().message().find("schema version 99"), std::string::npos);

  std::string junk = dir_ + "/junk.sqlite";
  std::ofstream(junk) << std::string(4096, 'x');
  r = Index::Open(junk);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(junk), std::string::npos) << r.status().message();
}

TEST_F(IndexTest, NeverReplacesOrDropsRowsWithLocalChanges) {
  std::unique_ptr<Index> index = MustOpen();
  ASSERT_TRUE(index->PutClean(Entry("d", 10, "\"e1\""), nullptr).ok());
  Sql("UPDATE entries SET state = 1 WHERE key = 'd'");  // DIRTY, as write-back will do

  bool called = false;
  Status s = index->PutClean(Entry("d", 99, "\"e2\""), [&] {
    called = true;
    return Status::Ok();
  });
  EXPECT_EQ(s.code(), EBUSY);
  EXPECT_FALSE(called);
  Result<bool> deleted = index->DeleteClean("b", "d", [&] { called = true; });
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);
  EXPECT_FALSE(called);
  EXPECT_EQ(index->Get("b", "d").value()->etag, "\"e1\"");
  EXPECT_EQ(index->Get("b", "d").value()->state, EntryState::kDirty);
}

TEST_F(IndexTest, FailingCallbackAbortsTheWrite) {
  std::unique_ptr<Index> index = MustOpen();
  Status s =
      index->PutClean(Entry("x", 10, "\"e\""), [] { return Status::Error(EIO, "rename failed"); });
  EXPECT_EQ(s.code(), EIO);
  EXPECT_FALSE(index->Get("b", "x").value().has_value());
  EXPECT_EQ(index->entries(), 0u);
  EXPECT_TRUE(index->PutClean(Entry("x", 10, "\"e\""), nullptr).ok());  // no stuck transaction
}

TEST_F(IndexTest, TimeUpdatesApplyOnlyToTheSameEtagAndOnlyForward) {
  std::unique_ptr<Index> index = MustOpen();
  ASSERT_TRUE(index->PutClean(Entry("k", 10, "\"new\""), nullptr).ok());
  ASSERT_TRUE(index
                  ->ApplyTimes({TimeUpdate{"b", "k", "\"old\"", 5000, 5000},
                                TimeUpdate{"b", "k", "\"new\"", 500, 3000},
                                TimeUpdate{"b", "missing", "\"new\"", 1, 1}})
                  .ok());
  IndexEntry e = *index->Get("b", "k").value();
  EXPECT_EQ(e.validated_at, 1000);  // 500 is older than what the row has
  EXPECT_EQ(e.accessed_at, 3000);
}

TEST_F(IndexTest, MigratesVersion1AndKeepsItsRows) {
  // A cache directory written by the read-path release (schema 1).
  Sql(R"sql(
CREATE TABLE entries (
  id INTEGER PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL,
  file_name TEXT NOT NULL UNIQUE, etag TEXT NOT NULL, size INTEGER NOT NULL,
  mtime INTEGER NOT NULL, validated_at INTEGER NOT NULL, accessed_at INTEGER NOT NULL,
  state INTEGER NOT NULL DEFAULT 0, chunk_size INTEGER NOT NULL DEFAULT 0, chunks BLOB,
  UNIQUE (bucket, key));
CREATE INDEX entries_by_access ON entries (accessed_at);
INSERT INTO entries (bucket, key, file_name, etag, size, mtime, validated_at, accessed_at)
  VALUES ('b', 'old', 'f-old', '"e1"', 42, 1700000000, 1000, 2000);
PRAGMA user_version = 1;
)sql");
  std::unique_ptr<Index> index = MustOpen();
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->entries(), 1u);
  EXPECT_EQ(index->bytes(), 42u);
  IndexEntry e = *index->Get("b", "old").value();
  EXPECT_EQ(e.etag, "\"e1\"");
  EXPECT_EQ(e.validated_at, 1000);
  EXPECT_EQ(e.state, EntryState::kClean);
  EXPECT_EQ(e.dirty_gen, 0);
  EXPECT_EQ(e.base_etag, "");
  EXPECT_TRUE(e.meta.empty());

  // The new columns work: a dirty mark keeps the ETag it started from and bumps the
  // generation; an upload of an older generation leaves the row DIRTY.
  DirtyMark mark;
  mark.bucket = "b";
  mark.key = "old";
  mark.file_name = "f-old";
  mark.local_mtime = 1700000100;
  mark.meta.mode = 0100644;
  ASSERT_EQ(index->MarkDirty(mark, nullptr).value(), 1);
  ASSERT_EQ(index->MarkDirty(mark, nullptr).value(), 2);
  e = *index->Get("b", "old").value();
  EXPECT_EQ(e.state, EntryState::kDirty);
  EXPECT_EQ(e.base_etag, "\"e1\"");
  EXPECT_EQ(e.meta.mode, 0100644u);
  EXPECT_FALSE(e.meta.uid.has_value());
  UploadRecord up;
  up.bucket = "b";
  up.key = "old";
  up.gen = 1;
  up.etag = "\"e2\"";
  up.size = 50;
  EXPECT_FALSE(index->RecordUpload(up).value());
  e = *index->Get("b", "old").value();
  EXPECT_EQ(e.state, EntryState::kDirty);
  EXPECT_EQ(e.base_etag, "\"e2\"");
  EXPECT_FALSE(index->DeleteClean("b", "old", nullptr).value());  // never dropped as clean
  up.gen = 2;
  EXPECT_TRUE(index->RecordUpload(up).value());
  e = *index->Get("b", "old").value();
  EXPECT_EQ(e.state, EntryState::kClean);
  EXPECT_EQ(e.etag, "\"e2\"");
  EXPECT_EQ(index->bytes(), 50u);

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 2);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST_F(IndexTest, RekeyReplacesTheTargetRowWhateverItsState) {
  std::unique_ptr<Index> index = MustOpen();
  ASSERT_TRUE(index->PutClean(Entry("from", 10, "\"a\""), nullptr).ok());
  DirtyMark mark;
  mark.bucket = "b";
  mark.key = "to";
  mark.file_name = "f-to";
  mark.size = 7;
  ASSERT_TRUE(index->MarkDirty(mark, nullptr).ok());
  EXPECT_EQ(index->entries(), 2u);
  Result<int64_t> gen = index->Rekey("b", "from", "to", "f-to", true, "", 0, nullptr);
  ASSERT_TRUE(gen.ok()) << gen.status().ToString();
  EXPECT_EQ(*gen, 1);
  EXPECT_FALSE(index->Get("b", "from").value().has_value());
  IndexEntry e = *index->Get("b", "to").value();
  EXPECT_EQ(e.state, EntryState::kDirty);
  EXPECT_EQ(e.size, 10u);
  EXPECT_EQ(e.file_name, "f-to");
  EXPECT_EQ(index->entries(), 1u);
  EXPECT_EQ(index->bytes(), 10u);
  EXPECT_EQ(index->Rekey("b", "none", "x", "f-x", false, "", 0, nullptr).status().code(), ENOENT);
}

TEST_F(IndexTest, LazyMarksOnlyWhereNoRowOnDiskCanContradictThem) {
  std::unique_ptr<Index> index = MustOpen();
  const std::string wal = path_ + "-wal";  // the database is in WAL mode
  DirtyMark mark;
  mark.bucket = "b";
  mark.key = "new";
  mark.file_name = "f-new";
  mark.size = 0;
  mark.allow_lazy = true;
  // Right after open, what was read may not be on disk yet: FULL.
  uint64_t synced = index->durable_commits();
  ASSERT_EQ(index->MarkDirty(mark, nullptr).value(), 1);
  EXPECT_EQ(index->durable_commits(), synced + 1);
  synced = index->durable_commits();
  mark.key = "new2";
  mark.file_name = "f-new2";
  ASSERT_EQ(index->MarkDirty(mark, nullptr).value(), 1);
  EXPECT_EQ(index->durable_commits(), synced);  // a new row: NORMAL
  EXPECT_EQ(index->Get("b", "new2").value()->state, EntryState::kDirty);

  // SyncLog syncs the log that holds the row, and changes nothing.
  EXPECT_GT(fs::file_size(wal), 0u);
  ASSERT_TRUE(index->SyncLog().ok());
  EXPECT_EQ(index->durable_commits(), synced + 1);
  EXPECT_EQ(index->Get("b", "new2").value()->dirty_gen, 1);
  synced = index->durable_commits();

  // A DIRTY row is DIRTY on disk already: NORMAL.
  ASSERT_EQ(index->MarkDirty(mark, nullptr).value(), 2);
  EXPECT_EQ(index->durable_commits(), synced);
  // A non-empty CLEAN row is always marked FULL, whatever the caller allows: its file may hold
  // the change as soon as the mark returns.
  UploadRecord up;
  up.bucket = "b";
  up.key = "new2";
  up.gen = 2;
  up.etag = "\"e\"";
  up.size = 3;
  ASSERT_TRUE(index->RecordUpload(up).value());
  ASSERT_EQ(index->MarkDirty(mark, nullptr).value(), 3);
  EXPECT_EQ(index->durable_commits(), synced + 1);
  synced = index->durable_commits();

  // After a row left the index (NORMAL), a new row of any key is FULL until the next sync:
  // the old row could otherwise come back after a power loss, naming the new file.
  ASSERT_TRUE(index->PutClean(Entry("gone", 1, "\"g\""), nullptr).ok());
  ASSERT_TRUE(index->DeleteClean("b", "gone", nullptr).value());
  mark.key = "gone";
  mark.file_name = "f-gone";
  ASSERT_EQ(index->MarkDirty(mark, nullptr).value(), 1);
  EXPECT_EQ(index->durable_commits(), synced + 1);
  mark.key = "new3";
  mark.file_name = "f-new3";
  ASSERT_EQ(index->MarkDirty(mark, nullptr).value(), 1);
  EXPECT_EQ(index->durable_commits(), synced + 1);  // that FULL commit synced the delete
  synced = index->durable_commits();

  // An empty CLEAN row may be marked lazily (a change makes the file non-empty, which its size
  // check catches), but not once a row was replaced since the last sync.
  ASSERT_TRUE(index->PutClean(Entry("empty", 0, "\"z\""), nullptr).ok());
  mark.key = "empty";
  mark.file_name = "f-empty";
  ASSERT_TRUE(index->MarkDirty(mark, nullptr).ok());
  EXPECT_EQ(index->durable_commits(), synced);
  ASSERT_TRUE(index->PutClean(Entry("empty2", 0, "\"z\""), nullptr).ok());
  ASSERT_TRUE(index->PutClean(Entry("empty2", 0, "\"y\""), nullptr).ok());  // replaced
  mark.key = "empty2";
  mark.file_name = "f-empty2";
  ASSERT_TRUE(index->MarkDirty(mark, nullptr).ok());
  EXPECT_EQ(index->durable_commits(), synced + 1);
}

}  // namespace
}  // namespace s3cachefs::cache
