// Command line and mount options of the s3cachefs binary:
//
//   s3cachefs BUCKET[:PREFIX] MOUNTPOINT [-o OPT[,OPT...]] [-f] [-d] [-s] [-h] [-V]
//
// Our own -o options are taken out; the rest (allow_other, ro, fsname=, ...) are handed to FUSE.
// Options that only mean something to mount(8) or fstab (_netdev, nofail, noauto, defaults,
// x-systemd.*, comment=) are dropped, so the same line works from mount -t fuse.s3cachefs and
// /etc/fstab.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "s3/config.h"
#include "s3/status.h"

namespace s3cachefs::fs {

struct MountOptions {
  std::string bucket;
  std::string prefix;  // "" or ending in '/'
  std::string mountpoint;

  // S3
  s3::ConfigOverrides s3;

  // Cache
  std::string cache_dir;  // default: $XDG_CACHE_HOME/s3cachefs or /var/cache/s3cachefs (root)
  std::chrono::seconds revalidate{30};
  bool verify_md5 = true;  // check downloads of single-part objects against their ETag
  std::chrono::milliseconds stat_ttl{std::chrono::seconds(5)};
  std::chrono::milliseconds dir_ttl{std::chrono::seconds(30)};
  std::chrono::milliseconds negative_ttl{std::chrono::seconds(5)};
  // Sibling directories listed ahead of a tree walk (cache/dir_prefetcher.h); 0 = off; unset:
  // the prefetcher's default.
  std::optional<unsigned> dir_prefetch;
  // Files fetched ahead of a directory scan (cache/file_prefetcher.h); 0 = off; unset: the
  // prefetcher's default.
  std::optional<unsigned> file_prefetch;
  // Write-back: sync = close returns once S3 has the file; async = once it is durable locally.
  bool write_back_async = false;
  // How long unmount waits for pending uploads before leaving them for the next mount.
  std::chrono::seconds drain_timeout{std::chrono::hours(1)};
  // Budget of the cache: total bytes (0 = no limit), free space to keep on its disk (percent),
  // and the age after which an unused entry is dropped (0 = never).
  uint64_t cache_size = 0;
  unsigned cache_min_free_percent = 10;
  std::chrono::seconds cache_max_age{0};

  // Ownership and permissions of everything in the mount.
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t umask = 022;
  bool read_only = false;

  // Kernel I/O sizes. max_read: the largest read request the kernel sends (passed to FUSE as its
  // max_read mount option). The default keeps replies splicable: libfuse splices a reply only
  // when it fits a pipe of pipe-max-size (1 MiB) with its header, and copies it through a
  // fresh buffer otherwise. read_ahead: the kernel's read-ahead for the mount (its BDI's
  // read_ahead_kb, 128 KiB unless set; needs root); 0 leaves the kernel's default.
  uint32_t max_read = 512u << 10;
  uint64_t read_ahead = 1u << 20;
  // Reads of fully cached files served by the kernel from the cache file (fs/passthrough.h).
  bool passthrough = true;
  // With passthrough: reads of objects not wholly cached yet use direct I/O (no kernel page
  // cache), so that their bytes are cached once and later opens are passthrough ones.
  bool cold_direct = true;

  // Transfers; unset ones keep the defaults of cache::ObjectCacheConfig and s3::TransferTuning
  // (fs/cache_config.h applies the set ones).
  std::optional<uint64_t> get_size;             // the largest ranged GET
  std::optional<unsigned> parallel_gets;        // ranged GETs in flight for one object
  std::optional<uint64_t> multipart_threshold;  // files at least this large go up in parts
  std::optional<uint64_t> part_size;            // the size of those parts
  std::optional<unsigned> parallel_parts;       // parts in flight for one upload
  std::optional<unsigned> parallel_uploads;     // files uploaded at once in the background

  // Process
  bool foreground = false;
  bool debug = false;
  bool single_thread = false;
  std::string log_file;
  unsigned max_threads = 64;

  bool show_help = false;
  bool show_version = false;

  // Arguments for fuse_session_new(): argv[0] and "-o" with the options FUSE should see.
  std::vector<std::string> fuse_args;
};

// Parses argv. Errors name the offending argument ("unknown option revalidat=5",
// "revalidate must be a number of seconds").
Result<MountOptions> ParseMountOptions(int argc, const char* const* argv);

// The text printed by -h.
std::string UsageText(const std::string& program);

// Parses "10", "10s", "5m", "2h", "1d" into seconds.
Result<std::chrono::seconds> ParseDuration(const std::string& text);
// Parses "512", "10K", "50M", "2G", "1T" (powers of 1024) into bytes.
Result<uint64_t> ParseSize(const std::string& text);

}  // namespace s3cachefs::fs
