// ObjectCacheImpl: the cache directory, its index and its downloads put together.
//
// Threads: callers of OpenRead/Forget; the ChunkPool workers (download.h); one flusher thread
// that writes batched access/validation times to the index every flush_interval.
//
// Locks (each a leaf unless said otherwise; none is held across a request):
//   mu_        guards inflight_ and stopping_. May be taken inside Download locks (finish
//              callbacks); never held while calling into a Download, the pool or the index.
//   times_mu_  guards pending_ and flushing_ (the in-memory times).
//   flush_mu_  serializes Flush(); held across one index transaction, taken before times_mu_.
//   The Index has its own mutex, the innermost lock: the callbacks run under it only rename or
//   unlink one file.
#include "cache/object_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "cache/download.h"
#include "cache/file_util.h"
#include "cache/index.h"
#include "s3/log.h"

namespace s3cachefs::cache {
namespace {

using std::chrono::system_clock;

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using UniqueDir = std::unique_ptr<DIR, DirCloser>;

int64_t ToMs(system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

class CachedHandle : public ObjectHandle {
 public:
  CachedHandle(UniqueFd fd, const IndexEntry& entry)
      : fd_(std::move(fd)), size_(entry.size), etag_(entry.etag), mtime_(entry.mtime) {}
  int fd() const override { return fd_.get(); }
  uint64_t size() const override { return size_; }
  const std::string& etag() const override { return etag_; }
  time_t mtime() const override { return mtime_; }
  Status WaitReadable(uint64_t, uint64_t) override { return Status::Ok(); }

 private:
  UniqueFd fd_;
  uint64_t size_;
  std::string etag_;
  time_t mtime_;
};

// Reads through the download's own read-only fd, which stays valid after the file is renamed
// into objects/ (same inode) or removed after a failure.
//
// A reader is served each range as soon as its chunks are in, before the whole object can be
// checked against its ETag. So that a reader of the whole object (cp, cat) does not get a
// corrupt copy without an error, a handle that has read contiguously from offset 0 waits for
// the verdict before it is given the last bytes. Readers of other ranges (a footer, random
// reads) are not held back; they get the verdict with their next read.
class DownloadHandle : public ObjectHandle {
 public:
  DownloadHandle(std::shared_ptr<Download> download, std::chrono::milliseconds timeout)
      : download_(std::move(download)), timeout_(timeout) {}
  int fd() const override { return download_->read_fd(); }
  uint64_t size() const override { return download_->size(); }
  const std::string& etag() const override { return download_->etag(); }
  time_t mtime() const override { return download_->mtime(); }
  Status WaitReadable(uint64_t offset, uint64_t length) override {
    auto deadline = std::chrono::steady_clock::now() + timeout_;
    Status s = download_->WaitReadable(offset, length, deadline);
    if (!s.ok()) return s;
    uint64_t size = download_->size();
    uint64_t end = offset + std::min(length, size - std::min(offset, size));
    uint64_t prefix = contiguous_.load();
    while (offset <= prefix && end > prefix && !contiguous_.compare_exchange_weak(prefix, end)) {
    }
    if (end == size && contiguous_.load() == size) return download_->WaitVerified(deadline);
    return Status::Ok();
  }

 private:
  std::shared_ptr<Download> download_;
  std::chrono::milliseconds timeout_;
  std::atomic<uint64_t> contiguous_{0};  // bytes [0, contiguous_) were handed to the reader
};

// Times noted on the read path, not yet in the index. Only valid while the row has etag.
struct PendingTimes {
  std::string etag;
  int64_t validated_at = 0;
  int64_t accessed_at = 0;
};

class ObjectCacheImpl : public ObjectCache {
 public:
  ObjectCacheImpl(s3::Client& client, ObjectCacheConfig config, UniqueFd lock_fd,
                  std::unique_ptr<Index> index)
      : client_(client),
        config_(std::move(config)),
        objects_dir_(config_.cache_dir + "/objects"),
        tmp_dir_(config_.cache_dir + "/tmp"),
        lock_fd_(std::move(lock_fd)),
        index_(std::move(index)),
        pool_(config_.download_threads, config_.parallel_per_object) {}

  ~ObjectCacheImpl() override;

  Status Reconcile();
  void StartFlusher() {
    flusher_ = std::thread([this] { FlushLoop(); });
  }

  Result<std::shared_ptr<ObjectHandle>> OpenRead(const std::string& key,
                                                 const std::optional<ListingHint>& hint) override;
  Status Forget(const std::string& key) override;
  CacheCounters counters() const override;

 private:
  std::string FileName(const std::string& key) const {
    return Sha256Hex(config_.bucket + "/" + key);
  }
  std::string ObjectPath(const std::string& file_name) const {
    return objects_dir_ + "/" + file_name.substr(0, 2) + "/" + file_name;
  }
  int64_t NowMs() const { return ToMs(config_.clock()); }

  // The cached file of entry, or an invalid fd if it is missing or (for CLEAN rows) has the
  // wrong size. Errors other than a missing file are returned.
  Result<UniqueFd> OpenCachedFile(const IndexEntry& entry);
  // Waits for a joined download's first answer. A null handle means it was a revalidation
  // that got 304: the caller looks at the index again.
  Result<std::shared_ptr<ObjectHandle>> Join(const std::shared_ptr<Download>& download);
  Status Commit(Download& download);
  void Finished(Download& download, Download::Phase phase);
  // Removes the CLEAN row of key and its file.
  Status DropEntry(const std::string& key);

  int64_t ValidatedAt(const std::string& key, const IndexEntry& entry);
  void NoteTimes(const std::string& key, const std::string& etag, int64_t validated_at,
                 int64_t accessed_at);
  void FlushLoop();
  void Flush();

  s3::Client& client_;
  const ObjectCacheConfig config_;
  const std::string objects_dir_;
  const std::string tmp_dir_;
  UniqueFd lock_fd_;  // flock()ed for the cache's lifetime
  std::unique_ptr<Index> index_;
  ChunkPool pool_;

  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> revalidated_{0};
  std::atomic<uint64_t> misses_{0};
  std::atomic<uint64_t> downloads_{0};
  std::atomic<uint64_t> bytes_downloaded_{0};
  std::atomic<uint64_t> tmp_counter_{0};

  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Download>> inflight_;  // single flight
  bool stopping_ = false;

  std::mutex flush_mu_;
  std::mutex times_mu_;
  std::condition_variable flush_cv_;  // flush_stop_ set
  std::unordered_map<std::string, PendingTimes> pending_;
  std::unordered_map<std::string, PendingTimes> flushing_;  // being written by Flush()
  bool flush_stop_ = false;
  std::thread flusher_;
};

ObjectCacheImpl::~ObjectCacheImpl() {
  std::vector<std::shared_ptr<Download>> active;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& [key, d] : inflight_) active.push_back(d);
  }
  // Cancelling aborts the requests at their next body write; the workers then come back and
  // are joined. A download that is already committing finishes first.
  for (auto& d : active) d->Cancel(Status::Error(ECANCELED, "the cache is shutting down"));
  pool_.Shutdown();
  {
    std::lock_guard<std::mutex> lock(times_mu_);
    flush_stop_ = true;
  }
  flush_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  Flush();
}

Result<UniqueFd> ObjectCacheImpl::OpenCachedFile(const IndexEntry& entry) {
  std::string path = ObjectPath(entry.file_name);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return UniqueFd();
    return ErrnoStatus(errno, "cannot open cached file", path);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "cannot stat cached file", path);
  if (entry.state == EntryState::kClean && static_cast<uint64_t>(st.st_size) != entry.size) {
    LOG_WARN("cached file %s of %s has %lld bytes, expected %llu; dropping it", path.c_str(),
             entry.key.c_str(), static_cast<long long>(st.st_size),
             static_cast<unsigned long long>(entry.size));
    return UniqueFd();
  }
  return fd;
}

