// Shared fixture of the cache budget tests (evictor_test.cc, cache_admin_test.cc): an
// ObjectCache over FakeS3 in a fresh directory, with a clock the test moves, objects of whole
// MiB, and direct access to the index file for what the read path cannot do (mark rows DIRTY).
// Header-only; not part of the library.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "cache/cache_test_util.h"
#include "cache/object_cache.h"
#include "cache/test_hooks.h"
#include "fake_s3.h"
#include "s3/crypto.h"

namespace s3cachefs::cache {

using testutil::MakeBody;
using testutil::ReadAll;

constexpr uint64_t kMiB = 1ull << 20;

template <typename Pred>
bool WaitUntil(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

class BudgetTest : public ::testing::Test {
 protected:
  static constexpr char kBucket[] = "bucket";

  void SetUp() override {
    base_ = testutil::MakeTempDir("cache_budget_test");
    ASSERT_FALSE(base_.empty());
    dir_ = base_ + "/cache";
    now_ms_ = testutil::NowMs();
    config_.cache_dir = dir_;
    config_.bucket = kBucket;
    config_.chunk_size = 1 * kMiB;
    config_.download_threads = 4;
    config_.parallel_per_object = 2;
    config_.read_timeout = std::chrono::seconds(20);
    config_.cache_min_free_percent = 0;  // the budget under test is cache_size
    config_.clock = [this] {
      return std::chrono::system_clock::time_point(std::chrono::milliseconds(now_ms_.load()));
    };
  }
  void TearDown() override {
    cache_.reset();
    std::filesystem::remove_all(base_);
  }

  void OpenCache() {
    Result<std::unique_ptr<ObjectCache>> r = ObjectCache::Open(client_, config_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    cache_ = std::move(*r);
  }
  // Seeds "obj<i>" of mib MiB; returns its key.
  std::string Seed(int i, uint64_t mib = 5) {
    std::string key = "obj" + std::to_string(i);
    fake_.Seed(key, MakeBody(mib * kMiB, static_cast<unsigned>(i)));
    return key;
  }
  std::shared_ptr<ObjectHandle> MustOpen(const std::string& key) {
    Result<std::shared_ptr<ObjectHandle>> r = cache_->OpenRead(key, std::nullopt);
    EXPECT_TRUE(r.ok()) << key << ": " << r.status().ToString();
    return r.ok() ? *r : nullptr;
  }
  // Opens, reads whole and closes key; true when the content is the seeded one.
  bool ReadOk(const std::string& key) {
    std::shared_ptr<ObjectHandle> h = MustOpen(key);
    if (h == nullptr) return false;
    Result<std::string> body = ReadAll(*h);
    EXPECT_TRUE(body.ok()) << key << ": " << body.status().ToString();
    return body.ok() && fake_.Body(key) == *body;
  }
  // Reads key and waits until its download is committed (or given up).
  void ReadAndSettle(const std::string& key) {
    EXPECT_TRUE(ReadOk(key)) << key;
    EXPECT_TRUE(WaitUntil([&] { return TmpEmpty(); })) << "download of " << key << " not done";
  }
  std::string ObjectFile(const std::string& key) const {
    std::string hex = s3::Sha256Hex(std::string(kBucket) + "/" + key);
    return dir_ + "/objects/" + hex.substr(0, 2) + "/" + hex;
  }
  bool Cached(const std::string& key) const { return std::filesystem::exists(ObjectFile(key)); }
  bool TmpEmpty() const { return std::filesystem::is_empty(dir_ + "/tmp"); }
  uint64_t FilesBytes() const {
    uint64_t total = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_ + "/objects")) {
      if (e.is_regular_file()) total += e.file_size();
    }
    return total;
  }
  // Runs sql on the index file through its own connection (the cache may be open: WAL).
  void Sql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/index.sqlite").c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err != nullptr ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }
  void Advance(std::chrono::milliseconds d) { now_ms_ += d.count(); }
  int gets() const { return fake_.calls(testing::FakeS3::Op::kGet); }

  std::string base_;
  std::string dir_;
  std::atomic<int64_t> now_ms_{0};
  testing::FakeS3 fake_;
  testing::HookedClient client_{fake_};
  ObjectCacheConfig config_;
  std::unique_ptr<ObjectCache> cache_;
};

}  // namespace s3cachefs::cache
