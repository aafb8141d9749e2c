// ObjectCacheImpl, part 2: opening a cache directory — its lock, reconciliation of the index
// with the files after a crash, and resuming the uploads of local changes left DIRTY by the
// last run (before anything else can touch them).
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "cache/disk_reserve.h"
#include "cache/object_cache_impl.h"
#include "s3/log.h"

namespace s3cachefs::cache {

// Space kept aside for the index on a full disk (cache/disk_reserve.h).
constexpr uint64_t kDiskReserveBytes = 8ull << 20;
namespace {

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using UniqueDir = std::unique_ptr<DIR, DirCloser>;

// Takes the directory's lock; EBUSY naming the holder when another process (or another
// ObjectCache in this one) has it.
Result<UniqueFd> LockCacheDir(const std::string& dir) {
  std::string path = dir + "/lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoStatus(errno, "cannot open lock file", path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return ErrnoStatus(errno, "cannot lock", path);
    char buf[32] = {};
    ssize_t n = ::pread(fd.get(), buf, sizeof(buf) - 1, 0);
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return Status::Error(
        EBUSY, "cache directory " + dir + " is in use by another s3cachefs (pid " + pid + ")");
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    return ErrnoStatus(errno, "cannot write", path);
  }
  return fd;
}

}  // namespace

Result<UniqueFd> LockCacheDirectory(const std::string& dir) {
  return LockCacheDir(dir);
}

// Makes the directory and the index agree, after a crash or files removed by hand. Only CLEAN
// rows are touched: others hold data that is not in S3.
Status ObjectCacheImpl::Reconcile() {
  uint64_t stray_tmp = 0, orphan_files = 0, dropped_rows = 0;
  if (UniqueDir dir{::opendir(tmp_dir_.c_str())}) {
    while (struct dirent* e = ::readdir(dir.get())) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      if (::unlink((tmp_dir_ + "/" + name).c_str()) == 0) ++stray_tmp;
    }
  }

  // Files without a CLEAN row of the right size go.
  UniqueDir top{::opendir(objects_dir_.c_str())};
  if (top == nullptr) return ErrnoStatus(errno, "cannot list", objects_dir_);
  while (struct dirent* shard = ::readdir(top.get())) {
    std::string shard_name = shard->d_name;
    if (shard_name == "." || shard_name == "..") continue;
    std::string shard_path = objects_dir_ + "/" + shard_name;
    UniqueDir dir{::opendir(shard_path.c_str())};
    if (dir == nullptr) continue;
    while (struct dirent* e = ::readdir(dir.get())) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string path = shard_path;
      path.append("/").append(name);
      Result<std::optional<IndexEntry>> row = index_->GetByFileName(name);
      if (!row.ok()) return row.status();
      struct stat st;
      bool is_file = ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
      if (row->has_value() && (*row)->state != EntryState::kClean) continue;
      bool keep = row->has_value() && is_file && name.substr(0, 2) == shard_name &&
                  static_cast<uint64_t>(st.st_size) == (*row)->size;
      if (keep) continue;
      if (::unlink(path.c_str()) == 0) ++orphan_files;
    }
  }

  // Rows without their file go (including those whose wrong-sized file just went).
  std::vector<IndexEntry> missing;
  Status s = index_->ForEach([&](const IndexEntry& e) {
    if (e.state != EntryState::kClean) return;
    struct stat st;
    if (::stat(ObjectPath(e.file_name).c_str(), &st) != 0) missing.push_back(e);
  });
  if (!s.ok()) return s;
  for (const IndexEntry& e : missing) {
    Result<bool> r = index_->DeleteClean(e.bucket, e.key, nullptr);
    if (!r.ok()) return r.status();
    if (*r) ++dropped_rows;
  }
  if (stray_tmp + orphan_files + dropped_rows > 0) {
    LOG_INFO(
        "cache %s: removed %llu unfinished downloads and %llu files without an entry, "
        "dropped %llu entries without a file",
        config_.cache_dir.c_str(), static_cast<unsigned long long>(stray_tmp),
        static_cast<unsigned long long>(orphan_files),
        static_cast<unsigned long long>(dropped_rows));
  }
  // What the index says now is on disk from here on (the last daemon may have crashed before
  // syncing it): new files may be marked without a sync (Index::MarkDirty).
  return index_->SyncLog();
}

