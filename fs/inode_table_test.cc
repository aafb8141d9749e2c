#include "fs/inode_table.h"

#include <gtest/gtest.h>

namespace s3cachefs::fs {
namespace {

cache::NodeAttr File(uint64_t size) {
  cache::NodeAttr a;
  a.type = cache::NodeType::kFile;
  a.size = size;
  return a;
}

TEST(InodeTable, SamePathSameNumberUntilForgotten) {
  InodeTable t;
  const Ino a = t.Acquire("a/b", File(1)).ino;
  EXPECT_NE(a, kRootIno);
  EXPECT_EQ(t.Acquire("a/b", File(2)).ino, a);
  EXPECT_EQ(t.Get(a)->attr.size, 2u);
  t.Forget(a, 1);
  EXPECT_TRUE(t.Get(a).has_value());  // one reference left
  t.Forget(a, 1);
  EXPECT_FALSE(t.Get(a).has_value());
  // Numbers are never reused within a mount.
  EXPECT_GT(t.Acquire("a/b", File(1)).ino, a);
}

TEST(InodeTable, RootIsNeverForgotten) {
  InodeTable t;
  t.Forget(kRootIno, 100);
  ASSERT_TRUE(t.Get(kRootIno).has_value());
  EXPECT_EQ(t.Get(kRootIno)->path, "");
  EXPECT_EQ(t.Get(kRootIno)->attr.type, cache::NodeType::kDirectory);
}

TEST(InodeTable, OpenedEtagTracksContent) {
  InodeTable t;
  const Ino a = t.Acquire("f", File(1)).ino;
  EXPECT_EQ(t.SwapOpenedEtag(a, "\"e1\""), "");
  EXPECT_EQ(t.SwapOpenedEtag(a, "\"e1\""), "\"e1\"");
  EXPECT_EQ(t.SwapOpenedEtag(a, "\"e2\""), "\"e1\"");
}

TEST(InodeTable, RenameMovesTheSubtreeAndDetachesTheTarget) {
  InodeTable t;
  const Ino dir = t.Acquire("a", cache::NodeAttr{cache::NodeType::kDirectory, 0, 0, "", {}}).ino;
  const Ino child = t.Acquire("a/x", File(1)).ino;
  const Ino sibling = t.Acquire("ab", File(1)).ino;
  const Ino target = t.Acquire("b", File(2)).ino;
  t.Rename("a", "b");
  EXPECT_EQ(t.Get(dir)->path, "b");
  EXPECT_EQ(t.Get(child)->path, "b/x");
  EXPECT_EQ(t.Get(sibling)->path, "ab");  // a prefix of the name is not a child
  EXPECT_NE(t.Get(target)->path, "b");
  EXPECT_TRUE(t.Get(target)->detached);
  EXPECT_FALSE(t.Get(dir)->detached);
  // A lookup of the new path finds the moved inode, not the replaced one.
  EXPECT_EQ(t.Acquire("b/x", File(1)).ino, child);
}

// A newer version of an object opened next to open files of the old one: the path gets a new
// inode, the old one lives on with its attributes until the kernel forgets it.
TEST(InodeTable, DetachGivesThePathANewInode) {
  InodeTable t;
  const Ino old_ino = t.Acquire("f", File(1)).ino;
  t.Detach(old_ino);
  std::optional<InodeInfo> old_info = t.Get(old_ino);
  ASSERT_TRUE(old_info.has_value());
  EXPECT_TRUE(old_info->detached);
  EXPECT_EQ(old_info->attr.size, 1u);
  const InodeInfo fresh = t.Acquire("f", File(2));
  EXPECT_NE(fresh.ino, old_ino);
  EXPECT_FALSE(fresh.detached);
  t.Detach(old_ino);  // already detached: the path keeps its new inode
  EXPECT_EQ(t.Acquire("f", File(2)).ino, fresh.ino);
  t.Forget(old_ino, 1);
  EXPECT_FALSE(t.Get(old_ino).has_value());
  EXPECT_EQ(t.Get(fresh.ino)->path, "f");  // forgetting the old one leaves the path alone
  t.Detach(kRootIno);
  EXPECT_FALSE(t.Get(kRootIno)->detached);
}

}  // namespace
}  // namespace s3cachefs::fs
