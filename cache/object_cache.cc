// ObjectCacheImpl, part 1: construction and destruction, the read path (OpenRead, downloads
// and their commit, Forget) and the batched access/validation times. Threads and locks are
// described in cache/object_cache_impl.h.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/object_cache_impl.h"
#include "s3/log.h"

namespace s3cachefs::cache {

DownloadHandle::~DownloadHandle() {
  download_->RemoveReader();
}

Status DownloadHandle::WaitReadable(uint64_t offset, uint64_t length) {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  // Read-ahead for a sequential reader: a multiple of what its current sequential run has read,
  // up to the maximum, once the run is longer than the kernel's own pieces of one large read (so
  // a random reader of large blocks gets none). Against a distant endpoint a window that only
  // matched the run kept few GETs in flight for the first hundreds of MiB, so it is four times
  // the run, and sixteen for a run from the start of the file (cp, cat, a copy tool: it reads
  // on). A read that starts near where the last one ended continues the run; any other read
  // starts a new one.
  uint64_t readahead = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    bool continues = offset <= next_ + readahead_.first && offset + length + run_ >= next_;
    if (continues) {
      run_ += std::max(next_, offset + length) - std::max(next_, offset);
      next_ = std::max(next_, offset + length);
    } else {
      run_ = length;
      next_ = offset + length;
    }
    const uint64_t ramp = next_ == run_ ? 16 : 4;  // the run began at offset 0
    if (run_ >= readahead_.first) readahead = std::min(ramp * run_, readahead_.second);
  }
  Status s = download_->WaitReadable(offset, length, readahead, deadline);
  if (!s.ok()) return s;
  uint64_t size = download_->size();
  uint64_t end = offset + std::min(length, size - std::min(offset, size));
  uint64_t prefix = contiguous_.load();
  while (offset <= prefix && end > prefix && !contiguous_.compare_exchange_weak(prefix, end)) {
  }
  if (end == size && contiguous_.load() == size) return download_->WaitVerified(deadline);
  return Status::Ok();
}

ObjectCacheImpl::ObjectCacheImpl(s3::Client& client, ObjectCacheConfig config, UniqueFd lock_fd,
                                 std::unique_ptr<Index> index)
    : client_(client),
      config_(std::move(config)),
      objects_dir_(config_.cache_dir + "/objects"),
      tmp_dir_(config_.cache_dir + "/tmp"),
      lock_fd_(std::move(lock_fd)),
      index_(std::move(index)),
      pool_(config_.download_threads, config_.parallel_per_object),
      lifeline_(std::make_shared<Lifeline>()),
      uploader_(config_.upload_threads,
                [this](const std::shared_ptr<WriteEntry>& e) { return BackgroundUpload(e); }) {
  lifeline_->cache = this;
}

ObjectCacheImpl::~ObjectCacheImpl() {
  if (evictor_ != nullptr) evictor_->Stop();  // its passes use everything below
  // Writers' calls in progress finish first; later ones fail with ESHUTDOWN.
  {
    std::unique_lock<std::shared_mutex> lock(lifeline_->mu);
    lifeline_->cache = nullptr;
  }
  {
    std::lock_guard<std::mutex> lock(wmu_);
    wstopping_ = true;
  }
  // An upload in flight runs to its end (S3 requests cannot be withdrawn half-way without
  // leaving a multipart upload behind); what is queued stays DIRTY for the next start.
  uploader_.Shutdown();
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
  committer_.Shutdown();  // downloads verified before the cancel are still committed
  {
    std::lock_guard<std::mutex> lock(times_mu_);
    flush_stop_ = true;
  }
  flush_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  FlushTimes();
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
  if (!download->AddReader()) {
    // It failed or is failing: once it is out of the way, the next round starts afresh.
    (void)download->WaitDone(std::chrono::steady_clock::now() + config_.read_timeout);
    return std::shared_ptr<ObjectHandle>();
  }
  misses_.fetch_add(1);
  return std::shared_ptr<ObjectHandle>(
      std::make_shared<DownloadHandle>(download, config_.read_timeout, ReadaheadRange()));
}

