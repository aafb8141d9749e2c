// The writes of a ranged GET's body into the cache file (cache/chunk_sink.h): aligned units
// that grow with the offset, the request's limit, Reset for a retry, cancellation.
#include "cache/chunk_sink.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cache/cache_test_util.h"

namespace s3cachefs::cache {
namespace {

constexpr uint64_t KiB = 1 << 10;
constexpr uint64_t MiB = 1 << 20;

// Stands in for s3::FdSink: records each write as (file offset, length).
class RecordingSink : public s3::Sink {
 public:
  explicit RecordingSink(uint64_t offset) : start_(offset) {}
  Status Write(const char* data, size_t size) override {
    writes.emplace_back(start_ + body.size(), size);
    body.append(data, size);
    return Status::Ok();
  }
  Status Reset() override {
    body.clear();
    ++resets;
    return Status::Ok();
  }
  std::vector<std::pair<uint64_t, uint64_t>> writes;
  std::string body;
  int resets = 0;

 private:
  uint64_t start_;
};

std::string MakeBody(size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + i / 4096) & 0xff);
  return s;
}

// Feeds body to sink in pieces of `piece` bytes, as curl does.
Status Feed(ChunkSink& sink, const std::string& body, size_t piece) {
  for (size_t at = 0; at < body.size(); at += piece) {
    Status s = sink.Write(body.data() + at, std::min(piece, body.size() - at));
    if (!s.ok()) return s;
  }
  return sink.Finish();
}

TEST(WriteUnitsTest, UnitsDoubleWithTheOffsetUpToTheMaximum) {
  const WriteUnits u{128 * KiB, 1 * MiB};
  EXPECT_EQ(u.EndAfter(0), 128 * KiB);
  EXPECT_EQ(u.EndAfter(100 * KiB), 128 * KiB);
  EXPECT_EQ(u.EndAfter(128 * KiB), 256 * KiB);
  EXPECT_EQ(u.EndAfter(256 * KiB), 512 * KiB);
  EXPECT_EQ(u.EndAfter(512 * KiB), 1 * MiB);
  EXPECT_EQ(u.EndAfter(768 * KiB), 1 * MiB);
  EXPECT_EQ(u.EndAfter(1 * MiB), 2 * MiB);
  EXPECT_EQ(u.EndAfter(1 * MiB + 256 * KiB), 2 * MiB);
  EXPECT_EQ(u.EndAfter(3 * MiB), 4 * MiB);
  EXPECT_EQ(u.EndAfter(1000 * MiB + 1), 1001 * MiB);
  const WriteUnits block{4 * KiB, 4 * KiB};  // blocks smaller than a unit
  EXPECT_EQ(block.EndAfter(0), 4 * KiB);
  EXPECT_EQ(block.EndAfter(6 * KiB), 8 * KiB);
  EXPECT_EQ(block.EndAfter(1 * MiB), 1 * MiB + 4 * KiB);
}

TEST(ChunkSinkTest, ABodyFromTheStartIsWrittenInGrowingAlignedUnits) {
  const std::string body = MakeBody(5 * MiB + 100);
  RecordingSink out(0);
  std::vector<uint64_t> progress;
  ChunkSink sink(out, 0, body.size(), WriteUnits{128 * KiB, 1 * MiB}, nullptr, nullptr,
                 [&](uint64_t bytes) { progress.push_back(bytes); });
  ASSERT_TRUE(Feed(sink, body, 16 * KiB).ok());
  EXPECT_EQ(out.body, body);
  const std::vector<std::pair<uint64_t, uint64_t>> expected = {
      {0, 128 * KiB},         {128 * KiB, 128 * KiB}, {256 * KiB, 256 * KiB},
      {512 * KiB, 512 * KiB}, {1 * MiB, 1 * MiB},     {2 * MiB, 1 * MiB},
      {3 * MiB, 1 * MiB},     {4 * MiB, 1 * MiB},     {5 * MiB, 100}};
  EXPECT_EQ(out.writes, expected);
  ASSERT_EQ(progress.size(), expected.size());
  EXPECT_EQ(progress.back(), body.size());
  EXPECT_EQ(sink.written(), body.size());
}

