// Tests of tests/fake_s3.h, the fake the cache layer's unit tests rely on.
#include "fake_s3.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace s3cachefs::testing {
namespace {

using Op = FakeS3::Op;

std::vector<std::string> AllKeys(FakeS3& fake, s3::ListRequest req,
                                 std::vector<std::string>* prefixes = nullptr,
                                 int* pages = nullptr) {
  std::vector<std::string> keys;
  for (;;) {
    Result<s3::ListPage> page = fake.ListObjectsV2(req);
    EXPECT_TRUE(page.ok());
    if (pages != nullptr) ++*pages;
    for (const auto& o : page->objects) keys.push_back(o.key);
    if (prefixes != nullptr) {
      prefixes->insert(prefixes->end(), page->common_prefixes.begin(), page->common_prefixes.end());
    }
    if (!page->truncated) return keys;
    req.continuation_token = page->next_token;
  }
}

TEST(FakeS3Test, ListingFlatDelimitedPaged) {
  FakeS3 fake;
  for (const char* k : {"a", "d/1", "d/2", "d/e/3", "d/f/4", "z", "dz"}) fake.Seed(k, k);
  std::vector<std::string> prefixes;
  int pages = 0;
  s3::ListRequest req;
  req.max_keys = 2;
  EXPECT_EQ(AllKeys(fake, req, nullptr, &pages),
            (std::vector<std::string>{"a", "d/1", "d/2", "d/e/3", "d/f/4", "dz", "z"}));
  EXPECT_EQ(pages, 4);
  req.delimiter = "/";
  EXPECT_EQ(AllKeys(fake, req, &prefixes), (std::vector<std::string>{"a", "dz", "z"}));
  EXPECT_EQ(prefixes, std::vector<std::string>{"d/"});
  prefixes.clear();
  req.prefix = "d/";
  req.max_keys = 1;
  EXPECT_EQ(AllKeys(fake, req, &prefixes), (std::vector<std::string>{"d/1", "d/2"}));
  EXPECT_EQ(prefixes, (std::vector<std::string>{"d/e/", "d/f/"}));
  s3::ListRequest after;
  after.start_after = "d/2";
  EXPECT_EQ(AllKeys(fake, after), (std::vector<std::string>{"d/e/3", "d/f/4", "dz", "z"}));
  EXPECT_EQ(fake.stats().list_requests.load(), static_cast<uint64_t>(fake.calls(Op::kList)));
}

TEST(FakeS3Test, GetRangesAndConditions) {
  FakeS3 fake;
  const std::string etag = fake.Seed("k", "0123456789", {{"m", "v"}}, "text/plain");
  EXPECT_EQ(etag, "\"781e5e245d69b566979b86e28d23f2c7\"");  // md5("0123456789")
  s3::StringSink sink;
  Result<s3::GetResult> r = fake.GetObject({"k", s3::ByteRange{2, 4}, "", ""}, sink);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(sink.data(), "234");
  EXPECT_EQ(r->info.size, 10u);
  EXPECT_EQ(r->info.metadata.at("m"), "v");
  sink.Reset();
  r = fake.GetObject({"k", s3::ByteRange{8, 100}, "", ""}, sink);
  EXPECT_EQ(sink.data(), "89");
  EXPECT_EQ(fake.GetObject({"k", s3::ByteRange{10, 12}, "", ""}, sink).status().code(), EINVAL);
  sink.Reset();
  r = fake.GetObject({"k", std::nullopt, etag, ""}, sink);
  EXPECT_TRUE(r->not_modified);
  EXPECT_EQ(sink.data(), "");
  EXPECT_EQ(fake.stats().not_modified.load(), 1u);
  EXPECT_EQ(fake.GetObject({"k", std::nullopt, "", "\"other\""}, sink).status().code(), ESTALE);
  EXPECT_EQ(fake.GetObject({"nope", std::nullopt, "", ""}, sink).status().code(), ENOENT);
  EXPECT_EQ(fake.HeadObject("nope").status().code(), ENOENT);
}

TEST(FakeS3Test, MultipartCopyDeleteAndInjection) {
  FakeS3 fake;
  fake.set_min_part_size(2);
  char path[] = "/tmp/fake_s3_testXXXXXX";
  const int fd = mkstemp(path);
  unlink(path);
  ASSERT_EQ(write(fd, "aabbc", 5), 5);
  Result<std::string> id = fake.CreateMultipartUpload("m", {});
  Result<std::string> p1 = fake.UploadPart("m", *id, 1, {fd, 0, 2});
  Result<std::string> p2 = fake.UploadPart("m", *id, 2, {fd, 2, 3});
  close(fd);
  EXPECT_EQ(fake.CompleteMultipartUpload("m", *id, {{2, *p2}, {1, *p1}}).status().code(), EINVAL);
  Result<std::string> etag = fake.CompleteMultipartUpload("m", *id, {{1, *p1}, {2, *p2}});
  ASSERT_TRUE(etag.ok()) << etag.status().ToString();
  EXPECT_EQ(etag->substr(etag->size() - 3), "-2\"");
  EXPECT_EQ(*fake.Body("m"), "aabbc");

  EXPECT_TRUE(fake.CopyObject("m", "c", s3::PutOptions{{{"x", "y"}}, ""}).ok());
  EXPECT_EQ(fake.Find("c")->metadata.at("x"), "y");
  EXPECT_EQ(fake.CopyObject("m", "m", std::nullopt).status().code(), EINVAL);

  fake.FailNext(Op::kDelete, 2, Status::Error(EAGAIN, "injected"));
  EXPECT_EQ(fake.DeleteObject("c").code(), EAGAIN);
  EXPECT_EQ(fake.DeleteObject("c").code(), EAGAIN);
  EXPECT_TRUE(fake.Exists("c"));
  EXPECT_TRUE(fake.DeleteObject("c").ok());
  EXPECT_TRUE(fake.DeleteObject("c").ok());  // missing is fine
  EXPECT_EQ(fake.calls(Op::kDelete), 4);
  EXPECT_TRUE(fake.DeleteObjects({"m", "nope"})->empty());
  EXPECT_TRUE(fake.Keys().empty());
}

}  // namespace
}  // namespace s3cachefs::testing
