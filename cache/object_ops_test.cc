// Tests of ObjectCache's whole-object operations with local changes: Remove, Rename, SetMeta,
// LocalUnder, and a full cache disk (fixture: cache/write_back_test_util.h).
#include <sys/mount.h>

#include <cstring>

#include "cache/write_back_test_util.h"

namespace s3cachefs::cache {
namespace write_back_test {
namespace {

class ObjectOpsTest : public WriteBackTest {};

TEST_F(ObjectOpsTest, RemoveCancelsPendingUploadAndLaterFlushDoesNotRecreate) {
  config_.write_back = WriteBackMode::kAsync;
  PutsOffline();
  OpenCache();
  std::shared_ptr<WritableFile> f = MustOpenWrite("k", true, true);
  Write(*f, "doomed", 0);
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_GE(cache_->pending_uploads(), 1u);
  ASSERT_TRUE(cache_->Remove("k").ok());
  EXPECT_EQ(fake_.calls(Op::kDelete), 1);
  EXPECT_EQ(GetRow("k").state, -1);
  EXPECT_FALSE(fs::exists(ObjectFile("k")));
  EXPECT_FALSE(cache_->Local("k").has_value());
  ASSERT_TRUE(WaitFor([&] { return cache_->pending_uploads() == 0; }));
  PutsBackOnline();
  Write(*f, "more", 6);  // the writer keeps its fd
  EXPECT_TRUE(f->Flush().ok());
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(fake_.Exists("k"));
  EXPECT_EQ(cache_->counters().dirty_entries, 0u);
  EXPECT_TRUE(cache_->Remove("never existed").ok());
}

TEST_F(ObjectOpsTest, RenameCleanCopiesServerSideAndMovesCachedCopy) {
  std::string body = MakeBody(70000, 5);
  fake_.Seed("a", body, {{"mode", "33188"}, {"color", "blue"}});
  OpenCache();
  EXPECT_EQ(MustRead("a"), body);
  ASSERT_TRUE(WaitFor([&] { return cache_->counters().entries == 1; }));  // committed
  int gets_before = gets();
  ASSERT_TRUE(cache_->Rename("a", "b").ok());
  EXPECT_EQ(fake_.calls(Op::kCopy), 1);
  EXPECT_FALSE(fake_.Exists("a"));
  std::optional<FakeS3::Object> o = fake_.Find("b");
  ASSERT_TRUE(o.has_value());
  EXPECT_TRUE(o->body == body);
  EXPECT_EQ(o->metadata.at("color"), "blue");
  EXPECT_EQ(GetRow("a").state, -1);
  EXPECT_EQ(GetRow("b").state, 0);
  EXPECT_FALSE(fs::exists(ObjectFile("a")));
  uint64_t hits = cache_->counters().hits;
  EXPECT_TRUE(MustRead("b") == body);
  EXPECT_EQ(gets(), gets_before);
  EXPECT_EQ(cache_->counters().hits, hits + 1);
  ASSERT_TRUE(cache_->Meta("b").has_value());
  EXPECT_EQ(cache_->Meta("b")->mode, 33188u);
  EXPECT_FALSE(cache_->Meta("a").has_value());

  EXPECT_EQ(cache_->Rename("nothing", "x").code(), ENOENT);
}

TEST_F(ObjectOpsTest, RenameDirtyUploadsUnderNewKeyOnly) {
  OpenCache();
  std::shared_ptr<WritableFile> f = MustOpenWrite("x", false, true);
  ASSERT_NE(f, nullptr);
  Write(*f, "moving", 0);
  ASSERT_TRUE(cache_->Rename("x", "y").ok());
  EXPECT_EQ(fake_.Keys(), std::vector<std::string>{"y"});
  EXPECT_EQ(fake_.Body("y"), "moving");
  EXPECT_EQ(fake_.calls(Op::kCopy), 0);
  EXPECT_FALSE(cache_->Local("x").has_value());
  EXPECT_TRUE(cache_->Local("y").has_value());  // its writer is still open
  // The open writer follows the entry: its next changes go to y.
  Write(*f, "!", 6);
  ASSERT_TRUE(f->Flush().ok());
  EXPECT_EQ(fake_.Body("y"), "moving!");
  EXPECT_FALSE(fake_.Exists("x"));
  EXPECT_EQ(GetRow("x").state, -1);
  EXPECT_EQ(GetRow("y").state, 0);
}

TEST_F(ObjectOpsTest, RenameOverDirtyTargetReplacesIt) {
  config_.write_back = WriteBackMode::kAsync;
  PutsOffline();
  fake_.Seed("src", "source body");
  OpenCache();
  std::shared_ptr<WritableFile> t = MustOpenWrite("dst", true, true);
  Write(*t, "target changes", 0);
  ASSERT_TRUE(t->Flush().ok());
  ASSERT_TRUE(cache_->Rename("src", "dst").ok());
  PutsBackOnline();
  ASSERT_TRUE(t->Flush().ok());  // removed: does nothing
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(cache_->DrainUploads(5s).ok());
  EXPECT_EQ(fake_.Body("dst"), "source body");
  EXPECT_FALSE(fake_.Exists("src"));
  EXPECT_EQ(MustRead("dst"), "source body");
}

TEST_F(ObjectOpsTest, SetMetaOnCleanCopiesInPlaceAndKeepsCachedBody) {
  std::string body = MakeBody(1000, 6);
  std::string etag = fake_.Seed("k", body, {{"mode", "33188"}, {"other", "kept"}}, "text/plain");
  OpenCache();
  EXPECT_EQ(MustRead("k"), body);
  FileMeta meta;
  meta.uid = 1000;
  ASSERT_TRUE(cache_->SetMeta("k", meta).ok());
  EXPECT_EQ(fake_.calls(Op::kCopy), 1);
  std::optional<FakeS3::Object> o = fake_.Find("k");
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->metadata.at("uid"), "1000");
  EXPECT_EQ(o->metadata.at("mode"), "33188");
  EXPECT_EQ(o->metadata.at("other"), "kept");
  EXPECT_EQ(o->content_type, "text/plain");
  EXPECT_EQ(GetRow("k").etag, o->etag);
  ASSERT_TRUE(cache_->Meta("k").has_value());
  EXPECT_EQ(cache_->Meta("k")->uid, 1000u);
  EXPECT_EQ(cache_->Meta("k")->mode, 33188u);
  int gets_before = gets();
  EXPECT_EQ(MustRead("k"), body);
  EXPECT_EQ(gets(), gets_before);

