// ObjectCacheImpl, part 5: operations on whole objects — Remove, Rename, SetMeta — and what the
// cache tells about local state: Local, LocalUnder, Meta, and draining uploads at unmount.
//
// Remove and Rename first Hold the WriteEntries they touch: no upload of them may start and one
// in flight is waited for, so that no upload lands in S3 after the delete or copy that should
// supersede it.
//
// Rename over a key that has local changes or writers: the renamed content replaces it (as
// rename(2) replaces its target). Its pending upload is cancelled, its local changes and
// file are dropped, and its open writers keep their descriptor but their Flush does nothing.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "cache/object_cache_impl.h"
#include "s3/log.h"
#include "s3/transfer.h"

namespace s3cachefs::cache {

void ObjectCacheImpl::Hold(WriteEntry& entry) {
  std::unique_lock<std::mutex> lock(entry.mu);
  ++entry.holds;
  entry.cv.wait(lock, [&] { return !entry.uploading; });
}

void ObjectCacheImpl::Release(WriteEntry& entry) {
  std::lock_guard<std::mutex> lock(entry.mu);
  --entry.holds;
  entry.cv.notify_all();
}

Status ObjectCacheImpl::Discard(const std::shared_ptr<WriteEntry>& entry) {
  std::string key;
  Status s = Status::Ok();
  {
    std::lock_guard<std::mutex> lock(entry->mu);
    entry->removed = true;
    SetDirtyLocked(*entry, false);
    key = entry->key;
    std::string path = ObjectPath(entry->file_name);
    Result<bool> r = index_->DeleteAny(config_.bucket, key, [&] { ::unlink(path.c_str()); });
    if (!r.ok()) {
      s = r.status();
      LOG_ERROR("cannot drop the local changes of removed %s: %s", key.c_str(),
                s.ToString().c_str());
    } else if (!*r) {
      ::unlink(path.c_str());
    }
    --entry->holds;
    entry->cv.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(wmu_);
    EraseEntryLocked(key, entry.get());
  }
  uploader_.Remove(entry.get());
  return s;
}

Status ObjectCacheImpl::Remove(const std::string& key) {
  CancelDownload(key);
  std::shared_ptr<WriteEntry> entry = FindReady(key);
  if (entry != nullptr) Hold(*entry);
  Status s = client_.DeleteObject(key);
  if (!s.ok() && s.code() != ENOENT) {
    if (entry != nullptr) Release(*entry);  // nothing changed: its uploads go on
    return s;
  }
  if (!Pinned(key)) NoteMeta(key, FileMeta());
  if (entry != nullptr) {
    NoteMeta(key, FileMeta());
    return Discard(entry);
  }
  // Not open here: drop the cached copy (unless a writer opened it meanwhile).
  return DropEntry(key);
}

Status ObjectCacheImpl::Rename(const std::string& from, const std::string& to) {
  if (from == to) return Status::Ok();
  CancelDownload(from);
  CancelDownload(to);
  std::shared_ptr<WriteEntry> source = FindReady(from);
  std::shared_ptr<WriteEntry> target = FindReady(to);
  if (target != nullptr) Hold(*target);
  Status s =
      source != nullptr ? RenameLocal(source, target, from, to) : RenameClean(target, from, to);
  if (target != nullptr) {
    std::lock_guard<std::mutex> lock(target->mu);
    if (!target->removed) {  // the rename failed before replacing it
      --target->holds;
      target->cv.notify_all();
    }
  }
  return s;
}

// from has no local changes: S3 copies it, and the cached copy (if any) moves to the new name.
Status ObjectCacheImpl::RenameClean(const std::shared_ptr<WriteEntry>& target,
                                    const std::string& from, const std::string& to) {
  Result<std::optional<IndexEntry>> row = index_->Get(config_.bucket, from);
  if (!row.ok()) return row.status();
  uint64_t size;
  std::optional<FileMeta> meta = Meta(from);
  if (row->has_value() && (*row)->state == EntryState::kClean) {
    size = (*row)->size;
    if (!meta) meta = (*row)->meta;
  } else {
    Result<s3::ObjectInfo> head = client_.HeadObject(from);
    if (!head.ok()) return head.status();
    size = head->size;
    meta = FileMeta::FromMetadata(head->metadata);  // the copy keeps it
  }
  Result<std::string> etag =
      s3::CopyObjectAnySize(client_, from, to, size, std::nullopt, config_.transfer);
  if (!etag.ok()) {
    if (etag.status().code() == ENOENT) DropEntry(from);  // the cached copy was stale
    return etag.status();
  }
  // S3 has the renamed content under to now: local changes of to are superseded.
  if (target != nullptr) {
    Status s = Discard(target);
    if (!s.ok()) LOG_WARN("%s", s.ToString().c_str());
  }
  Status deleted = client_.DeleteObject(from);
  if (!deleted.ok() && deleted.code() != ENOENT) {
    return deleted.WithContext("copied " + from + " to " + to + " but cannot delete " + from);
  }
  NoteMeta(to, meta.value_or(FileMeta()));
  NoteMeta(from, FileMeta());

  if (!row->has_value()) return Status::Ok();
  std::string from_path = ObjectPath((*row)->file_name);
  std::string to_name = FileName(to);
  std::string to_path = ObjectPath(to_name);
  bool renamed = false;
  Result<int64_t> moved = index_->Rekey(
      config_.bucket, from, to, to_name, /*make_dirty=*/false, *etag, NowMs(), [&]() -> Status {
        // A writer that opened either name meanwhile keeps its file.
        if (Pinned(from) || Pinned(to)) return Status::Error(EBUSY, "opened meanwhile");
        Status s = EnsureDir(ParentDir(to_path));
        if (!s.ok()) return s;
        if (::rename(from_path.c_str(), to_path.c_str()) != 0) {
          return ErrnoStatus(errno, "cannot move cached file to", to_path);
        }
        renamed = true;
        return Status::Ok();
      });
  if (!moved.ok()) {
    if (renamed) ::rename(to_path.c_str(), from_path.c_str());
    if (moved.status().code() != EBUSY && moved.status().code() != ENOENT) {
      LOG_WARN("cannot move the cached copy of %s to %s: %s", from.c_str(), to.c_str(),
               moved.status().ToString().c_str());
    }
    DropEntry(from);  // it names an object that is gone
  }
  return Status::Ok();
}

// from is open for writing or has local changes: the entry (and its open writers) move to to,
// the whole file is written back under to, and from is deleted in S3.
Status ObjectCacheImpl::RenameLocal(const std::shared_ptr<WriteEntry>& entry,
                                    const std::shared_ptr<WriteEntry>& target,
                                    const std::string& from, const std::string& to) {
  Hold(*entry);
  {
    std::lock_guard<std::mutex> lock(entry->mu);
    if (entry->removed) {  // a Remove won the race: leave the target alone
      --entry->holds;
      entry->cv.notify_all();
      return Status::Error(ENOENT, from + " was removed while it was renamed");
    }
  }
  if (target != nullptr) {
    Status s = Discard(target);  // its row and file make room for ours
    if (!s.ok()) LOG_WARN("%s", s.ToString().c_str());
  }
  std::string to_name = FileName(to);
  std::string to_path = ObjectPath(to_name);
  {
    std::lock_guard<std::mutex> map_lock(wmu_);
    std::lock_guard<std::mutex> lock(entry->mu);
    if (entry->removed) {
      --entry->holds;
      entry->cv.notify_all();
      return Status::Error(ENOENT, from + " was removed while it was renamed");
    }
    std::string from_path = ObjectPath(entry->file_name);
    bool renamed = false;
    Result<int64_t> gen = index_->Rekey(
        config_.bucket, from, to, to_name, /*make_dirty=*/true, "", 0, [&]() -> Status {
          Status s = EnsureDir(ParentDir(to_path));
          if (!s.ok()) return s;
          if (::rename(from_path.c_str(), to_path.c_str()) != 0) {
            return ErrnoStatus(errno, "cannot move local file to", to_path);
          }
          renamed = true;
          // Both names durable before the row that says where the changes are.
          write_syncs_.fetch_add(2);
          s = SyncDir(ParentDir(to_path));
          if (s.ok()) s = SyncDir(ParentDir(from_path));
          return s;
        });
    if (!gen.ok()) {
      if (renamed) ::rename(to_path.c_str(), from_path.c_str());
      --entry->holds;
      entry->cv.notify_all();
      return gen.status().WithContext("cannot rename " + from + " to " + to + " in the cache");
    }
    entry->key = to;
    entry->file_name = to_name;
    entry->gen = *gen;
    entry->needs_mark = false;
    entry->etag.clear();
    entry->base_etag.clear();  // a new object to S3: nothing to conflict with
    entry->base_uploaded_ms = 0;
    entry->name_synced = true;  // both directories, above
    SetDirtyLocked(*entry, true);
    EraseEntryLocked(from, entry.get());
    InsertEntryLocked(to, entry);
    NoteMeta(to, entry->meta);
    NoteMeta(from, FileMeta());
    --entry->holds;
    entry->cv.notify_all();
  }

  Status uploaded = Status::Ok();
  if (config_.write_back == WriteBackMode::kSync) {
    sync_uploads_.fetch_add(1);
    uploaded = Upload(entry);
    sync_uploads_.fetch_sub(1);
  }
  if (uploaded.ok()) {
    QueueIfOrphaned(entry);
  } else {
    int failures;
    {
      std::lock_guard<std::mutex> lock(entry->mu);
      failures = entry->failures;
    }
    uploader_.Enqueue(entry, RetryDelay(failures));
  }
  // from goes even when the upload failed: the content is safe here (DIRTY under to) and is
  // retried; keeping from would leave a stale twin in S3 that nothing deletes later.
  Status deleted = client_.DeleteObject(from);
  if (!uploaded.ok()) {
    return Status::Error(EIO, "renamed " + from + " to " + to +
                                  " in the cache, but the upload of " + to +
                                  " failed: " + uploaded.message() + " (it is retried)");
  }
  if (!deleted.ok() && deleted.code() != ENOENT) {
    return deleted.WithContext("renamed " + from + " to " + to + " but cannot delete " + from);
  }
  return Status::Ok();
}

Status ObjectCacheImpl::SetMeta(const std::string& key, const FileMeta& meta) {
  std::shared_ptr<WriteEntry> entry = FindReady(key);
  if (entry != nullptr) {
    std::unique_lock<std::mutex> lock(entry->mu);
    // An upload in flight carries the old metadata: decide once it is over.
    entry->cv.wait(lock, [&] { return !entry->uploading && entry->holds == 0; });
    if (!entry->removed) {
      entry->meta.Merge(meta);  // goes with the next upload, whatever happens below
      if (entry->dirty) {
        NoteMeta(entry->key, entry->meta);
        return index_->SetMeta(config_.bucket, entry->key, entry->meta);
      }
    }
  }

  // S3 has the current content: copy the object onto itself with the new metadata, keeping
  // the metadata and content type it has that we do not manage.
  Result<s3::ObjectInfo> head = client_.HeadObject(key);
  if (!head.ok()) return head.status();
  FileMeta merged = FileMeta::FromMetadata(head->metadata);
  merged.Merge(meta);
  s3::PutOptions options;
  options.metadata = head->metadata;
  for (const auto& [name, value] : merged.ToMetadata()) options.metadata[name] = value;
  options.content_type = head->content_type;
  Result<std::string> etag =
      s3::CopyObjectAnySize(client_, key, key, head->size, options, config_.transfer);
  if (!etag.ok()) return etag.status().WithContext("cannot change the metadata of " + key);
  // The body did not change: a cached copy of the version we saw stays valid under the new
  // ETag (a copy of another version is left to revalidation). A download still to be committed
  // carries the old ETag and metadata: it is not kept (its readers go on).
  CancelDownload(key);
  Result<bool> updated =
      index_->UpdateCleanEtag(config_.bucket, key, head->etag, *etag, NowMs(), merged);
  if (!updated.ok()) LOG_WARN("%s", updated.status().ToString().c_str());
  NoteMeta(key, merged);
  if (entry != nullptr) {
    std::lock_guard<std::mutex> lock(entry->mu);
    if (entry->etag == head->etag) entry->etag = *etag;
    if (entry->base_etag == head->etag) entry->base_etag = *etag;
  }
  return Status::Ok();
}

LocalFile ObjectCacheImpl::LocalLocked(WriteEntry& entry) {
  LocalFile file;
  file.key = entry.key;
  file.meta = entry.meta;
  struct stat st;
  int rc = entry.fd.valid() ? ::fstat(entry.fd.get(), &st)
                            : ::stat(ObjectPath(entry.file_name).c_str(), &st);
  if (rc == 0) {
    file.size = static_cast<uint64_t>(st.st_size);
    file.mtime = st.st_mtime;
  }
  if (entry.meta.mtime) file.mtime = static_cast<time_t>(*entry.meta.mtime);  // set explicitly
  return file;
}

std::optional<LocalFile> ObjectCacheImpl::Local(const std::string& key) {
  std::shared_ptr<WriteEntry> entry;
  {
    std::lock_guard<std::mutex> lock(wmu_);
    auto it = wentries_.find(key);
    if (it == wentries_.end()) return std::nullopt;
    entry = it->second;
  }
  std::lock_guard<std::mutex> lock(entry->mu);
  if (entry->phase != WriteEntry::Phase::kReady || entry->removed) return std::nullopt;
  return LocalLocked(*entry);
}

std::vector<LocalFile> ObjectCacheImpl::LocalUnder(const std::string& prefix) {
  std::vector<std::shared_ptr<WriteEntry>> entries;
  {
    std::lock_guard<std::mutex> lock(wmu_);
    for (auto it = wentries_.lower_bound(prefix);
         it != wentries_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      entries.push_back(it->second);
    }
  }
  std::vector<LocalFile> out;
  for (const auto& entry : entries) {
    std::lock_guard<std::mutex> lock(entry->mu);
    if (entry->phase != WriteEntry::Phase::kReady || entry->removed) continue;
    out.push_back(LocalLocked(*entry));
  }
  return out;
}

std::optional<FileMeta> ObjectCacheImpl::Meta(const std::string& key) {
  std::shared_ptr<WriteEntry> entry;
  {
    std::lock_guard<std::mutex> lock(wmu_);
    auto it = wentries_.find(key);
    if (it != wentries_.end()) entry = it->second;
  }
  if (entry != nullptr) {
    std::lock_guard<std::mutex> lock(entry->mu);
    if (entry->phase == WriteEntry::Phase::kReady && !entry->removed) {
      if (entry->meta.empty()) return std::nullopt;
      return entry->meta;
    }
  }
  std::lock_guard<std::mutex> lock(meta_mu_);
  auto it = metas_.find(key);
  if (it == metas_.end()) return std::nullopt;
  return it->second;
}

size_t ObjectCacheImpl::pending_uploads() const {
  return uploader_.pending() + sync_uploads_.load();
}

Status ObjectCacheImpl::DrainUploads(std::chrono::seconds timeout) {
  using Clock = std::chrono::steady_clock;
  constexpr auto kLogEvery = std::chrono::seconds(5);
  const auto deadline = Clock::now() + timeout;
  auto next_log = Clock::now();
  for (;;) {
    size_t pending = pending_uploads();
    if (pending == 0) return Status::Ok();
    auto now = Clock::now();
    if (now >= next_log || now >= deadline) {
      uint64_t bytes = 0;
      for (const auto& entry : uploader_.PendingEntries()) {
        std::lock_guard<std::mutex> lock(entry->mu);
        bytes += LocalLocked(*entry).size;
      }
      if (now >= deadline) {
        LOG_WARN(
            "gave up waiting for %zu uploads (%llu bytes); they stay in the cache and "
            "resume at the next mount",
            pending, static_cast<unsigned long long>(bytes));
        return Status::Error(ETIMEDOUT, std::to_string(pending) +
                                            " uploads did not finish in time; they resume at "
                                            "the next mount");
      }
      LOG_INFO("waiting for %zu uploads (%llu bytes)", pending,
               static_cast<unsigned long long>(bytes));
      next_log = now + kLogEvery;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace s3cachefs::cache
