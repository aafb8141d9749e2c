// Tests of CacheAdmin (`s3cachefs cache stats|evict|verify`) on directories an ObjectCache over
// FakeS3 filled, with and without the cache still open.
#include "cache/cache_admin.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "cache/budget_test_util.h"
#include "cache/file_util.h"

namespace s3cachefs::cache {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class CacheAdminTest : public BudgetTest {
 protected:
  // Three objects of 1, 2 and 3 MiB read once, obj0 twice; the cache closed again.
  void Fill() {
    OpenCache();
    for (int i = 0; i < 3; ++i) {
      Seed(i, static_cast<uint64_t>(i) + 1);
      ReadAndSettle("obj" + std::to_string(i));
      Advance(1s);
    }
    ASSERT_TRUE(ReadOk("obj0"));
    cache_.reset();
  }
  std::unique_ptr<CacheAdmin> MustOpenAdmin() {
    Result<std::unique_ptr<CacheAdmin>> r = CacheAdmin::Open(dir_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(*r) : nullptr;
  }
};

TEST_F(CacheAdminTest, StatsShowEntriesAndCountersPersistedByTheDaemon) {
  Fill();
  std::unique_ptr<CacheAdmin> admin = MustOpenAdmin();
  ASSERT_NE(admin, nullptr);
  Result<CacheStats> stats = admin->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->summary.entries, 3u);
  EXPECT_EQ(stats->summary.bytes, 6 * kMiB);
  EXPECT_EQ(stats->summary.local_entries, 0u);
  EXPECT_EQ(stats->summary.oldest_access, now_ms_ - 2000);  // obj1, read 2 s before obj0's hit
  EXPECT_EQ(stats->summary.newest_access, now_ms_.load());
  EXPECT_EQ(stats->counters.misses, 3u);
  EXPECT_EQ(stats->counters.downloads, 3u);
  EXPECT_EQ(stats->counters.hits, 1u);
  EXPECT_EQ(stats->counters.bytes_downloaded, 6 * kMiB);
  EXPECT_FALSE(stats->daemon_pid.has_value());

  // Counters add up across daemon runs; a running daemon is named.
  OpenCache();
  ASSERT_TRUE(ReadOk("obj2"));
  Sql("UPDATE entries SET state = 1 WHERE key = 'obj1'");
  stats = admin->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->daemon_pid, std::to_string(::getpid()));
  EXPECT_EQ(stats->summary.local_entries, 1u);
  EXPECT_EQ(stats->summary.local_bytes, 2 * kMiB);
  cache_.reset();
  stats = admin->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->counters.hits, 2u);
  EXPECT_EQ(stats->counters.misses, 3u);
}

TEST_F(CacheAdminTest, EvictRefusesWhileMountedThenEvictsLeastRecentlyRead) {
  Fill();
  OpenCache();
  std::unique_ptr<CacheAdmin> admin = MustOpenAdmin();
  ASSERT_NE(admin, nullptr);
  Result<EvictionStats> r = admin->Evict(0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EBUSY);
  EXPECT_NE(r.status().message().find("in use by another s3cachefs (pid " +
                                      std::to_string(::getpid()) + ")"),
            std::string::npos)
      << r.status().message();
  EXPECT_EQ(cache_->counters().entries, 3u);
  cache_.reset();

  // Least recently read: obj1 (2 MiB), then obj2 (3 MiB); obj0 (1 MiB) was read last.
  r = admin->Evict(4 * kMiB);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->entries, 1u);
  EXPECT_EQ(r->bytes, 2 * kMiB);
  EXPECT_TRUE(r->within_budget);
  EXPECT_FALSE(Cached("obj1"));
  EXPECT_TRUE(Cached("obj0"));
  EXPECT_TRUE(Cached("obj2"));

  // DIRTY entries are never evicted: the target is then reported as not reached.
  Sql("UPDATE entries SET state = 1 WHERE key = 'obj2'");
  r = admin->Evict(0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->entries, 1u);  // obj0
  EXPECT_FALSE(r->within_budget);
  EXPECT_TRUE(Cached("obj2"));
  Result<CacheStats> stats = admin->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->counters.evictions, 2u);
  EXPECT_EQ(stats->summary.entries, 1u);
}