Result<std::shared_ptr<ObjectHandle>> ObjectCacheImpl::Join(
    const std::shared_ptr<Download>& download) {
  Status s = download->WaitStarted(std::chrono::steady_clock::now() + config_.read_timeout);
  if (!s.ok()) return s;
  if (download->phase() == Download::Phase::kNotModified) {
    return std::shared_ptr<ObjectHandle>();
  }
  misses_.fetch_add(1);
  return std::shared_ptr<ObjectHandle>(
      std::make_shared<DownloadHandle>(download, config_.read_timeout));
}

Result<std::shared_ptr<ObjectHandle>> ObjectCacheImpl::OpenRead(
    const std::string& key, const std::optional<ListingHint>& hint) {
  // More than one round only when a joined revalidation got 304 or a racing open won.
  for (int round = 0; round < 4; ++round) {
    std::shared_ptr<Download> joined;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return Status::Error(ESHUTDOWN, "the cache is shutting down");
      auto it = inflight_.find(key);
      if (it != inflight_.end()) joined = it->second;
    }
    if (joined != nullptr) {
      Result<std::shared_ptr<ObjectHandle>> r = Join(joined);
      if (!r.ok() || *r != nullptr) return r;
      continue;
    }

    Result<std::optional<IndexEntry>> row = index_->Get(config_.bucket, key);
    if (!row.ok()) return row.status();
    std::string revalidate_etag;  // set: a conditional GET; fd below is the copy it checks
    UniqueFd cached;
    if (row->has_value()) {
      const IndexEntry& entry = **row;
      Result<UniqueFd> fd = OpenCachedFile(entry);
      if (!fd.ok()) return fd.status();
      if (!fd->valid()) {
        LOG_WARN("cached copy of %s is missing or damaged; downloading it again", key.c_str());
        Status s = DropEntry(key);
        if (!s.ok()) return s;
      } else if (entry.state != EntryState::kClean) {
        // Local changes not yet in S3: the local copy is the truth until write-back is done.
        hits_.fetch_add(1);
        return std::shared_ptr<ObjectHandle>(std::make_shared<CachedHandle>(std::move(*fd), entry));
      } else {
        int64_t now = NowMs();
        int64_t validated = ValidatedAt(key, entry);
        bool stale = false;
        if (hint.has_value() && ToMs(hint->listed_at) > validated) {
          if (UnquoteEtag(hint->etag) == UnquoteEtag(entry.etag)) {
            validated = ToMs(hint->listed_at);
            NoteTimes(key, entry.etag, validated, 0);
          } else {
            stale = true;  // listed after our last check with another ETag: it changed
          }
        }
        auto window = std::chrono::duration_cast<std::chrono::milliseconds>(config_.revalidate);
        if (!stale && now - validated < window.count()) {
          hits_.fetch_add(1);
          NoteTimes(key, entry.etag, 0, now);
          return std::shared_ptr<ObjectHandle>(
              std::make_shared<CachedHandle>(std::move(*fd), entry));
        }
        if (!stale) {
          revalidate_etag = entry.etag;
          cached = std::move(*fd);
        }
      }
    }

    // Start a download (a revalidation when revalidate_etag is set), unless one started
    // meanwhile: then join that one.
    std::string file_name = FileName(key);
    DownloadParams params;
    params.client = &client_;
    params.key = key;
    params.tmp_path = tmp_dir_ + "/" + file_name + "." + std::to_string(tmp_counter_++);
    params.chunk_size = config_.chunk_size;
    params.verify_md5 = config_.verify_md5;
    params.if_none_match = revalidate_etag;
    params.bytes_counter = &bytes_downloaded_;
    params.clock = config_.clock;
    Result<std::shared_ptr<Download>> created = Download::Create(
        std::move(params), &pool_, [this](Download& d) { return Commit(d); },
        [this](Download& d, Download::Phase phase) { Finished(d, phase); });
    if (!created.ok()) return created.status();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return Status::Error(ESHUTDOWN, "the cache is shutting down");
      auto [it, inserted] = inflight_.try_emplace(key, *created);
      if (!inserted) joined = it->second;
    }
    if (joined != nullptr) continue;  // ours is discarded unstarted; join theirs next round

    std::shared_ptr<Download> d = std::move(*created);
    downloads_.fetch_add(1);
    d->Start();  // the first request, on this thread, no lock held
    Status s = d->WaitStarted(std::chrono::steady_clock::now() + config_.read_timeout);
    if (!s.ok()) return s;
    if (d->phase() == Download::Phase::kNotModified) {
      revalidated_.fetch_add(1);
      return std::shared_ptr<ObjectHandle>(
          std::make_shared<CachedHandle>(std::move(cached), **row));
    }
    misses_.fetch_add(1);
    return std::shared_ptr<ObjectHandle>(
        std::make_shared<DownloadHandle>(std::move(d), config_.read_timeout));
  }
  return Status::Error(EIO, "cannot open " + key + ": its cache entry keeps changing");
}

