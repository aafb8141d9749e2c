// FilePrefetcher and ObjectCache::Prefetch: a directory scan in listing order gets the next
// files fetched ahead of it (small files only, each once), anything else gets nothing.
#include "cache/file_prefetcher.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "cache/namespace.h"
#include "cache/object_cache_test_util.h"

namespace s3cachefs::cache {
namespace {

std::string Name(int i) {
  return (i < 10 ? "f0" : "f") + std::to_string(i);
}

class FilePrefetcherTest : public ObjectCacheTest {
 protected:
  void SetUp() override {
    ObjectCacheTest::SetUp();
    // dir/f00 ... dir/f19 of 100 bytes, but f08 is too large to prefetch and dir/f10x/ is a
    // subdirectory between f10 and f11.
    for (int i = 0; i < 20; ++i) {
      fake_.Seed("dir/" + Name(i), MakeBody(i == 8 ? 3 * kChunk : 100, i));
    }
    fake_.Seed("dir/f10x/inner", "x");
    OpenCache();
    names_ = std::make_unique<Namespace>(client_, NamespaceConfig{});
    ASSERT_TRUE(names_->List("dir").ok());  // the lookups that precede opens list it
  }
  void TearDown() override {
    prefetcher_.reset();
    names_.reset();
    ObjectCacheTest::TearDown();
  }
  void Start(size_t lookahead) {
    prefetcher_ = std::make_unique<FilePrefetcher>(*names_, *cache_,
                                                   FilePrefetchConfig{lookahead, 2 * kChunk});
  }
  // Opens dir/<name> the way the fs layer does: OpenRead, then Opened.
  void Open(const std::string& name) {
    EXPECT_NE(MustOpen("dir/" + name), nullptr);
    prefetcher_->Opened("dir/" + name);
    prefetcher_->WaitIdle();
  }
  uint64_t Prefetched() const { return cache_->counters().prefetches; }

  std::unique_ptr<Namespace> names_;
  std::unique_ptr<FilePrefetcher> prefetcher_;
};

TEST_F(FilePrefetcherTest, OpensInListingOrderFetchTheNextFilesOnce) {
  Start(4);
  Open("f00");
  EXPECT_EQ(Prefetched(), 0u);  // one open is not yet a scan
  Open("f01");
  EXPECT_EQ(Prefetched(), 4u);  // f02 .. f05
  ASSERT_TRUE(WaitFor([&] { return cache_->counters().downloading == 0; }));
  EXPECT_EQ(cache_->counters().entries, 6u);  // kept: the opens that follow are hits
  int gets_before = gets();
  for (int i = 2; i <= 5; ++i) Open(Name(i));
  // Each open keeps the next 4 files on their way: f06, f07, f09 (f08 is too large).
  EXPECT_EQ(Prefetched(), 7u);
  ASSERT_TRUE(WaitFor([&] { return cache_->counters().downloading == 0; }));
  EXPECT_EQ(gets(), gets_before + 3);
  EXPECT_EQ(cache_->counters().hits, 4u);
}

// A prefetch waits for its GET's answer: the whole lookahead is in flight at once only with a
// worker for each (against a distant endpoint that is what the scan's speed depends on).
TEST_F(FilePrefetcherTest, TheWholeLookaheadIsInFlightAtOnce) {
  testutil::Overlap gets;
  client_.before_get = [&](const s3::GetRequest&) {
    gets.Hold(std::chrono::milliseconds(50));
    return Status::Ok();
  };
  Start(6);
  Open("f00");
  Open("f01");
  EXPECT_EQ(Prefetched(), 6u);  // f02 .. f07
  EXPECT_EQ(gets.most(), 6);
}

TEST_F(FilePrefetcherTest, OpensOutOfOrderFetchNothing) {
  Start(4);
  for (const char* name : {"f05", "f01", "f09", "f13", "f12", "f19"}) Open(name);
  EXPECT_EQ(Prefetched(), 0u);
  EXPECT_EQ(gets(), 6);
}

TEST_F(FilePrefetcherTest, OffMeansNoThreadsAndNoRequests) {
  Start(0);
  for (int i = 0; i < 6; ++i) Open(Name(i));
  EXPECT_EQ(Prefetched(), 0u);
  EXPECT_EQ(gets(), 6);
}

TEST_F(FilePrefetcherTest, PrefetchSkipsCachedAndLocallyChangedKeys) {
  EXPECT_EQ(MustRead("dir/f00"), MakeBody(100, 0));
  ASSERT_TRUE(cache_->Prefetch("dir/f00").ok());  // cached: nothing to do
  Result<std::shared_ptr<WritableFile>> w = cache_->OpenWrite("dir/f01", true, true, {});
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE(cache_->Prefetch("dir/f01").ok());  // open for writing: the local file wins
  EXPECT_EQ(gets(), 1);
  EXPECT_EQ(Prefetched(), 0u);
  ASSERT_TRUE(cache_->Prefetch("dir/f02").ok());
  EXPECT_EQ(Prefetched(), 1u);
  EXPECT_EQ(gets(), 2);
  ASSERT_TRUE(WaitFor([&] { return cache_->counters().entries == 2; }));
  EXPECT_EQ(MustRead("dir/f02"), MakeBody(100, 2));
  EXPECT_EQ(gets(), 2);
}

}  // namespace
}  // namespace s3cachefs::cache
