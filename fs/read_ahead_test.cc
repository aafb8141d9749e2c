#include "fs/read_ahead.h"

#include <gtest/gtest.h>

namespace s3cachefs::fs {
namespace {

TEST(MountDevice, FindsTheLastMountOnThePath) {
  const std::string info =
      "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
      "36 22 0:38 / /mnt/s3 rw,nosuid,nodev shared:2 - fuse.s3cachefs bucket rw,user_id=0\n"
      "37 22 0:39 / /mnt/with\\040space rw shared:3 - fuse.s3cachefs b2 rw\n"
      "38 36 0:40 / /mnt/s3 rw shared:4 - fuse.s3cachefs b3 rw\n";
  EXPECT_EQ(MountDevice(info, "/mnt/s3"), "0:40");  // mounted over the first one
  EXPECT_EQ(MountDevice(info, "/mnt/with space"), "0:39");
  EXPECT_EQ(MountDevice(info, "/"), "254:0");
  EXPECT_EQ(MountDevice(info, "/mnt"), std::nullopt);
  EXPECT_EQ(MountDevice("", "/mnt/s3"), std::nullopt);
  EXPECT_EQ(MountDevice("garbage\n", "/mnt/s3"), std::nullopt);
}

TEST(SetReadAhead, FailsClearlyWithoutAMount) {
  Status s = SetReadAhead("/nonexistent/mountpoint", 1 << 20);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent/mountpoint"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace s3cachefs::fs
