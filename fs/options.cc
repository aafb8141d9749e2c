#include "fs/options.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>

namespace s3cachefs::fs {
namespace {

Status Invalid(const std::string& message) {
  return Status::Error(EINVAL, message);
}

std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    if (comma > start) out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

Result<uint64_t> ParseUnsigned(const std::string& name, const std::string& value, int base = 10) {
  if (value.empty()) return Invalid(name + " needs a value");
  char* end = nullptr;
  errno = 0;
  unsigned long long parsed = strtoull(value.c_str(), &end, base);
  if (errno != 0 || *end != '\0' || value[0] == '-') {
    return Invalid(name + "=" + value + " is not a valid number");
  }
  return static_cast<uint64_t>(parsed);
}

// Options that only mean something to mount(8), fstab or systemd.
bool IsMountOnlyOption(const std::string& name) {
  static const std::set<std::string> kDropped = {"_netdev", "nofail", "noauto",     "auto",
                                                 "user",    "users",  "nouser",     "defaults",
                                                 "comment", "owner",  "x-gvfs-show"};
  return kDropped.count(name) > 0 || name.rfind("x-systemd.", 0) == 0 ||
         name.rfind("comment=", 0) == 0;
}

std::string DefaultCacheDir() {
  if (geteuid() == 0) return "/var/cache/s3cachefs";
  if (const char* xdg = getenv("XDG_CACHE_HOME"); xdg != nullptr && xdg[0] == '/') {
    return std::string(xdg) + "/s3cachefs";
  }
  if (const char* home = getenv("HOME"); home != nullptr && home[0] == '/') {
    return std::string(home) + "/.cache/s3cachefs";
  }
  return "/tmp/s3cachefs-" + std::to_string(getuid());
}

// Applies one -o option; fuse_opts collects the ones FUSE should see.
Status ApplyOption(const std::string& option, MountOptions& opts,
                   std::vector<std::string>& fuse_opts) {
  const size_t eq = option.find('=');
  const std::string name = option.substr(0, eq);
  const bool has_value = eq != std::string::npos;
  const std::string value = has_value ? option.substr(eq + 1) : "";
  auto need_value = [&]() -> Status {
    return has_value && !value.empty() ? Status::Ok()
                                       : Invalid("option " + name + " needs a value");
  };
  auto set_seconds = [&](auto& field) -> Status {
    if (Status s = need_value(); !s.ok()) return s;
    Result<std::chrono::seconds> d = ParseDuration(value);
    if (!d.ok()) return Invalid(name + ": " + d.status().message());
    field = *d;
    return Status::Ok();
  };

  if (IsMountOnlyOption(name)) return Status::Ok();
  if (name == "endpoint" || name == "url") {
    if (Status s = need_value(); !s.ok()) return s;
    opts.s3.endpoint = value;
  } else if (name == "region" || name == "endpoint_region") {
    if (Status s = need_value(); !s.ok()) return s;
    opts.s3.region = value;
  } else if (name == "profile") {
    if (Status s = need_value(); !s.ok()) return s;
    opts.s3.profile = value;
  } else if (name == "ca_bundle") {
    if (Status s = need_value(); !s.ok()) return s;
    opts.s3.ca_bundle = value;
  } else if (name == "addressing") {
    if (value == "path") {
      opts.s3.addressing = s3::AddressingStyle::kPath;
    } else if (value == "virtual") {
      opts.s3.addressing = s3::AddressingStyle::kVirtual;
    } else if (value == "auto") {
      opts.s3.addressing = s3::AddressingStyle::kAuto;
    } else {
      return Invalid("addressing must be path, virtual or auto, not '" + value + "'");
    }
  } else if (name == "use_path_request_style") {  // s3fs-fuse's spelling
    opts.s3.addressing = s3::AddressingStyle::kPath;
  } else if (name == "anonymous" || name == "public_bucket") {
    opts.s3.anonymous = !has_value || value == "1" || value == "true";
  } else if (name == "cache_dir") {
    if (Status s = need_value(); !s.ok()) return s;
    if (value[0] != '/') return Invalid("cache_dir must be an absolute path, not '" + value + "'");
    opts.cache_dir = value;
  } else if (name == "revalidate") {
    return set_seconds(opts.revalidate);
  } else if (name == "stat_ttl" || name == "dir_ttl" || name == "negative_ttl") {
    std::chrono::seconds seconds{};
    if (Status s = set_seconds(seconds); !s.ok()) return s;
    auto& field = name == "stat_ttl"  ? opts.stat_ttl
                  : name == "dir_ttl" ? opts.dir_ttl
                                      : opts.negative_ttl;
    field = seconds;
  } else if (name == "dir_prefetch" || name == "file_prefetch") {
    Result<uint64_t> n = ParseUnsigned(name, value);
    if (!n.ok() || *n > 64) return Invalid(name + " must be 0..64");
    (name == "dir_prefetch" ? opts.dir_prefetch : opts.file_prefetch) = static_cast<unsigned>(*n);
  } else if (name == "verify_md5") {
    if (value != "0" && value != "1") return Invalid("verify_md5 must be 0 or 1");
    opts.verify_md5 = value == "1";
  } else if (name == "passthrough") {
    if (value != "0" && value != "1") return Invalid("passthrough must be 0 or 1");
    opts.passthrough = value == "1";
  } else if (name == "cold_direct") {
    if (value != "0" && value != "1") return Invalid("cold_direct must be 0 or 1");
    opts.cold_direct = value == "1";
  } else if (name == "write_back") {
    if (value == "sync") {
      opts.write_back_async = false;
    } else if (value == "async") {
      opts.write_back_async = true;
    } else {
      return Invalid("write_back must be sync or async, not '" + value + "'");
    }
  } else if (name == "drain_timeout") {
    return set_seconds(opts.drain_timeout);
  } else if (name == "cache_size") {
    if (Status s = need_value(); !s.ok()) return s;
    Result<uint64_t> size = ParseSize(value);
    if (!size.ok()) return Invalid("cache_size: " + size.status().message());
    opts.cache_size = *size;
  } else if (name == "cache_min_free") {
    std::string percent = value;
    if (!percent.empty() && percent.back() == '%') percent.pop_back();
    Result<uint64_t> n = ParseUnsigned(name, percent);
    if (!n.ok() || *n > 90) return Invalid("cache_min_free must be a percentage from 0 to 90");
    opts.cache_min_free_percent = static_cast<unsigned>(*n);
  } else if (name == "cache_max_age") {
    return set_seconds(opts.cache_max_age);
  } else if (name == "uid" || name == "gid") {
    Result<uint64_t> id = ParseUnsigned(name, value);
    if (!id.ok()) return id.status();
    if (name == "uid") {
      opts.uid = static_cast<uid_t>(*id);
    } else {
      opts.gid = static_cast<gid_t>(*id);
    }
  } else if (name == "umask") {
    Result<uint64_t> mask = ParseUnsigned(name, value, 8);
    if (!mask.ok() || *mask > 0777) return Invalid("umask must be an octal number such as 022");
    opts.umask = static_cast<mode_t>(*mask);
  } else if (name == "log_file") {
    if (Status s = need_value(); !s.ok()) return s;
    opts.log_file = value;
  } else if (name == "debug") {
    opts.debug = true;
  } else if (name == "max_threads") {
    Result<uint64_t> n = ParseUnsigned(name, value);
    if (!n.ok() || *n == 0 || *n > 1024) return Invalid("max_threads must be 1..1024");
    opts.max_threads = static_cast<unsigned>(*n);
  } else if (name == "max_read") {
    Result<uint64_t> size = ParseSize(value);
    if (!size.ok() || *size < 4096 || *size > (1u << 20)) {
      return Invalid("max_read must be a size from 4K to 1M");
    }
    opts.max_read = static_cast<uint32_t>(*size);
  } else if (name == "read_ahead") {
    Result<uint64_t> size = ParseSize(value);
    if (!size.ok() || *size > (64ull << 20)) return Invalid("read_ahead must be a size up to 64M");
    opts.read_ahead = *size;
  } else if (name == "get_size" || name == "multipart_threshold" || name == "part_size") {
    // S3 parts are 5 MiB to 5 GiB; a single PUT is at most 5 GiB.
    const bool get = name == "get_size";
    const uint64_t min = get ? 1ull << 20 : 5ull << 20;
    const uint64_t max = get ? 1ull << 30 : 5ull << 30;
    Result<uint64_t> size = ParseSize(value);
    if (!size.ok() || *size < min || *size > max) {
      return Invalid(name + " must be a size from " + (get ? "1M to 1G" : "5M to 5G"));
    }
    (get                             ? opts.get_size
     : name == "multipart_threshold" ? opts.multipart_threshold
                                     : opts.part_size) = *size;
  } else if (name == "parallel_gets" || name == "parallel_parts" || name == "parallel_uploads") {
    Result<uint64_t> n = ParseUnsigned(name, value);
    if (!n.ok() || *n == 0 || *n > 64) return Invalid(name + " must be 1..64");
    (name == "parallel_gets"    ? opts.parallel_gets
     : name == "parallel_parts" ? opts.parallel_parts
                                : opts.parallel_uploads) = static_cast<unsigned>(*n);
  } else if (name == "ro") {
    opts.read_only = true;
    fuse_opts.push_back(option);
  } else if (name == "rw") {
    opts.read_only = false;
    fuse_opts.push_back(option);
  } else {
    fuse_opts.push_back(option);  // FUSE's own; it rejects what it does not know
  }
  return Status::Ok();
}

}  // namespace

Result<std::chrono::seconds> ParseDuration(const std::string& text) {
  if (text.empty()) return Invalid("empty duration");
  size_t digits = 0;
  while (digits < text.size() && isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0) return Invalid("'" + text + "' is not a duration (e.g. 30, 30s, 5m, 2h, 1d)");
  const std::string unit = text.substr(digits);
  static const std::map<std::string, uint64_t> kUnits = {{"", 1},     {"s", 1},    {"m", 60},
                                                         {"min", 60}, {"h", 3600}, {"d", 86400}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end()) return Invalid("'" + text + "' has an unknown unit (use s, m, h or d)");
  return std::chrono::seconds(std::stoull(text.substr(0, digits)) * it->second);
}

Result<uint64_t> ParseSize(const std::string& text) {
  if (text.empty()) return Invalid("empty size");
  size_t digits = 0;
  while (digits < text.size() && isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0) return Invalid("'" + text + "' is not a size (e.g. 512M, 10G)");
  std::string unit = text.substr(digits);
  if (unit.size() == 2 && (unit[1] == 'B' || unit[1] == 'b')) unit.pop_back();
  static const std::map<std::string, int> kShift = {{"", 0},   {"K", 10}, {"k", 10},
                                                    {"M", 20}, {"m", 20}, {"G", 30},
                                                    {"g", 30}, {"T", 40}, {"t", 40}};
  auto it = kShift.find(unit);
  if (it == kShift.end()) return Invalid("'" + text + "' has an unknown unit (use K, M, G or T)");
  return static_cast<uint64_t>(std::stoull(text.substr(0, digits))) << it->second;
}

Result<MountOptions> ParseMountOptions(int argc, const char* const* argv) {
  MountOptions opts;
  opts.uid = getuid();
  opts.gid = getgid();
  std::vector<std::string> positional;
  std::vector<std::string> fuse_opts;

  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      opts.show_help = true;
    } else if (arg == "-V" || arg == "--version") {
      opts.show_version = true;
    } else if (arg == "-f") {
      opts.foreground = true;
    } else if (arg == "-d") {
      opts.debug = true;
      opts.foreground = true;
    } else if (arg == "-s") {
      opts.single_thread = true;
    } else if (arg == "-o" || arg.rfind("-o", 0) == 0) {
      std::string list;
      if (arg == "-o") {
        if (i + 1 >= argc) return Invalid("-o needs a list of options");
        list = argv[++i];
      } else {
        list = arg.substr(2);
      }
      for (const std::string& option : SplitCommas(list)) {
        if (Status s = ApplyOption(option, opts, fuse_opts); !s.ok()) return s;
      }
    } else if (!arg.empty() && arg[0] == '-') {
      return Invalid("unknown argument " + arg + " (see --help)");
    } else {
      positional.push_back(arg);
    }
  }
  if (opts.show_help || opts.show_version) return opts;
  if (positional.size() != 2) {
    return Invalid("expected BUCKET[:PREFIX] and MOUNTPOINT (see --help)");
  }

  const std::string& source = positional[0];
  const size_t colon = source.find(':');
  opts.bucket = source.substr(0, colon);
  if (colon != std::string::npos) {
    std::string prefix = source.substr(colon + 1);
    while (!prefix.empty() && prefix.front() == '/') prefix.erase(0, 1);
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    if (!prefix.empty()) opts.prefix = prefix + "/";
  }
  if (opts.bucket.empty()) return Invalid("the bucket name is empty in '" + source + "'");
  opts.mountpoint = positional[1];
  if (opts.cache_dir.empty()) opts.cache_dir = DefaultCacheDir();

  bool has_fsname = false;
  bool has_subtype = false;
  for (const std::string& o : fuse_opts) {
    has_fsname |= o.rfind("fsname=", 0) == 0;
    has_subtype |= o.rfind("subtype=", 0) == 0;
  }
  if (!has_fsname) fuse_opts.emplace_back("fsname=" + source);
  if (!has_subtype) fuse_opts.emplace_back("subtype=s3cachefs");
  // Permission checks by the kernel against the modes we report.
  fuse_opts.emplace_back("default_permissions");
  fuse_opts.emplace_back("max_read=" + std::to_string(opts.max_read));

  opts.fuse_args.emplace_back(argc > 0 ? argv[0] : "s3cachefs");
  std::string joined;
  for (const std::string& o : fuse_opts) joined += (joined.empty() ? "" : ",") + o;
  opts.fuse_args.emplace_back("-o");
  opts.fuse_args.emplace_back(joined);
  if (opts.debug) opts.fuse_args.emplace_back("-d");
  return opts;
}

