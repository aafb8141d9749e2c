// Tests of ObjectCache against FakeS3 (tests/fake_s3.h), through HookedClient
// (cache/test_hooks.h), which can delay, hold, fail or corrupt single GETs.
#include "cache/object_cache.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <latch>
#include <mutex>
#include <thread>

#include "cache/object_cache_test_util.h"

namespace s3cachefs::cache {
namespace {

TEST_F(ObjectCacheTest, FirstOpenDownloadsSecondIsHit) {
  std::string body = MakeBody(1000, 1);
  std::string etag = fake_.Seed("dir/a.txt", body);
  OpenCache();
  std::shared_ptr<ObjectHandle> h = MustOpen("dir/a.txt");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->size(), 1000u);
  EXPECT_EQ(h->etag(), etag);
  EXPECT_EQ(ReadAll(*h).value(), body);
  EXPECT_EQ(gets(), 1);
  ASSERT_TRUE(Committed(1));  // in the background, after the last byte was served
  CacheCounters c = cache_->counters();
  EXPECT_EQ(c.misses, 1u);
  EXPECT_EQ(c.downloads, 1u);
  EXPECT_EQ(c.hits, 0u);
  EXPECT_EQ(c.entries, 1u);
  EXPECT_EQ(c.bytes_cached, 1000u);
  EXPECT_EQ(c.bytes_downloaded, 1000u);

