// s3cachefs: mounts an S3 bucket (or a prefix of one) through a local disk cache.
//
// Start-up order matters: every check that can fail (options, credentials, bucket, mountpoint,
// cache directory) runs before the mount exists, and the process only detaches once the mount
// is up, so a failure prints one clear line, exits non-zero and leaves nothing mounted.
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cache/namespace.h"
#include "cache/object_cache.h"
#include "fs/cache_command.h"
#include "fs/cache_config.h"
#include "fs/daemon.h"
#include "fs/filesystem.h"
#include "fs/options.h"
#include "fs/read_ahead.h"
#include "s3/config.h"
#include "s3/curl_client.h"
#include "s3/log.h"

namespace s3cachefs::fs {
namespace {

// Start-up failures: one line on the terminal (and in the log file, if there is one).
int Fail(const std::string& message) {
  fprintf(stderr, "s3cachefs: %s\n", message.c_str());
  if (!LogsToStderr()) LOG_ERROR("%s", message.c_str());
  return 1;
}

Status CheckMountpoint(const std::string& mountpoint) {
  struct stat st {};
  if (stat(mountpoint.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOTCONN) {
      return Status::Error(err, "mountpoint " + mountpoint +
                                    " is a dead FUSE mount; run fusermount3 -u " + mountpoint);
    }
    return Status::Error(err, "mountpoint " + mountpoint + ": " + strerror(err));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::Error(ENOTDIR, "mountpoint " + mountpoint + " is not a directory");
  }
  struct stat parent {};
  const std::string up = mountpoint + "/..";
  if (stat(up.c_str(), &parent) == 0 && parent.st_dev != st.st_dev) {
    return Status::Error(EBUSY, "mountpoint " + mountpoint + " is already a mount point");
  }
  return Status::Ok();
}

// One line of counters, read by the end-to-end tests and by operators.
void LogStats(const s3::Client& client, const cache::ObjectCache& objects,
              const Passthrough& passthrough) {
  const s3::ClientStats& s = client.stats();
  const cache::CacheCounters c = objects.counters();
  LOG_INFO(
      "stats: requests=%llu get_requests=%llu bytes_received=%llu not_modified=%llu "
      "list_requests=%llu head_requests=%llu put_requests=%llu bytes_sent=%llu retries=%llu "
      "errors=%llu hits=%llu revalidated=%llu misses=%llu downloads=%llu prefetches=%llu "
      "bytes_downloaded=%llu evictions=%llu not_kept=%llu uploads=%llu write_syncs=%llu "
      "passthrough_opens=%llu direct_opens=%llu",
      static_cast<unsigned long long>(s.requests.load()),
      static_cast<unsigned long long>(s.get_requests.load()),
      static_cast<unsigned long long>(s.bytes_received.load()),
      static_cast<unsigned long long>(s.not_modified.load()),
      static_cast<unsigned long long>(s.list_requests.load()),
      static_cast<unsigned long long>(s.head_requests.load()),
      static_cast<unsigned long long>(s.put_requests.load()),
      static_cast<unsigned long long>(s.bytes_sent.load()),
      static_cast<unsigned long long>(s.retries.load()),
      static_cast<unsigned long long>(s.errors.load()), static_cast<unsigned long long>(c.hits),
      static_cast<unsigned long long>(c.revalidated), static_cast<unsigned long long>(c.misses),
      static_cast<unsigned long long>(c.downloads), static_cast<unsigned long long>(c.prefetches),
      static_cast<unsigned long long>(c.bytes_downloaded),
      static_cast<unsigned long long>(c.evictions), static_cast<unsigned long long>(c.not_kept),
      static_cast<unsigned long long>(c.uploads), static_cast<unsigned long long>(c.write_syncs),
      static_cast<unsigned long long>(passthrough.opens()),
      static_cast<unsigned long long>(passthrough.direct_opens()));
}

int Run(const MountOptions& opts, Daemon& daemon) {
  const LogLevel level = opts.debug ? LogLevel::kDebug : LogLevel::kInfo;
  // On the terminal of a command that is about to detach, only problems are worth a line.
  const bool quiet_start = !opts.foreground && opts.log_file.empty();
  SetLogLevel(quiet_start ? LogLevel::kWarning : level);
  if (!opts.log_file.empty() && !LogToFile(opts.log_file)) {
    return Fail("cannot open log_file " + opts.log_file + ": " + strerror(errno));
  }

  Result<s3::ClientConfig> config = s3::ResolveConfig(opts.bucket, opts.s3, s3::ProcessEnv());
  if (!config.ok()) return Fail(config.status().message());
  const cache::ObjectCacheConfig cache_config = CacheConfigFor(opts);
  config->max_connections = ConnectionsFor(cache_config, config->max_connections);
  Result<std::unique_ptr<s3::Client>> client = s3::CreateCurlClient(*config);
  if (!client.ok()) return Fail(client.status().message());
  LOG_INFO("mounting %s%s%s on %s (%s)", opts.bucket.c_str(), opts.prefix.empty() ? "" : ":",
           opts.prefix.c_str(), opts.mountpoint.c_str(), config->Redacted().c_str());
  if (Status s = (*client)->CheckBucket(); !s.ok()) return Fail(s.message());
  if (Status s = CheckMountpoint(opts.mountpoint); !s.ok()) return Fail(s.message());

  Result<std::unique_ptr<cache::ObjectCache>> objects =
      cache::ObjectCache::Open(**client, cache_config);
  if (!objects.ok()) return Fail(objects.status().message());
  LOG_INFO(
      "transfers: get_size=%lluK parallel_gets=%d multipart_threshold=%lluK part_size=%lluK "
      "parallel_parts=%d parallel_uploads=%d",
      static_cast<unsigned long long>(cache_config.chunk_size >> 10),
      cache_config.parallel_per_object,
      static_cast<unsigned long long>(cache_config.transfer.multipart_threshold >> 10),
      static_cast<unsigned long long>(cache_config.transfer.part_size >> 10),
      cache_config.transfer.parallelism, cache_config.upload_threads);

  cache::NamespaceConfig ns_config;
  ns_config.prefix = opts.prefix;
  ns_config.dir_ttl = opts.dir_ttl;
  ns_config.negative_ttl = opts.negative_ttl;
  cache::Namespace names(**client, ns_config,
                         [](const std::string& line) { LOG_WARN("%s", line.c_str()); });
  FileSystem filesystem(opts, names, **objects);

  std::vector<const char*> argv;
  for (const std::string& a : opts.fuse_args) argv.push_back(a.c_str());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), const_cast<char**>(argv.data()));
  // libfuse copies the vector into memory of its own when it adds to it; freed on every path.
  struct ArgsGuard {
    fuse_args* args;
    ~ArgsGuard() { fuse_opt_free_args(args); }
  } args_guard{&args};
  fuse_session* session =
      fuse_session_new(&args, &FileSystem::Operations(), sizeof(fuse_lowlevel_ops), &filesystem);
  if (session == nullptr) return Fail("invalid mount options (see the message above)");
  filesystem.SetSession(session);
  if (fuse_set_signal_handlers(session) != 0) {
    fuse_session_destroy(session);
    return Fail("cannot install signal handlers");
  }
  if (fuse_session_mount(session, opts.mountpoint.c_str()) != 0) {
    fuse_remove_signal_handlers(session);
    fuse_session_destroy(session);
    return Fail("cannot mount on " + opts.mountpoint + " (see the message above)");
  }
  if (Status s = filesystem.passthrough().Install(session, opts.passthrough, opts.cold_direct);
      !s.ok()) {
    LOG_WARN("%s", s.ToString().c_str());
  }
  LOG_INFO("mounted %s on %s", opts.bucket.c_str(), opts.mountpoint.c_str());
  if (opts.read_ahead > 0) {
    // Without it sequential reads reach us in 128 KiB pieces. Not fatal: it needs root.
    if (Status s = SetReadAhead(filesystem.mount_root(), opts.read_ahead); !s.ok()) {
      LOG_INFO("read_ahead left at the kernel's default: %s", s.message().c_str());
    }
  }
  daemon.Ready();
  SetLogLevel(level);

