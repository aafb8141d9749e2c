#include "s3/transfer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "fake_s3.h"

namespace s3cachefs::s3 {
namespace {

using ::testing::_;
using testing::FakeS3;
using ::testing::Return;

constexpr uint64_t kMiB = 1 << 20;

TEST(PlanPartsTest, SplitsWithRemainder) {
  Result<std::vector<PartSpec>> p = PlanParts(12 * kMiB + 1, 5 * kMiB);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[0].number, 1);
  EXPECT_EQ((*p)[0].length, 5 * kMiB);
  EXPECT_EQ((*p)[2].offset, 10 * kMiB);
  EXPECT_EQ((*p)[2].length, 2 * kMiB + 1);
}

TEST(PlanPartsTest, ExactMultipleAndTinyPartSize) {
  Result<std::vector<PartSpec>> p = PlanParts(10 * kMiB, 1);  // raised to 5 MiB
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ(p->back().length, 5 * kMiB);
  EXPECT_EQ(PlanParts(0, 5 * kMiB)->size(), 1u);
}

TEST(PlanPartsTest, GrowsToStayWithin10000Parts) {
  const uint64_t size = 1ull << 40;  // 1 TiB at 16 MiB parts would need 65536 parts
  Result<std::vector<PartSpec>> p = PlanParts(size, 16 * kMiB);
  ASSERT_TRUE(p.ok());
  EXPECT_LE(p->size(), 10000u);
  EXPECT_EQ((*p)[0].length % kMiB, 0u);
  uint64_t total = 0;
  for (const PartSpec& s : *p) total += s.length;
  EXPECT_EQ(total, size);
  EXPECT_LE(PlanParts(5ull << 40, 16 * kMiB)->size(), 10000u);  // S3's 5 TiB maximum
  EXPECT_EQ(PlanParts(60ull << 40, 16 * kMiB).status().code(), EFBIG);
}

class TempFile {
 public:
  explicit TempFile(const std::string& data) {
    char path[] = "/tmp/s3_transfer_testXXXXXX";
    fd_ = mkstemp(path);
    unlink(path);
    EXPECT_EQ(write(fd_, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  }
  ~TempFile() { close(fd_); }
  int fd() const { return fd_; }

 private:
  int fd_;
};

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131) ^ (i >> 9));
  return s;
}

TEST(UploadFileTest, SmallBodyIsOnePut) {
  FakeS3 fake;
  TempFile f("hello");
  Result<std::string> etag = UploadFile(fake, "k", {f.fd(), 1, 3}, {});
  ASSERT_TRUE(etag.ok()) << etag.status().ToString();
  EXPECT_EQ(*fake.Body("k"), "ell");
  EXPECT_EQ(fake.calls(FakeS3::Op::kPut), 1);
  EXPECT_EQ(fake.calls(FakeS3::Op::kCreateMultipart), 0);
}

TEST(UploadFileTest, LargeBodyGoesMultipartInParallel) {
  FakeS3 fake;
  const std::string data = Pattern(23 * kMiB + 7);
  TempFile f(data);
  TransferTuning t;
  t.multipart_threshold = 8 * kMiB;
  t.part_size = 5 * kMiB;
  t.parallelism = 4;
  PutOptions opts;
  opts.metadata["mode"] = "0644";
  Result<std::string> etag = UploadFile(fake, "big", {f.fd(), 0, data.size()}, opts, t);
  ASSERT_TRUE(etag.ok()) << etag.status().ToString();
  EXPECT_THAT(*etag, ::testing::EndsWith("-5\""));
  EXPECT_EQ(fake.calls(FakeS3::Op::kUploadPart), 5);
  EXPECT_TRUE(*fake.Body("big") == data);
  EXPECT_EQ(fake.Find("big")->metadata.at("mode"), "0644");
}

TEST(UploadFileTest, FailedPartAbortsTheUpload) {
  FakeS3 fake;
  const std::string data = Pattern(16 * kMiB);
  TempFile f(data);
  fake.FailNext(FakeS3::Op::kUploadPart, 1, Status::Error(EIO, "injected"));
  TransferTuning t;
  t.part_size = 5 * kMiB;
  t.parallelism = 2;
  Result<std::string> etag = UploadFile(fake, "big", {f.fd(), 0, data.size()}, {}, t);
  EXPECT_EQ(etag.status().code(), EIO);
  EXPECT_EQ(fake.calls(FakeS3::Op::kAbort), 1);
  EXPECT_EQ(fake.calls(FakeS3::Op::kComplete), 0);
  EXPECT_EQ(fake.pending_uploads(), 0u);
  EXPECT_FALSE(fake.Exists("big"));
}

TEST(UploadFileTest, FailedCompleteAbortsTheUpload) {
  FakeS3 fake;
  const std::string data = Pattern(16 * kMiB);
  TempFile f(data);
  fake.FailNext(FakeS3::Op::kComplete, 1, Status::Error(EIO, "injected"));
  Result<std::string> etag = UploadFile(fake, "big", {f.fd(), 0, data.size()}, {});
  EXPECT_EQ(etag.status().code(), EIO);
  EXPECT_EQ(fake.pending_uploads(), 0u);
}