  struct stat st;
  ASSERT_EQ(::stat(ObjectFile("dir/a.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1000);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  EXPECT_EQ(MustRead("dir/a.txt"), body);
  EXPECT_EQ(gets(), 1);
  EXPECT_EQ(cache_->counters().hits, 1u);
}

TEST_F(ObjectCacheTest, RevalidatesAfterWindowWithOneConditionalGet) {
  std::string body = MakeBody(5000, 2);
  fake_.Seed("k", body);
  OpenCache();
  EXPECT_EQ(MustRead("k"), body);
  Advance(29s);
  EXPECT_EQ(MustRead("k"), body);
  EXPECT_EQ(gets(), 1);  // still inside the 30 s window
  Advance(2s);
  EXPECT_EQ(MustRead("k"), body);
  EXPECT_EQ(gets(), 2);
  EXPECT_EQ(fake_.stats().not_modified.load(), 1u);
  CacheCounters c = cache_->counters();
  EXPECT_EQ(c.revalidated, 1u);
  EXPECT_EQ(c.downloads, 2u);            // the conditional GET counts as a started download
  EXPECT_EQ(c.bytes_downloaded, 5000u);  // the 304 carried no body
  EXPECT_EQ(MustRead("k"), body);        // validated again just now
  EXPECT_EQ(gets(), 2);
}

TEST_F(ObjectCacheTest, ChangedObjectIsReplacedOldHandleKeepsOldContent) {
  std::string v1 = MakeBody(3000, 3);
  std::string v2 = MakeBody(2 * kChunk + 17, 4);
  fake_.Seed("k", v1);
  OpenCache();
  std::shared_ptr<ObjectHandle> old = MustOpen("k");
  ASSERT_NE(old, nullptr);
  ASSERT_TRUE(Committed(1));
  std::string etag2 = fake_.Seed("k", v2);
  Advance(31s);
  std::shared_ptr<ObjectHandle> h = MustOpen("k");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->etag(), etag2);
  EXPECT_EQ(ReadAll(*h).value(), v2);
  EXPECT_EQ(gets(), 1 + 3);  // the conditional GET's 200 was chunk 0 of the new download
  EXPECT_EQ(fake_.stats().not_modified.load(), 0u);
  ASSERT_TRUE(WaitFor([&] { return cache_->counters().bytes_cached == v2.size(); }));
  EXPECT_EQ(cache_->counters().entries, 1u);
  EXPECT_EQ(ReadAll(*old).value(), v1);
  EXPECT_EQ(fs::file_size(ObjectFile("k")), v2.size());
}

TEST_F(ObjectCacheTest, DeletedObjectIsEnoentAndDropped) {
  fake_.Seed("gone", MakeBody(100, 5));
  OpenCache();
  MustRead("gone");
  ASSERT_TRUE(fs::exists(ObjectFile("gone")));
  ASSERT_TRUE(fake_.DeleteObject("gone").ok());
  Advance(31s);
  Result<std::shared_ptr<ObjectHandle>> r = cache_->OpenRead("gone", std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ENOENT);
  EXPECT_EQ(cache_->counters().entries, 0u);
  EXPECT_FALSE(fs::exists(ObjectFile("gone")));

  Result<std::shared_ptr<ObjectHandle>> missing = cache_->OpenRead("never", std::nullopt);
  EXPECT_EQ(missing.status().code(), ENOENT);
}

TEST_F(ObjectCacheTest, ListingHintsValidateOrInvalidate) {
  std::string v1 = MakeBody(100, 6);
  std::string etag1 = fake_.Seed("k", v1);
  OpenCache();
  MustRead("k");
  Advance(31s);
  auto now = config_.clock();
  // Listed just now with the same ETag: valid without a request.
  EXPECT_EQ(MustOpen("k", ListingHint{etag1, 100, now})->etag(), etag1);
  EXPECT_EQ(gets(), 1);
  EXPECT_EQ(cache_->counters().hits, 1u);

  // Listed after our check with another ETag: downloaded, no conditional GET wasted.
  std::string v2 = MakeBody(200, 7);
  std::string etag2 = fake_.Seed("k", v2);
  Advance(1s);
  std::shared_ptr<ObjectHandle> h = MustOpen("k", ListingHint{etag2, 200, config_.clock()});
  EXPECT_EQ(ReadAll(*h).value(), v2);
  EXPECT_EQ(gets(), 2);
  EXPECT_EQ(fake_.stats().not_modified.load(), 0u);

  // A listing older than our last check does not count.
  EXPECT_EQ(MustOpen("k", ListingHint{etag1, 100, now})->etag(), etag2);
  EXPECT_EQ(gets(), 2);
}

TEST_F(ObjectCacheTest, EightThreadsShareOneDownload) {
  const uint64_t size = 10 * kChunk - 100;
  std::string body = MakeBody(size, 8);
  fake_.Seed("big", body);
  std::atomic<int> seen{0};
  client_.before_get = [&](const s3::GetRequest&) {
    if (seen++ == 0) std::this_thread::sleep_for(200ms);  // let everyone arrive
    return Status::Ok();
  };
  OpenCache();
  std::latch start(8);
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      Result<std::shared_ptr<ObjectHandle>> h = cache_->OpenRead("big", std::nullopt);
      if (h.ok() && ReadAll(**h).value() == body) ++good;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 8);
  EXPECT_EQ(gets(), 10);
  CacheCounters c = cache_->counters();
  EXPECT_EQ(c.downloads, 1u);
  EXPECT_EQ(c.misses, 8u);
  EXPECT_EQ(c.bytes_downloaded, size);
  ASSERT_TRUE(Committed(1));
  EXPECT_EQ(MustRead("big"), body);
  EXPECT_EQ(gets(), 10);
}

// More downloads than workers, one request per object at a time: every block of every object is
// fetched, and the pool's workers are kept busy (a worker that finishes takes the next runnable
// block, and queued blocks wake sleeping workers) without ever exceeding the pool.
TEST_F(ObjectCacheTest, FewWorkersServeManyDownloadsOneBlockAtATimeEach) {
  config_.download_threads = 3;
  config_.parallel_per_object = 1;
  constexpr int kObjects = 6;
  const uint64_t size = 4 * kChunk;
  std::vector<std::string> bodies;
  for (int i = 0; i < kObjects; ++i) {
    bodies.push_back(MakeBody(size, 20 + i));
    fake_.Seed("o" + std::to_string(i), bodies.back());
  }
  // The opener fetches an object's first block itself; the pool fetches the rest.
  testutil::Overlap pool_gets;
  client_.before_get = [&](const s3::GetRequest& req) {
    if (!req.range.has_value() || req.range->first == 0) {
      std::this_thread::sleep_for(50ms);  // lets every opener arrive
    } else {
      pool_gets.Hold(20ms);
    }
    return Status::Ok();
  };
  OpenCache();
  std::latch start(kObjects);
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  threads.reserve(kObjects);
  for (int i = 0; i < kObjects; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      Result<std::shared_ptr<ObjectHandle>> h =
          cache_->OpenRead("o" + std::to_string(i), std::nullopt);
      if (h.ok() && ReadAll(**h).value() == bodies[static_cast<size_t>(i)]) ++good;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), kObjects);
  EXPECT_EQ(gets(), kObjects * 4);
  EXPECT_EQ(pool_gets.most(), 3);
  ASSERT_TRUE(Committed(kObjects));
}

TEST_F(ObjectCacheTest, ReaderOfLastChunkIsServedBeforeTheRest) {
  const uint64_t chunks = 32;
  std::string body = MakeBody(chunks * kChunk, 9);
  fake_.Seed("big", body);
  config_.download_threads = 2;
  config_.parallel_per_object = 2;
  client_.before_get = [](const s3::GetRequest& r) {
    if (r.range.has_value() && r.range->first > 0) std::this_thread::sleep_for(20ms);
    return Status::Ok();
  };
  OpenCache();
  std::shared_ptr<ObjectHandle> h = MustOpen("big");
  ASSERT_NE(h, nullptr);
  ASSERT_TRUE(h->WaitReadable(body.size() - 10, 10).ok());
  int gets_when_served = gets();
  EXPECT_LT(gets_when_served, 8);  // in order it would take all 32
  char tail[10];
  ASSERT_EQ(::pread(h->fd(), tail, 10, static_cast<off_t>(body.size() - 10)), 10);
  EXPECT_EQ(std::string(tail, 10), body.substr(body.size() - 10));
  EXPECT_EQ(ReadAll(*h).value(), body);
  EXPECT_EQ(gets(), static_cast<int>(chunks));
  ASSERT_TRUE(Committed(1));
}

TEST_F(ObjectCacheTest, ReaderDeadlineTimesOutWhileDownloadGoesOn) {
  std::string body = MakeBody(4 * kChunk, 10);
  fake_.Seed("slow", body);
  config_.read_timeout = 150ms;
  Gate gate;
  client_.before_get = [&](const s3::GetRequest& r) {
    if (r.range.has_value() && r.range->first > 0) gate.Wait();
    return Status::Ok();
  };
  OpenCache();
  std::shared_ptr<ObjectHandle> h = MustOpen("slow");
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->WaitReadable(0, 100).ok());  // chunk 0 came with the open
  auto t0 = std::chrono::steady_clock::now();
  Status s = h->WaitReadable(3 * kChunk, 100);
  EXPECT_EQ(s.code(), ETIMEDOUT) << s.ToString();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
  gate.Open();
  EXPECT_EQ(ReadAll(*h).value(), body);  // the same handle works once the data is in
  ASSERT_TRUE(Committed(1));
  EXPECT_EQ(gets(), 4);
  EXPECT_EQ(MustRead("slow"), body);
  EXPECT_EQ(gets(), 4);
}

