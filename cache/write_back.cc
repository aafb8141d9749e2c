// ObjectCacheImpl, part 4: the write path — the WritableFile handle, MarkDirty, Flush
// and uploads (sync, background and retried). Threads and locks: cache/object_cache_impl.h;
// how changes and uploads are ordered: cache/write_entry.h.
//
// Durability (what survives what):
//  - A daemon crash: a DIRTY row is committed before the first change it announces (MarkDirty,
//    or the creation of a new/truncated file), so after a restart every file with changes is
//    found DIRTY and uploaded (ResumeUploads), with whatever content the page cache had
//    written to the file (the kernel keeps it across a process crash).
//  - A power loss: the DIRTY commit is synchronous=FULL (the WAL is fsynced), and files created
//    or renamed here have their directory fsynced before the row that names them is committed.
//    File data is made durable by Flush: async mode fdatasyncs before returning (so a close()
//    that returned OK survives a power loss); sync mode has it in S3 before returning OK, and
//    fdatasyncs it when the upload failed (it waits locally for the retry). Writes after the
//    last Flush may be lost, as on any local file system without fsync.
//  - Marks the index can prove harmless are not synced (Index::MarkDirty): the row of a new key
//    (a power loss can then only lose a file nothing was promised about: reconciliation
//    removes a file without a row), a mark over a DIRTY row, and one over an empty CLEAN row
//    (a change makes the file non-empty, and a CLEAN copy of the wrong size is dropped). The
//    entry remembers (lazy_sync, name_synced) what is not on disk yet, and whoever must promise
//    durability syncs data, name and row, in that order (SyncLocal): an async Flush of a
//    handle that changed the file, a sync Flush only when the upload failed. A sync Flush whose
//    upload succeeded needs no fsync: S3 has the data. So a new small file closed in sync mode
//    costs no fsync, and in async mode its first close three (data, directory, index) and a
//    later one that changed it one (data).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "cache/object_cache_impl.h"
#include "s3/log.h"
#include "s3/transfer.h"

namespace s3cachefs::cache {

// One open-for-write. Calls go to the cache while it lives (lifeline), else fail.
class WriteHandle : public WritableFile {
 public:
  WriteHandle(std::shared_ptr<Lifeline> lifeline, std::shared_ptr<WriteEntry> entry,
              std::string key, int fd)
      : lifeline_(std::move(lifeline)), entry_(std::move(entry)), key_(std::move(key)), fd_(fd) {}
  WriteHandle(const WriteHandle&) = delete;
  WriteHandle& operator=(const WriteHandle&) = delete;

  ~WriteHandle() override {
    std::shared_lock<std::shared_mutex> lock(lifeline_->mu);
    if (lifeline_->cache != nullptr) {
      lifeline_->cache->ReleaseWriter(entry_, &bracket_);
      return;
    }
    std::lock_guard<std::mutex> entry_lock(entry_->mu);
    --entry_->writers;
    if (bracket_) --entry_->brackets;
  }
  int fd() const override { return fd_; }
  Status MarkDirty() override {
    std::shared_lock<std::shared_mutex> lock(lifeline_->mu);
    if (lifeline_->cache == nullptr) return Shutdown();
    return lifeline_->cache->MarkDirty(*entry_, &bracket_);
  }
  Status Flush() override {
    std::shared_lock<std::shared_mutex> lock(lifeline_->mu);
    if (lifeline_->cache == nullptr) return Shutdown();
    return lifeline_->cache->Flush(entry_, &bracket_, unseen_.load());
  }
  Status BeginUnseenWrites() override {
    Status s = MarkDirty();  // sets our bracket, which Flush keeps from now on
    if (s.ok()) unseen_.store(true);
    return s;
  }
  void EndUnseenWrites() override { unseen_.store(false); }
  // The key it was opened as (a Rename moves the entry, and later uploads, to the new key).
  const std::string& key() const override { return key_; }

