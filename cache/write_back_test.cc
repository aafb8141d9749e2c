// Tests of the write path of ObjectCache: OpenWrite, MarkDirty, Flush, sync and async uploads,
// retries, draining and crash recovery, against FakeS3 (fixture: cache/write_back_test_util.h).
#include "cache/write_back_test_util.h"

namespace s3cachefs::cache {
namespace write_back_test {
namespace {

TEST_F(WriteBackTest, CreateWriteFlushSyncUploadsBytesAndMetadata) {
  OpenCache();
  std::shared_ptr<WritableFile> f = MustOpenWrite("dir/new.txt", false, true);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(gets(), 1);  // the 404 that said it is new
  FileMeta meta;
  meta.mode = 0100640;
  meta.uid = 1000;
  meta.gid = 100;
  meta.mtime = 1700000000;
  Write(*f, "hello world", 0);
  // After the write, as cp -p does (a write resets an earlier explicit mtime).
  ASSERT_TRUE(cache_->SetMeta("dir/new.txt", meta).ok());
  EXPECT_EQ(fake_.calls(Op::kCopy), 0);  // DIRTY: it goes with the upload
  EXPECT_EQ(cache_->Local("dir/new.txt")->mtime, 1700000000);
  ASSERT_TRUE(f->Flush().ok());

  std::optional<FakeS3::Object> o = fake_.Find("dir/new.txt");
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->body, "hello world");
  EXPECT_EQ(o->metadata.at("mode"), "33184");
  EXPECT_EQ(o->metadata.at("uid"), "1000");
  EXPECT_EQ(o->metadata.at("gid"), "100");
  EXPECT_EQ(o->metadata.at("mtime"), "1700000000");
  EXPECT_EQ(fake_.calls(Op::kHead), 0);  // a new file has nothing to conflict with
  Row row = GetRow("dir/new.txt");
  EXPECT_EQ(row.state, 0);
  EXPECT_EQ(row.etag, FakeS3::Md5Etag("hello world"));
  EXPECT_EQ(row.size, 11u);
  CacheCounters c = cache_->counters();
  EXPECT_EQ(c.uploads, 1u);
  EXPECT_EQ(c.bytes_uploaded, 11u);
  EXPECT_EQ(c.dirty_entries, 0u);
  EXPECT_EQ(c.upload_failures, 0u);
  EXPECT_TRUE(f->Flush().ok());  // nothing changed since: no second upload
  EXPECT_EQ(fake_.calls(Op::kPut), 1);