TEST_F(ObjectCacheTest, Md5MismatchFailsWithEioAndCachesNothing) {
  std::string body = MakeBody(3 * kChunk + 5, 11);
  fake_.Seed("bad", body);
  std::atomic<bool> corrupting{true};
  client_.corrupt = [&](const s3::GetRequest& r) {
    return corrupting.load() && IsRanged(r, 2 * kChunk);
  };
  OpenCache();
  std::shared_ptr<ObjectHandle> h = MustOpen("bad");
  ASSERT_NE(h, nullptr);
  Status s = h->WaitReadable(0, h->size());
  EXPECT_EQ(s.code(), EIO);
  EXPECT_NE(s.message().find("does not match its ETag"), std::string::npos) << s.message();
  EXPECT_EQ(cache_->counters().entries, 0u);
  EXPECT_EQ(CountFiles(dir_ + "/objects"), 0u);
  EXPECT_EQ(CountFiles(dir_ + "/tmp"), 0u);

  corrupting = false;
  EXPECT_EQ(MustRead("bad"), body);
  EXPECT_EQ(cache_->counters().downloads, 2u);
  ASSERT_TRUE(Committed(1));
}

TEST_F(ObjectCacheTest, Md5MismatchOfSmallObjectFailsItsReads) {
  fake_.Seed("small", MakeBody(100, 12));
  client_.corrupt = [](const s3::GetRequest&) { return true; };
  OpenCache();
  // Size and ETag were known, so the open succeeds; the verdict reaches the reads.
  std::shared_ptr<ObjectHandle> h = MustOpen("small");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->WaitReadable(0, 1).code(), EIO);
  EXPECT_EQ(cache_->counters().entries, 0u);
  EXPECT_EQ(CountFiles(dir_ + "/objects") + CountFiles(dir_ + "/tmp"), 0u);
}

