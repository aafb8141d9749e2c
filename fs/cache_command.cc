#include "fs/cache_command.h"

#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>

#include "cache/cache_admin.h"
#include "fs/options.h"

namespace s3cachefs::fs {
namespace {

constexpr int kOk = 0;
constexpr int kProblems = 1;
constexpr int kUsage = 2;

constexpr const char kUsageText[] =
    "usage: s3cachefs cache stats  --cache-dir DIR\n"
    "       s3cachefs cache evict  --cache-dir DIR --size SIZE\n"
    "       s3cachefs cache verify --cache-dir DIR [--repair]\n"
    "\n"
    "  stats   entries, bytes, local changes, access times and hit/miss counters\n"
    "  evict   drop the least recently read entries until the cache holds at most SIZE\n"
    "          (e.g. 50M, 10G); refused while a mount uses the directory\n"
    "  verify  check every cached file against its recorded size and, for single-part\n"
    "          objects, its MD5; --repair drops the bad entries (not while mounted)\n"
    "\n"
    "exit status: 0 ok, 1 problems found or the command failed, 2 usage error\n";

struct Args {
  std::string command;
  std::string cache_dir;
  std::optional<uint64_t> size;
  bool repair = false;
  bool help = false;
};

int Usage(const std::string& problem) {
  fprintf(stderr, "s3cachefs cache: %s\n\n%s", problem.c_str(), kUsageText);
  return kUsage;
}

int Fail(const Status& s) {
  fprintf(stderr, "s3cachefs cache: %s\n", s.message().c_str());
  return kProblems;
}

// Parses argv[1..]: the command and "--opt VALUE" or "--opt=VALUE". An error message or "".
std::string ParseArgs(int argc, char** argv, Args* out) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto take_value = [&]() -> bool {
      if (has_value) return true;
      if (i + 1 >= argc) return false;
      value = argv[++i];
      return true;
    };
    if (arg == "-h" || arg == "--help") {
      out->help = true;
    } else if (arg == "--cache-dir") {
      if (!take_value() || value.empty()) return "--cache-dir needs a directory";
      out->cache_dir = value;
    } else if (arg == "--size") {
      if (!take_value()) return "--size needs a size (e.g. 50M, 10G)";
      Result<uint64_t> size = ParseSize(value);
      if (!size.ok()) return "--size: " + size.status().message();
      out->size = *size;
    } else if (arg == "--repair" && !has_value) {
      out->repair = true;
    } else if (arg.rfind('-', 0) == 0) {
      return "unknown option " + arg;
    } else if (out->command.empty()) {
      out->command = arg;
    } else {
      return "unexpected argument " + arg;
    }
  }
  return "";
}

std::string FormatTime(int64_t ms, int64_t now_ms) {
  if (ms <= 0) return "-";
  time_t t = static_cast<time_t>(ms / 1000);
  tm local{};
  localtime_r(&t, &local);
  char stamp[32];
  strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &local);
  int64_t ago = (now_ms - ms) / 1000;
  std::string rel;
  if (ago < 0) {
    rel = "in the future";
  } else if (ago < 120) {
    rel = std::to_string(ago) + "s ago";
  } else if (ago < 7200) {
    rel = std::to_string(ago / 60) + "m ago";
  } else if (ago < 2 * 86400) {
    rel = std::to_string(ago / 3600) + "h ago";
  } else {
    rel = std::to_string(ago / 86400) + "d ago";
  }
  return std::string(stamp) + " (" + rel + ")";
}

