// Unit tests of DirPrefetcher: which directories a walk's progress makes it list, in which order,
// that the walk then sends no LIST of its own, errors, and shutdown with a LIST in flight.
#include "cache/dir_prefetcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cache/cache_test_util.h"
#include "cache/namespace.h"
#include "cache/namespace_test_util.h"

namespace s3cachefs::cache {
namespace {

using test::LogCollector;
using ::testing::ElementsAre;
using Op = s3cachefs::testing::FakeS3::Op;

// Records the prefix of every LIST.
class RecordingS3 : public test::SlowS3 {
 public:
  Result<s3::ListPage> ListObjectsV2(const s3::ListRequest& request) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      prefixes_.push_back(request.prefix);
    }
    if (before_list) before_list();
    return SlowS3::ListObjectsV2(request);
  }
  std::vector<std::string> prefixes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return prefixes_;
  }
  std::function<void()> before_list;  // set before the LISTs it sees start
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    prefixes_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> prefixes_;
};

class DirPrefetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // tree/d0 ... tree/d9, three files each, and a file beside them.
    for (int d = 0; d < 10; ++d) {
      for (int f = 0; f < 3; ++f) {
        s3_.Seed("tree/d" + std::to_string(d) + "/f" + std::to_string(f), "x");
      }
    }
    s3_.Seed("tree/file", "x");
    names_ = std::make_unique<Namespace>(s3_, NamespaceConfig{}, log_.logger());
  }

  // What the fs layer does on opendir.
  void OpenDir(DirPrefetcher& prefetcher, const std::string& path) {
    prefetcher.Entering(path);
    Result<std::vector<DirEntry>> entries = names_->List(path);
    ASSERT_TRUE(entries.ok()) << path << ": " << entries.status().ToString();
    prefetcher.Read(path, *entries);
  }

  RecordingS3 s3_;
  LogCollector log_;
  std::unique_ptr<Namespace> names_;
};

TEST_F(DirPrefetcherTest, EnteringASubdirectoryListsTheNextSiblings) {
  DirPrefetcher prefetcher(*names_, {.lookahead = 3, .threads = 2});
  OpenDir(prefetcher, "tree");
  prefetcher.WaitIdle();
  // Reading a directory alone (ls) costs nothing more.
  EXPECT_THAT(s3_.prefixes(), ElementsAre("tree/"));

  s3_.clear();
  OpenDir(prefetcher, "tree/d0");
  prefetcher.WaitIdle();
  std::vector<std::string> listed = s3_.prefixes();
  std::sort(listed.begin(), listed.end());
  EXPECT_THAT(listed, ElementsAre("tree/d0/", "tree/d1/", "tree/d2/", "tree/d3/"));

  // The walk goes on without a LIST of its own while it is within the window...
  s3_.clear();
  ASSERT_TRUE(names_->List("tree/d1").ok());
  ASSERT_TRUE(names_->List("tree/d3").ok());
  EXPECT_TRUE(s3_.prefixes().empty());
  // ... and each step moves the window: entering d1 adds d4 only (d2 and d3 are fresh).
  OpenDir(prefetcher, "tree/d1");
  prefetcher.WaitIdle();
  EXPECT_THAT(s3_.prefixes(), ElementsAre("tree/d4/"));
  // The last subdirectory has nothing after it.
  s3_.clear();
  OpenDir(prefetcher, "tree/d9");
  prefetcher.WaitIdle();
  EXPECT_THAT(s3_.prefixes(), ElementsAre("tree/d9/"));
  EXPECT_EQ(prefetcher.failed(), 0u);
}

TEST_F(DirPrefetcherTest, UnknownParentOrDisabledCostsNothing) {
  {
    DirPrefetcher prefetcher(*names_, {.lookahead = 3, .threads = 2});
    OpenDir(prefetcher, "tree/d0");  // its parent was never read
    prefetcher.WaitIdle();
    EXPECT_THAT(s3_.prefixes(), ElementsAre("tree/d0/"));
  }
  s3_.clear();
  DirPrefetcher off(*names_, {.lookahead = 0});
  OpenDir(off, "tree");
  OpenDir(off, "tree/d5");
  off.WaitIdle();
  EXPECT_THAT(s3_.prefixes(), ElementsAre("tree/", "tree/d5/"));
}

