// ObjectCacheImpl, part 3: opening keys for writing. All writers of a key share one
// WriteEntry and one local file at its usual objects/ path; readers of such a key get that
// file (OpenLocal). See cache/write_entry.h for the entry and cache/write_back.cc for what
// happens to the changes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/object_cache_impl.h"
#include "s3/log.h"

namespace s3cachefs::cache {
namespace {

// Opens of large objects for writing wait for the whole object: allow read_timeout plus
// 1 second per MiB (a floor of 1 MiB/s), so that big appends are not cut off.
std::chrono::steady_clock::time_point FetchDeadline(std::chrono::milliseconds read_timeout,
                                                    uint64_t size) {
  return std::chrono::steady_clock::now() + read_timeout + std::chrono::seconds(size >> 20);
}

}  // namespace

std::shared_ptr<WriteEntry> ObjectCacheImpl::FindReady(const std::string& key) {
  std::shared_ptr<WriteEntry> entry;
  {
    std::lock_guard<std::mutex> lock(wmu_);
    auto it = wentries_.find(key);
    if (it == wentries_.end()) return nullptr;
    entry = it->second;
  }
  std::unique_lock<std::mutex> lock(entry->mu);
  // Its creator only does local I/O once the entry is registered.
  entry->cv.wait(lock, [&] { return entry->phase != WriteEntry::Phase::kOpening; });
  if (entry->phase != WriteEntry::Phase::kReady || entry->removed) return nullptr;
  return entry;
}

Result<std::shared_ptr<ObjectHandle>> ObjectCacheImpl::OpenLocal(const std::string& key) {
  std::shared_ptr<WriteEntry> entry = FindReady(key);
  if (entry == nullptr) return std::shared_ptr<ObjectHandle>();
  std::lock_guard<std::mutex> lock(entry->mu);
  if (entry->removed) return std::shared_ptr<ObjectHandle>();
  std::string path = ObjectPath(entry->file_name);
  // A new descriptor, read-only, on the same inode: the reader sees the writes.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "cannot open local file of " + key, path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "cannot stat", path);
  IndexEntry view;
  view.size = static_cast<uint64_t>(st.st_size);
  view.etag = entry->dirty ? std::string() : entry->etag;  // no S3 version has local changes
  view.mtime = st.st_mtime;
  hits_.fetch_add(1);
  return std::shared_ptr<ObjectHandle>(std::make_shared<CachedHandle>(std::move(fd), view));
}

Result<std::shared_ptr<WritableFile>> ObjectCacheImpl::OpenWrite(
    const std::string& key, bool truncate, bool create, const std::optional<ListingHint>& hint) {
  return OpenWriteWith(key, truncate, create, hint, nullptr);
}

Result<std::shared_ptr<WritableFile>> ObjectCacheImpl::Create(const std::string& key,
                                                              const FileMeta& meta) {
  return OpenWriteWith(key, true, true, std::nullopt, &meta);
}

Result<std::shared_ptr<WritableFile>> ObjectCacheImpl::OpenWriteWith(
    const std::string& key, bool truncate, bool create, const std::optional<ListingHint>& hint,
    const FileMeta* meta) {
  // Where the file was not made here (another writer had it open), meta goes the SetMeta way.
  auto with_meta =
      [&](Result<std::shared_ptr<WritableFile>> r) -> Result<std::shared_ptr<WritableFile>> {
    if (!r.ok() || meta == nullptr) return r;
    if (Status s = SetMeta(key, *meta); !s.ok()) return s;
    return r;
  };
  auto new_entry = [&key] {
    auto entry = std::make_shared<WriteEntry>();
    entry->key = key;
    return entry;
  };
  // Another round when an entry we found failed to open or was removed, or when the cached
  // copy changed between fetching it and adopting it.
  for (int round = 0; round < 8; ++round) {
    std::shared_ptr<WriteEntry> entry;
    bool created = false;
    {
      std::lock_guard<std::mutex> lock(wmu_);
      if (wstopping_) return Status::Error(ESHUTDOWN, "the cache is shutting down");
      auto it = wentries_.find(key);
      if (it != wentries_.end()) {
        entry = it->second;
      } else if (truncate) {
        entry = new_entry();
        InsertEntryLocked(key, entry);
        created = true;
      }
    }
    if (entry != nullptr && !created) {
      Result<std::shared_ptr<WritableFile>> r = Attach(entry, truncate);
      if (r.ok() || r.status().code() != EAGAIN) return with_meta(std::move(r));
      continue;
    }
    if (created) {
      Status s = CreateEmpty(entry, hint ? hint->etag : "", meta);
      if (!s.ok()) return s;
      Result<std::shared_ptr<WritableFile>> r = Attach(entry, false, /*created=*/true);
      if (r.ok() || r.status().code() != EAGAIN) return r;
      continue;
    }

    // Not truncating and not open here: the current object first, whole.
    Result<std::shared_ptr<ObjectHandle>> source = OpenRead(key, hint);
    if (!source.ok() && (source.status().code() != ENOENT || !create)) return source.status();
    if (source.ok()) {
      Status s = Status::Ok();
      if (auto* d = dynamic_cast<DownloadHandle*>(source->get())) {
        // Done means verified and committed (or, rarely, not kept: then we copy it).
        d->download().FetchAll();
        s = d->download().WaitDone(FetchDeadline(config_.read_timeout, d->size()));
      }
      if (!s.ok()) return s.WithContext("while fetching " + key + " to change it");
    }
    {
      std::lock_guard<std::mutex> lock(wmu_);
      if (wentries_.count(key) > 0) continue;  // a writer came first: attach to it
      entry = new_entry();
      InsertEntryLocked(key, entry);
    }
    Status s = source.ok() ? AdoptCached(entry, **source)
                           : CreateEmpty(entry, /*base_etag=*/"");  // new object
    if (s.code() == EAGAIN) continue;
    if (!s.ok()) return s;
    Result<std::shared_ptr<WritableFile>> r = Attach(entry, false, /*created=*/!source.ok());
    if (r.ok() || r.status().code() != EAGAIN) return with_meta(std::move(r));
  }
  return Status::Error(EIO, "cannot open " + key + " for writing: its cache entry keeps changing");
}

void ObjectCacheImpl::FailOpening(const std::shared_ptr<WriteEntry>& entry, const Status& why) {
  {
    std::lock_guard<std::mutex> lock(wmu_);
    EraseEntryLocked(entry->key, entry.get());
  }
  std::lock_guard<std::mutex> lock(entry->mu);
  entry->phase = WriteEntry::Phase::kFailed;
  entry->open_error = why;
  entry->cv.notify_all();
}

// A new empty file for entry (create, or truncate without downloading): made in tmp/, moved
// over any cached copy (whose readers keep their inode) and recorded DIRTY in one index
// transaction. Only the registering thread touches a kOpening entry, so no lock is needed
// until it is published.
Status ObjectCacheImpl::CreateEmpty(const std::shared_ptr<WriteEntry>& entry,
                                    const std::string& base_etag, const FileMeta* new_meta) {
  const std::string& key = entry->key;
  std::string file_name = FileName(key);
  std::string tmp = NewTmpPath(file_name);
  std::string final_path = ObjectPath(file_name);
  Result<std::optional<IndexEntry>> row = index_->Get(config_.bucket, key);
  if (!row.ok()) {
    FailOpening(entry, row.status());
    return row.status();
  }
  UniqueFd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    Status s = ErrnoStatus(errno, "cannot create local file for " + key + " at", tmp);
    FailOpening(entry, s);
    return s;
  }
  FileMeta meta = row->has_value() ? (*row)->meta : FileMeta();
  if (meta.empty()) meta = Meta(key).value_or(FileMeta());
  meta.mtime.reset();  // the file changes now
  if (new_meta != nullptr) meta.Merge(*new_meta);