TEST_F(ObjectCacheTest, VerifyMd5OffKeepsWhatArrived) {
  std::string body = MakeBody(100, 13);
  fake_.Seed("small", body);
  client_.corrupt = [](const s3::GetRequest&) { return true; };
  config_.verify_md5 = false;
  OpenCache();
  std::string got = MustRead("small");
  EXPECT_NE(got, body);
  EXPECT_EQ(got.substr(1), body.substr(1));
  EXPECT_EQ(cache_->counters().entries, 1u);
}

TEST_F(ObjectCacheTest, FailureMidDownloadReachesReadersAndLeavesNothing) {
  std::string body = MakeBody(6 * kChunk, 14);
  fake_.Seed("k", body);
  std::atomic<int> failures{1};
  client_.before_get = [&](const s3::GetRequest& r) {
    if (IsRanged(r, 3 * kChunk) && failures-- > 0) {
      return Status::Error(EIO, "injected failure");
    }
    return Status::Ok();
  };
  OpenCache();
  std::shared_ptr<ObjectHandle> h = MustOpen("k");
  ASSERT_NE(h, nullptr);
  Status s = h->WaitReadable(0, h->size());
  EXPECT_EQ(s.code(), EIO);
  EXPECT_NE(s.message().find("injected failure"), std::string::npos) << s.message();
  EXPECT_EQ(h->WaitReadable(0, 1).code(), EIO);  // final for this download
  EXPECT_EQ(CountFiles(dir_ + "/objects"), 0u);
  EXPECT_EQ(CountFiles(dir_ + "/tmp"), 0u);
  EXPECT_EQ(cache_->counters().entries, 0u);

  EXPECT_EQ(MustRead("k"), body);  // starts afresh
  EXPECT_EQ(cache_->counters().downloads, 2u);
  ASSERT_TRUE(Committed(1));
}

TEST_F(ObjectCacheTest, FailureOfFirstRequestFailsTheOpen) {
  fake_.Seed("k", "hello");
  fake_.FailNext(Op::kGet, 1, Status::Error(EACCES, "access denied"));
  OpenCache();
  Result<std::shared_ptr<ObjectHandle>> r = cache_->OpenRead("k", std::nullopt);
  EXPECT_EQ(r.status().code(), EACCES);
  EXPECT_EQ(CountFiles(dir_ + "/tmp"), 0u);
  EXPECT_EQ(MustRead("k"), "hello");
}

TEST_F(ObjectCacheTest, RemountServesFromDiskWithoutRequests) {
  std::string small = MakeBody(10, 15);
  std::string big = MakeBody(3 * kChunk + 1, 16);
  fake_.Seed("small", small);
  fake_.Seed("big", big);
  OpenCache();
  MustRead("small");
  MustRead("big");
  ASSERT_TRUE(Committed(2));
  Advance(31s);
  MustRead("small");  // a 304: its new validation time is flushed at close
  EXPECT_EQ(gets(), 1 + 4 + 1);
  cache_.reset();

  OpenCache();
  EXPECT_EQ(cache_->counters().entries, 2u);
  EXPECT_EQ(cache_->counters().bytes_cached, small.size() + big.size());
  Advance(10s);
  EXPECT_EQ(MustRead("small"), small);  // validated 10 s ago, before the remount
  EXPECT_EQ(gets(), 6);
  Advance(21s);
  EXPECT_EQ(MustRead("big"), big);  // a 304: served from disk
  EXPECT_EQ(gets(), 7);
  EXPECT_EQ(cache_->counters().revalidated, 1u);
  EXPECT_EQ(cache_->counters().hits, 1u);
}

