#include "s3/addressing.h"

#include <gtest/gtest.h>

namespace s3cachefs::s3 {
namespace {

Endpoint Parse(const std::string& url) {
  Result<Endpoint> e = ParseEndpoint(url);
  EXPECT_TRUE(e.ok()) << url << ": " << e.status().ToString();
  return e.ok() ? *e : Endpoint{};
}

TEST(AddressingTest, ParseEndpoint) {
  Endpoint e = Parse("http://127.0.0.1:4568");
  EXPECT_EQ(e.scheme, "http");
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, 4568);
  e = Parse("HTTPS://S3.EU-WEST-1.amazonaws.com/");
  EXPECT_TRUE(e.https());
  EXPECT_EQ(e.host, "s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(e.port, 0);
  e = Parse("http://[::1]:9000");
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, 9000);
  for (const char* bad : {"s3.amazonaws.com", "ftp://x", "http://", "http://h:0", "http://h:99999",
                          "http://h:x", "http://h/path", "http://u@h", "http://h:"}) {
    EXPECT_EQ(ParseEndpoint(bad).status().code(), EINVAL) << bad;
  }
}

TEST(AddressingTest, AutoStyle) {
  const Endpoint aws = Parse("https://s3.us-east-1.amazonaws.com");
  EXPECT_TRUE(UseVirtualHost(AddressingStyle::kAuto, aws, "my-bucket"));
  EXPECT_FALSE(UseVirtualHost(AddressingStyle::kAuto, aws, "my.bucket"));  // TLS wildcard
  EXPECT_FALSE(UseVirtualHost(AddressingStyle::kAuto, aws, "My_Bucket"));
  EXPECT_TRUE(UseVirtualHost(AddressingStyle::kAuto, Parse("http://s3.example.com"), "my.bucket"));
  EXPECT_FALSE(UseVirtualHost(AddressingStyle::kAuto, Parse("http://127.0.0.1:9000"), "b1b"));
  EXPECT_FALSE(UseVirtualHost(AddressingStyle::kAuto, Parse("http://localhost:9000"), "b1b"));
  EXPECT_FALSE(UseVirtualHost(AddressingStyle::kAuto, Parse("http://[::1]:9000"), "b1b"));
  EXPECT_TRUE(UseVirtualHost(AddressingStyle::kVirtual, Parse("http://127.0.0.1"), "b1b"));
  EXPECT_FALSE(UseVirtualHost(AddressingStyle::kPath, aws, "my-bucket"));
}

TEST(AddressingTest, BucketNames) {
  EXPECT_TRUE(IsVirtualHostableBucket("abc", true));
  EXPECT_FALSE(IsVirtualHostableBucket("ab", true));
  EXPECT_FALSE(IsVirtualHostableBucket(std::string(64, 'a'), false));
  EXPECT_FALSE(IsVirtualHostableBucket("-abc", false));
  EXPECT_FALSE(IsVirtualHostableBucket("a..b", false));
  EXPECT_FALSE(IsVirtualHostableBucket("192.168.1.1", false));
  EXPECT_TRUE(IsVirtualHostableBucket("a.b.c", false));
}

TEST(AddressingTest, Targets) {
  const Endpoint local = Parse("http://127.0.0.1:4568");
  RequestTarget t = MakeTarget(local, false, "bkt", "dir/a b+c", "");
  EXPECT_EQ(t.host_header, "127.0.0.1:4568");
  EXPECT_EQ(t.canonical_uri, "/bkt/dir/a%20b%2Bc");
  EXPECT_EQ(t.url, "http://127.0.0.1:4568/bkt/dir/a%20b%2Bc");
  t = MakeTarget(local, false, "bkt", "", "list-type=2");
  EXPECT_EQ(t.canonical_uri, "/bkt");
  EXPECT_EQ(t.url, "http://127.0.0.1:4568/bkt?list-type=2");

  const Endpoint aws = Parse("https://s3.eu-west-1.amazonaws.com:443");
  t = MakeTarget(aws, true, "bkt", "a//b", "");
  EXPECT_EQ(t.host_header, "bkt.s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(t.canonical_uri, "/a//b");
  t = MakeTarget(aws, true, "bkt", "", "");
  EXPECT_EQ(t.canonical_uri, "/");
  t = MakeTarget(Parse("http://[::1]:9000"), false, "bkt", "k", "");
  EXPECT_EQ(t.host_header, "[::1]:9000");
  EXPECT_EQ(t.url, "http://[::1]:9000/bkt/k");
}

}  // namespace
}  // namespace s3cachefs::s3