 private:
  Status Shutdown() const {
    return Status::Error(ESHUTDOWN, "the cache is shut down; " + key_ + " cannot be changed");
  }

  const std::shared_ptr<Lifeline> lifeline_;
  const std::shared_ptr<WriteEntry> entry_;
  const std::string key_;
  const int fd_;                     // the entry's; valid for the entry's lifetime
  bool bracket_ = false;             // MarkDirty since our last Flush; guarded by entry_->mu
  std::atomic<bool> unseen_{false};  // between Begin/EndUnseenWrites: Flush keeps the bracket
};

bool ObjectCacheImpl::Pinned(const std::string& key) {
  std::lock_guard<std::mutex> lock(pinned_mu_);
  return pinned_.count(key) > 0;
}

void ObjectCacheImpl::InsertEntryLocked(const std::string& key,
                                        const std::shared_ptr<WriteEntry>& entry) {
  wentries_[key] = entry;
  std::lock_guard<std::mutex> lock(pinned_mu_);
  pinned_.insert(key);
}

void ObjectCacheImpl::EraseEntryLocked(const std::string& key, const WriteEntry* entry) {
  auto it = wentries_.find(key);
  if (it == wentries_.end() || it->second.get() != entry) return;
  wentries_.erase(it);
  std::lock_guard<std::mutex> lock(pinned_mu_);
  pinned_.erase(key);
}

void ObjectCacheImpl::SetDirtyLocked(WriteEntry& entry, bool dirty) {
  if (entry.dirty == dirty) return;
  entry.dirty = dirty;
  if (dirty) {
    dirty_entries_.fetch_add(1);
  } else {
    dirty_entries_.fetch_sub(1);
  }
}

void ObjectCacheImpl::NoteMeta(const std::string& key, const FileMeta& meta) {
  std::lock_guard<std::mutex> lock(meta_mu_);
  if (meta.empty()) {
    metas_.erase(key);
  } else {
    metas_[key] = meta;
  }
}

Result<std::shared_ptr<WritableFile>> ObjectCacheImpl::Attach(
    const std::shared_ptr<WriteEntry>& entry, bool truncate, bool created) {
  std::shared_ptr<WriteHandle> handle;
  {
    std::unique_lock<std::mutex> lock(entry->mu);
    entry->cv.wait(lock, [&] { return entry->phase != WriteEntry::Phase::kOpening; });
    if (entry->phase != WriteEntry::Phase::kReady || entry->removed) {
      return Status::Error(EAGAIN, entry->key + " went away while it was opened");
    }
    Status s = EnsureFdLocked(*entry);
    if (!s.ok()) return s;
    ++entry->writers;
    handle = std::make_shared<WriteHandle>(lifeline_, entry, entry->key, entry->fd.get());
  }
  if (truncate) {
    // One inode for all writers: like O_TRUNC on a local file, the others see it empty.
    Status s = handle->MarkDirty();
    if (s.ok() && ::ftruncate(handle->fd(), 0) != 0) {
      s = ErrnoStatus(errno, "cannot truncate local file of", handle->key());
    }
    if (!s.ok()) return s;  // the handle releases its writer
  } else if (created) {
    // Creating the file was this handle's change: its Flush must make the file durable (async)
    // or put it in S3 (sync), as for a write. The row is marked already; this takes the bracket.
    Status s = handle->MarkDirty();
    if (!s.ok()) return s;
  }
  return std::shared_ptr<WritableFile>(std::move(handle));
}

Status ObjectCacheImpl::EnsureFdLocked(WriteEntry& entry) {
  if (entry.fd.valid()) return Status::Ok();
  std::string path = ObjectPath(entry.file_name);
  entry.fd.reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!entry.fd.valid()) return ErrnoStatus(errno, "cannot open local file of " + entry.key, path);
  return Status::Ok();
}