Result<std::shared_ptr<ObjectHandle>> ObjectCacheImpl::OpenReadUnpinned(
    const std::string& key, const std::optional<ListingHint>& hint) {
  // More than one round only when a joined revalidation got 304 or a racing open won.
  for (int round = 0; round < 4; ++round) {
    // Open for writing or with local changes: the local file is the truth.
    Result<std::shared_ptr<ObjectHandle>> local = OpenLocal(key);
    if (!local.ok() || *local != nullptr) return local;

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
    Result<std::shared_ptr<Download>> created = NewDownload(key, revalidate_etag);
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
    d->AddReader();  // for the handle made below: an idle download could be reaped otherwise
    d->Start();      // the first request, on this thread, no lock held
    Status s = d->WaitStarted(std::chrono::steady_clock::now() + config_.read_timeout);
    if (!s.ok()) {
      d->RemoveReader();
      return s;
    }
    if (d->phase() == Download::Phase::kNotModified) {
      d->RemoveReader();
      revalidated_.fetch_add(1);
      return std::shared_ptr<ObjectHandle>(
          std::make_shared<CachedHandle>(std::move(cached), **row));
    }
    misses_.fetch_add(1);
    return std::shared_ptr<ObjectHandle>(
        std::make_shared<DownloadHandle>(std::move(d), config_.read_timeout, ReadaheadRange()));
  }
  return Status::Error(EIO, "cannot open " + key + ": its cache entry keeps changing");
}

Result<std::shared_ptr<Download>> ObjectCacheImpl::NewDownload(const std::string& key,
                                                               const std::string& revalidate_etag) {
  DownloadParams params;
  params.client = &client_;
  params.key = key;
  params.tmp_path = NewTmpPath(FileName(key));
  params.request_size = config_.chunk_size;
  params.block_size = std::min(config_.block_size, config_.chunk_size);
  params.first_request = std::clamp(config_.first_request / params.block_size, uint64_t{1},
                                    config_.chunk_size / params.block_size) *
                         params.block_size;
  params.fetch_whole_max = config_.fetch_whole_max;
  params.verify_md5 = config_.verify_md5;
  params.if_none_match = revalidate_etag;
  params.bytes_counter = &bytes_downloaded_;
  params.clock = config_.clock;
  params.on_size_known = [this](Download& d) { MakeRoomFor(d); };
  params.defer_commit = [this](std::function<void()> task) { committer_.Post(std::move(task)); };
  return Download::Create(
      std::move(params), &pool_, [this](Download& d) { return Commit(d); },
      [this](Download& d, Download::Phase phase) { Finished(d, phase); });
}

Status ObjectCacheImpl::Prefetch(const std::string& key) {
  if (Pinned(key)) return Status::Ok();  // open for writing or changed locally
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Status::Error(ESHUTDOWN, "the cache is shutting down");
    if (inflight_.count(key) > 0) return Status::Ok();
  }
  Result<std::optional<IndexEntry>> row = index_->Get(config_.bucket, key);
  if (!row.ok()) return row.status();
  if (row->has_value()) return Status::Ok();  // cached: an open revalidates it if need be
  Result<std::shared_ptr<Download>> created = NewDownload(key, "");
  if (!created.ok()) return created.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Status::Error(ESHUTDOWN, "the cache is shutting down");
    if (!inflight_.try_emplace(key, *created).second) return Status::Ok();
  }
  std::shared_ptr<Download> d = std::move(*created);
  downloads_.fetch_add(1);
  prefetches_.fetch_add(1);
  // No reader: a small object is fetched whole and committed; a large one (it grew since it was
  // listed) only has its first bytes fetched and is dropped after the grace period.
  d->Start();
  if (d->phase() == Download::Phase::kFailed) return d->error();
  return Status::Ok();
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
  entry.meta = FileMeta::FromMetadata(d.metadata());
  std::string final_path = ObjectPath(entry.file_name);
  bool renamed = false;
  Status s = index_->PutClean(entry, [&]() -> Status {
    // Checked under the index lock, so a Forget (or SetMeta) either stops this or finds the
    // new row, and a writer that registered its key first keeps its file.
    if (d.skip_commit()) return Status::Error(ECANCELED, d.key() + " was forgotten");
    if (Pinned(d.key())) return Status::Error(ECANCELED, d.key() + " is being written locally");
    // Before the row is visible, so that whoever finds the row also finds the metadata.
    NoteMeta(d.key(), entry.meta);
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
  ReleaseRoom(d);  // committed (the index counts it now) or not kept
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
  Result<bool> r = index_->DeleteClean(
      config_.bucket, key, [&] { ::unlink(path.c_str()); }, [&] { return Pinned(key); });
  return r.status();
}

Status ObjectCacheImpl::Forget(const std::string& key) {
  CancelDownload(key);
  if (!Pinned(key)) {
    std::lock_guard<std::mutex> lock(meta_mu_);
    metas_.erase(key);
  }
  return DropEntry(key);
}

void ObjectCacheImpl::CancelDownload(const std::string& key) {
  std::shared_ptr<Download> d;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = inflight_.find(key);
    if (it != inflight_.end()) {
      d = std::move(it->second);
      inflight_.erase(it);
    }
  }
  if (d != nullptr) {
    d->SkipCommit();  // its readers go on; the result is not kept
    ReleaseRoom(*d);
  }
  std::lock_guard<std::mutex> lock(times_mu_);
  pending_.erase(key);
}