  DirtyMark mark;
  mark.bucket = config_.bucket;
  mark.key = key;
  mark.file_name = file_name;
  mark.base_etag_if_new = base_etag;
  mark.local_mtime = NowSeconds();
  mark.size = 0;
  mark.meta = meta;
  // A key without a row (or with a DIRTY one): no row on disk can name the new file as a CLEAN
  // copy, so a power loss before the next Flush can only lose changes nothing was promised
  // about (reconciliation removes a file without a row). Nothing is synced now; Flush syncs the
  // data, the name and the row before it promises durability (write_back.cc). Over a CLEAN
  // row the name and the mark must be on disk first, or the old row could name the new file.
  // The index decides (Index::MarkDirty): it knows the row and whether one can reappear.
  mark.allow_lazy = true;
  bool lazy = false;
  bool renamed = false;
  bool name_synced = false;
  Result<int64_t> gen = index_->MarkDirty(mark, [&](bool synced) -> Status {
    Status s = EnsureDir(ParentDir(final_path));
    if (!s.ok()) return s;
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
      return ErrnoStatus(errno, "cannot move new file into", final_path);
    }
    renamed = true;
    lazy = !synced;
    if (lazy) return Status::Ok();
    write_syncs_.fetch_add(1);
    name_synced = true;
    return SyncDir(ParentDir(final_path));  // the name before the row that promises it
  });
  if (!gen.ok()) {
    // A renamed file without its row would pass for the old CLEAN copy: remove it (the row's
    // file is then missing, and the next open downloads again).
    ::unlink(renamed ? final_path.c_str() : tmp.c_str());
    Status s = gen.status().WithContext("cannot create " + key + " in the cache");
    FailOpening(entry, s);
    return s;
  }

  std::lock_guard<std::mutex> lock(entry->mu);
  entry->fd = std::move(fd);
  entry->file_name = file_name;
  entry->gen = *gen;
  entry->needs_mark = false;
  entry->lazy_sync = lazy;
  entry->name_synced = name_synced;
  entry->etag.clear();
  if (!row->has_value()) {
    entry->base_etag = base_etag;
  } else {
    entry->base_etag = (*row)->state == EntryState::kClean ? (*row)->etag : (*row)->base_etag;
  }
  entry->meta = meta;
  if (new_meta != nullptr) NoteMeta(key, meta);
  SetDirtyLocked(*entry, true);
  entry->phase = WriteEntry::Phase::kReady;
  entry->cv.notify_all();
  return Status::Ok();
}