  EXPECT_EQ(cache_->SetMeta("missing", meta).code(), ENOENT);
}

// A chmod while the first read's download is still arriving (its commit pending) must not let
// that commit record the old ETag and metadata afterwards.
TEST_F(ObjectOpsTest, SetMetaDuringDownloadIsNotUndoneByItsCommit) {
  std::string body = MakeBody(3 * (64 << 10) + 5, 7);  // four chunks
  fake_.Seed("k", body, {{"mode", "33188"}});
  testing::Gate gate;
  client_.before_get = [&](const s3::GetRequest& r) {
    if (r.range.has_value() && r.range->first > 0) gate.Wait();  // hold all but the first
    return Status::Ok();
  };
  OpenCache();
  Result<std::shared_ptr<ObjectHandle>> h = cache_->OpenRead("k", std::nullopt);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  FileMeta meta;
  meta.mode = 0100600;
  ASSERT_TRUE(cache_->SetMeta("k", meta).ok());
  gate.Open();
  EXPECT_EQ(ReadAll(**h).value(), body);  // the reader is served either way
  ASSERT_TRUE(WaitFor([&] { return cache_->counters().downloading == 0; }));

  std::optional<FakeS3::Object> o = fake_.Find("k");
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->metadata.at("mode"), "33152");
  Row row = GetRow("k");
  EXPECT_TRUE(row.state == -1 || row.etag == o->etag) << "row kept the old ETag " << row.etag;
  ASSERT_TRUE(cache_->Meta("k").has_value());
  EXPECT_EQ(cache_->Meta("k")->mode, 0100600u);
  EXPECT_EQ(MustRead("k"), body);
}

TEST_F(ObjectOpsTest, LocalUnderListsOpenAndDirtyKeys) {
  config_.write_back = WriteBackMode::kAsync;
  client_.before_put = [](const std::string&) { return Status::Error(EIO, "offline"); };
  OpenCache();
  for (const char* key : {"a/b/1", "a/b/2", "a/c", "z"}) {
    std::shared_ptr<WritableFile> f = MustOpenWrite(key, true, true);
    Write(*f, key, 0);
    ASSERT_TRUE(f->Flush().ok());
  }
  std::vector<LocalFile> under = cache_->LocalUnder("a/b/");
  ASSERT_EQ(under.size(), 2u);
  EXPECT_EQ(under[0].key, "a/b/1");
  EXPECT_EQ(under[0].size, 5u);
  EXPECT_EQ(under[1].key, "a/b/2");
  EXPECT_EQ(cache_->LocalUnder("a/").size(), 3u);
  EXPECT_EQ(cache_->LocalUnder("").size(), 4u);
  EXPECT_EQ(cache_->counters().dirty_entries, 4u);
}

// The cache on a 2 MiB tmpfs (needs root and CAP_SYS_ADMIN; skipped otherwise).
class FullDiskTest : public ObjectOpsTest {
 protected:
  void SetUp() override {
    ObjectOpsTest::SetUp();
    fs::create_directories(dir_);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=2m,mode=0700") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs: " << strerror(errno);
    }
    mounted_ = true;
  }
  void TearDown() override {
    handles_.clear();
    cache_.reset();
    if (mounted_) {
      EXPECT_EQ(::umount2(dir_.c_str(), MNT_DETACH), 0) << strerror(errno);
    }
    ObjectOpsTest::TearDown();
  }
  bool mounted_ = false;
};

TEST_F(FullDiskTest, FetchForAppendFailsWithEnospcAndKeepsOtherChanges) {
  config_.write_back = WriteBackMode::kAsync;
  PutsOffline();
  fake_.Seed("huge", MakeBody(3 << 20, 7));
  OpenCache();
  std::string kept = MakeBody(100000, 8);
  {
    std::shared_ptr<WritableFile> f = MustOpenWrite("kept", true, true);
    Write(*f, kept, 0);
    ASSERT_TRUE(f->Flush().ok());
  }
  Result<std::shared_ptr<WritableFile>> r = cache_->OpenWrite("huge", false, false, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ENOSPC) << r.status().ToString();
  EXPECT_EQ(GetRow("huge").state, -1);
  EXPECT_FALSE(cache_->Local("huge").has_value());
  size_t tmp_files = 0;
  for (const auto& e : fs::directory_iterator(dir_ + "/tmp")) tmp_files += e.exists() ? 1 : 0;
  EXPECT_EQ(tmp_files, 0u);

  PutsBackOnline();
  ASSERT_TRUE(cache_->DrainUploads(10s).ok());
  EXPECT_TRUE(fake_.Body("kept") == kept);
  EXPECT_EQ(GetRow("kept").state, 0);
}

}  // namespace
}  // namespace write_back_test
}  // namespace s3cachefs::cache