TEST_F(ObjectCacheTest, ReconciliationRemovesStrayFilesAndOrphanRows) {
  for (const char* key : {"keep", "lost", "short"}) fake_.Seed(key, MakeBody(500, 17));
  OpenCache();
  for (const char* key : {"keep", "lost", "short"}) MustRead(key);
  EXPECT_EQ(cache_->counters().entries, 3u);
  cache_.reset();

  std::ofstream(dir_ + "/tmp/" + std::string(64, 'c') + ".7") << "partial";
  fs::create_directories(dir_ + "/objects/ab");
  std::string orphan = dir_ + "/objects/ab/ab" + std::string(62, '0');
  std::ofstream(orphan) << "nobody's";
  fs::remove(ObjectFile("lost"));
  fs::resize_file(ObjectFile("short"), 100);

  OpenCache();
  EXPECT_EQ(CountFiles(dir_ + "/tmp"), 0u);
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_FALSE(fs::exists(ObjectFile("short")));
  EXPECT_TRUE(fs::exists(ObjectFile("keep")));
  EXPECT_EQ(cache_->counters().entries, 1u);
  EXPECT_EQ(cache_->counters().bytes_cached, 500u);
  int before = gets();
  MustRead("keep");
  EXPECT_EQ(gets(), before);
  EXPECT_EQ(MustRead("lost").size(), 500u);
  EXPECT_EQ(MustRead("short").size(), 500u);
  EXPECT_EQ(gets(), before + 2);
}

TEST_F(ObjectCacheTest, SecondOpenOfTheSameDirectoryIsBusy) {
  OpenCache();
  Result<std::unique_ptr<ObjectCache>> second = ObjectCache::Open(client_, config_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), EBUSY);
  EXPECT_NE(second.status().message().find(dir_), std::string::npos);
  EXPECT_NE(second.status().message().find("pid " + std::to_string(::getpid())), std::string::npos)
      << second.status().message();
  cache_.reset();
  OpenCache();  // released with the first
}

TEST_F(ObjectCacheTest, UnusableDirectoryIsReportedWithItsPath) {
  std::ofstream(base_ + "/file") << "x";
  config_.cache_dir = base_ + "/file";
  Result<std::unique_ptr<ObjectCache>> r = ObjectCache::Open(client_, config_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ENOTDIR);
  EXPECT_NE(r.status().message().find(base_ + "/file"), std::string::npos);

  if (::geteuid() == 0) GTEST_SKIP() << "root may write anywhere";
  fs::create_directories(base_ + "/ro");
  fs::permissions(base_ + "/ro", fs::perms::owner_read | fs::perms::owner_exec);
  config_.cache_dir = base_ + "/ro";
  r = ObjectCache::Open(client_, config_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EACCES);
  EXPECT_NE(r.status().message().find(base_ + "/ro"), std::string::npos);
  fs::permissions(base_ + "/ro", fs::perms::owner_all);
}

TEST_F(ObjectCacheTest, ZeroByteObject) {
  std::string etag = fake_.Seed("empty", "");
  OpenCache();
  std::shared_ptr<ObjectHandle> h = MustOpen("empty");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->size(), 0u);
  EXPECT_EQ(h->etag(), etag);
  EXPECT_TRUE(h->WaitReadable(0, 4096).ok());
  EXPECT_EQ(gets(), 2);  // 416 for the range, then the whole (empty) body
  EXPECT_TRUE(Committed(1));
  EXPECT_EQ(fs::file_size(ObjectFile("empty")), 0u);
  EXPECT_EQ(MustOpen("empty")->size(), 0u);
  EXPECT_EQ(gets(), 2);
  Advance(31s);
  EXPECT_EQ(MustOpen("empty")->size(), 0u);  // revalidated: the 304 comes before the range
  EXPECT_EQ(gets(), 3);
  EXPECT_EQ(cache_->counters().revalidated, 1u);
}

TEST_F(ObjectCacheTest, OddKeys) {
  std::vector<std::string> keys = {"dir with spaces/file name.txt", "ünïcødé/日本語 ✓.bin",
                                   "a+b%20c&d=e?f", "x//y/../z", "trailing space "};
  OpenCache();
  for (size_t i = 0; i < keys.size(); ++i) fake_.Seed(keys[i], MakeBody(50 + i, 20 + i));
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(MustRead(keys[i]), MakeBody(50 + i, 20 + i));
  EXPECT_EQ(cache_->counters().entries, keys.size());
  EXPECT_EQ(CountFiles(dir_ + "/objects"), keys.size());
  cache_.reset();
  OpenCache();
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(MustRead(keys[i]), MakeBody(50 + i, 20 + i));
  EXPECT_EQ(gets(), static_cast<int>(keys.size()));
}