  int rc;
  if (opts.single_thread) {
    rc = fuse_session_loop(session);
  } else {
    fuse_loop_config* loop = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(loop, opts.max_threads);
    fuse_loop_cfg_set_idle_threads(loop, 8);
    rc = fuse_session_loop_mt(session, loop);
    fuse_loop_cfg_destroy(loop);
  }
  fuse_session_unmount(session);
  fuse_remove_signal_handlers(session);
  fuse_session_destroy(session);
  LOG_INFO("unmounted %s", opts.mountpoint.c_str());
  if ((*objects)->pending_uploads() > 0) {
    LOG_INFO("waiting for %zu uploads before exiting", (*objects)->pending_uploads());
    if (Status s = (*objects)->DrainUploads(opts.drain_timeout); !s.ok()) {
      LOG_ERROR("%s; they stay in the cache and resume at the next mount", s.ToString().c_str());
      rc = 1;
    }
  }
  LogStats(**client, **objects, filesystem.passthrough());
  return rc == 0 ? 0 : 1;
}

}  // namespace
}  // namespace s3cachefs::fs

int main(int argc, char** argv) {
  using namespace s3cachefs;
  if (argc >= 2 && strcmp(argv[1], "cache") == 0) {
    return fs::RunCacheCommand(argc - 1, argv + 1);  // s3cachefs cache stats|evict|verify
  }
  Result<fs::MountOptions> opts = fs::ParseMountOptions(argc, argv);
  if (!opts.ok()) {
    fprintf(stderr, "s3cachefs: %s\n", opts.status().message().c_str());
    return 2;
  }
  if (opts->show_help) {
    printf("%s", fs::UsageText(argv[0]).c_str());
    return 0;
  }
  if (opts->show_version) {
    printf("s3cachefs 0.1.0 (libfuse %d)\n", fuse_version());
    return 0;
  }
  // Detach before any thread exists; the parent waits until the mount is up or failed.
  fs::Daemon daemon(!opts->foreground, opts->log_file.empty());
  if (daemon.IsParent()) return daemon.WaitForChild();
  return fs::Run(*opts, daemon);
}
