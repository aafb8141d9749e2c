#include "fs/open_modes.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace s3cachefs::fs {
namespace {

class OpenModesTest : public ::testing::Test {
 protected:
  // Begin with a registration that hands out ids 1, 2, ... (or fails when refuse_ is set).
  OpenMode Begin(Ino ino, std::optional<FileId> backing, int32_t* id = nullptr,
                 bool join_only = false, bool direct_ok = false) {
    int32_t unused = 0;
    return modes_.Begin(
        ino, backing,
        [this]() -> int32_t {
          ++registered_;
          return refuse_ ? 0 : registered_;
        },
        id != nullptr ? id : &unused, join_only, direct_ok);
  }
  // A reader that may be a direct open.
  OpenMode BeginReader(Ino ino, std::optional<FileId> backing) {
    return Begin(ino, backing, nullptr, false, true);
  }
  void End(Ino ino, OpenMode mode) {
    modes_.End(ino, mode, [this](int32_t id) { unregistered_.push_back(id); });
  }

  OpenModes modes_{std::chrono::milliseconds(0)};
  int32_t registered_ = 0;
  bool refuse_ = false;
  std::vector<int32_t> unregistered_;
  const FileId file_a_{1, 100};
  const FileId file_b_{1, 200};
};

TEST_F(OpenModesTest, PassthroughOpensOfOneFileShareItsBackingId) {
  int32_t id1 = 0;
  int32_t id2 = 0;
  EXPECT_EQ(Begin(7, file_a_, &id1), OpenMode::kPassthrough);
  EXPECT_EQ(Begin(7, file_a_, &id2), OpenMode::kPassthrough);
  EXPECT_EQ(registered_, 1);
  EXPECT_EQ(id1, 1);
  EXPECT_EQ(id2, 1);
  End(7, OpenMode::kPassthrough);
  EXPECT_TRUE(unregistered_.empty());  // one passthrough open is left
  End(7, OpenMode::kPassthrough);
  EXPECT_EQ(unregistered_, std::vector<int32_t>{1});
  // Afterwards the inode is free for any mode, and a new file gets a new id.
  int32_t id3 = 0;
  EXPECT_EQ(Begin(7, file_b_, &id3), OpenMode::kPassthrough);
  EXPECT_EQ(id3, 2);
}

TEST_F(OpenModesTest, OtherOpensConflictWhilePassthroughOpensExist) {
  EXPECT_EQ(Begin(7, file_a_), OpenMode::kPassthrough);
  EXPECT_EQ(Begin(7, std::nullopt), OpenMode::kConflict);  // a writer, a download
  EXPECT_EQ(Begin(7, file_b_), OpenMode::kConflict);       // a newer version's cached file
  End(7, OpenMode::kConflict);                             // not counted: no effect
  EXPECT_EQ(Begin(8, std::nullopt), OpenMode::kCached);    // another inode is unaffected
  End(7, OpenMode::kPassthrough);
  EXPECT_EQ(Begin(7, std::nullopt), OpenMode::kCached);
}

TEST_F(OpenModesTest, NoPassthroughWhileCachedOpensExist) {
  EXPECT_EQ(Begin(7, std::nullopt), OpenMode::kCached);
  EXPECT_EQ(Begin(7, file_a_), OpenMode::kCached);  // would be refused by the kernel
  EXPECT_EQ(registered_, 0);
  End(7, OpenMode::kCached);
  EXPECT_EQ(Begin(7, file_a_), OpenMode::kCached);  // the second cached open is still there
  End(7, OpenMode::kCached);
  End(7, OpenMode::kCached);
  EXPECT_EQ(Begin(7, file_a_), OpenMode::kPassthrough);
}

// Writers pass their file with join_only: they join passthrough readers of that same file,
// and never start passthrough themselves.
TEST_F(OpenModesTest, WritersOnlyJoinPassthroughReadersOfTheirFile) {
  EXPECT_EQ(Begin(7, file_a_, nullptr, true), OpenMode::kCached);
  EXPECT_EQ(Begin(7, file_a_), OpenMode::kCached);  // a reader next to that writer
  End(7, OpenMode::kCached);
  End(7, OpenMode::kCached);
  EXPECT_EQ(registered_, 0);
  int32_t reader_id = 0;
  int32_t writer_id = 0;
  EXPECT_EQ(Begin(7, file_a_, &reader_id), OpenMode::kPassthrough);
  EXPECT_EQ(Begin(7, file_a_, &writer_id, true), OpenMode::kPassthrough);
  EXPECT_EQ(writer_id, reader_id);
  EXPECT_EQ(Begin(7, file_b_, nullptr, true), OpenMode::kConflict);  // another file
  EXPECT_EQ(registered_, 1);
}

// Readers that may be direct: a download is read directly, a complete copy through
// passthrough; next to passthrough opens the kernel takes no direct one.
TEST_F(OpenModesTest, ReadersOfDownloadsAreDirect) {
  EXPECT_EQ(BeginReader(7, std::nullopt), OpenMode::kDirect);
  EXPECT_EQ(BeginReader(7, std::nullopt), OpenMode::kDirect);
  End(7, OpenMode::kDirect);
  End(7, OpenMode::kDirect);
  EXPECT_EQ(BeginReader(7, file_a_), OpenMode::kPassthrough);
  EXPECT_EQ(BeginReader(7, std::nullopt), OpenMode::kConflict);  // a newer version's download
  EXPECT_EQ(BeginReader(7, file_b_), OpenMode::kConflict);       // or its complete copy
  EXPECT_EQ(BeginReader(7, file_a_), OpenMode::kPassthrough);
  End(7, OpenMode::kPassthrough);
  End(7, OpenMode::kPassthrough);
  EXPECT_EQ(unregistered_, std::vector<int32_t>{1});
  EXPECT_EQ(BeginReader(7, std::nullopt), OpenMode::kDirect);
  // Without direct_ok (cold_direct=0, or passthrough unusable) a download is a cached open.
  EXPECT_EQ(Begin(8, std::nullopt), OpenMode::kCached);
}

// A direct open may be mmapped, which the kernel serves from the page cache of the inode: no
// passthrough open may start while one is counted.
TEST_F(OpenModesTest, NoPassthroughStartsWhileDirectOpensExist) {
  EXPECT_EQ(BeginReader(7, std::nullopt), OpenMode::kDirect);
  EXPECT_EQ(BeginReader(7, file_a_), OpenMode::kCached);
  EXPECT_EQ(registered_, 0);
  End(7, OpenMode::kCached);
  End(7, OpenMode::kDirect);
  EXPECT_EQ(BeginReader(7, file_a_), OpenMode::kPassthrough);
  // Direct opens next to page-cache ones are fine too (a writer is not a reader).
  EXPECT_EQ(Begin(8, file_a_, nullptr, true), OpenMode::kCached);
  EXPECT_EQ(BeginReader(8, std::nullopt), OpenMode::kDirect);
}

TEST_F(OpenModesTest, RefusedRegistrationGivesACachedOpen) {
  refuse_ = true;
  EXPECT_EQ(Begin(7, file_a_), OpenMode::kCached);
  EXPECT_EQ(Begin(7, std::nullopt), OpenMode::kCached);  // no conflict: nothing is passthrough
  End(7, OpenMode::kCached);
  End(7, OpenMode::kCached);
  EXPECT_TRUE(unregistered_.empty());
}

TEST(OpenModesWaitTest, APassthroughOpenWaitsForACachedReleaseOnItsWay) {
  using std::chrono::milliseconds;
  OpenModes modes(milliseconds(5000));
  auto registered = [] { return int32_t{1}; };
  auto unregister = [](int32_t) {};
  int32_t id = 0;
  ASSERT_EQ(modes.Begin(7, std::nullopt, registered, &id), OpenMode::kCached);
  // A reader of the cached copy arrives before the writer's release: it waits, then gets
  // passthrough.
  std::thread release([&] {
    std::this_thread::sleep_for(milliseconds(50));
    modes.End(7, OpenMode::kCached, unregister);
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(modes.Begin(7, FileId{1, 100}, registered, &id), OpenMode::kPassthrough);
  release.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(4000));
}

TEST(OpenModesWaitTest, APassthroughOpenWaitsForADirectReleaseOnItsWay) {
  using std::chrono::milliseconds;
  OpenModes modes(milliseconds(5000));
  auto registered = [] { return int32_t{1}; };
  auto unregister = [](int32_t) {};
  int32_t id = 0;
  // `cat f; cat f`: the first read was direct (a download), its release comes late.
  ASSERT_EQ(modes.Begin(7, std::nullopt, registered, &id, false, true), OpenMode::kDirect);
  std::thread release([&] {
    std::this_thread::sleep_for(milliseconds(50));
    modes.End(7, OpenMode::kDirect, unregister);
  });
  EXPECT_EQ(modes.Begin(7, FileId{1, 100}, registered, &id, false, true), OpenMode::kPassthrough);
  release.join();
}

TEST(OpenModesWaitTest, WaitsAreBoundedAndConflictsImmediate) {
  using std::chrono::milliseconds;
  OpenModes modes(milliseconds(20));
  auto registered = [] { return int32_t{1}; };
  int32_t id = 0;
  ASSERT_EQ(modes.Begin(7, std::nullopt, registered, &id), OpenMode::kCached);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(modes.Begin(7, FileId{1, 100}, registered, &id), OpenMode::kCached);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(20));
  // A conflict does not wait for the passthrough opens to close: the open goes to a new inode.
  ASSERT_EQ(modes.Begin(8, FileId{1, 200}, registered, &id), OpenMode::kPassthrough);
  EXPECT_TRUE(modes.HasPassthrough(8));
  EXPECT_FALSE(modes.HasPassthrough(7));
  start = std::chrono::steady_clock::now();
  EXPECT_EQ(modes.Begin(8, std::nullopt, registered, &id), OpenMode::kConflict);
  EXPECT_EQ(modes.Begin(8, FileId{1, 300}, registered, &id), OpenMode::kConflict);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(20));
}

}  // namespace
}  // namespace s3cachefs::fs