TEST_F(DirPrefetcherTest, TheWalkJoinsABackgroundListAndItsErrorsAreOnlyLogged) {
  DirPrefetcher prefetcher(*names_, {.lookahead = 1, .threads = 1});
  OpenDir(prefetcher, "tree");
  s3_.clear();
  // d1 is being prefetched when the walk gets there: the walk waits for that LIST.
  s3_.Hold("tree/d1/");
  OpenDir(prefetcher, "tree/d0");
  ASSERT_TRUE(s3_.WaitHeld(std::chrono::seconds(5)));
  auto walk = std::async(std::launch::async, [&] { return names_->List("tree/d1"); });
  EXPECT_EQ(walk.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  s3_.Release();
  ASSERT_TRUE(walk.get().ok());
  prefetcher.WaitIdle();
  std::vector<std::string> listed = s3_.prefixes();
  std::sort(listed.begin(), listed.end());  // the walk's d0 and the worker's d1 raced
  EXPECT_THAT(listed, ElementsAre("tree/d0/", "tree/d1/"));

  // The background LIST of d2 fails: counted and logged, and the walk lists d2 itself.
  s3_.clear();
  s3_.FailNext(Op::kList, 1, Status::Error(EIO, "injected"));
  prefetcher.Entering("tree/d1");
  prefetcher.WaitIdle();
  EXPECT_EQ(prefetcher.failed(), 1u);
  Result<std::vector<DirEntry>> d2 = names_->List("tree/d2");
  ASSERT_TRUE(d2.ok()) << d2.status().ToString();
  EXPECT_THAT(s3_.prefixes(), ElementsAre("tree/d2/", "tree/d2/"));
}

TEST_F(DirPrefetcherTest, NearestFirstAheadOfOlderWork) {
  DirPrefetcher prefetcher(*names_, {.lookahead = 2, .threads = 1});
  OpenDir(prefetcher, "tree");
  s3_.clear();
  // The one worker is stuck on d1; d2 waits in the queue. Then the walk jumps to d5.
  s3_.Hold("tree/d1/");
  prefetcher.Entering("tree/d0");
  ASSERT_TRUE(s3_.WaitHeld(std::chrono::seconds(5)));
  prefetcher.Entering("tree/d5");
  s3_.Release();
  prefetcher.WaitIdle();
  EXPECT_THAT(s3_.prefixes(), ElementsAre("tree/d1/", "tree/d6/", "tree/d7/", "tree/d2/"));
}

TEST_F(DirPrefetcherTest, TheWholeLookaheadIsListedAtOnce) {
  DirPrefetcher prefetcher(*names_, DirPrefetchConfig{.lookahead = 6});
  OpenDir(prefetcher, "tree");
  testutil::Overlap lists;
  s3_.before_list = [&] { lists.Hold(std::chrono::milliseconds(50)); };
  prefetcher.Entering("tree/d0");
  prefetcher.WaitIdle();
  EXPECT_EQ(s3_.prefixes().size(), 1u + 6u);  // tree/, then d1 .. d6
  EXPECT_EQ(lists.most(), 6);
}

TEST_F(DirPrefetcherTest, DestructionWaitsForTheListInFlight) {
  auto prefetcher =
      std::make_unique<DirPrefetcher>(*names_, DirPrefetchConfig{.lookahead = 4, .threads = 1});
  OpenDir(*prefetcher, "tree");
  s3_.clear();
  s3_.Hold("tree/d1/");
  prefetcher->Entering("tree/d0");
  ASSERT_TRUE(s3_.WaitHeld(std::chrono::seconds(5)));
  auto destroyed = std::async(std::launch::async, [&] { prefetcher.reset(); });
  EXPECT_EQ(destroyed.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  s3_.Release();
  destroyed.get();
  // What was still queued (d2 .. d4) was dropped, not listed.
  EXPECT_THAT(s3_.prefixes(), ElementsAre("tree/d1/"));
  Result<std::vector<DirEntry>> d1 = names_->List("tree/d1");
  ASSERT_TRUE(d1.ok());
  EXPECT_THAT(s3_.prefixes(), ElementsAre("tree/d1/"));  // the one in flight was cached
}

}  // namespace
}  // namespace s3cachefs::cache