// Makes the complete copy that source reads the entry's file: in place when it is the cached
// CLEAN copy (the usual case), else (its download was not kept) a copy of it. EAGAIN when the
// cache now holds another version: the caller starts over.
Status ObjectCacheImpl::AdoptCached(const std::shared_ptr<WriteEntry>& entry,
                                    ObjectHandle& source) {
  const std::string& key = entry->key;
  auto fail = [&](Status s) {
    FailOpening(entry, s);
    return s;
  };
  Result<std::optional<IndexEntry>> row = index_->Get(config_.bucket, key);
  if (!row.ok()) return fail(row.status());
  UniqueFd fd;
  IndexEntry adopted;
  if (row->has_value()) {
    adopted = **row;
    if (adopted.state != EntryState::kClean || adopted.etag != source.etag()) {
      return fail(Status::Error(EAGAIN, key + " changed in the cache while it was opened"));
    }
    std::string path = ObjectPath(adopted.file_name);
    fd.reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    struct stat st;
    if (!fd.valid() || ::fstat(fd.get(), &st) != 0 ||
        static_cast<uint64_t>(st.st_size) != adopted.size) {
      if (fd.valid() || errno == ENOENT) {
        // Missing or damaged: OpenRead drops it and fetches again next round.
        return fail(Status::Error(EAGAIN, "cached copy of " + key + " is unusable"));
      }
      return fail(ErrnoStatus(errno, "cannot open cached copy of " + key, path));
    }
  } else {
    std::string file_name = FileName(key);
    std::string tmp = NewTmpPath(file_name);
    std::string final_path = ObjectPath(file_name);
    fd.reset(::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) return fail(ErrnoStatus(errno, "cannot create", tmp));
    Status s = CopyFile(source.fd(), fd.get(), source.size(), tmp);
    write_syncs_.fetch_add(1);
    if (s.ok() && ::fdatasync(fd.get()) != 0) s = ErrnoStatus(errno, "cannot sync", tmp);
    adopted.bucket = config_.bucket;
    adopted.key = key;
    adopted.file_name = file_name;
    adopted.etag = source.etag();
    adopted.size = source.size();
    adopted.mtime = source.mtime();
    adopted.validated_at = NowMs();
    adopted.accessed_at = adopted.validated_at;
    adopted.meta = Meta(key).value_or(FileMeta());
    bool renamed = false;
    if (s.ok()) {
      s = index_->PutClean(adopted, [&]() -> Status {
        Status st = EnsureDir(ParentDir(final_path));
        if (!st.ok()) return st;
        if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
          return ErrnoStatus(errno, "cannot move copy into", final_path);
        }
        renamed = true;
        return Status::Ok();
      });
    }
    if (!s.ok()) {
      ::unlink(renamed ? final_path.c_str() : tmp.c_str());
      return fail(s.WithContext("cannot keep a copy of " + key + " to change it"));
    }
  }
  FileMeta meta = adopted.meta;
  if (meta.empty()) meta = Meta(key).value_or(FileMeta());
  std::lock_guard<std::mutex> lock(entry->mu);
  entry->fd = std::move(fd);
  entry->file_name = adopted.file_name;
  entry->gen = adopted.dirty_gen;
  entry->etag = adopted.etag;
  entry->base_etag = adopted.etag;
  entry->meta = meta;
  entry->needs_mark = true;
  entry->phase = WriteEntry::Phase::kReady;
  entry->cv.notify_all();
  return Status::Ok();
}

}  // namespace s3cachefs::cache
