// Tests of the cache budget: the Evictor on its own (free-space floor, pins) and through
// ObjectCache over FakeS3 (size limit while reading, open and dirty entries, restart, streaming
// without caching, max age, sizes fixed at start-up).
#include "cache/evictor.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "cache/budget_test_util.h"
#include "cache/file_util.h"
#include "s3/log.h"

namespace s3cachefs::cache {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// ---- Evictor on an Index of its own ----

class EvictorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/evictor_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(EnsureDir(dir_ + "/objects").ok());
    Result<std::unique_ptr<Index>> index = Index::Open(dir_ + "/index.sqlite");
    ASSERT_TRUE(index.ok()) << index.status().ToString();
    index_ = std::move(*index);
  }
  void TearDown() override {
    index_.reset();
    fs::remove_all(dir_);
  }

  // A CLEAN entry "k<i>" of size bytes read at accessed_at, with its file.
  void Add(int i, uint64_t size, int64_t accessed_at) {
    IndexEntry e;
    e.bucket = "b";
    e.key = "k" + std::to_string(i);
    e.file_name = Sha256Hex("b/" + e.key);
    e.etag = "\"e\"";
    e.size = size;
    e.accessed_at = accessed_at;
    std::string shard = dir_ + "/objects/" + e.file_name.substr(0, 2);
    Status s = index_->PutClean(e, [&] {
      Status st = EnsureDir(shard);
      if (st.ok()) std::ofstream(shard + "/" + e.file_name) << std::string(size, 'x');
      return st;
    });
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  std::set<std::string> Keys() {
    std::set<std::string> keys;
    EXPECT_TRUE(index_->ForEach([&](const IndexEntry& e) { keys.insert(e.key); }).ok());
    return keys;
  }

  std::string dir_;
  std::unique_ptr<Index> index_;
};

TEST_F(EvictorTest, MinFreePercentDropsOldestUntilTheDiskHasRoom) {
  for (int i = 0; i < 10; ++i) Add(i, 100, 1000 + i);  // k0 is the least recently read
  // A 10000-byte disk with 500 free besides the cache: 10% free needs 1000, so 5 entries go.
  EvictorHooks hooks;
  hooks.disk_space = [this]() -> Result<DiskSpace> {
    return DiskSpace{10000, 500 + (1000 - index_->bytes())};
  };
  int flushes = 0;
  hooks.flush_times = [&] { ++flushes; };
  Evictor evictor(index_.get(), dir_, CacheBudget{0, 10, std::nullopt}, hooks);
  Result<EvictionStats> stats = evictor.RunPass();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->entries, 5u);
  EXPECT_TRUE(stats->within_budget);
  EXPECT_EQ(flushes, 1) << "times must be flushed before choosing";
  EXPECT_EQ(Keys(), (std::set<std::string>{"k5", "k6", "k7", "k8", "k9"}));
  EXPECT_FALSE(
      fs::exists(dir_ + "/objects/" + Sha256Hex("b/k0").substr(0, 2) + "/" + Sha256Hex("b/k0")));
  // Room for 300 more bytes means 3 more entries out.
  EXPECT_TRUE(evictor.MakeRoom("new", 300));
  EXPECT_EQ(Keys(), (std::set<std::string>{"k8", "k9"}));
}

TEST_F(EvictorTest, PinnedAndDirtyEntriesStayAndTheBudgetIsReportedUnmet) {
  for (int i = 0; i < 4; ++i) Add(i, 100, 1000 + i);
  // k1 becomes DIRTY behind the index's back (as the write path will do).
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/index.sqlite").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE entries SET state = 1 WHERE key = 'k1'", nullptr, nullptr,
                           nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  EvictorHooks hooks;
  hooks.is_pinned = [](const std::string&, const std::string& key) { return key == "k0"; };
  Evictor evictor(index_.get(), dir_, CacheBudget{}, hooks);
  Result<EvictionStats> stats = evictor.EvictTo(150);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->entries, 2u);  // k2, k3
  EXPECT_EQ(stats->pinned, 1u);   // k0
  EXPECT_FALSE(stats->within_budget);
  EXPECT_EQ(Keys(), (std::set<std::string>{"k0", "k1"}));
  EXPECT_TRUE(evictor.MakeRoom("x", 1 << 30));  // no budget configured: anything fits
}

// ---- Through ObjectCache ----

class CacheBudgetTest : public BudgetTest {};

