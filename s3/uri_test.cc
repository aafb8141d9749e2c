#include "s3/uri.h"

#include <gtest/gtest.h>

namespace s3cachefs::s3 {
namespace {

TEST(UriTest, KeepsUnreservedOnly) {
  EXPECT_EQ(UriEncode("AZaz09-._~", false), "AZaz09-._~");
  EXPECT_EQ(UriEncode("a b+c=d%e", false), "a%20b%2Bc%3Dd%25e");
  EXPECT_EQ(UriEncode("!*'();:@&$,?#[]", false), "%21%2A%27%28%29%3B%3A%40%26%24%2C%3F%23%5B%5D");
  EXPECT_EQ(UriEncode("é日本", false), "%C3%A9%E6%97%A5%E6%9C%AC");
  EXPECT_EQ(UriEncode(std::string("\x00\x7f\xff", 3), false), "%00%7F%FF");
}

TEST(UriTest, SlashKeptOnlyInPaths) {
  EXPECT_EQ(UriEncode("a//b/ c", true), "a//b/%20c");
  EXPECT_EQ(UriEncode("a//b", false), "a%2F%2Fb");
}

TEST(UriTest, RoundTrip) {
  const std::string keys[] = {
      "a b",  "a+b",    "a=b",    "~x",           "100%",
      "a//b", "é/日本", "trail ", "!*'();:@&$,?", std::string("\x01\x02", 2)};
  for (const std::string& k : keys) {
    EXPECT_EQ(UriDecode(UriEncode(k, true), false), k);
    EXPECT_EQ(UriDecode(UriEncode(k, false), true), k);
  }
}

TEST(UriTest, DecodePlusAndMalformed) {
  EXPECT_EQ(UriDecode("a+b%2Bc", true), "a b+c");
  EXPECT_EQ(UriDecode("a+b", false), "a+b");
  EXPECT_EQ(UriDecode("50%", true), "50%");
  EXPECT_EQ(UriDecode("%zz%4", true), "%zz%4");
  EXPECT_EQ(UriDecode("%e6%97%a5", false), "日");
}

TEST(UriTest, CanonicalQuerySortsByEncodedName) {
  EXPECT_EQ(CanonicalQueryString({}), "");
  EXPECT_EQ(CanonicalQueryString({{"uploads", ""}}), "uploads=");
  EXPECT_EQ(CanonicalQueryString({{"uploadId", "a/b+c=="}, {"partNumber", "2"}}),
            "partNumber=2&uploadId=a%2Fb%2Bc%3D%3D");
  // Sorting is on the encoded bytes, and values break ties.
  EXPECT_EQ(CanonicalQueryString({{"b", "2"}, {"a", "x y"}, {"b", "1"}, {"A", ""}}),
            "A=&a=x%20y&b=1&b=2");
  EXPECT_EQ(CanonicalQueryString({{"prefix", "dir/sub dir/"}, {"list-type", "2"}}),
            "list-type=2&prefix=dir%2Fsub%20dir%2F");
}

}  // namespace
}  // namespace s3cachefs::s3