TEST(ChunkSinkTest, ARangeFromTheMiddleFirstFillsUpToAUnitBoundary) {
  // A ranged GET of blocks 5.. of 256 KiB: 1.25 MiB into the object, 2.5 MiB long, handed over
  // in pieces that divide nothing.
  const uint64_t offset = 1 * MiB + 256 * KiB;
  const std::string body = MakeBody(2 * MiB + 512 * KiB);
  RecordingSink out(offset);
  ChunkSink sink(out, offset, body.size(), WriteUnits{128 * KiB, 1 * MiB}, nullptr, nullptr);
  ASSERT_TRUE(Feed(sink, body, 48 * KiB + 3).ok());
  EXPECT_EQ(out.body, body);
  const std::vector<std::pair<uint64_t, uint64_t>> expected = {
      {offset, 768 * KiB}, {2 * MiB, 1 * MiB}, {3 * MiB, 768 * KiB}};
  EXPECT_EQ(out.writes, expected);
}

TEST(ChunkSinkTest, WholeUnitsInOnePieceAreWrittenWithoutCopying) {
  const std::string body = MakeBody(3 * MiB);
  RecordingSink out(0);
  ChunkSink sink(out, 0, body.size(), WriteUnits{128 * KiB, 1 * MiB}, nullptr, nullptr);
  ASSERT_TRUE(Feed(sink, body, 3 * MiB).ok());
  EXPECT_EQ(out.body, body);
  const std::vector<std::pair<uint64_t, uint64_t>> expected = {
      {0, 128 * KiB},         {128 * KiB, 128 * KiB}, {256 * KiB, 256 * KiB},
      {512 * KiB, 512 * KiB}, {1 * MiB, 1 * MiB},     {2 * MiB, 1 * MiB}};
  EXPECT_EQ(out.writes, expected);
}

TEST(ChunkSinkTest, MoreThanTheRequestedBytesIsAnError) {
  const std::string body = MakeBody(300 * KiB);
  RecordingSink out(0);
  std::atomic<uint64_t> counter{0};
  ChunkSink sink(out, 0, 200 * KiB, WriteUnits{128 * KiB, 1 * MiB}, nullptr, &counter);
  Status s = Feed(sink, body, 64 * KiB);
  EXPECT_EQ(s.code(), EIO) << s.ToString();
  EXPECT_LE(out.body.size(), 200 * KiB);
  EXPECT_EQ(out.body, body.substr(0, out.body.size()));
  EXPECT_EQ(counter.load(), 192 * KiB);  // the pieces accepted
}

TEST(ChunkSinkTest, ResetStartsTheBodyAgainForARetry) {
  const std::string body = MakeBody(700 * KiB);
  RecordingSink out(0);
  ChunkSink sink(out, 0, body.size(), WriteUnits{128 * KiB, 1 * MiB}, nullptr, nullptr);
  ASSERT_TRUE(sink.Write(body.data(), 300 * KiB).ok());  // 256 KiB out, 44 KiB buffered
  ASSERT_TRUE(sink.Reset().ok());
  EXPECT_EQ(out.resets, 1);
  EXPECT_EQ(sink.written(), 0u);
  out.writes.clear();
  ASSERT_TRUE(Feed(sink, body, 32 * KiB).ok());
  EXPECT_EQ(out.body, body);
  EXPECT_EQ(out.writes.front(), (std::pair<uint64_t, uint64_t>{0, 128 * KiB}));
}

TEST(ChunkSinkTest, ACancelledDownloadStopsAtTheNextPiece) {
  const std::string body = MakeBody(256 * KiB);
  RecordingSink out(0);
  std::atomic<bool> cancelled{false};
  ChunkSink sink(out, 0, body.size(), WriteUnits{128 * KiB, 1 * MiB}, &cancelled, nullptr);
  ASSERT_TRUE(sink.Write(body.data(), 64 * KiB).ok());
  cancelled = true;
  EXPECT_EQ(sink.Write(body.data() + 64 * KiB, 64 * KiB).code(), ECANCELED);
}

// Counts the writers inside Write at once; each stays a moment, as a large pwrite does.
class OverlapSink : public s3::Sink {
 public:
  Status Write(const char*, size_t) override {
    writers.Hold(std::chrono::milliseconds(2));
    return Status::Ok();
  }
  Status Reset() override { return Status::Ok(); }
  testutil::Overlap writers;
};

TEST(SerialSinkTest, TheRequestsOfOneFileWriteOneAtATime) {
  OverlapSink file;
  std::mutex mu;
  std::vector<std::thread> requests;
  requests.reserve(4);
  for (int r = 0; r < 4; ++r) {
    requests.emplace_back([&] {
      SerialSink out(file, mu);
      const char piece[16] = {};
      for (int i = 0; i < 10; ++i) EXPECT_TRUE(out.Write(piece, sizeof piece).ok());
    });
  }
  for (std::thread& t : requests) t.join();
  EXPECT_EQ(file.writers.most(), 1);
}

}  // namespace
}  // namespace s3cachefs::cache