std::string UsageText(const std::string& program) {
  return "usage: " + program + R"( BUCKET[:PREFIX] MOUNTPOINT [-o OPT[,OPT...]] [-f] [-d] [-s]
       )" +
         program + R"( cache stats|evict|verify --cache-dir DIR [--size SIZE] [--repair]

Presents an S3 bucket (or the keys under PREFIX) as a directory tree, caching object bodies on
local disk.

  -f                     stay in the foreground
  -d                     debug logging (implies -f)
  -s                     single-threaded
  -h, --help             this text
  -V, --version          print the version

S3 options (defaults follow the AWS CLI: environment, then ~/.aws/config and credentials):
  -o endpoint=URL        S3 endpoint, e.g. http://127.0.0.1:4568   (AWS_ENDPOINT_URL)
  -o region=NAME         region (AWS_REGION, default us-east-1)
  -o profile=NAME        profile in ~/.aws/credentials and ~/.aws/config (AWS_PROFILE)
  -o addressing=path|virtual|auto   request style (auto: path for IPs and localhost)
  -o ca_bundle=FILE      CA certificates for https (AWS_CA_BUNDLE)
  -o anonymous           unsigned requests, for public buckets

Cache options:
  -o cache_dir=DIR       where object bodies and the index live
                         (root: /var/cache/s3cachefs; else ~/.cache/s3cachefs)
  -o revalidate=SECONDS  serve a cached copy without asking S3 for this long, then check its
                         ETag with a conditional GET (default 30)
  -o verify_md5=0|1      check each download of a single-part object against the MD5 in its
                         ETag (default 1)
  -o stat_ttl=SECONDS    how long the kernel may cache attributes and names (default 5)
  -o dir_ttl=SECONDS     how long a directory listing is reused (default 30)
  -o negative_ttl=SECONDS  how long a missing name is remembered (default 5)
  -o dir_prefetch=N      when a walk (find, ls -R) enters a subdirectory, list the next N
                         sibling directories in the background, all at once (default 16;
                         0: off)
  -o file_prefetch=N     when files of a directory are opened in order (cat dir/*, cp -r),
                         fetch the next N files of up to 8 MiB in the background, all at
                         once (default 16; 0: off)
  -o read_ahead=SIZE     the kernel's read-ahead for the mount (default 1M; needs root, else
                         the kernel's 128K stays; 0: leave it)
  -o max_read=SIZE       the largest read request the kernel sends (default 512K; up to 1M,
                         but reads above 960K were measured 8 times slower)
  -o passthrough=0|1     let the kernel read files whose whole object is cached straight from
                         the cache file (FUSE passthrough: Linux 6.9+, daemon run as root;
                         default 1, used where available). While a file is open that way,
                         writers join it (`>' cuts it in place), and a newer version in S3
                         is opened as a new inode (the open files keep the old one)
  -o cold_direct=0|1     with passthrough: reads of an object not wholly cached yet bypass
                         the kernel's page cache (direct I/O), so its bytes are cached once
                         and the next open is a passthrough one (default 1). Reads of a few
                         KiB each are slower that way (one request each); 0 sends cold
                         reads through the page cache

Transfers:
  -o get_size=SIZE       the largest ranged GET (default 16M; 1M..1G)
  -o parallel_gets=N     ranged GETs in flight for one object (default 32; 1..64)
  -o multipart_threshold=SIZE  files at least this large are uploaded in parts
                         (default 16M; 5M..5G)
  -o part_size=SIZE      the size of those parts (default 16M; 5M..5G; grown where a file
                         would need more than 10,000)
  -o parallel_parts=N    parts in flight for one upload (default 8; 1..64)
  -o parallel_uploads=N  files uploaded at once in the background (async write-back and
                         retries; default 16; 1..64)
  Against a distant S3 endpoint, more GETs and parts in flight make up for the round trips.

Write-back:
  -o write_back=sync|async  sync (default): close returns once S3 has the file, or fails with
                         EIO (the data stays in the cache and is retried); async: close returns
                         once the data is durable on local disk, a background uploader writes it
                         back, and unmount waits for it
  -o drain_timeout=SECONDS how long unmount waits for uploads (default 3600; the rest resumes at
                         the next mount)

Cache budget (least recently used entries are evicted; open or unsaved files never):
  -o cache_size=SIZE     total size of cached data, e.g. 50G (default: no limit)
  -o cache_min_free=PERCENT  free space to keep on the cache disk (default 10)
  -o cache_max_age=DURATION  drop entries unused for this long, e.g. 7d (default: never)

Mount options:
  -o ro                  read-only
  -o allow_other         let other users in (needs user_allow_other for non-root)
  -o uid=N,gid=N         owner of every file (default: the mounting user)
  -o umask=OCTAL         permission bits to clear (default 022: files 0644, dirs 0755)
  -o log_file=FILE       log here instead of syslog when in the background
  -o max_threads=N       FUSE worker threads (default 64)
  Other -o options are passed to FUSE (fsname=, default_permissions, ...); _netdev, nofail,
  noauto and x-systemd.* are accepted for /etc/fstab and ignored.
)";
}

}  // namespace s3cachefs::fs