Status ObjectCacheImpl::Commit(Download& d) {
  IndexEntry entry;
  entry.bucket = config_.bucket;
  entry.key = d.key();
  entry.file_name = FileName(d.key());
  entry.etag = d.etag();
  entry.size = d.size();
  entry.mtime = d.mtime();
  entry.validated_at = ToMs(d.validated_at());
  entry.accessed_at = NowMs();
  std::string final_path = ObjectPath(entry.file_name);
  bool renamed = false;
  Status s = index_->PutClean(entry, [&]() -> Status {
    // Checked under the index lock, so a Forget either stops this or deletes the new row.
    if (d.skip_commit()) return Status::Error(ECANCELED, d.key() + " was forgotten");
    Status st = EnsureDir(objects_dir_ + "/" + entry.file_name.substr(0, 2));
    if (!st.ok()) return st;
    if (::rename(d.tmp_path().c_str(), final_path.c_str()) != 0) {
      return ErrnoStatus(errno, "cannot move download into", final_path);
    }
    renamed = true;
    return Status::Ok();
  });
  if (!s.ok() && renamed) ::unlink(final_path.c_str());
  return s;
}

void ObjectCacheImpl::Finished(Download& d, Download::Phase phase) {
  if (phase == Download::Phase::kNotModified) {
    // Before joined openers see the 304, so that they find the copy validated.
    int64_t now = NowMs();
    NoteTimes(d.key(), d.if_none_match(), now, now);
  } else if (phase == Download::Phase::kFailed && d.error().code() == ENOENT) {
    Status s = DropEntry(d.key());
    if (!s.ok()) LOG_WARN("%s", s.ToString().c_str());
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = inflight_.find(d.key());
  // The map may already hold a newer download (after Forget): leave that one.
  if (it != inflight_.end() && it->second.get() == &d) inflight_.erase(it);
}

Status ObjectCacheImpl::DropEntry(const std::string& key) {
  std::string path = ObjectPath(FileName(key));
  Result<bool> r = index_->DeleteClean(config_.bucket, key, [&] { ::unlink(path.c_str()); });
  return r.status();
}

Status ObjectCacheImpl::Forget(const std::string& key) {
  std::shared_ptr<Download> d;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = inflight_.find(key);
    if (it != inflight_.end()) {
      d = std::move(it->second);
      inflight_.erase(it);
    }
  }
  if (d != nullptr) d->SkipCommit();  // its readers go on; the result is not kept
  {
    std::lock_guard<std::mutex> lock(times_mu_);
    pending_.erase(key);
  }
  return DropEntry(key);
}