TEST_F(CacheBudgetTest, ReadingFourTimesTheBudgetKeepsItAndTheMostRecent) {
  config_.cache_size = 50 * kMiB;
  OpenCache();
  for (int i = 0; i < 40; ++i) {
    Seed(i);
    ReadAndSettle("obj" + std::to_string(i));
    Advance(1s);
    ASSERT_LE(cache_->counters().bytes_cached, 50 * kMiB) << "after obj" << i;
  }
  EXPECT_LE(FilesBytes(), 50 * kMiB);
  EXPECT_EQ(cache_->counters().entries, 10u);
  EXPECT_EQ(cache_->counters().evictions, 30u);
  int before = gets();
  for (int i = 30; i < 40; ++i) EXPECT_TRUE(ReadOk("obj" + std::to_string(i)));
  EXPECT_EQ(gets(), before) << "the 10 most recent objects must be hits";
  EXPECT_FALSE(Cached("obj0"));
  EXPECT_FALSE(Cached("obj29"));
}

TEST_F(CacheBudgetTest, OpenHandleAndDirtyEntrySurviveEviction) {
  config_.cache_size = 20 * kMiB;
  OpenCache();
  for (int i = 0; i < 3; ++i) Seed(i);
  std::shared_ptr<ObjectHandle> open = MustOpen("obj0");  // held open throughout
  ASSERT_NE(open, nullptr);
  ASSERT_TRUE(ReadAll(*open).ok());
  ASSERT_TRUE(WaitUntil([&] { return TmpEmpty(); }));
  Advance(1s);
  ReadAndSettle("obj1");
  Advance(1s);
  ReadAndSettle("obj2");
  Sql("UPDATE entries SET state = 1 WHERE key = 'obj1'");  // as the write path would
  Advance(1s);
  // obj0 and obj1 are the least recently read; four more objects force everything else out.
  for (int i = 3; i < 7; ++i) {
    Seed(i);
    ReadAndSettle("obj" + std::to_string(i));
    Advance(1s);
  }
  EXPECT_TRUE(Cached("obj0")) << "an open entry was evicted";
  EXPECT_TRUE(Cached("obj1")) << "a DIRTY entry was evicted";
  EXPECT_FALSE(Cached("obj2"));
  EXPECT_LE(cache_->counters().bytes_cached, 20 * kMiB);
  Result<std::string> body = ReadAll(*open);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body, *fake_.Body("obj0"));

  // Closed, obj0 is the least recently read and goes next; obj1 never does.
  open.reset();
  Seed(7);
  ReadAndSettle("obj7");
  EXPECT_FALSE(Cached("obj0"));
  EXPECT_TRUE(Cached("obj1"));
}

TEST_F(CacheBudgetTest, RestartWithSmallerBudgetKeepsMostRecentlyRead) {
  config_.cache_size = 50 * kMiB;
  OpenCache();
  for (int i = 0; i < 10; ++i) {
    Seed(i);
    ReadAndSettle("obj" + std::to_string(i));
    Advance(1s);
  }
  // obj0 was read first but is read again now: a hit whose time is only in memory.
  ASSERT_TRUE(ReadOk("obj0"));
  Advance(1s);
  cache_.reset();

  config_.cache_size = 25 * kMiB;
  OpenCache();
  EXPECT_LE(cache_->counters().bytes_cached, 25 * kMiB);
  EXPECT_LE(FilesBytes(), 25 * kMiB);
  int before = gets();
  for (const char* key : {"obj0", "obj6", "obj7", "obj8", "obj9"}) EXPECT_TRUE(ReadOk(key)) << key;
  EXPECT_EQ(gets(), before) << "the most recently read objects must be hits after a restart";
  for (int i = 1; i <= 5; ++i) EXPECT_FALSE(Cached("obj" + std::to_string(i))) << i;
}

TEST_F(CacheBudgetTest, NothingEvictableStreamsWithoutKeepingAndSaysWhy) {
  config_.cache_size = 10 * kMiB;
  OpenCache();
  for (int i = 0; i < 3; ++i) Seed(i);
  Seed(3, 12);  // larger than the whole cache
  std::shared_ptr<ObjectHandle> a = MustOpen("obj0");
  std::shared_ptr<ObjectHandle> b = MustOpen("obj1");
  ASSERT_TRUE(a && b && ReadAll(*a).ok() && ReadAll(*b).ok());
  ASSERT_TRUE(WaitUntil([&] { return TmpEmpty() && cache_->counters().entries == 2; }));

  std::string log = base_ + "/log";
  ASSERT_TRUE(LogToFile(log));
  bool read_c = ReadOk("obj2");
  bool read_d = ReadOk("obj3");
  LogToStderr();
  EXPECT_TRUE(read_c);
  EXPECT_TRUE(read_d);
  EXPECT_TRUE(WaitUntil([&] { return TmpEmpty(); })) << "the streamed copy must not stay";
  EXPECT_FALSE(Cached("obj2"));
  EXPECT_FALSE(Cached("obj3"));
  EXPECT_EQ(cache_->counters().entries, 2u);
  EXPECT_EQ(cache_->counters().not_kept, 2u);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("cache full (cache_size 10.0 MiB): 10.0 MiB in open or dirty files; "
                      "streaming obj2 (5.0 MiB) without caching"),
            std::string::npos)
      << text;
  // Only one line per 10 s: the second refusal is counted for the next line instead.
  EXPECT_EQ(text.find("obj3"), std::string::npos) << text;

  // A second read of the streamed object downloads again (it was not kept) and still works.
  int before = gets();
  EXPECT_TRUE(ReadOk("obj2"));
  EXPECT_GT(gets(), before);
}