  f.reset();
  EXPECT_FALSE(cache_->Local("dir/new.txt").has_value());
  uint64_t hits = cache_->counters().hits;
  EXPECT_EQ(MustRead("dir/new.txt"), "hello world");
  EXPECT_EQ(gets(), 1);  // served from the uploaded copy
  EXPECT_EQ(cache_->counters().hits, hits + 1);
  ASSERT_TRUE(cache_->Meta("dir/new.txt").has_value());
  EXPECT_EQ(cache_->Meta("dir/new.txt")->uid, 1000u);
}

// A new key in sync mode: S3 has the data when close returns, so nothing is fsynced at all.
// Over a cached copy the DIRTY mark and the new file's name are synced before the change.
TEST_F(WriteBackTest, NewFileInSyncModeIsNotFsynced) {
  fake_.Seed("cached", "old body");
  OpenCache();
  ASSERT_EQ(MustRead("cached"), "old body");
  const uint64_t syncs = cache_->counters().write_syncs;
  std::shared_ptr<WritableFile> f = MustOpenWrite("new", true, true);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(GetRow("new").state, 1);  // DIRTY from the create on (committed, not synced)
  Write(*f, "data", 0);
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_EQ(fake_.Body("new"), "data");
  EXPECT_EQ(GetRow("new").state, 0);
  EXPECT_EQ(cache_->counters().write_syncs, syncs);

  std::shared_ptr<WritableFile> g = MustOpenWrite("cached", true, false);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(cache_->counters().write_syncs, syncs + 2);  // the FULL mark and the directory
  Write(*g, "new body", 0);
  ASSERT_TRUE(g->Flush().ok());
  EXPECT_EQ(fake_.Body("cached"), "new body");
}

// When the upload of a new file fails, close reports EIO and the data waits locally: data,
// name and row are synced first (fdatasync, directory, index).
TEST_F(WriteBackTest, FailedSyncUploadOfNewFileSyncsItLocally) {
  OpenCache();
  std::atomic<bool> fail{true};
  client_.before_put = [&](const std::string&) {
    return fail ? Status::Error(EIO, "injected") : Status::Ok();
  };
  const uint64_t syncs = cache_->counters().write_syncs;
  std::shared_ptr<WritableFile> f = MustOpenWrite("new", true, true);
  ASSERT_NE(f, nullptr);
  Write(*f, "data", 0);
  EXPECT_EQ(f->Flush().code(), EIO);
  EXPECT_EQ(cache_->counters().write_syncs, syncs + 3);
  EXPECT_EQ(GetRow("new").state, 1);
  fail = false;
  f.reset();
  EXPECT_TRUE(WaitFor([&] { return fake_.Find("new").has_value(); }));
  EXPECT_EQ(fake_.Body("new"), "data");
}

// Async mode promises at close that data and DIRTY row are on disk: a new file is synced then
// (data, directory, index: three fsyncs), not at its create.
TEST_F(WriteBackTest, AsyncNewFileIsSyncedAtFlushNotAtCreate) {
  config_.write_back = WriteBackMode::kAsync;
  OpenCache();
  std::atomic<bool> hold{true};
  std::atomic<bool> putting{false};
  client_.before_put = [&](const std::string&) {
    putting = true;
    while (hold) std::this_thread::sleep_for(1ms);
    return Status::Ok();
  };
  const uint64_t syncs = cache_->counters().write_syncs;
  std::shared_ptr<WritableFile> f = MustOpenWrite("new", true, true);
  ASSERT_NE(f, nullptr);
  Write(*f, "data", 0);
  EXPECT_EQ(cache_->counters().write_syncs, syncs);
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_EQ(cache_->counters().write_syncs, syncs + 3);
  EXPECT_EQ(GetRow("new").state, 1);
  // A change while the upload runs is a new generation of a row that is DIRTY on disk: its
  // mark needs no sync; the Flush syncs the data, and name and row need nothing more.
  ASSERT_TRUE(WaitFor([&] { return putting.load(); }));
  Write(*f, "more", 4);
  EXPECT_EQ(cache_->counters().write_syncs, syncs + 3);
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_EQ(cache_->counters().write_syncs, syncs + 4);
  ASSERT_TRUE(f->Flush().ok());  // nothing changed through f since: nothing to sync
  EXPECT_EQ(cache_->counters().write_syncs, syncs + 4);
  hold = false;
  f.reset();
  ASSERT_TRUE(cache_->DrainUploads(10s).ok());
  EXPECT_EQ(fake_.Body("new"), "datamore");
}

// The conflict check is skipped while the ETag it would check against is one our own upload
// got less than `revalidate` ago, as a cached copy validated that recently is served unchecked.
TEST_F(WriteBackTest, NoConflictCheckAgainstOwnRecentUpload) {
  config_.revalidate = 30s;
  OpenCache();
  const uint64_t syncs = cache_->counters().write_syncs;
  std::shared_ptr<WritableFile> f = MustOpenWrite("k", true, true);
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(f->Flush().ok());  // a shell's `>`: the empty file first (close after dup2)
  EXPECT_EQ(GetRow("k").state, 0);
  Write(*f, "data", 0);
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_EQ(fake_.Body("k"), "data");
  EXPECT_EQ(fake_.calls(Op::kPut), 2);
  EXPECT_EQ(fake_.calls(Op::kHead), 0);
  // Nothing synced: S3 had each version at its close, and the mark over the empty CLEAN row
  // could not let a changed file pass for it (its size check would catch it).
  EXPECT_EQ(cache_->counters().write_syncs, syncs);
  Write(*f, "+", 4);  // over a non-empty CLEAN row: a synced mark
  EXPECT_EQ(cache_->counters().write_syncs, syncs + 1);
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_EQ(fake_.calls(Op::kHead), 0);
  Advance(31s);
  Write(*f, "more", 5);
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_EQ(fake_.calls(Op::kHead), 1);  // too old to vouch for S3
  EXPECT_EQ(fake_.Body("k"), "data+more");
}

// Async: a write over the empty CLEAN row left by uploading a new empty file is marked without
// a sync, so the Flush that promises durability syncs the row too (data, then index).
TEST_F(WriteBackTest, AsyncWriteAfterEmptyUploadSyncsTheMarkAtFlush) {
  config_.write_back = WriteBackMode::kAsync;
  OpenCache();
  std::shared_ptr<WritableFile> f = MustOpenWrite("k", true, true);
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(f->Flush().ok());
  ASSERT_TRUE(WaitFor([&] { return GetRow("k").state == 0; }));
  const uint64_t syncs = cache_->counters().write_syncs;
  Write(*f, "data", 0);
  EXPECT_EQ(cache_->counters().write_syncs, syncs);
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_EQ(cache_->counters().write_syncs, syncs + 2);  // data and index (the name was synced)
  f.reset();
  ASSERT_TRUE(cache_->DrainUploads(10s).ok());
  EXPECT_EQ(fake_.Body("k"), "data");
}

// A write announced (MarkDirty) before an upload took its snapshot, landing and flushed while
// that upload runs: the upload must not mark the row CLEAN, or the write never reaches S3.
TEST_F(WriteBackTest, WriteAnnouncedBeforeUploadSnapshotIsUploadedLater) {
  config_.write_back = WriteBackMode::kAsync;
  OpenCache();
  std::atomic<bool> hold{true};
  std::atomic<int> putting{0};
  client_.before_put = [&](const std::string&) {
    if (putting.fetch_add(1) == 0) {
      while (hold) std::this_thread::sleep_for(1ms);
    }
    return Status::Ok();
  };
  std::shared_ptr<WritableFile> f1 = MustOpenWrite("k", true, true);
  std::shared_ptr<WritableFile> f2 = MustOpenWrite("k", false, false);
  ASSERT_NE(f1, nullptr);
  ASSERT_NE(f2, nullptr);
  Write(*f1, "aaaa", 0);
  ASSERT_TRUE(f2->MarkDirty().ok());  // f2's write is announced...
  ASSERT_TRUE(f1->Flush().ok());      // ...then an upload starts
  ASSERT_TRUE(WaitFor([&] { return putting.load() > 0; }));
  ASSERT_EQ(::pwrite(f2->fd(), "bbbb", 4, 4), 4);  // ...and f2's bytes land after its snapshot
  ASSERT_TRUE(f2->Flush().ok());
  hold = false;
  f1.reset();
  f2.reset();
  ASSERT_TRUE(cache_->DrainUploads(10s).ok());
  EXPECT_EQ(fake_.Body("k"), "aaaabbbb");
  EXPECT_EQ(GetRow("k").state, 0);
}

TEST_F(WriteBackTest, TruncateNeverDownloads) {
  fake_.Seed("k", MakeBody(5000, 1));
  OpenCache();
  std::shared_ptr<WritableFile> f = MustOpenWrite("k", true, false);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(GetRow("k").state, 1);  // DIRTY from the open on: it is empty now
  Write(*f, "new", 0);
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_EQ(gets(), 0);
  EXPECT_EQ(fake_.Body("k"), "new");
  EXPECT_EQ(GetRow("k").state, 0);
}

TEST_F(WriteBackTest, AppendToUncachedObjectFetchesItFirst) {
  std::string old = MakeBody(3 * (64 << 10) + 5, 2);
  std::string etag = fake_.Seed("k", old);
  OpenCache();
  std::shared_ptr<WritableFile> f = MustOpenWrite("k", false, false);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(gets(), 4);  // the whole object, in chunks
  Write(*f, "+tail", static_cast<off_t>(old.size()));
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_EQ(fake_.Body("k"), old + "+tail");
  EXPECT_EQ(fake_.calls(Op::kHead), 1);  // the conflict check against the ETag it started from
  EXPECT_EQ(gets(), 4);

  Result<std::shared_ptr<WritableFile>> missing = cache_->OpenWrite("none", false, false, {});
  EXPECT_EQ(missing.status().code(), ENOENT);
}

TEST_F(WriteBackTest, LargeFileGoesMultipart) {
  fake_.set_min_part_size(1024);
  config_.transfer.multipart_threshold = 1 << 20;
  config_.transfer.part_size = 5 << 20;
  config_.transfer.parallelism = 2;
  std::string body = MakeBody((11 << 20) + 123, 3);
  OpenCache();
  std::shared_ptr<WritableFile> f = MustOpenWrite("big", true, true);
  ASSERT_NE(f, nullptr);
  Write(*f, body, 0);
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_EQ(fake_.calls(Op::kCreateMultipart), 1);
  EXPECT_EQ(fake_.calls(Op::kUploadPart), 3);
  EXPECT_EQ(fake_.calls(Op::kComplete), 1);
  EXPECT_EQ(fake_.calls(Op::kPut), 0);
  std::optional<FakeS3::Object> o = fake_.Find("big");
  ASSERT_TRUE(o.has_value());
  EXPECT_TRUE(o->body == body);
  EXPECT_EQ(o->etag.substr(o->etag.size() - 3), "-3\"");
  EXPECT_EQ(GetRow("big").etag, o->etag);
  EXPECT_EQ(cache_->counters().bytes_uploaded, body.size());
}

TEST_F(WriteBackTest, SyncUploadFailureKeepsDataAndRetriesInBackground) {
  OpenCache();
  fake_.FailNext(Op::kPut, 1, Status::Error(EIO, "injected outage"));
  std::shared_ptr<WritableFile> f = MustOpenWrite("k", true, true);
  ASSERT_NE(f, nullptr);
  Write(*f, "precious", 0);
  Status s = f->Flush();
  EXPECT_EQ(s.code(), EIO);
  EXPECT_NE(s.message().find("upload of k failed"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("injected outage"), std::string::npos) << s.message();
  EXPECT_EQ(cache_->counters().upload_failures, 1u);
  // The retry lands within the backoff.
  ASSERT_TRUE(WaitFor([&] { return fake_.Body("k") == "precious"; }));
  ASSERT_TRUE(WaitFor([&] { return GetRow("k").state == 0; }));
  EXPECT_EQ(fake_.calls(Op::kPut), 2);
  EXPECT_EQ(cache_->counters().dirty_entries, 0u);
  EXPECT_EQ(cache_->pending_uploads(), 0u);
}

TEST_F(WriteBackTest, FailedUploadStaysDirtyUntilItSucceeds) {
  PutsOffline();
  OpenCache();
  std::shared_ptr<WritableFile> f = MustOpenWrite("k", true, true);
  Write(*f, "data", 0);
  EXPECT_EQ(f->Flush().code(), EIO);
  ASSERT_TRUE(WaitFor([&] { return cache_->counters().upload_failures >= 3; }));
  Row row = GetRow("k");
  EXPECT_EQ(row.state, 1);
  EXPECT_FALSE(fake_.Exists("k"));
  EXPECT_EQ(cache_->counters().dirty_entries, 1u);
  PutsBackOnline();
  ASSERT_TRUE(WaitFor([&] { return fake_.Body("k") == "data"; }));
  ASSERT_TRUE(WaitFor([&] { return GetRow("k").state == 0; }));
}

TEST_F(WriteBackTest, AsyncFlushReturnsBeforeUploadAndDrainWaits) {
  config_.write_back = WriteBackMode::kAsync;
  std::atomic<int> slow{0};
  client_.before_put = [&](const std::string&) {
    ++slow;
    std::this_thread::sleep_for(150ms);
    return Status::Ok();
  };
  OpenCache();
  for (int i = 0; i < 3; ++i) {
    std::shared_ptr<WritableFile> f = MustOpenWrite("f" + std::to_string(i), true, true);
    Write(*f, "body" + std::to_string(i), 0);
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(f->Flush().ok());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
  }
  EXPECT_GE(cache_->pending_uploads(), 1u);
  EXPECT_FALSE(fake_.Exists("f2"));
  std::optional<LocalFile> local = cache_->Local("f2");
  ASSERT_TRUE(local.has_value());
  EXPECT_EQ(local->size, 5u);
  ASSERT_TRUE(cache_->DrainUploads(10s).ok());
  EXPECT_EQ(cache_->pending_uploads(), 0u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(fake_.Body("f" + std::to_string(i)), "body" + std::to_string(i));
  }
  EXPECT_FALSE(cache_->Local("f2").has_value());
  EXPECT_EQ(slow.load(), 3);
}

TEST_F(WriteBackTest, DrainGivesUpAfterTimeoutAndDataStaysDirty) {
  config_.write_back = WriteBackMode::kAsync;
  client_.before_put = [](const std::string&) { return Status::Error(ECONNREFUSED, "offline"); };
  OpenCache();
  std::shared_ptr<WritableFile> f = MustOpenWrite("k", true, true);
  Write(*f, "data", 0);
  ASSERT_TRUE(f->Flush().ok());
  auto t0 = std::chrono::steady_clock::now();
  Status s = cache_->DrainUploads(1s);
  EXPECT_EQ(s.code(), ETIMEDOUT);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_EQ(GetRow("k").state, 1);
}

TEST_F(WriteBackTest, AsyncChangesSurviveShutdownAndUploadAtNextStart) {
  config_.write_back = WriteBackMode::kAsync;
  PutsOffline();
  OpenCache();
  std::string body = MakeBody(100000, 4);
  {
    std::shared_ptr<WritableFile> f = MustOpenWrite("flushed", true, true);
    Write(*f, body, 0);
    ASSERT_TRUE(f->Flush().ok());
  }
  // Written but never flushed nor closed: as if the daemon died mid-write.
  std::shared_ptr<WritableFile> open_writer = MustOpenWrite("unflushed", false, true);
  Write(*open_writer, "half", 0);
  cache_.reset();  // no drain
  EXPECT_EQ(open_writer->MarkDirty().code(), ESHUTDOWN);
  EXPECT_FALSE(fake_.Exists("flushed"));
  EXPECT_EQ(GetRow("flushed").state, 1);
  EXPECT_EQ(GetRow("unflushed").state, 1);
  // As an older writer of the schema could leave it: UPLOADING counts as DIRTY.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/index.sqlite").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE entries SET state = 2 WHERE key = 'unflushed'", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }

  PutsBackOnline();
  ASSERT_TRUE(LogToFile(LogPath()));
  OpenCache();
  ASSERT_TRUE(WaitFor([&] { return fake_.Exists("flushed") && fake_.Exists("unflushed"); }));
  EXPECT_TRUE(fake_.Body("flushed") == body);
  EXPECT_EQ(fake_.Body("unflushed"), "half");
  ASSERT_TRUE(WaitFor([&] { return GetRow("flushed").state == 0; }));
  ASSERT_TRUE(WaitFor([&] { return GetRow("unflushed").state == 0; }));
  std::string log = ReadLog();
  EXPECT_NE(log.find("resuming upload of flushed (100000 bytes"), std::string::npos) << log;
  EXPECT_NE(log.find("resuming upload of unflushed"), std::string::npos) << log;
  int gets_before = gets();
  EXPECT_TRUE(MustRead("flushed") == body);
  EXPECT_EQ(gets(), gets_before);
}

// Create (open with O_CREAT | O_TRUNC) records the new file's mode and owner with its DIRTY
// mark: the row has them before any write or Flush, and a daemon that stops there uploads them
// at its next start. Over a file another writer holds open, Create changes its metadata too.
TEST_F(WriteBackTest, CreateRecordsItsMetadataWithTheDirtyMark) {
  config_.write_back = WriteBackMode::kAsync;
  PutsOffline();
  OpenCache();
  FileMeta meta;
  meta.mode = 0100600;
  meta.uid = 1234;
  meta.gid = 56;
  meta.mtime = 1700000000;
  Result<std::shared_ptr<WritableFile>> f = cache_->Create("made", meta);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(GetRow("made").state, 1);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2((dir_ + "/index.sqlite").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(
                  db, "SELECT meta_mode, meta_uid, meta_gid FROM entries WHERE key = 'made'", -1,
                  &st, nullptr),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int64(st, 0), 0100600);
    EXPECT_EQ(sqlite3_column_int64(st, 1), 1234);
    EXPECT_EQ(sqlite3_column_int64(st, 2), 56);
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  ASSERT_TRUE(cache_->Meta("made").has_value());
  EXPECT_EQ(cache_->Meta("made")->uid, 1234u);

  // A second create while the first writer is open: the same file, the new metadata.
  FileMeta again = meta;
  again.mode = 0100644;
  Result<std::shared_ptr<WritableFile>> g = cache_->Create("made", again);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(cache_->Meta("made")->mode, 0100644u);
  Write(**g, "data", 0);
  ASSERT_TRUE((*g)->Flush().ok());  // async: recorded locally, the upload fails offline
  f->reset();
  g->reset();
  cache_.reset();
  EXPECT_FALSE(fake_.Exists("made"));

  PutsBackOnline();
  OpenCache();
  ASSERT_TRUE(WaitFor([&] { return fake_.Exists("made"); }));
  std::optional<FakeS3::Object> o = fake_.Find("made");
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->body, "data");
  EXPECT_EQ(o->metadata.at("mode"), "33188");  // 0100644
  EXPECT_EQ(o->metadata.at("uid"), "1234");
  EXPECT_EQ(o->metadata.at("gid"), "56");
}

// A writer whose writes bypass MarkDirty (FUSE passthrough): every Flush uploads, but the row
// stays DIRTY until EndUnseenWrites, so a write after a Flush is never behind a CLEAN row; the
// Flush after EndUnseenWrites uploads the last bytes and may mark it clean.
TEST_F(WriteBackTest, UnseenWritesKeepTheRowDirtyUntilTheirEnd) {
  fake_.Seed("shared", "old body");
  OpenCache();
  ASSERT_EQ(MustRead("shared"), "old body");
  std::shared_ptr<WritableFile> f = MustOpenWrite("shared", false, false);
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(f->BeginUnseenWrites().ok());
  EXPECT_EQ(GetRow("shared").state, 1);
  auto put = [&](const std::string& data, off_t offset) {
    ASSERT_EQ(::pwrite(f->fd(), data.data(), data.size(), offset),
              static_cast<ssize_t>(data.size()));
  };
  put("new", 0);
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_EQ(fake_.Body("shared"), "new body");
  EXPECT_EQ(GetRow("shared").state, 1);  // still DIRTY: more unseen writes may come
  put(" and more", 8);
  ASSERT_TRUE(f->Flush().ok());  // uploads again although nothing called MarkDirty
  EXPECT_EQ(fake_.Body("shared"), "new body and more");
  EXPECT_EQ(GetRow("shared").state, 1);
  put("NEW", 0);
  f->EndUnseenWrites();
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_EQ(fake_.Body("shared"), "NEW body and more");
  EXPECT_EQ(GetRow("shared").state, 0);
  const int puts = fake_.calls(Op::kPut);
  ASSERT_TRUE(f->Flush().ok());  // nothing unseen any more: no upload
  EXPECT_EQ(fake_.calls(Op::kPut), puts);
}

TEST_F(WriteBackTest, DirtyEntrySurvivesForgetAndRevalidationAndWarnsAtUpload) {
  std::string v1 = "version one;";
  fake_.Seed("k", v1);
  OpenCache();
  std::shared_ptr<WritableFile> f = MustOpenWrite("k", false, false);
  ASSERT_NE(f, nullptr);
  Write(*f, " local", static_cast<off_t>(v1.size()));
  std::string remote_etag = fake_.Seed("k", "changed remotely");
  ASSERT_TRUE(cache_->Forget("k").ok());
  EXPECT_EQ(GetRow("k").state, 1);
  EXPECT_TRUE(fs::exists(ObjectFile("k")));
  Advance(60s);
  int gets_before = gets();
  EXPECT_EQ(MustRead("k"), v1 + " local");  // the local file, no revalidation
  EXPECT_EQ(gets(), gets_before);

  ASSERT_TRUE(LogToFile(LogPath()));
  ASSERT_TRUE(f->Flush().ok());
  LogToStderr();
  EXPECT_EQ(fake_.Body("k"), v1 + " local");
  EXPECT_NE(ReadLog().find("k changed in S3 while it had local changes; the local version wins "
                           "(remote ETag " +
                           remote_etag + ")"),
            std::string::npos)
      << ReadLog();
}

TEST_F(WriteBackTest, ReadersSeeWritesOfOpenWriters) {
  fake_.Seed("k", "abc");
  OpenCache();
  std::shared_ptr<WritableFile> a = MustOpenWrite("k", false, false);
  std::shared_ptr<WritableFile> b = MustOpenWrite("k", false, false);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  struct stat sa, sb;
  ASSERT_EQ(::fstat(a->fd(), &sa), 0);
  ASSERT_EQ(::fstat(b->fd(), &sb), 0);
  EXPECT_EQ(sa.st_ino, sb.st_ino);
  Write(*a, "X", 1);
  EXPECT_EQ(MustRead("k"), "aXc");
  Write(*b, "YZ", 3);
  std::optional<LocalFile> local = cache_->Local("k");
  ASSERT_TRUE(local.has_value());
  EXPECT_EQ(local->size, 5u);
  ASSERT_TRUE(a->Flush().ok());
  // b announced a change and has not flushed: the row stays DIRTY until it does.
  EXPECT_EQ(GetRow("k").state, 1);
  ASSERT_TRUE(b->Flush().ok());
  EXPECT_EQ(fake_.Body("k"), "aXcYZ");
  EXPECT_EQ(GetRow("k").state, 0);
  EXPECT_EQ(gets(), 1);
}

TEST_F(WriteBackTest, FlushDuringUploadWaitsAndUploadsAgain) {
  std::atomic<int> puts{0};
  testing::Gate gate;
  client_.before_put = [&](const std::string&) {
    if (puts++ == 0) gate.Wait();
    return Status::Ok();
  };
  OpenCache();
  std::shared_ptr<WritableFile> a = MustOpenWrite("k", true, true);
  std::shared_ptr<WritableFile> b = MustOpenWrite("k", false, false);
  Write(*a, "first", 0);
  std::thread first([&] { EXPECT_TRUE(a->Flush().ok()); });
  ASSERT_TRUE(WaitFor([&] { return puts.load() == 1; }));
  Write(*b, "second", 0);  // during the upload: a new generation
  std::thread second([&] { EXPECT_TRUE(b->Flush().ok()); });
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(puts.load(), 1);  // waits for the one in flight
  gate.Open();
  first.join();
  second.join();
  EXPECT_EQ(puts.load(), 2);
  EXPECT_EQ(fake_.Body("k"), "second");
  EXPECT_EQ(GetRow("k").state, 0);
  EXPECT_EQ(GetRow("k").etag, FakeS3::Md5Etag("second"));
}

}  // namespace
}  // namespace write_back_test
}  // namespace s3cachefs::cache