TEST_F(CacheAdminTest, VerifyFindsCorruptAndTruncatedFilesAndRepairDropsThem) {
  Fill();
  std::unique_ptr<CacheAdmin> admin = MustOpenAdmin();
  ASSERT_NE(admin, nullptr);
  Result<VerifyReport> report = admin->Verify(false);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->checked, 3u);
  EXPECT_EQ(report->md5_checked, 3u);
  EXPECT_TRUE(report->bad.empty());

  {  // flip one byte in the middle of obj1
    std::fstream f(ObjectFile("obj1"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(kMiB + 7);
    char c = 0;
    f.get(c);
    f.seekp(kMiB + 7);
    f.put(static_cast<char>(c ^ 1));
  }
  fs::resize_file(ObjectFile("obj2"), 3 * kMiB - 1);
  report = admin->Verify(false);
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->bad.size(), 2u);
  std::map<std::string, std::string> problems;
  for (const BadEntry& b : report->bad) {
    problems[b.entry.key] = b.problem;
    EXPECT_FALSE(b.dropped);
  }
  EXPECT_NE(problems["obj1"].find("does not match ETag"), std::string::npos) << problems["obj1"];
  EXPECT_EQ(problems["obj2"], "file has 3145727 bytes, expected 3145728");
  EXPECT_TRUE(Cached("obj1"));

  // Repair needs the directory: refused while a daemon holds it. (Not an ObjectCache here: its
  // start-up reconciliation would drop the truncated file itself.)
  {
    Result<UniqueFd> lock = LockCacheDirectory(dir_);
    ASSERT_TRUE(lock.ok());
    Result<VerifyReport> busy = admin->Verify(true);
    ASSERT_FALSE(busy.ok());
    EXPECT_EQ(busy.status().code(), EBUSY);
    EXPECT_TRUE(Cached("obj2"));
  }

  report = admin->Verify(true);
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->bad.size(), 2u);
  for (const BadEntry& b : report->bad) EXPECT_TRUE(b.dropped) << b.entry.key;
  EXPECT_FALSE(Cached("obj1"));
  report = admin->Verify(false);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->checked, 1u);
  EXPECT_TRUE(report->bad.empty());
}

TEST_F(CacheAdminTest, VerifyReportsMissingFileOfDirtyEntryButNeverDropsIt) {
  Fill();
  Sql("UPDATE entries SET state = 1 WHERE key = 'obj0'");
  fs::remove(ObjectFile("obj0"));
  std::unique_ptr<CacheAdmin> admin = MustOpenAdmin();
  ASSERT_NE(admin, nullptr);
  Result<VerifyReport> report = admin->Verify(true);
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->bad.size(), 1u);
  EXPECT_EQ(report->bad[0].entry.key, "obj0");
  EXPECT_NE(report->bad[0].problem.find("is missing"), std::string::npos);
  EXPECT_FALSE(report->bad[0].dropped);
  EXPECT_EQ(MustOpenAdmin()->Stats()->summary.entries, 3u);
}

TEST_F(CacheAdminTest, ClearErrorsForWhatIsNotACacheDirectory) {
  Result<std::unique_ptr<CacheAdmin>> r = CacheAdmin::Open(base_ + "/nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ENOENT);
  EXPECT_EQ(r.status().message(), "cache directory " + base_ + "/nope does not exist");

  fs::create_directories(base_ + "/plain");
  r = CacheAdmin::Open(base_ + "/plain/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EINVAL);
  EXPECT_NE(r.status().message().find(base_ + "/plain is not an s3cachefs cache directory"),
            std::string::npos)
      << r.status().message();
  EXPECT_FALSE(fs::exists(base_ + "/plain/index.sqlite")) << "looking must not create an index";

  std::ofstream(base_ + "/file") << "x";
  r = CacheAdmin::Open(base_ + "/file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ENOTDIR);

  fs::create_directories(base_ + "/bad/objects");
  std::ofstream(base_ + "/bad/index.sqlite") << "this is not a database, not even a little";
  r = CacheAdmin::Open(base_ + "/bad");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(base_ + "/bad/index.sqlite"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace s3cachefs::cache
