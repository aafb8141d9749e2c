// Test fixture for the write path of ObjectCache: a cache over FakeS3 (tests/fake_s3.h) whose
// PUTs can be failed or slowed, and helpers to write like the FUSE layer and to read index rows.
// Used by cache/write_back_test.cc and cache/object_ops_test.cc. Header-only; tests only.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cache/cache_test_util.h"
#include "cache/object_cache.h"
#include "cache/test_hooks.h"
#include "fake_s3.h"
#include "s3/crypto.h"
#include "s3/log.h"

namespace s3cachefs::cache {
namespace write_back_test {

using testutil::MakeBody;
using testutil::ReadAll;
using testutil::WaitFor;

namespace fs = std::filesystem;
using testing::FakeS3;
using testing::HookedClient;
using Op = FakeS3::Op;
using namespace std::chrono_literals;

constexpr char kBucket[] = "bucket";

// HookedClient whose PUTs (single and multipart starts) can be failed or slowed.
class PutHookedClient : public HookedClient {
 public:
  using HookedClient::HookedClient;
  std::function<Status(const std::string& key)> before_put;

  Result<std::string> PutObject(const std::string& key, const s3::FileRegion& body,
                                const s3::PutOptions& options) override {
    if (before_put) {
      Status s = before_put(key);
      if (!s.ok()) return s;
    }
    return HookedClient::PutObject(key, body, options);
  }
  Result<std::string> CreateMultipartUpload(const std::string& key,
                                            const s3::PutOptions& options) override {
    if (before_put) {
      Status s = before_put(key);
      if (!s.ok()) return s;
    }
    return HookedClient::CreateMultipartUpload(key, options);
  }
};

struct Row {
  int state = -1;  // -1: no row
  std::string etag;
  int64_t dirty_gen = 0;
  std::string base_etag;
  uint64_t size = 0;
};

class WriteBackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = testutil::MakeTempDir("write_back_test");
    ASSERT_FALSE(base_.empty());
    dir_ = base_ + "/cache";
    now_ms_ = testutil::NowMs();
    config_.cache_dir = dir_;
    config_.bucket = kBucket;
    config_.chunk_size = 64 << 10;
    config_.download_threads = 2;
    config_.parallel_per_object = 2;
    config_.read_timeout = 10s;
    config_.upload_threads = 2;
    config_.upload_retry_min_delay = 10ms;
    config_.upload_retry_max_delay = 50ms;
    config_.clock = [this] {
      return std::chrono::system_clock::time_point(std::chrono::milliseconds(now_ms_.load()));
    };
  }
  void TearDown() override {
    handles_.clear();
    cache_.reset();
    LogToStderr();
    fs::remove_all(base_);
  }

  void OpenCache() {
    Result<std::unique_ptr<ObjectCache>> r = ObjectCache::Open(client_, config_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    cache_ = std::move(*r);
  }
  std::shared_ptr<WritableFile> MustOpenWrite(const std::string& key, bool truncate, bool create) {
    Result<std::shared_ptr<WritableFile>> r = cache_->OpenWrite(key, truncate, create, {});
    EXPECT_TRUE(r.ok()) << key << ": " << r.status().ToString();
    return r.ok() ? *r : nullptr;
  }
  // Until PutsBackOnline, every PUT (and part) fails with ECONNREFUSED: a server that is down.
  void PutsOffline() {
    puts_offline_ = true;
    client_.before_put = [this](const std::string&) {
      return puts_offline_ ? Status::Error(ECONNREFUSED, "offline") : Status::Ok();
    };
  }
  void PutsBackOnline() { puts_offline_ = false; }
  // MarkDirty, then pwrite, as the FUSE layer does.
  static void Write(WritableFile& f, const std::string& data, off_t offset) {
    ASSERT_TRUE(f.MarkDirty().ok());
    ASSERT_EQ(::pwrite(f.fd(), data.data(), data.size(), offset),
              static_cast<ssize_t>(data.size()));
  }
  std::string MustRead(const std::string& key) {
    Result<std::shared_ptr<ObjectHandle>> h = cache_->OpenRead(key, std::nullopt);
    EXPECT_TRUE(h.ok()) << key << ": " << h.status().ToString();
    if (!h.ok()) return "<open failed>";
    Result<std::string> r = ReadAll(**h);
    // Downloads are committed in the background: wait, so that what follows sees the entry.
    EXPECT_TRUE(WaitFor([&] { return cache_->counters().downloading == 0; }));
    return r.ok() ? *r : "<read failed>";
  }
  std::string ObjectFile(const std::string& key) const {
    std::string hex = s3::Sha256Hex(std::string(kBucket) + "/" + key);
    return dir_ + "/objects/" + hex.substr(0, 2) + "/" + hex;
  }
  // The index row of key, read through a second connection.
  Row GetRow(const std::string& key) {
    Row row;
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((dir_ + "/index.sqlite").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db,
                                 "SELECT state, etag, dirty_gen, base_etag, size FROM entries"
                                 " WHERE key = ?1",
                                 -1, &st, nullptr),
              SQLITE_OK);
    sqlite3_bind_text(st, 1, key.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
      row.state = sqlite3_column_int(st, 0);
      row.etag = reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
      row.dirty_gen = sqlite3_column_int64(st, 2);
      row.base_etag = reinterpret_cast<const char*>(sqlite3_column_text(st, 3));
      row.size = static_cast<uint64_t>(sqlite3_column_int64(st, 4));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return row;
  }
  std::string LogPath() const { return base_ + "/log.txt"; }
  std::string ReadLog() const {
    std::ifstream in(LogPath());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  int gets() const { return fake_.calls(Op::kGet); }
  void Advance(std::chrono::milliseconds d) { now_ms_ += d.count(); }

  std::string base_;
  std::string dir_;
  std::atomic<int64_t> now_ms_{0};
  FakeS3 fake_;
  std::atomic<bool> puts_offline_{false};  // see PutsOffline; outlives the cache's threads
  PutHookedClient client_{fake_};
  ObjectCacheConfig config_;
  std::unique_ptr<ObjectCache> cache_;
  std::vector<std::shared_ptr<WritableFile>> handles_;
};

}  // namespace write_back_test
}  // namespace s3cachefs::cache
