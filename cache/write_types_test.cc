#include "cache/write_types.h"

#include <gtest/gtest.h>

namespace s3cachefs::cache {
namespace {

TEST(FileMeta, RoundTripsThroughS3fsMetadataNames) {
  FileMeta meta;
  meta.mode = 0100640;
  meta.uid = 1000;
  meta.gid = 100;
  meta.mtime = 1700000000;
  s3::Metadata md = meta.ToMetadata();
  EXPECT_EQ(md.at("mode"), "33184");  // what s3fs-fuse writes for -rw-r-----
  EXPECT_EQ(md.at("uid"), "1000");
  EXPECT_EQ(md.at("mtime"), "1700000000");
  FileMeta back = FileMeta::FromMetadata(md);
  EXPECT_EQ(back.mode, meta.mode);
  EXPECT_EQ(back.uid, meta.uid);
  EXPECT_EQ(back.gid, meta.gid);
  EXPECT_EQ(back.mtime, meta.mtime);
}

TEST(FileMeta, IgnoresGarbageAndMerges) {
  FileMeta meta = FileMeta::FromMetadata({{"mode", "rw-r"}, {"uid", "-1"}, {"gid", "7"}});
  EXPECT_FALSE(meta.mode);
  EXPECT_FALSE(meta.uid);
  EXPECT_EQ(meta.gid, 7u);
  FileMeta more;
  more.uid = 5;
  meta.Merge(more);
  EXPECT_EQ(meta.uid, 5u);
  EXPECT_EQ(meta.gid, 7u);
  EXPECT_FALSE(meta.empty());
  EXPECT_TRUE(FileMeta{}.empty());
}

}  // namespace
}  // namespace s3cachefs::cache
