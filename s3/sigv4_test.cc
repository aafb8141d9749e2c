// SigV4 against the examples AWS documents for S3 header authentication
// ("Examples of signature calculations", sig-v4-header-based-auth.html).
#include "s3/sigv4.h"

#include <gtest/gtest.h>

#include "s3/crypto.h"
#include "s3/uri.h"

namespace s3cachefs::s3 {
namespace {

constexpr time_t kExampleTime = 1369353600;  // 2013-05-24T00:00:00Z
const char kHost[] = "examplebucket.s3.amazonaws.com";

Credentials ExampleCredentials() {
  return {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
}

std::string SignatureOf(const std::string& authorization) {
  const size_t at = authorization.find("Signature=");
  return at == std::string::npos ? "" : authorization.substr(at + 10);
}

TEST(SigV4Test, AmzDate) {
  EXPECT_EQ(AmzDate(kExampleTime), "20130524T000000Z");
  EXPECT_EQ(AmzDate(0), "19700101T000000Z");
}

TEST(SigV4Test, AwsExampleGetObject) {
  SigningRequest r{
      "GET", "/test.txt", "", {{"Host", kHost}, {"Range", "bytes=0-9"}}, std::string(kEmptySha256)};
  const std::string auth = SignRequest(r, ExampleCredentials(), "us-east-1", kExampleTime);
  EXPECT_EQ(
      CanonicalRequest(r),
      "GET\n/test.txt\n\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "range:bytes=0-9\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n\n"
      "host;range;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(StringToSign("20130524T000000Z", "us-east-1", CanonicalRequest(r)),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
            "aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4Test, AwsExamplePutObject) {
  const std::string body = "Welcome to Amazon S3.";
  EXPECT_EQ(Sha256Hex(body), "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  SigningRequest r{"PUT",
                   "/" + UriEncode("test$file.text", true),
                   "",
                   {{"Host", kHost},
                    {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                    {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
                   Sha256Hex(body)};
  EXPECT_EQ(r.canonical_uri, "/test%24file.text");
  const std::string auth = SignRequest(r, ExampleCredentials(), "us-east-1", kExampleTime);
  EXPECT_EQ(StringToSign("20130524T000000Z", "us-east-1", CanonicalRequest(r)),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  EXPECT_EQ(SignedHeaderNames(r), "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
  EXPECT_EQ(SignatureOf(auth), "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4Test, AwsExampleGetBucketLifecycle) {
  SigningRequest r{"GET",
                   "/",
                   CanonicalQueryString({{"lifecycle", ""}}),
                   {{"Host", kHost}},
                   std::string(kEmptySha256)};
  EXPECT_EQ(r.canonical_query, "lifecycle=");
  const std::string auth = SignRequest(r, ExampleCredentials(), "us-east-1", kExampleTime);
  EXPECT_EQ(SignatureOf(auth), "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4Test, AwsExampleListObjects) {
  // Given out of order on purpose: the canonical query sorts.
  SigningRequest r{"GET",
                   "/",
                   CanonicalQueryString({{"prefix", "J"}, {"max-keys", "2"}}),
                   {{"Host", kHost}},
                   std::string(kEmptySha256)};
  EXPECT_EQ(r.canonical_query, "max-keys=2&prefix=J");
  const std::string auth = SignRequest(r, ExampleCredentials(), "us-east-1", kExampleTime);
  EXPECT_EQ(SignatureOf(auth), "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4Test, SessionTokenIsSentAndSigned) {
  Credentials creds = ExampleCredentials();
  creds.session_token = "TOKEN";
  SigningRequest r{"GET", "/k", "", {{"Host", kHost}}, std::string(kEmptySha256)};
  const std::string with = SignRequest(r, creds, "us-east-1", kExampleTime);
  EXPECT_NE(with.find("x-amz-security-token"), std::string::npos);
  bool found = false;
  for (const auto& [n, v] : r.headers) found |= n == "x-amz-security-token" && v == "TOKEN";
  EXPECT_TRUE(found);
  SigningRequest r2{"GET", "/k", "", {{"Host", kHost}}, std::string(kEmptySha256)};
  EXPECT_NE(SignatureOf(SignRequest(r2, ExampleCredentials(), "us-east-1", kExampleTime)),
            SignatureOf(with));
}

TEST(SigV4Test, AnonymousIsUnsigned) {
  SigningRequest r{"GET", "/k", "", {{"Host", kHost}}, std::string(kEmptySha256)};
  EXPECT_EQ(SignRequest(r, Credentials{}, "us-east-1", kExampleTime), "");
  EXPECT_EQ(r.headers.size(), 1u);
}

TEST(SigV4Test, HeaderValuesAreTrimmedAndFolded) {
  SigningRequest r{"GET",
                   "/",
                   "",
                   {{"Host", kHost}, {"X-Amz-Meta-A", "  a   b  "}, {"x-amz-meta-a", "c"}},
                   "UNSIGNED-PAYLOAD"};
  const std::string cr = CanonicalRequest(r);
  EXPECT_NE(cr.find("\nx-amz-meta-a:a b,c\n"), std::string::npos) << cr;
  EXPECT_EQ(SignedHeaderNames(r), "host;x-amz-meta-a");
}

TEST(SigV4Test, SigningKeyDependsOnDateAndRegion) {
  const std::string k1 = SigningKey("secret", "20130524", "us-east-1");
  EXPECT_EQ(k1.size(), 32u);
  EXPECT_NE(k1, SigningKey("secret", "20130525", "us-east-1"));
  EXPECT_NE(k1, SigningKey("secret", "20130524", "eu-west-1"));
}

}  // namespace
}  // namespace s3cachefs::s3
