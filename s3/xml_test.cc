#include "s3/xml.h"

#include <gtest/gtest.h>

namespace s3cachefs::s3 {
namespace {

TEST(XmlTest, ListBucketResultV2) {
  const std::string body = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>dir/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>
  <Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents><Key>dir/a &amp; b.txt</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>
    <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>
    <StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>dir/trailing </Key><LastModified>2009-10-12T17:50:31.000Z</LastModified>
    <ETag>"x-2"</ETag><Size>0</Size></Contents>
  <CommonPrefixes><Prefix>dir/sub/</Prefix></CommonPrefixes>
</ListBucketResult>)";
  Result<ListPage> page = ParseListBucketResult(body);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "dir/a & b.txt");
  EXPECT_EQ(page->objects[0].size, 434234u);
  EXPECT_EQ(page->objects[0].etag, "\"fba9dede5f27731c9771645a39863328\"");
  EXPECT_EQ(page->objects[0].last_modified, 1255369830);
  EXPECT_EQ(page->objects[1].key, "dir/trailing ");
  EXPECT_EQ(page->common_prefixes, std::vector<std::string>{"dir/sub/"});
  EXPECT_TRUE(page->truncated);
  EXPECT_EQ(page->next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
}

TEST(XmlTest, ListBucketResultUrlEncoded) {
  const std::string body =
      "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
      "<Contents><Key>a+b%2Bc%0A%E6%97%A5</Key><Size>1</Size></Contents>"
      "<CommonPrefixes><Prefix>sp+ace%2F/</Prefix></CommonPrefixes></ListBucketResult>";
  Result<ListPage> page = ParseListBucketResult(body);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->objects[0].key, "a b+c\n日");
  EXPECT_EQ(page->common_prefixes[0], "sp ace//");
  EXPECT_FALSE(page->truncated);
}

TEST(XmlTest, ListBucketResultWhitespaceOnlyKey) {
  Result<ListPage> page = ParseListBucketResult(
      "<ListBucketResult><Contents><Key> </Key><Size>1</Size></Contents></ListBucketResult>");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->objects[0].key, " ");
}

TEST(XmlTest, ListBucketResultMalformed) {
  EXPECT_EQ(ParseListBucketResult("").status().code(), EIO);
  EXPECT_EQ(ParseListBucketResult("<Error><Code>x</Code></Error>").status().code(), EIO);
  EXPECT_EQ(ParseListBucketResult("<ListBucketResult><IsTruncated>true</IsTruncated>"
                                  "</ListBucketResult>")
                .status()
                .code(),
            EIO);
}

TEST(XmlTest, ErrorBody) {
  std::optional<ErrorBody> e = ParseErrorBody(R"(<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message>
<Endpoint>b.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>b</Bucket><RequestId>R1</RequestId>
<HostId>H</HostId><Region>eu-west-1</Region></Error>)");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, "PermanentRedirect");
  EXPECT_EQ(e->request_id, "R1");
  EXPECT_EQ(e->region, "eu-west-1");
  EXPECT_EQ(e->endpoint, "b.s3.eu-west-1.amazonaws.com");
  e = ParseErrorBody(
      "<Error><Code>AuthorizationHeaderMalformed</Code>"
      "<BucketRegion>ap-south-1</BucketRegion></Error>");
  EXPECT_EQ(e->region, "ap-south-1");
  EXPECT_FALSE(ParseErrorBody("").has_value());
  EXPECT_FALSE(ParseErrorBody("<html>bad gateway</html>").has_value());
  EXPECT_FALSE(ParseErrorBody("<CopyObjectResult/>").has_value());
}

TEST(XmlTest, MultipartResults) {
  EXPECT_EQ(*ParseInitiateMultipartUploadResult(
                "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                "<UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>"),
            "VXBsb2FkIElE");
  EXPECT_EQ(ParseInitiateMultipartUploadResult("<Error/>").status().code(), EIO);
  EXPECT_EQ(*ParseCompleteMultipartUploadResult(
                "<CompleteMultipartUploadResult><Location>l</Location><ETag>\"abc-3\"</ETag>"
                "</CompleteMultipartUploadResult>"),
            "\"abc-3\"");
  // A 200 carrying an error must not parse as a result.
  const std::string in200 =
      "<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code><Message>We encountered an "
      "internal error. Please try again.</Message><RequestId>R</RequestId></Error>";
  EXPECT_FALSE(ParseCompleteMultipartUploadResult(in200).ok());
  EXPECT_EQ(ParseErrorBody(in200)->code, "InternalError");
}

TEST(XmlTest, CopyResults) {
  Result<CopyResult> r = ParseCopyResult(
      "<CopyObjectResult><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
      "<ETag>\"9b2cf535f27731c974343645a3985328\"</ETag></CopyObjectResult>");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->etag, "\"9b2cf535f27731c974343645a3985328\"");
  EXPECT_EQ(r->last_modified, 1255369830);
  r = ParseCopyResult("<CopyPartResult><ETag>\"p\"</ETag></CopyPartResult>");
  EXPECT_EQ(r->etag, "\"p\"");
  EXPECT_FALSE(ParseCopyResult("<Error><Code>SlowDown</Code></Error>").ok());
}

TEST(XmlTest, DeleteResult) {
  Result<std::vector<DeleteResultError>> r = ParseDeleteResult(
      "<DeleteResult><Deleted><Key>a</Key></Deleted><Error><Key>b</Key><Code>AccessDenied</Code>"
      "<Message>Access Denied</Message></Error></DeleteResult>");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].key, "b");
  EXPECT_EQ((*r)[0].code, "AccessDenied");
  EXPECT_TRUE(ParseDeleteResult("<DeleteResult/>")->empty());
}

TEST(XmlTest, RequestBodies) {
  const std::string del = BuildDeleteObjectsBody({"a", "b&<c>", "d "});
  EXPECT_NE(del.find("<Quiet>true</Quiet>"), std::string::npos) << del;
  EXPECT_NE(del.find("<Object><Key>b&amp;&lt;c&gt;</Key></Object>"), std::string::npos) << del;
  EXPECT_NE(del.find("<Key>d </Key>"), std::string::npos) << del;
  const std::string complete = BuildCompleteMultipartUploadBody({{1, "\"e1\""}, {2, "\"e2\""}});
  EXPECT_NE(complete.find("<Part><PartNumber>1</PartNumber><ETag>\"e1\"</ETag></Part>"),
            std::string::npos)
      << complete;
}

}  // namespace
}  // namespace s3cachefs::s3