TEST_F(CacheBudgetTest, ObjectLargerThanTheCacheIsStreamedAndNothingIsEvicted) {
  config_.cache_size = 10 * kMiB;
  OpenCache();
  Seed(0);
  Seed(1, 12);
  ReadAndSettle("obj0");
  ReadAndSettle("obj1");
  EXPECT_TRUE(Cached("obj0")) << "evicted for an object that could never fit";
  EXPECT_FALSE(Cached("obj1"));
  EXPECT_EQ(cache_->counters().not_kept, 1u);
}

TEST_F(CacheBudgetTest, MaxAgeDropsEntriesNotReadForThatLong) {
  config_.cache_max_age = std::chrono::hours(24);
  config_.eviction_interval = 20ms;
  config_.flush_interval = 20ms;
  OpenCache();
  for (int i = 0; i < 3; ++i) Seed(i, 1);
  ReadAndSettle("obj0");
  ReadAndSettle("obj1");
  Advance(23h);
  ASSERT_TRUE(ReadOk("obj1"));  // a hit: obj1 is young again
  ReadAndSettle("obj2");
  Advance(2h);  // obj0 was last read 25 h ago
  EXPECT_TRUE(WaitUntil([&] { return !Cached("obj0"); })) << "expired entry kept";
  EXPECT_TRUE(Cached("obj1"));
  EXPECT_TRUE(Cached("obj2"));
  EXPECT_EQ(cache_->counters().entries, 2u);

  // At start-up too: a day later, both go before anything is read.
  cache_.reset();
  Advance(25h);
  OpenCache();
  EXPECT_EQ(cache_->counters().entries, 0u);
  EXPECT_FALSE(Cached("obj1"));
}

TEST_F(CacheBudgetTest, StartUpRecordsTheFileSizeOfDirtyEntries) {
  OpenCache();
  Seed(0, 1);
  ReadAndSettle("obj0");
  cache_.reset();
  Sql("UPDATE entries SET state = 1 WHERE key = 'obj0'");
  { std::ofstream(ObjectFile("obj0"), std::ios::app) << std::string(1000, 'y'); }

  config_.cache_size = 1;  // evict everything that may go: a DIRTY entry may not
  OpenCache();
  EXPECT_TRUE(Cached("obj0"));
  EXPECT_EQ(cache_->counters().entries, 1u);
  EXPECT_EQ(cache_->counters().bytes_cached, kMiB + 1000);
}

// Downloads in flight count against the budget from the moment they are admitted: two
// prefetches that would overshoot it together are not both kept.
TEST_F(CacheBudgetTest, DownloadsInFlightCountAgainstTheBudget) {
  config_.cache_size = 3 * kMiB;
  config_.first_request = kMiB;  // the rest of each object is held below
  std::string a = Seed(1, 2), b = Seed(2, 2);
  testing::Gate gate;
  client_.before_get = [&](const s3::GetRequest& r) {
    if (r.range.has_value() && r.range->first > 0) gate.Wait();
    return Status::Ok();
  };
  OpenCache();
  ASSERT_TRUE(cache_->Prefetch(a).ok());  // admitted: 2 MiB in flight
  ASSERT_TRUE(cache_->Prefetch(b).ok());  // 2 + 2 > 3: served, not kept
  EXPECT_EQ(cache_->counters().not_kept, 1u);
  gate.Open();
  ASSERT_TRUE(WaitUntil([&] { return cache_->counters().downloading == 0; }));
  EXPECT_EQ(cache_->counters().bytes_cached, 2 * kMiB);
  EXPECT_TRUE(Cached(a));
  EXPECT_FALSE(Cached(b));
  // Released once committed: the next one makes room by evicting a.
  EXPECT_TRUE(ReadOk(b));
  ASSERT_TRUE(WaitUntil([&] { return cache_->counters().downloading == 0; }));
  EXPECT_EQ(cache_->counters().bytes_cached, 2 * kMiB);
  EXPECT_TRUE(Cached(b));
}

}  // namespace
}  // namespace s3cachefs::cache
