// Partial fetches of large objects (cache/download.h): random readers fetch about what they
// read, sequential readers get read-ahead in full-sized requests, and an unfinished download
// is joined while its grace lasts, then completed or dropped.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "cache/object_cache_test_util.h"

namespace s3cachefs::cache {
namespace {

constexpr uint64_t kBlock = 4 << 10;

class PartialFetchTest : public ObjectCacheTest {
 protected:
  void SetUp() override {
    ObjectCacheTest::SetUp();
    config_.block_size = kBlock;
    config_.first_request = kBlock;
    config_.fetch_whole_max = kChunk;  // anything larger is fetched on demand
    config_.readahead_max = 4 * kChunk;
    config_.flush_interval = 20ms;  // the reaper runs in the flusher's loop
    config_.partial_grace = 1s;
  }

  // Reads length bytes at offset through h, as the FUSE layer does.
  std::string ReadAt(ObjectHandle& h, uint64_t offset, uint64_t length) {
    Status s = h.WaitReadable(offset, length);
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::string out(length, '\0');
    ssize_t n = ::pread(h.fd(), out.data(), length, static_cast<off_t>(offset));
    EXPECT_EQ(n, static_cast<ssize_t>(length));
    return out;
  }
  uint64_t Downloaded() const { return cache_->counters().bytes_downloaded; }
};

TEST_F(PartialFetchTest, RandomReadsFetchAboutWhatIsRead) {
  const uint64_t size = 256 * kChunk;  // 16 MiB
  std::string body = MakeBody(size, 21);
  fake_.Seed("big", body);
  OpenCache();
  std::shared_ptr<ObjectHandle> h = MustOpen("big");
  ASSERT_NE(h, nullptr);
  std::mt19937_64 rng(7);
  const uint64_t read_len = 16 << 10;
  uint64_t read = 0;
  for (int i = 0; i < 32; ++i) {
    uint64_t offset = (rng() % ((size - read_len) / 512)) * 512;  // not block-aligned
    EXPECT_EQ(ReadAt(*h, offset, read_len), body.substr(offset, read_len)) << "at " << offset;
    read += read_len;
  }
  // Each read covers at most one block more than its length; plus the first request.
  EXPECT_LE(Downloaded(), read + 32 * kBlock + kBlock);
  EXPECT_LT(Downloaded(), size / 8);
  h.reset();
  // Abandoned once the grace is over: nothing kept, nothing left in tmp/.
  ASSERT_TRUE(WaitFor([&] { return cache_->counters().downloading == 0; }, 10s));
  EXPECT_EQ(cache_->counters().entries, 0u);
  EXPECT_EQ(CountFiles(dir_ + "/tmp") + CountFiles(dir_ + "/objects"), 0u);
  EXPECT_EQ(MustRead("big"), body);  // starts afresh
}

TEST_F(PartialFetchTest, SequentialReaderGetsReadAheadInLargeRequests) {
  const uint64_t size = 64 * kChunk + 123;
  std::string body = MakeBody(size, 22);
  fake_.Seed("big", body);
  OpenCache();
  std::shared_ptr<ObjectHandle> h = MustOpen("big");
  ASSERT_NE(h, nullptr);
  const uint64_t read_len = 32 << 10;
  for (uint64_t offset = 0; offset < size; offset += read_len) {
    uint64_t n = std::min(read_len, size - offset);
    ASSERT_EQ(ReadAt(*h, offset, n), body.substr(offset, n)) << "at " << offset;
  }
  EXPECT_EQ(Downloaded(), size);
  // Until the run reaches readahead_max (here the start of read-ahead too) each read fetches
  // its own blocks; then read-ahead goes in whole requests: one GET per kChunk, not per block.
  const int ramp = static_cast<int>(config_.readahead_max / read_len);
  EXPECT_LE(gets(), static_cast<int>(size / kChunk) + ramp + 4) << gets();
  ASSERT_TRUE(Committed(1));
  EXPECT_EQ(MustRead("big"), body);
  EXPECT_EQ(Downloaded(), size);
}

// Near the start of an object, requests double from the first one's size up to chunk_size,
// each spanning [offset, 2 * offset): against a distant endpoint the reader's next bytes come
// in after a short request, not behind one full-sized request, while the later ones run.
TEST_F(PartialFetchTest, RequestsDoubleFromTheFirstUntilFullSized) {
  const uint64_t size = 4 * kChunk;
  std::string body = MakeBody(size, 27);
  fake_.Seed("whole", body);
  config_.fetch_whole_max = size;
  std::mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [first, last] of each GET
  client_.before_get = [&](const s3::GetRequest& r) {
    std::lock_guard<std::mutex> lock(mu);
    if (r.range.has_value()) ranges.emplace_back(r.range->first, r.range->last);
    return Status::Ok();
  };
  OpenCache();
  {
    // Nobody reads while it downloads: a reader waiting for a block pulls it to the front in
    // a request of its own, which would make the requests depend on timing.
    std::shared_ptr<ObjectHandle> h = MustOpen("whole");
    ASSERT_NE(h, nullptr);
    ASSERT_TRUE(Committed(1));
  }
  EXPECT_EQ(MustRead("whole"), body);
  std::lock_guard<std::mutex> lock(mu);
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<uint64_t, uint64_t>> want;
  for (uint64_t first = 0, len = kBlock; first < size; first += len) {
    len = std::min<uint64_t>(std::max<uint64_t>(kBlock, first), kChunk);
    want.emplace_back(first, first + len - 1);
  }
  ASSERT_EQ(want.size(), 8u);  // 4K, 4K, 8K, 16K, 32K, then 64K three times
  EXPECT_EQ(ranges, want);
}

// Against a distant endpoint a GET is slow and only GETs in flight add up: a sequential reader
// keeps parallel_per_object of them busy even where readahead_max holds fewer whole requests.
TEST_F(PartialFetchTest, ReadAheadKeepsEveryParallelGetBusy) {
  const uint64_t size = 48 * kChunk;
  std::string body = MakeBody(size, 25);
  fake_.Seed("big", body);
  config_.readahead_max = kChunk;
  config_.parallel_per_object = 4;
  testutil::Overlap gets;
  client_.before_get = [&](const s3::GetRequest&) {
    gets.Hold(20ms);
    return Status::Ok();
  };
  OpenCache();
  std::shared_ptr<ObjectHandle> h = MustOpen("big");
  ASSERT_NE(h, nullptr);
  const uint64_t read_len = 32 << 10;
  for (uint64_t offset = 0; offset < size; offset += read_len) {
    ASSERT_EQ(ReadAt(*h, offset, read_len), body.substr(offset, read_len)) << "at " << offset;
  }
  EXPECT_EQ(gets.most(), 4);
  EXPECT_EQ(Downloaded(), size);
}

// A run from the start of the file gets sixteen times its length as read-ahead (a whole-file
// reader: cp, cat); a run that began elsewhere four times.
TEST_F(PartialFetchTest, ReadAheadRampsFasterForARunFromTheStart) {
  constexpr uint64_t kMiB = 1 << 20;
  config_.chunk_size = kMiB;
  config_.block_size = 64 << 10;
  config_.first_request = 64 << 10;
  config_.readahead_max = 64 * kMiB;
  const uint64_t size = 96 * kMiB;
  std::string body = MakeBody(size, 26);
  fake_.Seed("a", body);
  fake_.Seed("b", body);
  OpenCache();
  const uint64_t read_len = 256 << 10;
  auto run = [&](const char* key, uint64_t from) {
    std::shared_ptr<ObjectHandle> h = MustOpen(key);
    EXPECT_NE(h, nullptr);
    for (uint64_t offset = from; offset < from + 4 * kMiB; offset += read_len) {
      EXPECT_EQ(ReadAt(*h, offset, read_len), body.substr(offset, read_len)) << "at " << offset;
    }
    return h;
  };
  std::shared_ptr<ObjectHandle> b = run("b", 8 * kMiB);
  std::this_thread::sleep_for(300ms);  // what was queued is in by now
  const uint64_t from_elsewhere = Downloaded();
  EXPECT_LE(from_elsewhere, 4 * kMiB + 16 * kMiB + 2 * kMiB) << from_elsewhere;
  std::shared_ptr<ObjectHandle> a = run("a", 0);
  EXPECT_TRUE(WaitFor([&] { return Downloaded() - from_elsewhere >= 4 * kMiB + 60 * kMiB; }))
      << Downloaded() - from_elsewhere;
}

TEST_F(PartialFetchTest, ReopenWithinGraceJoinsAndMostlyReadDownloadIsCompleted) {
  const uint64_t size = 32 * kChunk;
  std::string body = MakeBody(size, 23);
  fake_.Seed("big", body);
  config_.readahead_max = kChunk;
  OpenCache();
  {
    std::shared_ptr<ObjectHandle> h = MustOpen("big");
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(ReadAt(*h, size / 2, 1000), body.substr(size / 2, 1000));
  }
  {
    // Within the grace: the same download, no new first request.
    std::shared_ptr<ObjectHandle> h = MustOpen("big");
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(cache_->counters().downloads, 1u);
    for (uint64_t offset = 0; offset < size * 3 / 4; offset += kChunk) {
      ASSERT_EQ(ReadAt(*h, offset, kChunk), body.substr(offset, kChunk));
    }
  }
  // Three quarters in when the last reader left: the rest is fetched and the object kept.
  ASSERT_TRUE(Committed(1));
  EXPECT_EQ(Downloaded(), size);
  EXPECT_EQ(MustRead("big"), body);
  EXPECT_EQ(Downloaded(), size);
}

TEST_F(PartialFetchTest, OpenForWritingFetchesTheWholeObject) {
  const uint64_t size = 16 * kChunk + 7;
  std::string body = MakeBody(size, 24);
  fake_.Seed("big", body);
  OpenCache();
  Result<std::shared_ptr<WritableFile>> w = cache_->OpenWrite("big", false, false, {});
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::string got(size, '\0');
  ASSERT_EQ(::pread((*w)->fd(), got.data(), size, 0), static_cast<ssize_t>(size));
  EXPECT_EQ(got, body);
}

}  // namespace
}  // namespace s3cachefs::cache
