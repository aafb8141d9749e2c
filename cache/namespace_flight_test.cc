// Unit tests of Namespace: concurrent LISTs (single-flight, no blocking of other directories,
// changes made while a LIST is in flight), Warm, Prefetch, and a 100,000-entry directory.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "cache/namespace.h"
#include "cache/namespace_test_util.h"
#include "fake_s3.h"

namespace s3cachefs::cache {
namespace {

using test::LogCollector;
using test::Names;
using test::SlowS3;
using test::Walk;
using ::testing::ElementsAre;
using ::testing::SizeIs;
using Op = s3cachefs::testing::FakeS3::Op;

class NamespaceFlightTest : public ::testing::Test {
 protected:
  std::unique_ptr<Namespace> Make(NamespaceConfig config = {}, LogCollector* log = nullptr) {
    return std::make_unique<Namespace>(s3_, std::move(config), (log ? log : &log_)->logger());
  }

  SlowS3 s3_;
  LogCollector log_;
};

TEST_F(NamespaceFlightTest, ConcurrentLookupsShareOneList) {
  s3_.Seed("cold/f", "12345");
  s3_.Seed("cold2/g", "1");
  s3_.set_delay(std::chrono::milliseconds(100));  // all threads arrive while it is in flight
  auto ns = Make();
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  std::vector<uint64_t> sizes(kThreads);
  std::vector<size_t> counts(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      Result<NodeAttr> attr = ns->Lookup("cold/f");
      sizes[i] = attr.ok() ? attr->size : 0;
      Result<std::vector<DirEntry>> entries = ns->List("cold2");
      counts[i] = entries.ok() ? entries->size() : 0;
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_THAT(sizes, ::testing::Each(5u));
  EXPECT_THAT(counts, ::testing::Each(1u));
  EXPECT_EQ(ns->list_requests(), 2u);  // "cold/" once, "cold2/" once
  EXPECT_EQ(s3_.calls(Op::kList), 2);
}

TEST_F(NamespaceFlightTest, WaitersShareAnError) {
  s3_.set_delay(std::chrono::milliseconds(100));
  s3_.FailNext(Op::kList, 1, Status::Error(EIO, "injected"));
  auto ns = Make();
  std::vector<std::future<int>> results;
  results.reserve(4);
  for (int i = 0; i < 4; ++i) {
    results.push_back(std::async(std::launch::async, [&] { return ns->List("").status().code(); }));
  }
  int failed = 0;
  for (auto& r : results) {
    failed += r.get() == EIO ? 1 : 0;
  }
  EXPECT_EQ(failed, 4);
  EXPECT_EQ(s3_.calls(Op::kList), 1);
  EXPECT_TRUE(ns->List("").ok());  // the error was not cached
}

TEST_F(NamespaceFlightTest, OtherDirectoriesAreNotBlocked) {
  s3_.Seed("slow/a", "");
  s3_.Seed("fast/b", "");
  auto ns = Make();
  s3_.Hold("slow/");
  auto slow = std::async(std::launch::async, [&] { return ns->List("slow"); });
  ASSERT_TRUE(s3_.WaitHeld(std::chrono::seconds(5)));
  auto fast = std::async(std::launch::async, [&] { return ns->List("fast"); });
  const bool fast_done = fast.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  s3_.Release();
  EXPECT_TRUE(fast_done) << "a LIST of another directory blocked List(\"fast\")";
  Result<std::vector<DirEntry>> fast_entries = fast.get();
  Result<std::vector<DirEntry>> slow_entries = slow.get();
  ASSERT_TRUE(fast_entries.ok());
  ASSERT_TRUE(slow_entries.ok());
  EXPECT_THAT(Names(*fast_entries), ElementsAre("b"));
  EXPECT_THAT(Names(*slow_entries), ElementsAre("a"));
}

TEST_F(NamespaceFlightTest, ChangesDuringListAreReplayed) {
  s3_.Seed("d/a", "");
  s3_.Seed("d/keep", "");
  auto ns = Make();
  s3_.Hold("d/");
  auto listing = std::async(std::launch::async, [&] { return ns->List("d"); });
  ASSERT_TRUE(s3_.WaitHeld(std::chrono::seconds(5)));
  NodeAttr attr;
  attr.size = 7;
  ns->NoteFile("d/new", attr);  // made after the LIST was sent: it may not show it
  ns->NoteRemoved("d/a");
  s3_.Release();
  Result<std::vector<DirEntry>> entries = listing.get();
  ASSERT_TRUE(entries.ok());
  EXPECT_THAT(Names(*entries), ElementsAre("keep", "new"));
  const uint64_t requests = ns->list_requests();
  Result<std::vector<DirEntry>> cached = ns->List("d");
  ASSERT_TRUE(cached.ok());
  EXPECT_THAT(Names(*cached), ElementsAre("keep", "new"));
  EXPECT_EQ(ns->list_requests(), requests);

  // An Invalidate during the LIST keeps its result out of the cache.
  s3_.Hold("d/");
  auto again = std::async(std::launch::async, [&] {
    ns->Invalidate("d");
    return ns->List("d");
  });
  ASSERT_TRUE(s3_.WaitHeld(std::chrono::seconds(5)));
  ns->Invalidate("d");
  s3_.Release();
  ASSERT_TRUE(again.get().ok());
  const uint64_t before = ns->list_requests();
  EXPECT_TRUE(ns->List("d").ok());
  EXPECT_EQ(ns->list_requests(), before + 1);
}

TEST_F(NamespaceFlightTest, WarmListsOnceAndNeverWaits) {
  s3_.Seed("d/a", "");
  s3_.Seed("e/b", "");
  auto ns = Make();
  ASSERT_TRUE(ns->Warm("d").ok());
  EXPECT_EQ(ns->list_requests(), 1u);
  ASSERT_TRUE(ns->Warm("d").ok());  // fresh: nothing to do
  Result<std::vector<DirEntry>> entries = ns->List("d");
  ASSERT_TRUE(entries.ok());
  EXPECT_THAT(Names(*entries), ElementsAre("a"));
  EXPECT_EQ(ns->list_requests(), 1u);

  // A LIST of "e" in flight: Warm returns at once instead of waiting for it.
  s3_.Hold("e/");
  auto listing = std::async(std::launch::async, [&] { return ns->List("e"); });
  ASSERT_TRUE(s3_.WaitHeld(std::chrono::seconds(5)));
  auto warm = std::async(std::launch::async, [&] { return ns->Warm("e"); });
  const bool warm_done = warm.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  s3_.Release();
  EXPECT_TRUE(warm_done) << "Warm waited for another LIST";
  EXPECT_TRUE(warm.get().ok());
  ASSERT_TRUE(listing.get().ok());
  EXPECT_EQ(ns->list_requests(), 2u);
}

TEST_F(NamespaceFlightTest, ListJoinsAWarmButNotItsError) {
  s3_.Seed("d/a", "");
  auto ns = Make();
  // The walk asks for "d" while a background Warm of it is in flight: it waits for that LIST
  // instead of sending its own...
  s3_.Hold("d/");
  auto warm = std::async(std::launch::async, [&] { return ns->Warm("d"); });
  ASSERT_TRUE(s3_.WaitHeld(std::chrono::seconds(5)));
  auto listing = std::async(std::launch::async, [&] { return ns->List("d"); });
  EXPECT_EQ(listing.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  s3_.Release();
  ASSERT_TRUE(warm.get().ok());
  Result<std::vector<DirEntry>> entries = listing.get();
  ASSERT_TRUE(entries.ok());
  EXPECT_THAT(Names(*entries), ElementsAre("a"));
  EXPECT_EQ(ns->list_requests(), 1u);

  // ... and when that LIST fails, the error stays with the Warm: the waiter lists by itself.
  ns->Invalidate("d");
  s3_.Hold("d/");
  warm = std::async(std::launch::async, [&] { return ns->Warm("d"); });
  ASSERT_TRUE(s3_.WaitHeld(std::chrono::seconds(5)));
  listing = std::async(std::launch::async, [&] { return ns->List("d"); });
  EXPECT_EQ(listing.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  s3_.FailNext(Op::kList, 1, Status::Error(EIO, "injected"));
  s3_.Release();
  EXPECT_EQ(warm.get().code(), EIO);
  entries = listing.get();
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  EXPECT_THAT(Names(*entries), ElementsAre("a"));
  EXPECT_EQ(ns->list_requests(), 3u);
}

// A tree with every rule in it: markers, implied directories, a conflict, invalid keys, and a
// directory spanning pages.
void SeedTree(s3cachefs::testing::FakeS3& s3, const std::string& prefix) {
  s3.set_now(1500000000);
  for (const char* key :
       {"docs/", "docs/a.txt", "docs/sub/", "docs/sub/b.txt", "m/", "x/y/z", "c", "c/d", "bad//k",
        "bad/./k", "bad/../k", "bad/ok", "bad/..", "top.txt", "e/", "e/f/", "e/f/g/"}) {
    s3.Seed(prefix + key, key);
  }
  s3.Seed(prefix + "bad/" + std::string(256, 'x'), "");
  s3.set_now(1500000100);
  for (int i = 0; i < 1200; ++i) {
    s3.Seed(prefix + "big/" + std::to_string(i), "");
  }
  s3.Seed(prefix.substr(0, prefix.empty() ? 0 : prefix.size() - 1) + "-outside/k", "");
}

std::vector<std::string> Sorted(std::vector<std::string> lines) {
  std::sort(lines.begin(), lines.end());
  return lines;
}

TEST_F(NamespaceFlightTest, PrefetchMatchesPerDirectoryListing) {
  SeedTree(s3_, "");
  LogCollector per_dir_log;
  auto per_dir = Make({}, &per_dir_log);
  Walk(*per_dir, "");
  // Again from the cache: markers seen in the children's listings now show in their parents.
  auto expected = Walk(*per_dir, "");
  // "", -outside, bad, big, c, docs, docs/sub, e, e/f, e/f/g, m, x, x/y
  EXPECT_THAT(expected, SizeIs(13));
  EXPECT_THAT(
      expected[""],
      ElementsAre("-outside dir size=0 mtime=0 etag=", "bad dir size=0 mtime=0 etag=",
                  "big dir size=0 mtime=0 etag=", "c dir size=0 mtime=0 etag=",
                  "docs dir size=0 mtime=1500000000 etag=", "e dir size=0 mtime=1500000000 etag=",
                  "m dir size=0 mtime=1500000000 etag=",
                  ::testing::StartsWith("top.txt file size=7 mtime="),
                  "x dir size=0 mtime=0 etag="));

  LogCollector prefetch_log;
  auto prefetched = Make({}, &prefetch_log);
  ASSERT_TRUE(prefetched->Prefetch("").ok());
  EXPECT_EQ(prefetched->list_requests(), 2u);  // 1200 + 20 keys: two pages
  auto actual = Walk(*prefetched, "");
  EXPECT_EQ(prefetched->list_requests(), 2u);  // the walk needed no request
  EXPECT_EQ(actual, expected);
  EXPECT_EQ(Sorted(prefetch_log.lines()), Sorted(per_dir_log.lines()));
  EXPECT_THAT(prefetch_log.lines(), SizeIs(6));  // c, bad//, bad/./, bad/../, bad/.., bad/xxx
}

TEST_F(NamespaceFlightTest, PrefetchOfSubdirectoryUnderMountPrefix) {
  SeedTree(s3_, "p/");
  NamespaceConfig config;
  config.prefix = "p/";
  auto per_dir = Make(config);
  Walk(*per_dir, "docs");
  auto expected = Walk(*per_dir, "docs");
  auto prefetched = Make(config);
  ASSERT_TRUE(prefetched->Prefetch("docs").ok());
  EXPECT_EQ(prefetched->list_requests(), 1u);
  auto actual = Walk(*prefetched, "docs");
  EXPECT_EQ(actual, expected);
  EXPECT_THAT(actual["docs"], ElementsAre(::testing::StartsWith("a.txt file"),
                                          "sub dir size=0 mtime=1500000000 etag="));
}

TEST_F(NamespaceFlightTest, PrefetchErrorsAndEmptyDirectories) {
  s3_.Seed("file", "");
  s3_.Seed("empty/", "");
  auto ns = Make();
  EXPECT_EQ(ns->Prefetch("missing").code(), ENOENT);
  EXPECT_EQ(ns->Prefetch("file").code(), ENOTDIR);
  EXPECT_EQ(ns->Prefetch("file/below").code(), ENOTDIR);
  ASSERT_TRUE(ns->Prefetch("empty").ok());
  const uint64_t before = ns->list_requests();
  Result<std::vector<DirEntry>> entries = ns->List("empty");
  ASSERT_TRUE(entries.ok());
  EXPECT_TRUE(entries->empty());
  EXPECT_EQ(ns->list_requests(), before);
  s3_.FailNext(Op::kList, 1, Status::Error(EIO, "injected"));
  EXPECT_EQ(ns->Prefetch("").code(), EIO);
}

TEST_F(NamespaceFlightTest, PrefetchGivesUpPastTheKeyBound) {
  SeedTree(s3_, "");
  NamespaceConfig config;
  config.prefetch_max_keys = 100;
  auto ns = Make(config);
  ASSERT_TRUE(ns->Prefetch("").ok());  // not an error: the walk lists per directory
  const uint64_t after_prefetch = ns->list_requests();
  auto actual = Walk(*ns, "");
  EXPECT_GT(ns->list_requests(), after_prefetch + 5);
  auto reference = Make();
  Walk(*reference, "");
  EXPECT_EQ(Walk(*ns, ""), Walk(*reference, ""));
}

TEST_F(NamespaceFlightTest, HundredThousandEntries) {
  constexpr int kEntries = 100000;
  for (int i = 0; i < kEntries; ++i) {
    s3_.Seed("huge/f" + std::to_string(i), "");
  }
  auto ns = Make();
  Result<std::vector<DirEntry>> entries = ns->List("huge");
  ASSERT_TRUE(entries.ok());
  ASSERT_THAT(*entries, SizeIs(kEntries));
  EXPECT_TRUE(std::is_sorted(entries->begin(), entries->end(),
                             [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; }));
  EXPECT_EQ(ns->list_requests(), 100u);
  // Timed from here: the fake's paging above is O(n) per page by itself.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kEntries; ++i) {
    ASSERT_TRUE(ns->Lookup("huge/f" + std::to_string(i)).ok()) << i;
  }
  for (int i = 0; i < 10000; ++i) {
    ns->NoteFile("huge/new" + std::to_string(i), NodeAttr{});
  }
  for (int i = 0; i < 10000; ++i) {
    ns->NoteRemoved("huge/f" + std::to_string(i));
  }
  Result<std::vector<DirEntry>> after = ns->List("huge");
  ASSERT_TRUE(after.ok());
  EXPECT_THAT(*after, SizeIs(kEntries));
  EXPECT_EQ(ns->list_requests(), 100u);
  // A generous bound (sanitizer builds included) that O(n) work per lookup or per change
  // (1e10 steps here) would miss.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

}  // namespace
}  // namespace s3cachefs::cache