Status ObjectCacheImpl::MarkDirty(WriteEntry& entry, bool* bracket) {
  std::lock_guard<std::mutex> lock(entry.mu);
  if (entry.removed) return Status::Ok();  // the fd takes the bytes; nothing is written back
  if (!*bracket) {
    *bracket = true;
    ++entry.brackets;
  }
  entry.meta.mtime.reset();  // a change sets the time: the file's, from now on
  if (!entry.needs_mark) return Status::Ok();
  DirtyMark mark;
  mark.bucket = config_.bucket;
  mark.key = entry.key;
  mark.file_name = entry.file_name;
  mark.base_etag_if_new = entry.base_etag;
  mark.local_mtime = NowSeconds();
  mark.meta = entry.meta;
  mark.allow_lazy = true;  // the index decides; see Index::MarkDirty
  bool synced = true;
  Result<int64_t> gen = index_->MarkDirty(mark, [&](bool full) {
    synced = full;
    return Status::Ok();
  });
  if (!gen.ok()) return gen.status().WithContext("cannot record the change of " + entry.key);
  entry.gen = *gen;
  entry.needs_mark = false;
  // Over a CLEAN row, a lazy mark leaves the row CLEAN on disk: the next Flush syncs it. (Over
  // a DIRTY row nothing changes: it is as durable as it was.)
  if (!synced && !entry.dirty) entry.lazy_sync = true;
  SetDirtyLocked(entry, true);
  return Status::Ok();
}

Status ObjectCacheImpl::Flush(const std::shared_ptr<WriteEntry>& entry, bool* bracket,
                              bool keep_bracket) {
  std::string key;
  std::string path;
  int fd;
  bool changed;  // through this handle since its last Flush
  {
    std::lock_guard<std::mutex> lock(entry->mu);
    changed = *bracket;
    if (*bracket && !keep_bracket) {
      *bracket = false;
      --entry->brackets;
    }
    if (entry->removed || !entry->dirty) return Status::Ok();
    key = entry->key;
    path = ObjectPath(entry->file_name);
    fd = entry->fd.get();
  }
  if (config_.write_back == WriteBackMode::kAsync) {
    // The data, the file's name (a download moved it into place without syncing its
    // directory) and the DIRTY row are durable once this returns. A handle that changed
    // nothing since its last Flush has nothing to promise (its earlier changes were synced
    // then; other handles sync their own): the second close of a shell's `>` or a release.
    if (changed) {
      Status synced = SyncLocal(entry, fd, path);
      if (!synced.ok()) return synced;
    }
    uploader_.Enqueue(entry, std::chrono::milliseconds(0));
    return Status::Ok();
  }
  sync_uploads_.fetch_add(1);
  Status s = Upload(entry);
  sync_uploads_.fetch_sub(1);
  if (!s.ok()) {
    // It waits here for the retry.
    Status synced = SyncLocal(entry, fd, path);
    if (!synced.ok()) LOG_WARN("%s", synced.ToString().c_str());
    int failures;
    {
      std::lock_guard<std::mutex> lock(entry->mu);
      failures = entry->failures;
    }
    uploader_.Enqueue(entry, RetryDelay(failures));
    return Status::Error(EIO, "upload of " + key + " failed: " + s.message() +
                                  " (the data is kept in the cache and the upload retried)");
  }
  QueueIfOrphaned(entry);
  return Status::Ok();
}

Status ObjectCacheImpl::SyncLocal(const std::shared_ptr<WriteEntry>& entry, int fd,
                                  const std::string& path) {
  std::string key;
  bool sync_row;
  bool sync_name;
  {
    std::lock_guard<std::mutex> lock(entry->mu);
    key = entry->key;
    sync_row = entry->lazy_sync;
    sync_name = !entry->name_synced;
  }
  write_syncs_.fetch_add(1);
  if (::fdatasync(fd) != 0) return ErrnoStatus(errno, "cannot sync local file of " + key, path);
  if (sync_name) {
    write_syncs_.fetch_add(1);
    Status s = SyncDir(ParentDir(path));  // the name before the row that promises it
    if (!s.ok()) return s;
  }
  if (sync_row) {
    Status s = index_->SyncLog();
    if (!s.ok()) return s.WithContext("cannot record the change of " + key);
  }
  std::lock_guard<std::mutex> lock(entry->mu);
  // (A Rename meanwhile gave it another name, which it synced itself.)
  if (sync_name && ObjectPath(entry->file_name) == path) entry->name_synced = true;
  if (sync_row) entry->lazy_sync = false;
  return Status::Ok();
}