int Stats(cache::CacheAdmin& admin) {
  Result<cache::CacheStats> r = admin.Stats();
  if (!r.ok()) return Fail(r.status());
  const cache::Index::Summary& s = r->summary;
  const cache::Index::Counters& c = r->counters;
  int64_t now_ms = static_cast<int64_t>(time(nullptr)) * 1000;
  auto count_and_bytes = [](uint64_t n, uint64_t bytes) {
    return std::to_string(n) + " (" + cache::FormatBytes(bytes) + ")";
  };
  printf("cache directory  %s\n", admin.dir().c_str());
  printf("mounted          %s\n",
         r->daemon_pid ? ("yes, s3cachefs pid " + *r->daemon_pid).c_str() : "no");
  printf("entries          %s\n", count_and_bytes(s.entries, s.bytes).c_str());
  printf("dirty            %s not yet in S3\n",
         count_and_bytes(s.local_entries, s.local_bytes).c_str());
  printf("oldest access    %s\n", FormatTime(s.oldest_access, now_ms).c_str());
  printf("newest access    %s\n", FormatTime(s.newest_access, now_ms).c_str());
  uint64_t opens = c.hits + c.revalidated + c.misses;
  std::string rate =
      opens > 0 ? " (" + std::to_string((c.hits + c.revalidated) * 100 / opens) + "% hit rate)"
                : "";
  printf("hits             %" PRIu64 "%s\n", c.hits, rate.c_str());
  printf("revalidated      %" PRIu64 "\n", c.revalidated);
  printf("misses           %" PRIu64 "\n", c.misses);
  printf("downloads        %" PRIu64 " (%s received)\n", c.downloads,
         cache::FormatBytes(c.bytes_downloaded).c_str());
  printf("evictions        %s\n", count_and_bytes(c.evictions, c.evicted_bytes).c_str());
  printf("not cached       %" PRIu64 " downloads (cache full)\n", c.not_kept);
  if (r->disk && r->disk->total > 0) {
    printf("disk             %s free of %s (%" PRIu64 "%%)\n",
           cache::FormatBytes(r->disk->available).c_str(),
           cache::FormatBytes(r->disk->total).c_str(), r->disk->available * 100 / r->disk->total);
  }
  return kOk;
}

int Evict(cache::CacheAdmin& admin, uint64_t size) {
  Result<cache::EvictionStats> r = admin.Evict(size);
  if (!r.ok()) return Fail(r.status());
  Result<cache::CacheStats> after = admin.Stats();
  if (!after.ok()) return Fail(after.status());
  const cache::Index::Summary& s = after->summary;
  printf("evicted %" PRIu64 " entries (%s); the cache holds %s in %" PRIu64 " entries\n",
         r->entries, cache::FormatBytes(r->bytes).c_str(), cache::FormatBytes(s.bytes).c_str(),
         s.entries);
  if (!r->within_budget) {
    fprintf(stderr,
            "s3cachefs cache: cannot get below %s: %s are in %" PRIu64
            " files with changes not yet uploaded (mount the bucket to upload them)\n",
            cache::FormatBytes(size).c_str(), cache::FormatBytes(s.local_bytes).c_str(),
            s.local_entries);
    return kProblems;
  }
  return kOk;
}

int Verify(cache::CacheAdmin& admin, bool repair) {
  Result<cache::VerifyReport> r = admin.Verify(repair);
  if (!r.ok()) return Fail(r.status());
  for (const cache::BadEntry& b : r->bad) {
    const char* action = b.dropped                                    ? " (dropped)"
                         : b.entry.state != cache::EntryState::kClean ? " (has local changes, kept)"
                                                                      : "";
    printf("bad: %s/%s: %s%s\n", b.entry.bucket.c_str(), b.entry.key.c_str(), b.problem.c_str(),
           action);
  }
  printf("checked %" PRIu64 " entries (%" PRIu64 " against their MD5): %zu bad\n", r->checked,
         r->md5_checked, r->bad.size());
  if (!r->bad.empty() && !repair) printf("run with --repair to drop the bad entries\n");
  return r->bad.empty() ? kOk : kProblems;
}

}  // namespace

int RunCacheCommand(int argc, char** argv) {
  Args args;
  std::string problem = ParseArgs(argc, argv, &args);
  if (!problem.empty()) return Usage(problem);
  if (args.help) {
    fputs(kUsageText, stdout);
    return kOk;
  }
  if (args.command.empty()) return Usage("no command given");
  if (args.command != "stats" && args.command != "evict" && args.command != "verify") {
    return Usage("unknown command " + args.command);
  }
  if (args.cache_dir.empty()) return Usage(args.command + " needs --cache-dir DIR");
  if (args.command == "evict" && !args.size) return Usage("evict needs --size SIZE");
  if (args.command != "evict" && args.size) return Usage("--size is only for evict");
  if (args.command != "verify" && args.repair) return Usage("--repair is only for verify");

  Result<std::unique_ptr<cache::CacheAdmin>> admin = cache::CacheAdmin::Open(args.cache_dir);
  if (!admin.ok()) return Fail(admin.status());
  if (args.command == "stats") return Stats(**admin);
  if (args.command == "evict") return Evict(**admin, *args.size);
  return Verify(**admin, args.repair);
}

}  // namespace s3cachefs::fs
