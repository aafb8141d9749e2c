#include "cache/cache_admin.h"

#include <fcntl.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "cache/file_util.h"
#include "cache/object_cache.h"

namespace s3cachefs::cache {
namespace {

constexpr size_t kReadBuffer = 1 << 20;

// The MD5 of the file behind fd, or an error.
Result<std::string> Md5OfFile(int fd, const std::string& path) {
  Md5Stream md5;
  std::string buffer(kReadBuffer, '\0');
  off_t pos = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buffer.data(), buffer.size(), pos);
    if (n < 0) return ErrnoStatus(errno, "cannot read", path);
    if (n == 0) break;
    md5.Update(buffer.data(), static_cast<size_t>(n));
    pos += n;
  }
  return md5.FinishHex();
}

bool SameRow(const IndexEntry& a, const IndexEntry& b) {
  return a.file_name == b.file_name && a.etag == b.etag && a.size == b.size && a.state == b.state;
}

}  // namespace

std::optional<std::string> CacheDirectoryHolder(const std::string& dir) {
  std::string path = dir + "/lock";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;  // never locked
  // A shared lock conflicts with the daemon's exclusive one and changes nothing.
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return std::nullopt;  // released with fd
  char buf[32] = {};
  ssize_t n = ::pread(fd.get(), buf, sizeof(buf) - 1, 0);
  std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  return pid;
}

Result<std::unique_ptr<CacheAdmin>> CacheAdmin::Open(const std::string& dir_arg) {
  std::string dir = dir_arg;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty()) return Status::Error(EINVAL, "no cache directory given");
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Error(ENOENT, "cache directory " + dir + " does not exist");
    return ErrnoStatus(errno, "cannot use cache directory", dir);
  }
  if (!S_ISDIR(st.st_mode)) return Status::Error(ENOTDIR, dir + " is not a directory");
  // Index::Open would create an empty index: look first.
  std::string index_path = dir + "/index.sqlite";
  struct stat index_st;
  if (::stat(index_path.c_str(), &index_st) != 0 || !S_ISREG(index_st.st_mode) ||
      ::stat((dir + "/objects").c_str(), &st) != 0) {
    return Status::Error(EINVAL, dir +
                                     " is not an s3cachefs cache directory (it has no "
                                     "index.sqlite and objects/; give the cache_dir of a mount)");
  }
  Result<std::unique_ptr<Index>> index = Index::Open(index_path);
  if (!index.ok()) return index.status();
  return std::unique_ptr<CacheAdmin>(new CacheAdmin(dir, std::move(*index)));
}

Result<CacheStats> CacheAdmin::Stats() {
  CacheStats out;
  Result<Index::Summary> summary = index_->Summarize();
  if (!summary.ok()) return summary.status();
  out.summary = *summary;
  Result<Index::Counters> counters = index_->ReadCounters();
  if (!counters.ok()) return counters.status();
  out.counters = *counters;
  Result<DiskSpace> disk = StatDiskSpace(dir_);
  if (disk.ok()) out.disk = *disk;
  out.daemon_pid = CacheDirectoryHolder(dir_);
  return out;
}

Result<EvictionStats> CacheAdmin::Evict(uint64_t max_bytes) {
  Result<UniqueFd> lock = LockCacheDirectory(dir_);
  if (!lock.ok()) {
    if (lock.status().code() != EBUSY) return lock.status();
    return Status::Error(EBUSY, lock.status().message() +
                                    "; unmount it first (a mounted cache keeps its own budget: "
                                    "see -o cache_size)");
  }
  // With the lock held no daemon runs: nothing is open and no access time is pending.
  Evictor evictor(index_.get(), dir_, CacheBudget{}, EvictorHooks{});
  Result<EvictionStats> stats = evictor.EvictTo(max_bytes);
  if (!stats.ok()) return stats.status();
  Index::Counters delta;
  delta.evictions = stats->entries;
  delta.evicted_bytes = stats->bytes;
  Status s = index_->AddCounters(delta);
  if (!s.ok()) return s;
  return stats;
}

std::string CacheAdmin::Check(const IndexEntry& e, uint64_t* md5_checked) {
  std::string path = ObjectPath(e);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return errno == ENOENT ? "file " + path + " is missing"
                           : "cannot open " + path + ": " + strerror(errno);
  }
  if (e.state != EntryState::kClean) return "";
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return "cannot stat " + path + ": " + strerror(errno);
  if (static_cast<uint64_t>(st.st_size) != e.size) {
    return "file has " + std::to_string(st.st_size) + " bytes, expected " + std::to_string(e.size);
  }
  if (!IsMd5Etag(e.etag)) return "";  // multipart or SSE-KMS: the ETag is not a checksum
  ++*md5_checked;
  Result<std::string> md5 = Md5OfFile(fd.get(), path);
  if (!md5.ok()) return md5.status().message();
  std::string_view want = UnquoteEtag(e.etag);
  if (md5->size() != want.size() || strncasecmp(md5->data(), want.data(), want.size()) != 0) {
    return "content does not match ETag " + e.etag + " (MD5 is " + *md5 + ")";
  }
  return "";
}

Result<VerifyReport> CacheAdmin::Verify(bool repair) {
  UniqueFd lock;
  if (repair) {
    Result<UniqueFd> r = LockCacheDirectory(dir_);
    if (!r.ok()) {
      if (r.status().code() != EBUSY) return r.status();
      return Status::Error(
          EBUSY, r.status().message() + "; unmount it to repair, or verify without --repair");
    }
    lock = std::move(*r);
  }
  std::vector<IndexEntry> entries;
  Status s = index_->ForEach([&](const IndexEntry& e) { entries.push_back(e); });
  if (!s.ok()) return s;

  VerifyReport report;
  for (const IndexEntry& e : entries) {
    ++report.checked;
    std::string problem = Check(e, &report.md5_checked);
    if (problem.empty()) continue;
    // A daemon may have replaced or dropped the entry while we looked: that is no problem.
    Result<std::optional<IndexEntry>> now = index_->Get(e.bucket, e.key);
    if (!now.ok()) return now.status();
    if (!now->has_value() || !SameRow(**now, e)) continue;
    BadEntry bad{e, problem, false};
    if (repair && e.state == EntryState::kClean) {
      std::string path = ObjectPath(e);
      Result<bool> dropped = index_->DeleteCleanIfUnchanged(**now, [&] { ::unlink(path.c_str()); });
      if (!dropped.ok()) return dropped.status();
      bad.dropped = *dropped;
    }
    report.bad.push_back(std::move(bad));
  }
  return report;
}

}  // namespace s3cachefs::cache