CacheCounters ObjectCacheImpl::counters() const {
  CacheCounters c = ActivityCounters();
  c.entries = index_->entries();
  c.bytes_cached = index_->bytes();
  std::lock_guard<std::mutex> lock(mu_);
  c.downloading = inflight_.size();
  return c;
}

CacheCounters ObjectCacheImpl::ActivityCounters() const {
  CacheCounters c;
  c.hits = hits_.load();
  c.revalidated = revalidated_.load();
  c.misses = misses_.load();
  c.downloads = downloads_.load();
  c.prefetches = prefetches_.load();
  c.bytes_downloaded = bytes_downloaded_.load();
  c.uploads = uploads_.load();
  c.bytes_uploaded = bytes_uploaded_.load();
  c.upload_failures = upload_failures_.load();
  c.dirty_entries = dirty_entries_.load();
  c.write_syncs = write_syncs_.load() + (index_ != nullptr ? index_->durable_commits() : 0);
  if (evictor_ != nullptr) {
    EvictorCounters e = evictor_->counters();
    c.evictions = e.evictions;
    c.evicted_bytes = e.evicted_bytes;
    c.not_kept = e.not_kept;
  }
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
    FlushTimes();
    ReapIdleDownloads();
    if (reserve_) reserve_->Replenish();
    lock.lock();
  }
}

std::pair<uint64_t, uint64_t> ObjectCacheImpl::ReadaheadRange() const {
  // A sequential run of 4 MiB starts read-ahead: longer than the kernel's read-ahead window
  // (1 MiB) and than two large reads of a random reader that happen to be close together
  // (direct-I/O reads reach us exactly as the program made them).
  uint64_t start = std::min<uint64_t>(4ull << 20, config_.readahead_max);
  // The largest read-ahead is readahead_max, or parallel_per_object whole requests if that is
  // more: against a distant endpoint only GETs in flight add up, so each must have one to make.
  uint64_t window =
      std::max(config_.readahead_max,
               static_cast<uint64_t>(config_.parallel_per_object) * config_.chunk_size);
  return {start, std::max(start, window)};
}

void ObjectCacheImpl::ReapIdleDownloads() {
  std::vector<std::shared_ptr<Download>> active;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, d] : inflight_) active.push_back(d);
  }
  // Joining a download skips revalidation, so it is not joined for longer than that window.
  auto grace = std::min<std::chrono::milliseconds>(
      config_.partial_grace,
      std::max<std::chrono::milliseconds>(config_.revalidate, std::chrono::seconds(1)));
  for (auto& d : active) {
    if (d->ReapIfIdle(grace)) {
      LOG_DEBUG("dropped the partial download of %s: no reader left", d->key().c_str());
    }
  }
}

void ObjectCacheImpl::FlushTimes() {
  std::lock_guard<std::mutex> flush_lock(flush_mu_);
  PersistCounters();
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

}  // namespace s3cachefs::cache