class MockClient : public Client {
 public:
  MOCK_METHOD(Status, CheckBucket, (), (override));
  MOCK_METHOD(Result<ListPage>, ListObjectsV2, (const ListRequest&), (override));
  MOCK_METHOD(Result<ObjectInfo>, HeadObject, (const std::string&), (override));
  MOCK_METHOD(Result<GetResult>, GetObject, (const GetRequest&, Sink&), (override));
  MOCK_METHOD(Result<std::string>, PutObject,
              (const std::string&, const FileRegion&, const PutOptions&), (override));
  MOCK_METHOD(Result<std::string>, CreateMultipartUpload, (const std::string&, const PutOptions&),
              (override));
  MOCK_METHOD(Result<std::string>, UploadPart,
              (const std::string&, const std::string&, int, const FileRegion&), (override));
  MOCK_METHOD(Result<std::string>, UploadPartCopy,
              (const std::string&, const std::string&, int, const std::string&, const ByteRange&),
              (override));
  MOCK_METHOD(Result<std::string>, CompleteMultipartUpload,
              (const std::string&, const std::string&, const std::vector<CompletedPart>&),
              (override));
  MOCK_METHOD(Status, AbortMultipartUpload, (const std::string&, const std::string&), (override));
  MOCK_METHOD(Result<std::string>, CopyObject,
              (const std::string&, const std::string&, const std::optional<PutOptions>&),
              (override));
  MOCK_METHOD(Status, DeleteObject, (const std::string&), (override));
  MOCK_METHOD(Result<std::vector<DeleteError>>, DeleteObjects, (const std::vector<std::string>&),
              (override));
  MOCK_METHOD(const ClientStats&, stats, (), (const, override));
};

TEST(CopyObjectAnySizeTest, SmallUsesCopyObject) {
  MockClient m;
  EXPECT_CALL(m, CopyObject("a", "b", _)).WillOnce(Return(Result<std::string>("\"e\"")));
  EXPECT_EQ(*CopyObjectAnySize(m, "a", "b", 5ull << 30, std::nullopt), "\"e\"");
}

TEST(CopyObjectAnySizeTest, HugeUsesParallelPartCopiesAndKeepsMetadata) {
  MockClient m;
  const uint64_t size = (6ull << 30) + 3;
  ObjectInfo src;
  src.metadata["mode"] = "0600";
  src.content_type = "text/plain";
  EXPECT_CALL(m, HeadObject("a")).WillOnce(Return(Result<ObjectInfo>(src)));
  EXPECT_CALL(m, CreateMultipartUpload("b", _))
      .WillOnce([](const std::string&, const PutOptions& o) {
        EXPECT_EQ(o.metadata.at("mode"), "0600");
        EXPECT_EQ(o.content_type, "text/plain");
        return Result<std::string>("U");
      });
  std::mutex mu;
  uint64_t covered = 0;
  EXPECT_CALL(m, UploadPartCopy("b", "U", _, "a", _))
      .Times(13)  // 512 MiB parts
      .WillRepeatedly([&](const std::string&, const std::string&, int n, const std::string&,
                          const ByteRange& r) {
        std::lock_guard<std::mutex> lock(mu);
        covered += r.last - r.first + 1;
        return Result<std::string>("\"p" + std::to_string(n) + "\"");
      });
  EXPECT_CALL(m, CompleteMultipartUpload("b", "U", _))
      .WillOnce([](const std::string&, const std::string&, const std::vector<CompletedPart>& p) {
        EXPECT_EQ(p.size(), 13u);
        EXPECT_EQ(p[12].part_number, 13);
        EXPECT_EQ(p[12].etag, "\"p13\"");
        return Result<std::string>("\"x-13\"");
      });
  Result<std::string> r = CopyObjectAnySize(m, "a", "b", size, std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "\"x-13\"");
  EXPECT_EQ(covered, size);
}

TEST(CopyObjectAnySizeTest, FailedPartCopyAborts) {
  MockClient m;
  EXPECT_CALL(m, CreateMultipartUpload("b", _)).WillOnce(Return(Result<std::string>("U")));
  EXPECT_CALL(m, UploadPartCopy(_, _, _, _, _))
      .WillRepeatedly(Return(Result<std::string>(Status::Error(ENOTSUP, "no"))));
  EXPECT_CALL(m, CompleteMultipartUpload(_, _, _)).Times(0);
  EXPECT_CALL(m, AbortMultipartUpload("b", "U")).WillOnce(Return(Status::Ok()));
  EXPECT_EQ(CopyObjectAnySize(m, "a", "b", 6ull << 30, PutOptions{}).status().code(), ENOTSUP);
}

}  // namespace
}  // namespace s3cachefs::s3
