#include "s3/timestamps.h"

#include <gtest/gtest.h>

namespace s3cachefs::s3 {
namespace {

TEST(TimestampsTest, Iso8601) {
  EXPECT_EQ(ParseIso8601("2009-10-12T17:50:30.000Z"), 1255369830);
  EXPECT_EQ(ParseIso8601("2009-10-12T17:50:30Z"), 1255369830);
  EXPECT_EQ(ParseIso8601("1970-01-01T00:00:00.000Z"), 0);
  EXPECT_EQ(ParseIso8601("garbage"), std::nullopt);
  EXPECT_EQ(ParseIso8601("2009-13-12T17:50:30Z"), std::nullopt);
}

TEST(TimestampsTest, HttpDate) {
  EXPECT_EQ(ParseHttpDate("Mon, 12 Oct 2009 17:50:30 GMT"), 1255369830);
  EXPECT_EQ(ParseHttpDate("Fri, 24 May 2013 00:00:00 GMT"), 1369353600);
  EXPECT_EQ(ParseHttpDate("Fri, 24 Foo 2013 00:00:00 GMT"), std::nullopt);
  EXPECT_EQ(ParseHttpDate(""), std::nullopt);
}

}  // namespace
}  // namespace s3cachefs::s3