TEST_F(ObjectCacheTest, ForgetDropsEntryButOpenHandlesKeepReading) {
  std::string body = MakeBody(700, 30);
  fake_.Seed("k", body);
  OpenCache();
  MustRead("k");
  std::shared_ptr<ObjectHandle> h = MustOpen("k");
  ASSERT_TRUE(cache_->Forget("k").ok());
  EXPECT_EQ(cache_->counters().entries, 0u);
  EXPECT_FALSE(fs::exists(ObjectFile("k")));
  EXPECT_EQ(ReadAll(*h).value(), body);
  EXPECT_EQ(MustRead("k"), body);
  EXPECT_EQ(gets(), 2);
  EXPECT_TRUE(cache_->Forget("not cached").ok());
}

TEST_F(ObjectCacheTest, ShutdownWithDownloadsInFlightIsClean) {
  std::string body = MakeBody(40 * kChunk, 31);
  fake_.Seed("big", body);
  config_.download_threads = 2;
  client_.before_get = [](const s3::GetRequest& r) {
    if (r.range.has_value() && r.range->first > 0) std::this_thread::sleep_for(20ms);
    return Status::Ok();
  };
  OpenCache();
  std::shared_ptr<ObjectHandle> h = MustOpen("big");
  ASSERT_NE(h, nullptr);
  std::this_thread::sleep_for(50ms);
  auto t0 = std::chrono::steady_clock::now();
  cache_.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  Status s = h->WaitReadable(0, h->size());
  EXPECT_EQ(s.code(), ECANCELED) << s.ToString();
  EXPECT_EQ(CountFiles(dir_ + "/tmp") + CountFiles(dir_ + "/objects"), 0u);
  EXPECT_GE(h->fd(), 0);  // still a valid descriptor after the cache is gone
}

TEST_F(ObjectCacheTest, ObjectChangingMidDownloadFailsWithEstale) {
  std::string v1 = MakeBody(4 * kChunk, 41);
  std::string v2 = MakeBody(3 * kChunk, 42);
  fake_.Seed("k", v1);
  std::atomic<bool> changed{false};
  client_.before_get = [&](const s3::GetRequest& r) {
    if (IsRanged(r, 2 * kChunk) && !changed.exchange(true)) fake_.Seed("k", v2);
    return Status::Ok();
  };
  OpenCache();
  std::shared_ptr<ObjectHandle> h = MustOpen("k");
  ASSERT_NE(h, nullptr);
  Status s = h->WaitReadable(0, h->size());
  EXPECT_EQ(s.code(), ESTALE) << s.ToString();
  EXPECT_NE(s.message().find("changed while it was being downloaded"), std::string::npos);
  EXPECT_EQ(CountFiles(dir_ + "/objects") + CountFiles(dir_ + "/tmp"), 0u);
  EXPECT_EQ(MustRead("k"), v2);
}

size_t OpenFds() {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) n += e.exists() ? 1 : 0;
  return n;
}

TEST_F(ObjectCacheTest, NoDescriptorOutlivesItsOwners) {
  std::string body = MakeBody(5 * kChunk, 40);
  fake_.Seed("k", body);
  fake_.Seed("small", "x");
  size_t before = OpenFds();
  OpenCache();
  {
    std::shared_ptr<ObjectHandle> big = MustOpen("k");
    EXPECT_EQ(ReadAll(*big).value(), body);
    EXPECT_EQ(MustRead("small"), "x");
    EXPECT_EQ(MustRead("small"), "x");
    EXPECT_EQ(cache_->OpenRead("none", std::nullopt).status().code(), ENOENT);
    ASSERT_TRUE(Committed(2));
  }
  cache_.reset();
  EXPECT_EQ(OpenFds(), before);
}

}  // namespace
}  // namespace s3cachefs::cache