void ObjectCacheImpl::ReleaseWriter(const std::shared_ptr<WriteEntry>& entry, bool* bracket) {
  {
    std::lock_guard<std::mutex> lock(entry->mu);
    if (*bracket) {
      *bracket = false;
      --entry->brackets;
    }
    --entry->writers;
  }
  QueueIfOrphaned(entry);  // closed without a Flush: the changes still go to S3
  MaybeRetire(entry);
}

void ObjectCacheImpl::QueueIfOrphaned(const std::shared_ptr<WriteEntry>& entry) {
  bool queue;
  std::chrono::milliseconds delay(0);
  {
    std::lock_guard<std::mutex> lock(entry->mu);
    // Handles that changed it since their last Flush will flush it themselves.
    queue = entry->dirty && !entry->removed && entry->brackets == 0;
    if (entry->failures > 0) delay = RetryDelay(entry->failures);  // keep the backoff
  }
  if (queue) uploader_.Enqueue(entry, delay);
}

void ObjectCacheImpl::MaybeRetire(const std::shared_ptr<WriteEntry>& entry) {
  std::lock_guard<std::mutex> lock(wmu_);
  std::lock_guard<std::mutex> entry_lock(entry->mu);
  if (entry->phase != WriteEntry::Phase::kReady || entry->writers > 0 || entry->dirty ||
      entry->uploading || entry->holds > 0) {
    return;
  }
  EraseEntryLocked(entry->key, entry.get());
}

std::chrono::milliseconds ObjectCacheImpl::RetryDelay(int failures) const {
  auto delay = std::max(config_.upload_retry_min_delay, std::chrono::milliseconds(1));
  for (int i = 1; i < failures && delay < config_.upload_retry_max_delay; ++i) delay *= 2;
  return std::min(delay, config_.upload_retry_max_delay);
}