CacheCounters ObjectCacheImpl::counters() const {
  CacheCounters c;
  c.hits = hits_.load();
  c.revalidated = revalidated_.load();
  c.misses = misses_.load();
  c.downloads = downloads_.load();
  c.bytes_downloaded = bytes_downloaded_.load();
  c.entries = index_->entries();
  c.bytes_cached = index_->bytes();
  return c;
}

int64_t ObjectCacheImpl::ValidatedAt(const std::string& key, const IndexEntry& entry) {
  int64_t validated = entry.validated_at;
  std::lock_guard<std::mutex> lock(times_mu_);
  for (const auto* map : {&pending_, &flushing_}) {
    auto it = map->find(key);
    if (it != map->end() && it->second.etag == entry.etag) {
      validated = std::max(validated, it->second.validated_at);
    }
  }
  return validated;
}

void ObjectCacheImpl::NoteTimes(const std::string& key, const std::string& etag,
                                int64_t validated_at, int64_t accessed_at) {
  std::lock_guard<std::mutex> lock(times_mu_);
  PendingTimes& p = pending_[key];
  if (p.etag != etag) p = PendingTimes{etag, 0, 0};
  p.validated_at = std::max(p.validated_at, validated_at);
  p.accessed_at = std::max(p.accessed_at, accessed_at);
}

void ObjectCacheImpl::FlushLoop() {
  std::unique_lock<std::mutex> lock(times_mu_);
  while (!flush_stop_) {
    flush_cv_.wait_for(lock, config_.flush_interval, [this] { return flush_stop_; });
    if (flush_stop_) break;
    lock.unlock();
    Flush();
    lock.lock();
  }
}

void ObjectCacheImpl::Flush() {
  std::lock_guard<std::mutex> flush_lock(flush_mu_);
  std::vector<TimeUpdate> updates;
  {
    std::lock_guard<std::mutex> lock(times_mu_);
    if (pending_.empty()) return;
    // Readers keep consulting flushing_ until the rows carry these times.
    flushing_.swap(pending_);
    for (const auto& [key, p] : flushing_) {
      updates.push_back(TimeUpdate{config_.bucket, key, p.etag, p.validated_at, p.accessed_at});
    }
  }
  Status s = index_->ApplyTimes(updates);
  if (!s.ok()) LOG_WARN("cannot record access times: %s", s.ToString().c_str());
  std::lock_guard<std::mutex> lock(times_mu_);
  flushing_.clear();
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
      std::string path = shard_path + "/" + name;
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
  return Status::Ok();
}

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

Result<std::unique_ptr<ObjectCache>> ObjectCache::Open(s3::Client& client,
                                                       ObjectCacheConfig config) {
  std::string& dir = config.cache_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty()) return Status::Error(EINVAL, "no cache directory given");
  if (config.chunk_size == 0 || config.download_threads < 1 || config.parallel_per_object < 1) {
    return Status::Error(EINVAL,
                         "chunk_size, download_threads and parallel_per_object must be "
                         "positive");
  }
  if (!config.clock) config.clock = [] { return system_clock::now(); };

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

  auto cache = std::make_unique<ObjectCacheImpl>(client, std::move(config), std::move(*lock_fd),
                                                 std::move(*index));
  s = cache->Reconcile();
  if (!s.ok()) return s;
  cache->StartFlusher();
  return std::unique_ptr<ObjectCache>(std::move(cache));
}

}  // namespace s3cachefs::cache
