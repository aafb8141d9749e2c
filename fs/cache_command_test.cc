// Tests of `s3cachefs cache ...` argument handling and exit codes (the work itself is tested
// in cache/cache_admin_test.cc).
#include "fs/cache_command.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <vector>

#include "cache/budget_test_util.h"

namespace s3cachefs::fs {
namespace {

int RunCmd(std::initializer_list<std::string> args) {
  std::vector<std::string> strings(args);
  std::vector<char*> argv;
  argv.reserve(strings.size());
  for (std::string& s : strings) argv.push_back(s.data());
  return RunCacheCommand(static_cast<int>(argv.size()), argv.data());
}

class CacheCommandTest : public cache::BudgetTest {};

TEST_F(CacheCommandTest, UsageErrorsExitTwo) {
  EXPECT_EQ(RunCmd({"cache"}), 2);
  EXPECT_EQ(RunCmd({"cache", "frobnicate", "--cache-dir", dir_}), 2);
  EXPECT_EQ(RunCmd({"cache", "stats"}), 2);
  EXPECT_EQ(RunCmd({"cache", "evict", "--cache-dir", dir_}), 2);
  EXPECT_EQ(RunCmd({"cache", "evict", "--cache-dir", dir_, "--size", "50Q"}), 2);
  EXPECT_EQ(RunCmd({"cache", "stats", "--cache-dir", dir_, "--repair"}), 2);
  EXPECT_EQ(RunCmd({"cache", "--help"}), 0);
}

TEST_F(CacheCommandTest, MissingDirectoryExitsOne) {
  EXPECT_EQ(RunCmd({"cache", "stats", "--cache-dir", base_ + "/nope"}), 1);
  EXPECT_EQ(RunCmd({"cache", "verify", "--cache-dir=" + base_}), 1);  // not a cache directory
}

TEST_F(CacheCommandTest, StatsEvictVerifyOnARealCache) {
  OpenCache();
  for (int i = 0; i < 3; ++i) {
    Seed(i, 1);
    ReadAndSettle("obj" + std::to_string(i));
    Advance(std::chrono::seconds(1));
  }
  EXPECT_EQ(RunCmd({"cache", "evict", "--cache-dir", dir_, "--size", "1M"}), 1);  // mounted
  cache_.reset();
  EXPECT_EQ(RunCmd({"cache", "stats", "--cache-dir", dir_}), 0);
  EXPECT_EQ(RunCmd({"cache", "verify", "--cache-dir", dir_}), 0);
  EXPECT_EQ(RunCmd({"cache", "evict", "--cache-dir", dir_, "--size=1M"}), 0);
  EXPECT_FALSE(Cached("obj0"));
  EXPECT_TRUE(Cached("obj2"));
  std::filesystem::resize_file(ObjectFile("obj2"), 10);
  EXPECT_EQ(RunCmd({"cache", "verify", "--cache-dir", dir_}), 1);
  EXPECT_EQ(RunCmd({"cache", "verify", "--cache-dir", dir_, "--repair"}), 1);
  EXPECT_EQ(RunCmd({"cache", "verify", "--cache-dir", dir_}), 0);
}

}  // namespace
}  // namespace s3cachefs::fs
