// The fixture of the ObjectCache tests (object_cache_test.cc, partial_fetch_test.cc): a cache
// on a temporary directory over FakeS3 (tests/fake_s3.h) through HookedClient
// (cache/test_hooks.h), which can delay, hold, fail or corrupt single GETs. Header-only.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "cache/cache_test_util.h"
#include "cache/object_cache.h"
#include "cache/test_hooks.h"
#include "fake_s3.h"
#include "s3/crypto.h"

namespace s3cachefs::cache {
namespace {  // each test file gets its own copy

using testutil::MakeBody;
using testutil::ReadAll;
using testutil::WaitFor;

namespace fs = std::filesystem;
using testing::FakeS3;
using testing::Gate;
using testing::HookedClient;
using Op = FakeS3::Op;
using namespace std::chrono_literals;

constexpr uint64_t kChunk = 64 << 10;
constexpr char kBucket[] = "bucket";

inline bool IsRanged(const s3::GetRequest& r, uint64_t first) {
  return r.range.has_value() && r.range->first == first;
}

inline size_t CountFiles(const fs::path& dir) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

class ObjectCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = testutil::MakeTempDir("object_cache_test");
    ASSERT_FALSE(base_.empty());
    dir_ = base_ + "/cache";
    now_ms_ = testutil::NowMs();
    config_.cache_dir = dir_;
    config_.bucket = kBucket;
    config_.chunk_size = kChunk;
    config_.download_threads = 4;
    config_.parallel_per_object = 2;
    config_.read_timeout = 10s;
    config_.clock = [this] {
      return std::chrono::system_clock::time_point(std::chrono::milliseconds(now_ms_.load()));
    };
  }
  void TearDown() override {
    cache_.reset();
    fs::remove_all(base_);
  }

  void OpenCache() {
    Result<std::unique_ptr<ObjectCache>> r = ObjectCache::Open(client_, config_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    cache_ = std::move(*r);
  }
  std::shared_ptr<ObjectHandle> MustOpen(const std::string& key,
                                         const std::optional<ListingHint>& hint = {}) {
    Result<std::shared_ptr<ObjectHandle>> r = cache_->OpenRead(key, hint);
    EXPECT_TRUE(r.ok()) << key << ": " << r.status().ToString();
    return r.ok() ? *r : nullptr;
  }
  std::string MustRead(const std::string& key) {
    std::shared_ptr<ObjectHandle> h = MustOpen(key);
    if (h == nullptr) return "<open failed>";
    Result<std::string> r = ReadAll(*h);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    // Downloads are committed in the background: wait, so that what follows sees the entry.
    EXPECT_TRUE(WaitFor([&] { return cache_->counters().downloading == 0; }));
    return r.ok() ? *r : "<read failed>";
  }
  std::string ObjectFile(const std::string& key) const {
    std::string hex = s3::Sha256Hex(std::string(kBucket) + "/" + key);
    return dir_ + "/objects/" + hex.substr(0, 2) + "/" + hex;
  }
  void Advance(std::chrono::milliseconds d) { now_ms_ += d.count(); }
  int gets() const { return fake_.calls(Op::kGet); }
  // The index holds `entries` rows and no download is still finishing. The row goes in before
  // the download leaves the in-flight map: an open in between joins the finished download
  // instead of looking at the row (no revalidation, the old body after a change).
  bool Committed(uint64_t entries) {
    return WaitFor([&] {
      CacheCounters c = cache_->counters();
      return c.entries == entries && c.downloading == 0;
    });
  }

  std::string base_;
  std::string dir_;
  std::atomic<int64_t> now_ms_{0};
  FakeS3 fake_;
  HookedClient client_{fake_};
  ObjectCacheConfig config_;
  std::unique_ptr<ObjectCache> cache_;
};

}  // namespace
}  // namespace s3cachefs::cache
