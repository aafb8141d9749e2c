#include "fs/options.h"

#include <gtest/gtest.h>

#include <vector>

namespace s3cachefs::fs {
namespace {

Result<MountOptions> Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "s3cachefs");
  return ParseMountOptions(static_cast<int>(args.size()), args.data());
}

TEST(MountOptions, BucketPrefixAndMountpoint) {
  Result<MountOptions> o = Parse({"bucket:some/prefix/", "/mnt/x"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->bucket, "bucket");
  EXPECT_EQ(o->prefix, "some/prefix/");
  EXPECT_EQ(o->mountpoint, "/mnt/x");
  EXPECT_FALSE(o->foreground);
}

TEST(MountOptions, OwnOptionsAreTakenOutAndTheRestPassedToFuse) {
  Result<MountOptions> o =
      Parse({"b", "/m", "-o", "endpoint=http://127.0.0.1:9,region=eu-west-1,allow_other",
             "-oro,revalidate=5m,uid=7,gid=8,umask=027,_netdev,nofail,x-systemd.automount", "-f"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->s3.endpoint.value(), "http://127.0.0.1:9");
  EXPECT_EQ(o->s3.region.value(), "eu-west-1");
  EXPECT_EQ(o->revalidate.count(), 300);
  EXPECT_EQ(o->uid, 7u);
  EXPECT_EQ(o->gid, 8u);
  EXPECT_EQ(o->umask, 027u);
  EXPECT_TRUE(o->read_only);
  EXPECT_TRUE(o->foreground);
  ASSERT_EQ(o->fuse_args.size(), 3u);
  EXPECT_EQ(o->fuse_args[1], "-o");
  EXPECT_EQ(o->fuse_args[2],
            "allow_other,ro,fsname=b,subtype=s3cachefs,default_permissions,max_read=524288");
}

TEST(MountOptions, KernelIoSizes) {
  Result<MountOptions> d = Parse({"b", "/m"});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->max_read, 512u << 10);
  EXPECT_EQ(d->read_ahead, 1u << 20);
  Result<MountOptions> o = Parse({"b", "/m", "-o", "max_read=128K,read_ahead=0"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->max_read, 128u << 10);
  EXPECT_EQ(o->read_ahead, 0u);
  // FUSE gets max_read once, ours: libfuse rejects an INIT whose max_read differs from it.
  EXPECT_EQ(o->fuse_args[2], "fsname=b,subtype=s3cachefs,default_permissions,max_read=131072");
  EXPECT_FALSE(Parse({"b", "/m", "-o", "max_read=2M"}).ok());
  EXPECT_FALSE(Parse({"b", "/m", "-o", "max_read=1K"}).ok());
  EXPECT_FALSE(Parse({"b", "/m", "-o", "read_ahead=1G"}).ok());
}

TEST(MountOptions, Passthrough) {
  Result<MountOptions> d = Parse({"b", "/m"});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->passthrough);
  Result<MountOptions> o = Parse({"b", "/m", "-o", "passthrough=0"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_FALSE(o->passthrough);
  // Ours, not FUSE's: it does not reach the kernel's mount options.
  EXPECT_EQ(o->fuse_args[2].find("passthrough"), std::string::npos);
  EXPECT_FALSE(Parse({"b", "/m", "-o", "passthrough=yes"}).ok());
  EXPECT_TRUE(d->cold_direct);
  Result<MountOptions> c = Parse({"b", "/m", "-o", "cold_direct=0"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->cold_direct);
  EXPECT_TRUE(c->passthrough);
  EXPECT_EQ(c->fuse_args[2].find("cold_direct"), std::string::npos);
  EXPECT_FALSE(Parse({"b", "/m", "-o", "cold_direct=2"}).ok());
}

TEST(MountOptions, ErrorsNameTheArgument) {
  Result<MountOptions> o = Parse({"b", "/m", "-o", "revalidate=soon"});
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("revalidate"), std::string::npos);
  EXPECT_FALSE(Parse({"b"}).ok());
  EXPECT_FALSE(Parse({"b", "/m", "--bogus"}).ok());
  EXPECT_FALSE(Parse({"b", "/m", "-o", "cache_dir=relative"}).ok());
  EXPECT_FALSE(Parse({":prefix", "/m"}).ok());
  EXPECT_FALSE(Parse({"b", "/m", "-o", "umask=999"}).ok());
}

TEST(MountOptions, DirPrefetch) {
  EXPECT_FALSE(Parse({"b", "/m"})->dir_prefetch.has_value());
  EXPECT_EQ(Parse({"b", "/m", "-o", "dir_prefetch=0"})->dir_prefetch, 0u);
  EXPECT_EQ(Parse({"b", "/m", "-o", "dir_prefetch=8"})->dir_prefetch, 8u);
  EXPECT_FALSE(Parse({"b", "/m", "-o", "dir_prefetch=65"}).ok());
  EXPECT_FALSE(Parse({"b", "/m", "-o", "dir_prefetch=x"}).ok());
  EXPECT_FALSE(Parse({"b", "/m"})->file_prefetch.has_value());
  EXPECT_EQ(Parse({"b", "/m", "-o", "file_prefetch=0"})->file_prefetch, 0u);
  EXPECT_FALSE(Parse({"b", "/m", "-o", "file_prefetch=65"}).ok());
}

TEST(MountOptions, Transfers) {
  Result<MountOptions> d = Parse({"b", "/m"});
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->get_size || d->parallel_gets || d->multipart_threshold || d->part_size ||
               d->parallel_parts || d->parallel_uploads);
  Result<MountOptions> o =
      Parse({"b", "/m", "-o",
             "get_size=8M,parallel_gets=16,multipart_threshold=64M,part_size=5M,"
             "parallel_parts=32,parallel_uploads=2"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->get_size.value(), 8u << 20);
  EXPECT_EQ(o->parallel_gets.value(), 16u);
  EXPECT_EQ(o->multipart_threshold.value(), 64u << 20);
  EXPECT_EQ(o->part_size.value(), 5u << 20);
  EXPECT_EQ(o->parallel_parts.value(), 32u);
  EXPECT_EQ(o->parallel_uploads.value(), 2u);
  EXPECT_EQ(o->fuse_args[2], "fsname=b,subtype=s3cachefs,default_permissions,max_read=524288");
  // S3's limits: parts of 5 MiB to 5 GiB; a GET of at least 1 MiB; 1..64 in flight.
  for (const char* bad : {"get_size=512K", "get_size=2G", "part_size=4M", "part_size=6G",
                          "multipart_threshold=1M", "multipart_threshold=6G", "parallel_gets=0",
                          "parallel_parts=65", "parallel_uploads=x", "part_size="}) {
    Result<MountOptions> r = Parse({"b", "/m", "-o", bad});
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), EINVAL) << bad;
  }
  EXPECT_NE(Parse({"b", "/m", "-o", "part_size=1M"}).status().message().find("5M to 5G"),
            std::string::npos);
}

TEST(MountOptions, HelpNeedsNoPositionals) {
  Result<MountOptions> o = Parse({"-h"});
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(o->show_help);
}

TEST(ParseDuration, Units) {
  EXPECT_EQ(ParseDuration("30")->count(), 30);
  EXPECT_EQ(ParseDuration("30s")->count(), 30);
  EXPECT_EQ(ParseDuration("2m")->count(), 120);
  EXPECT_EQ(ParseDuration("1h")->count(), 3600);
  EXPECT_EQ(ParseDuration("1d")->count(), 86400);
  EXPECT_FALSE(ParseDuration("1w").ok());
  EXPECT_FALSE(ParseDuration("").ok());
}

TEST(ParseSize, Suffixes) {
  EXPECT_EQ(*ParseSize("512"), 512u);
  EXPECT_EQ(*ParseSize("10K"), 10u << 10);
  EXPECT_EQ(*ParseSize("50M"), 50u << 20);
  EXPECT_EQ(*ParseSize("2G"), 2ull << 30);
  EXPECT_EQ(*ParseSize("1T"), 1ull << 40);
  EXPECT_EQ(*ParseSize("5MB"), 5u << 20);
  EXPECT_FALSE(ParseSize("5X").ok());
}

}  // namespace
}  // namespace s3cachefs::fs
