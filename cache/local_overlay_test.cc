#include "cache/local_overlay.h"

#include <gtest/gtest.h>

namespace s3cachefs::cache {
namespace {

DirEntry File(const std::string& name, uint64_t size) {
  return DirEntry{name, NodeAttr{NodeType::kFile, size, 100, "\"e\"", {}}};
}
DirEntry Dir(const std::string& name) {
  return DirEntry{name, NodeAttr{NodeType::kDirectory, 0, 0, "", {}}};
}
LocalFile Local(const std::string& key, uint64_t size) {
  return LocalFile{key, size, 200, {}};
}

std::string Names(const std::vector<DirEntry>& entries) {
  std::string out;
  for (const DirEntry& e : entries) {
    out += e.name +
           (e.attr.type == NodeType::kDirectory ? "/" : ":" + std::to_string(e.attr.size)) + " ";
  }
  return out;
}

TEST(LocalOverlay, AddsReplacesAndImpliesDirectories) {
  std::vector<DirEntry> entries = {File("a", 1), Dir("d"), File("z", 3)};
  OverlayLocalFiles("p/",
                    {Local("p/a", 10), Local("p/b", 20), Local("p/new/x", 5), Local("p/d/y", 1),
                     Local("q/other", 9), Local("p/", 0), Local("p/..", 1)},
                    entries);
  EXPECT_EQ(Names(entries), "a:10 b:20 d/ new/ z:3 ");
  EXPECT_EQ(entries[0].attr.mtime, 200);
}

TEST(LocalOverlay, DirectoryWinsOverLocalFile) {
  std::vector<DirEntry> entries = {Dir("d")};
  OverlayLocalFiles("", {Local("d", 4)}, entries);
  EXPECT_EQ(Names(entries), "d/ ");
}

}  // namespace
}  // namespace s3cachefs::cache
