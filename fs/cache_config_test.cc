#include "fs/cache_config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "s3/config.h"

namespace s3cachefs::fs {
namespace {

MountOptions Parse(std::vector<const char*> args) {
  args.insert(args.begin(), {"s3cachefs", "bucket", "/mnt"});
  Result<MountOptions> o = ParseMountOptions(static_cast<int>(args.size()), args.data());
  EXPECT_TRUE(o.ok()) << o.status().ToString();
  return o.ok() ? *o : MountOptions{};
}

TEST(CacheConfigFor, UnsetTransferOptionsKeepTheCacheDefaults) {
  const cache::ObjectCacheConfig defaults;
  const cache::ObjectCacheConfig c = CacheConfigFor(Parse({"-o", "cache_dir=/c,revalidate=7"}));
  EXPECT_EQ(c.cache_dir, "/c");
  EXPECT_EQ(c.bucket, "bucket");
  EXPECT_EQ(c.revalidate.count(), 7);
  EXPECT_EQ(c.chunk_size, defaults.chunk_size);
  EXPECT_EQ(c.parallel_per_object, defaults.parallel_per_object);
  EXPECT_EQ(c.download_threads, defaults.download_threads);
  EXPECT_EQ(c.upload_threads, defaults.upload_threads);
  EXPECT_EQ(c.transfer.multipart_threshold, defaults.transfer.multipart_threshold);
  EXPECT_EQ(c.transfer.part_size, defaults.transfer.part_size);
  EXPECT_EQ(c.transfer.parallelism, defaults.transfer.parallelism);
  EXPECT_EQ(c.write_back, cache::WriteBackMode::kSync);
  EXPECT_FALSE(c.cache_max_age.has_value());
}

TEST(CacheConfigFor, TransferOptions) {
  const cache::ObjectCacheConfig c = CacheConfigFor(
      Parse({"-o",
             "get_size=4M,parallel_gets=48,multipart_threshold=64M,part_size=5M,"
             "parallel_parts=32,parallel_uploads=2,write_back=async,cache_max_age=1d"}));
  EXPECT_EQ(c.chunk_size, 4u << 20);
  EXPECT_EQ(c.parallel_per_object, 48);
  EXPECT_EQ(c.download_threads, 48);  // one object can use them all
  EXPECT_EQ(c.transfer.multipart_threshold, 64u << 20);
  EXPECT_EQ(c.transfer.part_size, 5u << 20);
  EXPECT_EQ(c.transfer.parallelism, 32);
  EXPECT_EQ(c.upload_threads, 2);
  EXPECT_EQ(c.write_back, cache::WriteBackMode::kAsync);
  EXPECT_EQ(c.cache_max_age->count(), 86400);
  // Fewer GETs in flight per object than the default pool keeps the pool.
  EXPECT_EQ(CacheConfigFor(Parse({"-o", "parallel_gets=2"})).download_threads,
            cache::ObjectCacheConfig{}.download_threads);
}

TEST(ConnectionsFor, EveryDownloadAndOneFullUploadAtOnce) {
  const int floor = s3::ClientConfig{}.max_connections;
  const cache::ObjectCacheConfig d = CacheConfigFor(Parse({}));
  // Every download thread, one upload's parts and a few for metadata; never below the floor.
  EXPECT_EQ(ConnectionsFor(d, floor), 32 + 8 + 8);
  EXPECT_EQ(ConnectionsFor(d, 1000), 1000);
  const cache::ObjectCacheConfig wide =
      CacheConfigFor(Parse({"-o", "parallel_gets=64,parallel_parts=64"}));
  EXPECT_EQ(ConnectionsFor(wide, floor), 64 + 64 + 8);
}

TEST(PrefetchConfigFor, UnsetOptionsKeepThePrefetchersDefaults) {
  EXPECT_EQ(DirPrefetchConfigFor(Parse({})).lookahead, cache::DirPrefetchConfig{}.lookahead);
  EXPECT_EQ(FilePrefetchConfigFor(Parse({})).lookahead, cache::FilePrefetchConfig{}.lookahead);
  const MountOptions set = Parse({"-o", "dir_prefetch=0,file_prefetch=3"});
  EXPECT_EQ(DirPrefetchConfigFor(set).lookahead, 0u);
  EXPECT_EQ(FilePrefetchConfigFor(set).lookahead, 3u);
}

// --help states the defaults; they are the cache's and the transfer code's.
TEST(CacheConfigFor, HelpTextStatesTheDefaults) {
  const cache::ObjectCacheConfig d;
  const std::string help = UsageText("s3cachefs");
  auto mib = [](uint64_t bytes) { return std::to_string(bytes >> 20) + "M"; };
  for (const std::string& expected :
       {"get_size=SIZE       the largest ranged GET (default " + mib(d.chunk_size),
        "one object (default " + std::to_string(d.parallel_per_object),
        "(default " + mib(d.transfer.multipart_threshold) + "; 5M..5G)",
        "the size of those parts (default " + mib(d.transfer.part_size),
        "parts in flight for one upload (default " + std::to_string(d.transfer.parallelism),
        "default " + std::to_string(d.upload_threads) + "; 1..64)",
        "sibling directories in the background, all at once (default " +
            std::to_string(cache::DirPrefetchConfig{}.lookahead) + ";",
        "once (default " + std::to_string(cache::FilePrefetchConfig{}.lookahead) + "; 0: off)"}) {
    EXPECT_NE(help.find(expected), std::string::npos) << expected;
  }
}

}  // namespace
}  // namespace s3cachefs::fs
