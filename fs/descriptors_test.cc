#include "fs/descriptors.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <string>

namespace s3cachefs::fs {
namespace {

class DescriptorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/descriptors_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    char real[PATH_MAX];
    ASSERT_NE(realpath(tmpl, real), nullptr);
    root_ = real;
    path_ = root_ + "/file";
    int fd = open(path_.c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    close(fd);
    struct stat st;
    ASSERT_EQ(stat(path_.c_str(), &st), 0);
    ino_ = st.st_ino;
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(root_.c_str());
  }

  std::string root_;
  std::string path_;
  uint64_t ino_ = 0;
};

TEST_F(DescriptorsTest, SeesAWriterOfTheFileUnderRoot) {
  EXPECT_FALSE(HoldsWriter(getpid(), root_, ino_));
  int fd = open(path_.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(HoldsWriter(getpid(), root_, ino_));
  // The shell's `>`: the descriptor moved elsewhere by dup2 is still found.
  int moved = dup2(fd, 100);
  ASSERT_EQ(moved, 100);
  close(fd);
  EXPECT_TRUE(HoldsWriter(getpid(), root_, ino_));
  close(moved);
  EXPECT_FALSE(HoldsWriter(getpid(), root_, ino_));
}

TEST_F(DescriptorsTest, IgnoresReadersOtherFilesAndOtherRoots) {
  int reader = open(path_.c_str(), O_RDONLY);
  ASSERT_GE(reader, 0);
  EXPECT_FALSE(HoldsWriter(getpid(), root_, ino_));  // read-only
  int writer = open(path_.c_str(), O_RDWR);
  ASSERT_GE(writer, 0);
  EXPECT_TRUE(HoldsWriter(getpid(), root_, ino_));
  EXPECT_FALSE(HoldsWriter(getpid(), root_, ino_ + 1));         // another inode number
  EXPECT_FALSE(HoldsWriter(getpid(), root_ + "/other", ino_));  // not under that root
  EXPECT_FALSE(HoldsWriter(getpid(), root_.substr(0, root_.size() - 1), ino_));  // a prefix only
  EXPECT_FALSE(HoldsWriter(getpid(), root_, ino_, 1));  // too many descriptors to search
  close(writer);
  close(reader);
}

TEST_F(DescriptorsTest, UnreadableProcessesAnswerFalse) {
  int fd = open(path_.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(HoldsWriter(0, root_, ino_));        // FUSE's pid when the caller is unknown
  EXPECT_FALSE(HoldsWriter(INT_MAX, root_, ino_));  // no such process
  EXPECT_FALSE(HoldsWriter(getpid(), "relative", ino_));
  close(fd);
}

}  // namespace
}  // namespace s3cachefs::fs