Status ObjectCacheImpl::Upload(const std::shared_ptr<WriteEntry>& entry) {
  std::unique_lock<std::mutex> lock(entry->mu);
  // One upload per key at a time, none during a Remove or Rename; then look again.
  entry->cv.wait(lock, [&] { return !entry->uploading && entry->holds == 0; });
  if (entry->removed || !entry->dirty) return Status::Ok();
  Status s = EnsureFdLocked(*entry);
  if (!s.ok()) {
    if (s.code() != ENOENT) return s;
    // Nothing can bring these changes back; retrying forever would not either.
    LOG_ERROR("local changes of %s are lost: %s; dropping its entry", entry->key.c_str(),
              s.message().c_str());
    entry->removed = true;
    SetDirtyLocked(*entry, false);
    std::string key = entry->key;
    Result<bool> dropped = index_->DeleteAny(config_.bucket, key, nullptr);
    lock.unlock();
    if (!dropped.ok()) LOG_WARN("%s", dropped.status().ToString().c_str());
    {
      std::lock_guard<std::mutex> map_lock(wmu_);
      EraseEntryLocked(key, entry.get());
    }
    return s;
  }
  const std::string key = entry->key;
  const int64_t gen = entry->gen;
  const std::string base = entry->base_etag;
  // Our own upload made base S3's version within `revalidate`: as for a cached copy validated
  // that recently, S3 is taken not to have changed, and the conflict check is skipped.
  const bool base_fresh =
      entry->base_uploaded_ms > 0 &&
      NowMs() - entry->base_uploaded_ms <
          std::chrono::duration_cast<std::chrono::milliseconds>(config_.revalidate).count();
  // A write announced before this snapshot may land after the upload read its bytes, and its
  // handle may Flush (dropping its bracket) before the upload ends: such an upload never
  // marks the row CLEAN, whatever the brackets are at its end.
  const bool bracketed = entry->brackets > 0;
  FileMeta meta = entry->meta;
  const int fd = entry->fd.get();
  entry->uploading = true;
  entry->needs_mark = true;  // a change from now on is a new generation
  lock.unlock();

  struct stat st;
  Status result = Status::Ok();
  if (::fstat(fd, &st) != 0) result = ErrnoStatus(errno, "cannot stat local file of", key);
  const uint64_t size = result.ok() ? static_cast<uint64_t>(st.st_size) : 0;
  if (result.ok() && !base.empty() && !base_fresh) {
    // Advisory: the local version is uploaded either way (last writer wins, as in S3).
    Result<s3::ObjectInfo> head = client_.HeadObject(key);
    if (head.ok() && UnquoteEtag(head->etag) != UnquoteEtag(base)) {
      LOG_WARN(
          "%s changed in S3 while it had local changes; the local version wins (remote ETag %s)",
          key.c_str(), head->etag.c_str());
    } else if (!head.ok() && head.status().code() == ENOENT) {
      LOG_WARN("%s was deleted in S3 while it had local changes; the local version wins",
               key.c_str());
    } else if (!head.ok()) {
      result = head.status();
    }
  }
  if (!meta.mtime && result.ok()) meta.mtime = st.st_mtime;
  std::string etag;
  if (result.ok()) {
    s3::PutOptions options;
    options.metadata = meta.ToMetadata();
    Result<std::string> put =
        s3::UploadFile(client_, key, s3::FileRegion{fd, 0, size}, options, config_.transfer);
    if (put.ok()) {
      etag = *put;
    } else {
      result = put.status();
    }
  }

  lock.lock();
  entry->uploading = false;
  entry->cv.notify_all();
  if (!result.ok()) {
    upload_failures_.fetch_add(1);
    ++entry->failures;
    LOG_WARN("upload of %s failed (attempt %d; it is retried): %s", key.c_str(), entry->failures,
             result.ToString().c_str());
    return result;
  }
  uploads_.fetch_add(1);
  bytes_uploaded_.fetch_add(size);
  entry->failures = 0;
  UploadRecord record;
  record.bucket = config_.bucket;
  record.key = key;
  record.gen = gen;
  record.may_clean = entry->brackets == 0 && !bracketed;  // see write_entry.h
  record.etag = etag;
  record.size = size;
  record.mtime = NowSeconds();
  record.validated_at = NowMs();
  record.local_mtime = st.st_mtime;
  record.meta = meta;
  Result<bool> clean = index_->RecordUpload(record);
  if (!clean.ok()) {
    return clean.status().WithContext("uploaded " + key + " but cannot record it");
  }
  entry->base_etag = etag;  // S3 has this version now
  entry->base_uploaded_ms = NowMs();
  if (*clean && entry->gen == gen) {
    entry->etag = etag;
    SetDirtyLocked(*entry, false);
    NoteMeta(key, meta);
  }
  return Status::Ok();
}

std::optional<std::chrono::milliseconds> ObjectCacheImpl::BackgroundUpload(
    const std::shared_ptr<WriteEntry>& entry) {
  Status s = Upload(entry);
  bool again;
  {
    std::lock_guard<std::mutex> lock(entry->mu);
    if (!s.ok() && !entry->removed) return RetryDelay(entry->failures);
    again = entry->dirty && !entry->removed && entry->brackets == 0;
  }
  if (again) return std::chrono::milliseconds(0);  // changed during the upload
  MaybeRetire(entry);
  return std::nullopt;
}

}  // namespace s3cachefs::cache