// Every DIRTY (or UPLOADING, from older code) row gets its WriteEntry and is queued, before the
// cache is handed out: nothing can evict or replace it, and its upload runs first. The file is
// opened when the upload runs (there may be many). Also loads the known metadata of all rows.
Status ObjectCacheImpl::ResumeUploads() {
  std::vector<IndexEntry> dirty;
  std::unordered_map<std::string, FileMeta> metas;
  Status s = index_->ForEach([&](const IndexEntry& e) {
    if (e.bucket != config_.bucket) return;
    if (!e.meta.empty()) metas[e.key] = e.meta;
    if (e.state != EntryState::kClean) dirty.push_back(e);
  });
  if (!s.ok()) return s;
  {
    std::lock_guard<std::mutex> lock(meta_mu_);
    metas_ = std::move(metas);
  }
  for (const IndexEntry& row : dirty) {
    auto entry = std::make_shared<WriteEntry>();
    {
      std::lock_guard<std::mutex> entry_lock(entry->mu);
      entry->phase = WriteEntry::Phase::kReady;
      entry->key = row.key;
      entry->file_name = row.file_name;
      entry->gen = row.dirty_gen;
      entry->etag = row.etag;
      entry->base_etag = row.base_etag;
      entry->meta = row.meta;
      SetDirtyLocked(*entry, true);
    }
    {
      std::lock_guard<std::mutex> lock(wmu_);
      InsertEntryLocked(row.key, entry);
    }
    struct stat st;
    long long size = ::stat(ObjectPath(row.file_name).c_str(), &st) == 0 ? st.st_size : -1;
    LOG_INFO("resuming upload of %s (%lld bytes changed locally before the last shutdown)",
             row.key.c_str(), size);
    uploader_.Enqueue(entry, std::chrono::milliseconds(0));
  }
  return Status::Ok();
}

void ObjectCacheImpl::StartThreads() {
  flusher_ = std::thread([this] { FlushLoop(); });
  uploader_.Start();
}

Result<std::unique_ptr<ObjectCache>> ObjectCache::Open(s3::Client& client,
                                                       ObjectCacheConfig config) {
  std::string& dir = config.cache_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty()) return Status::Error(EINVAL, "no cache directory given");
  if (config.chunk_size == 0 || config.download_threads < 1 || config.parallel_per_object < 1 ||
      config.upload_threads < 1) {
    return Status::Error(EINVAL,
                         "chunk_size, download_threads, parallel_per_object and upload_threads "
                         "must be positive");
  }
  if (!config.clock) config.clock = [] { return std::chrono::system_clock::now(); };

  std::error_code ignored;  // EnsureDir below names the real problem
  std::filesystem::create_directories(std::filesystem::path(dir).parent_path(), ignored);
  Status s = EnsureDir(dir);
  if (!s.ok()) return s;
  if (::access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return ErrnoStatus(errno, "cannot use cache directory (it must be writable)", dir);
  }
  Result<UniqueFd> lock_fd = LockCacheDir(dir);
  if (!lock_fd.ok()) return lock_fd.status();
  for (const char* sub : {"/objects", "/tmp"}) {
    s = EnsureDir(dir + sub);
    if (!s.ok()) return s;
  }
  Result<std::unique_ptr<Index>> index = Index::Open(dir + "/index.sqlite");
  if (!index.ok()) return index.status();
  auto reserve = std::make_shared<DiskReserve>(dir + "/reserve", kDiskReserveBytes);
  reserve->Replenish();
  (*index)->SetOnDiskFull([reserve] { reserve->Release(); });

  auto cache = std::make_unique<ObjectCacheImpl>(client, std::move(config), std::move(*lock_fd),
                                                 std::move(*index));
  cache->SetDiskReserve(reserve);
  s = cache->Reconcile();
  if (!s.ok()) return s;
  s = cache->ResumeUploads();
  if (!s.ok()) return s;
  s = cache->StartBudget();
  if (!s.ok()) return s;
  cache->StartThreads();
  return std::unique_ptr<ObjectCache>(std::move(cache));
}

}  // namespace s3cachefs::cache
