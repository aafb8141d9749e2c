// Unit tests of Namespace: the tree LIST results make, its errors and its cache.
// Concurrency and Prefetch are in namespace_flight_test.cc.
#include "cache/namespace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "cache/namespace_test_util.h"
#include "fake_s3.h"

namespace s3cachefs::cache {
namespace {

using test::Describe;
using test::LogCollector;
using test::Names;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class NamespaceTest : public ::testing::Test {
 protected:
  std::unique_ptr<Namespace> Make(NamespaceConfig config = {}) {
    return std::make_unique<Namespace>(s3_, std::move(config), log_.logger());
  }
  std::vector<std::string> ListNames(Namespace& ns, const std::string& path) {
    Result<std::vector<DirEntry>> entries = ns.List(path);
    EXPECT_TRUE(entries.ok()) << path << ": " << entries.status().ToString();
    return entries.ok() ? Names(*entries) : std::vector<std::string>{"<error>"};
  }

  s3cachefs::testing::FakeS3 s3_;
  LogCollector log_;
};

TEST(NamespaceSegmentTest, ValidSegments) {
  EXPECT_TRUE(IsValidSegment("a"));
  EXPECT_TRUE(IsValidSegment("..."));
  EXPECT_TRUE(IsValidSegment(std::string(255, 'x')));
  EXPECT_FALSE(IsValidSegment(""));
  EXPECT_FALSE(IsValidSegment("."));
  EXPECT_FALSE(IsValidSegment(".."));
  EXPECT_FALSE(IsValidSegment(std::string(256, 'x')));
  EXPECT_FALSE(IsValidSegment(std::string("a\0b", 3)));
  EXPECT_FALSE(IsValidSegment("a/b"));
}

TEST_F(NamespaceTest, KeysAndPrefixes) {
  auto ns = Make();
  EXPECT_EQ(ns->FileKey("a/b.txt"), "a/b.txt");
  EXPECT_EQ(ns->DirPrefix(""), "");
  EXPECT_EQ(ns->DirPrefix("a/b"), "a/b/");
  NamespaceConfig config;
  config.prefix = "p/";
  auto mounted = Make(config);
  EXPECT_EQ(mounted->FileKey("a/b.txt"), "p/a/b.txt");
  EXPECT_EQ(mounted->DirPrefix(""), "p/");
  EXPECT_EQ(mounted->DirPrefix("a"), "p/a/");
}

TEST_F(NamespaceTest, NestedDirectories) {
  s3_.set_now(1700000000);
  s3_.Seed("a/b/c.txt", "hello");
  s3_.Seed("a/d.txt", "xy");
  s3_.Seed("top.txt", "");
  auto ns = Make();

  Result<std::vector<DirEntry>> root = ns->List("");
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  ASSERT_THAT(*root, SizeIs(2));
  EXPECT_EQ(Describe((*root)[0]), "a dir size=0 mtime=0 etag=");
  EXPECT_EQ(Describe((*root)[1]),
            "top.txt file size=0 mtime=1700000000 etag=" + s3cachefs::testing::FakeS3::Md5Etag(""));
  EXPECT_THAT(ListNames(*ns, "a"), ElementsAre("b", "d.txt"));
  EXPECT_THAT(ListNames(*ns, "a/b"), ElementsAre("c.txt"));

  Result<NodeAttr> file = ns->Lookup("a/b/c.txt");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->type, NodeType::kFile);
  EXPECT_EQ(file->size, 5u);
  EXPECT_EQ(file->etag, s3cachefs::testing::FakeS3::Md5Etag("hello"));
  EXPECT_EQ(ns->Lookup("a/b")->type, NodeType::kDirectory);
  EXPECT_EQ(ns->Lookup("")->type, NodeType::kDirectory);
  EXPECT_EQ(ns->list_requests(), 3u);  // all lookups answered from the listings
  EXPECT_TRUE(log_.lines().empty());
}

TEST_F(NamespaceTest, MarkerOnlyDirectory) {
  s3_.set_now(1600000000);
  s3_.Seed("m/", "");
  auto ns = Make();
  EXPECT_THAT(ListNames(*ns, ""), ElementsAre("m"));
  Result<NodeAttr> dir = ns->Lookup("m");
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(dir->type, NodeType::kDirectory);
  EXPECT_EQ(dir->mtime, 0);  // the root's listing folds the marker into a common prefix
  Result<std::vector<DirEntry>> entries = ns->List("m");
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  EXPECT_TRUE(entries->empty());                  // the marker is not an entry of its own directory
  EXPECT_EQ(ns->Lookup("m")->mtime, 1600000000);  // learned from the marker
  EXPECT_EQ(ns->Lookup("m/x").status().code(), ENOENT);
}

TEST_F(NamespaceTest, DirectoriesImpliedByDeepKeys) {
  s3_.Seed("x/y/z", "1");
  auto cold = Make();
  // A cold listing of a deep directory with content needs no listing of its ancestors.
  EXPECT_THAT(ListNames(*cold, "x/y"), ElementsAre("z"));
  EXPECT_EQ(cold->list_requests(), 1u);

  auto ns = Make();
  EXPECT_EQ(ns->Lookup("x")->type, NodeType::kDirectory);
  EXPECT_EQ(ns->Lookup("x/y")->type, NodeType::kDirectory);
  EXPECT_EQ(ns->Lookup("x/y/z")->type, NodeType::kFile);
  EXPECT_THAT(ListNames(*ns, "x"), ElementsAre("y"));
}

TEST_F(NamespaceTest, DirectoryKnownFromParentMayBeEmpty) {
  s3_.Seed("e/x", "1");
  auto ns = Make();
  EXPECT_THAT(ListNames(*ns, ""), ElementsAre("e"));
  ASSERT_TRUE(s3_.DeleteObject("e/x").ok());  // gone before "e" itself is listed
  Result<std::vector<DirEntry>> entries = ns->List("e");
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  EXPECT_TRUE(entries->empty());
  // Without the parent's word, an empty prefix is no directory.
  auto cold = Make();
  EXPECT_EQ(cold->List("e").status().code(), ENOENT);
}

TEST_F(NamespaceTest, DirectoryWinsOverFile) {
  s3_.Seed("a", "file");
  s3_.Seed("a/b", "below");
  auto ns = Make();
  Result<std::vector<DirEntry>> root = ns->List("");
  ASSERT_TRUE(root.ok());
  ASSERT_THAT(*root, SizeIs(1));
  EXPECT_EQ(Describe((*root)[0]), "a dir size=0 mtime=0 etag=");
  EXPECT_EQ(ns->Lookup("a")->type, NodeType::kDirectory);
  EXPECT_THAT(ListNames(*ns, "a"), ElementsAre("b"));
  ASSERT_THAT(log_.lines(), SizeIs(1));
  EXPECT_THAT(log_.lines()[0], HasSubstr("'a'"));
  ns->Invalidate("");
  EXPECT_THAT(ListNames(*ns, ""), ElementsAre("a"));
  EXPECT_THAT(log_.lines(), SizeIs(1));  // logged once per lifetime
}

TEST_F(NamespaceTest, ConflictAcrossPages) {
  // 999 keys, then the file "k" ends page one and the prefix "k/" starts page two.
  for (int i = 0; i < 999; ++i) {
    s3_.Seed("f" + std::to_string(1000 + i), "");
  }
  s3_.Seed("k", "file");
  s3_.Seed("k/inner", "");
  auto ns = Make();
  Result<std::vector<DirEntry>> root = ns->List("");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(ns->list_requests(), 2u);
  ASSERT_THAT(*root, SizeIs(1000));
  EXPECT_EQ(Describe(root->back()), "k dir size=0 mtime=0 etag=");
  EXPECT_THAT(log_.lines(), SizeIs(1));
}

TEST_F(NamespaceTest, InvalidKeysAreSkipped) {
  const std::string long_name(256, 'x');
  const std::string max_name(255, 'y');
  s3_.Seed("a//b", "");
  s3_.Seed("a/./b", "");
  s3_.Seed("a/../b", "");
  s3_.Seed("a/" + long_name, "");
  s3_.Seed("a/" + max_name, "");
  s3_.Seed(std::string("a/n\0l", 5), "");
  s3_.Seed("a/..", "");
  s3_.Seed("/abs", "");
  s3_.Seed("ok", "");
  auto ns = Make();
  EXPECT_THAT(ListNames(*ns, ""), ElementsAre("a", "ok"));
  EXPECT_THAT(ListNames(*ns, "a"), ElementsAre(max_name));
  std::vector<std::string> lines = log_.lines();
  ASSERT_THAT(lines, SizeIs(7));
  std::string all;
  for (const std::string& line : lines) {
    all += line + "\n";
  }
  EXPECT_THAT(all, HasSubstr("'/'"));  // the "/abs" subtree, as the common prefix "/"
  EXPECT_THAT(all, HasSubstr("'a//'"));
  EXPECT_THAT(all, HasSubstr("'a/./'"));
  EXPECT_THAT(all, HasSubstr("'a/../'"));
  EXPECT_THAT(all, HasSubstr("'a/..'"));
  EXPECT_THAT(all, HasSubstr("'a/" + long_name + "'"));

  // Listing again logs nothing new.
  ns->Invalidate("");
  ns->Invalidate("a");
  EXPECT_THAT(ListNames(*ns, "a"), ElementsAre(max_name));
  EXPECT_THAT(log_.lines(), SizeIs(7));

  // Paths that cannot name anything are refused before any request.
  EXPECT_EQ(ns->Lookup("a/..").status().code(), EINVAL);
  EXPECT_EQ(ns->Lookup("a//b").status().code(), EINVAL);
  EXPECT_EQ(ns->Lookup("a/" + long_name).status().code(), ENAMETOOLONG);
  EXPECT_EQ(ns->List("/a").status().code(), EINVAL);
}

TEST_F(NamespaceTest, Pagination) {
  for (int i = 0; i < 2500; ++i) {
    s3_.Seed("big/" + std::to_string(10000 + i), "");
  }
  auto ns = Make();
  Result<std::vector<DirEntry>> entries = ns->List("big");
  ASSERT_TRUE(entries.ok());
  ASSERT_THAT(*entries, SizeIs(2500));
  EXPECT_EQ(entries->front().name, "10000");
  EXPECT_EQ(entries->back().name, "12499");
  EXPECT_EQ(ns->list_requests(), 3u);
  EXPECT_EQ(s3_.calls(s3cachefs::testing::FakeS3::Op::kList), 3);
  for (int i = 0; i < 2500; i += 7) {
    EXPECT_TRUE(ns->Lookup("big/" + std::to_string(10000 + i)).ok());
  }
  EXPECT_EQ(ns->list_requests(), 3u);  // answered from the listing of "big"
}

TEST_F(NamespaceTest, PrefixMount) {
  s3_.Seed("p/a.txt", "1");
  s3_.Seed("p/d/e", "2");
  s3_.Seed("p", "outside");
  s3_.Seed("q/other", "3");
  s3_.Seed("pp/x", "4");
  NamespaceConfig config;
  config.prefix = "p/";
  auto ns = Make(config);
  EXPECT_THAT(ListNames(*ns, ""), ElementsAre("a.txt", "d"));
  EXPECT_THAT(ListNames(*ns, "d"), ElementsAre("e"));
  EXPECT_EQ(ns->Lookup("d/e")->size, 1u);
  EXPECT_EQ(ns->Lookup("other").status().code(), ENOENT);
  EXPECT_EQ(ns->Lookup("q").status().code(), ENOENT);
  EXPECT_TRUE(log_.lines().empty());
}

TEST_F(NamespaceTest, ListingsExpire) {
  NamespaceConfig config;
  config.dir_ttl = std::chrono::milliseconds(100);
  auto ns = Make(config);
  s3_.Seed("one", "");
  EXPECT_THAT(ListNames(*ns, ""), ElementsAre("one"));
  s3_.Seed("two", "");
  EXPECT_THAT(ListNames(*ns, ""), ElementsAre("one"));  // cached
  EXPECT_EQ(ns->Lookup("two").status().code(), ENOENT);
  EXPECT_EQ(ns->list_requests(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_THAT(ListNames(*ns, ""), ElementsAre("one", "two"));
  EXPECT_EQ(ns->list_requests(), 2u);
}

TEST_F(NamespaceTest, NegativeCache) {
  NamespaceConfig config;
  config.dir_ttl = std::chrono::milliseconds(0);  // only the negative cache can answer
  config.negative_ttl = std::chrono::milliseconds(150);
  auto ns = Make(config);
  EXPECT_EQ(ns->Lookup("nope").status().code(), ENOENT);
  EXPECT_EQ(ns->list_requests(), 1u);
  s3_.Seed("nope", "");
  EXPECT_EQ(ns->Lookup("nope").status().code(), ENOENT);  // still cached as absent
  EXPECT_EQ(ns->list_requests(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(ns->Lookup("nope").ok());
  EXPECT_EQ(ns->list_requests(), 2u);

  // A missing ancestor is cached too.
  EXPECT_EQ(ns->Lookup("gone/deep").status().code(), ENOENT);
  const uint64_t after_miss = ns->list_requests();
  EXPECT_EQ(ns->Lookup("gone/deep").status().code(), ENOENT);
  EXPECT_EQ(ns->list_requests(), after_miss);
  // A local create ends the negative entry at once.
  EXPECT_EQ(ns->Lookup("nope2").status().code(), ENOENT);
  ns->NoteFile("nope2", NodeAttr{});
  s3_.Seed("nope2", "");
  EXPECT_TRUE(ns->Lookup("nope2").ok());
}

TEST_F(NamespaceTest, NotADirectory) {
  s3_.Seed("f", "file");
  s3_.Seed("g/h", "file");
  auto ns = Make();
  EXPECT_EQ(ns->List("f").status().code(), ENOTDIR);
  EXPECT_EQ(ns->Lookup("f/x").status().code(), ENOTDIR);
  EXPECT_EQ(ns->List("g/h").status().code(), ENOTDIR);
  EXPECT_EQ(ns->Lookup("g/h/i").status().code(), ENOTDIR);
  EXPECT_EQ(ns->List("nope").status().code(), ENOENT);
  EXPECT_EQ(ns->Lookup("nope/x").status().code(), ENOENT);
  // Cold, from deep below a file: the ancestors are resolved upwards.
  auto cold = Make();
  EXPECT_EQ(cold->List("f/x/y").status().code(), ENOTDIR);
  EXPECT_EQ(cold->Lookup("g/h/i/j").status().code(), ENOTDIR);
  EXPECT_EQ(cold->List("nope/x/y").status().code(), ENOENT);
}

TEST_F(NamespaceTest, NotesUpdateCachedListings) {
  s3_.Seed("d/old", "1");
  auto ns = Make();
  EXPECT_THAT(ListNames(*ns, ""), ElementsAre("d"));
  EXPECT_THAT(ListNames(*ns, "d"), ElementsAre("old"));
  const uint64_t before = ns->list_requests();

  NodeAttr attr;
  attr.size = 42;
  attr.mtime = 123;
  attr.etag = "\"e\"";
  ns->NoteFile("d/new", attr);
  EXPECT_THAT(ListNames(*ns, "d"), ElementsAre("new", "old"));
  EXPECT_EQ(ns->Lookup("d/new")->size, 42u);
  attr.size = 43;
  ns->NoteFile("d/new", attr);  // replaced
  EXPECT_EQ(ns->Lookup("d/new")->size, 43u);

  ns->NoteDirectory("d/sub");
  EXPECT_EQ(ns->Lookup("d/sub")->type, NodeType::kDirectory);
  Result<std::vector<DirEntry>> sub = ns->List("d/sub");
  ASSERT_TRUE(sub.ok());
  EXPECT_TRUE(sub->empty());
  ns->NoteFile("d/sub/f", NodeAttr{});
  EXPECT_THAT(ListNames(*ns, "d/sub"), ElementsAre("f"));

  ns->NoteRemoved("d/old");
  EXPECT_EQ(ns->Lookup("d/old").status().code(), ENOENT);
  ns->NoteRemoved("d/sub");
  EXPECT_EQ(ns->Lookup("d/sub").status().code(), ENOENT);
  EXPECT_EQ(ns->List("d/sub").status().code(), ENOENT);
  EXPECT_THAT(ListNames(*ns, "d"), ElementsAre("new"));
  EXPECT_EQ(ns->list_requests(), before);  // all without a request

  // Invalidate forgets the local view: S3 has only "d/old".
  ns->Invalidate("d");
  EXPECT_THAT(ListNames(*ns, "d"), ElementsAre("old"));
  EXPECT_EQ(ns->list_requests(), before + 1);
}

TEST_F(NamespaceTest, ListErrorsAreReturnedNotCached) {
  s3_.Seed("a", "");
  auto ns = Make();
  s3_.FailNext(s3cachefs::testing::FakeS3::Op::kList, 1, Status::Error(EIO, "injected"));
  Result<std::vector<DirEntry>> failed = ns->List("");
  EXPECT_EQ(failed.status().code(), EIO);
  EXPECT_THAT(failed.status().message(), HasSubstr("injected"));
  EXPECT_THAT(ListNames(*ns, ""), ElementsAre("a"));
  ns->Invalidate("");  // else the root's listing answers that "x" does not exist
  s3_.FailNext(s3cachefs::testing::FakeS3::Op::kList, 1, Status::Error(EACCES, "denied"));
  EXPECT_EQ(ns->Lookup("x/y").status().code(), EACCES);
  EXPECT_EQ(ns->Lookup("x/y").status().code(), ENOENT);  // not cached as absent either
}

}  // namespace
}  // namespace s3cachefs::cache
