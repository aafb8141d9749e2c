// ObjectCacheImpl: the cache directory, its index, its downloads and its write-back put
// together. Internal to the cache; the contract is in cache/object_cache.h.
//
// Files: object_cache.cc (read path, times, destruction), cache_open.cc (Open, reconciliation,
// resuming uploads), object_cache_budget.cc (pins, evictor, counters), open_write.cc (OpenWrite,
// and OpenRead of keys open for writing), write_back.cc (the WritableFile, MarkDirty, Flush,
// uploads), object_ops.cc (Remove, Rename, SetMeta, Local, Meta, DrainUploads).
//
// Threads: callers of the public methods; the ChunkPool workers (download.h); one committer
// thread that commits finished downloads (serial_executor.h); one flusher thread
// that writes batched access/validation times to the index every flush_interval; the Uploader
// workers (uploader.h), which run background and retried uploads.
//
// Locks. Order: lifeline_->mu (shared, by WritableFile calls) > wmu_ > WriteEntry::mu > the
// Index's mutex > pinned_mu_. The others are leaves. None is held across a request to S3
// except the lifeline's shared lock (a handle's Flush may upload under it).
//   mu_        guards inflight_ and stopping_. May be taken inside Download locks (finish
//              callbacks); never held while calling into a Download, the pool or the index.
//   times_mu_  guards pending_ and flushing_ (the in-memory times).
//   flush_mu_  serializes FlushTimes(); held across one index transaction, before times_mu_.
//   wmu_       guards wentries_ (key -> WriteEntry) and wstopping_.
//   pinned_mu_ guards pinned_: the keys of wentries_. The index callbacks of downloads and
//              drops read it under the index mutex, so that no download is committed over, and
//              no clean drop removes, a file that has a WriteEntry.
//   meta_mu_   guards metas_.
//   The Evictor (cache/evictor.h) runs its passes under its own pass mutex, taken before
//   flush_mu_ (it flushes the times), times_mu_, pinned_mu_ and the Index's mutex; nothing here
//   calls into it while holding a lock except flush_mu_ (its counters, a leaf). pins_ has a
//   leaf mutex of its own.
//   The Index has its own mutex: the callbacks run under it only rename or unlink one file
//   and read pinned_.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "cache/disk_reserve.h"
#include "cache/download.h"
#include "cache/evictor.h"
#include "cache/file_util.h"
#include "cache/index.h"
#include "cache/object_cache.h"
#include "cache/pin_table.h"
#include "cache/serial_executor.h"
#include "cache/uploader.h"
#include "cache/write_entry.h"

namespace s3cachefs::cache {

inline int64_t NowSeconds() {
  return static_cast<int64_t>(::time(nullptr));
}

inline int64_t ToMs(std::chrono::system_clock::time_point t) {
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
  bool complete() const override { return true; }

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
// A handle reading through a download. The download counts it as a reader from before it is
// made (AddReader) until it is destroyed. It asks for read-ahead while its reads are sequential.
class DownloadHandle : public ObjectHandle {
 public:
  // readahead: the sequential run that starts read-ahead, and the largest read-ahead, in bytes.
  DownloadHandle(std::shared_ptr<Download> download, std::chrono::milliseconds timeout,
                 std::pair<uint64_t, uint64_t> readahead)
      : download_(std::move(download)), timeout_(timeout), readahead_(readahead) {}
  ~DownloadHandle() override;
  DownloadHandle(const DownloadHandle&) = delete;
  DownloadHandle& operator=(const DownloadHandle&) = delete;
  int fd() const override { return download_->read_fd(); }
  uint64_t size() const override { return download_->size(); }
  const std::string& etag() const override { return download_->etag(); }
  time_t mtime() const override { return download_->mtime(); }
  Status WaitReadable(uint64_t offset, uint64_t length) override;
  // A finished, checked download: its file is the object, whether or not committed yet.
  bool complete() const override { return download_->verified(); }
  Download& download() const { return *download_; }

 private:
  std::shared_ptr<Download> download_;
  std::chrono::milliseconds timeout_;
  const std::pair<uint64_t, uint64_t> readahead_;
  std::atomic<uint64_t> contiguous_{0};  // bytes [0, contiguous_) were handed to the reader
  std::mutex mu_;                        // guards next_ and run_
  uint64_t next_ = 0;                    // where a sequential read would start
  uint64_t run_ = 0;                     // bytes read by the current sequential run
};

// Times noted on the read path, not yet in the index. Only valid while the row has etag.
struct PendingTimes {
  std::string etag;
  int64_t validated_at = 0;
  int64_t accessed_at = 0;
};

class ObjectCacheImpl;

// Lets WritableFiles outlive the cache: their calls hold mu shared and find cache null once
// the cache is gone (they then fail with ESHUTDOWN).
struct Lifeline {
  std::shared_mutex mu;
  ObjectCacheImpl* cache = nullptr;  // guarded by mu
};

class ObjectCacheImpl : public ObjectCache {
 public:
  // The space set aside for the index on a full disk; replenished by FlushLoop. Set once,
  // before the threads start.
  void SetDiskReserve(std::shared_ptr<DiskReserve> reserve) { reserve_ = std::move(reserve); }
  ObjectCacheImpl(s3::Client& client, ObjectCacheConfig config, UniqueFd lock_fd,
                  std::unique_ptr<Index> index);
  ~ObjectCacheImpl() override;

  // Start-up (cache_open.cc).
  Status Reconcile();
  // Creates a WriteEntry for every DIRTY row and queues its upload; loads metas_.
  Status ResumeUploads();
  void StartThreads();
  // Fixes recorded sizes, runs one eviction pass and starts the evictor (object_cache_budget.cc).
  Status StartBudget();

  Result<std::shared_ptr<ObjectHandle>> OpenRead(const std::string& key,
                                                 const std::optional<ListingHint>& hint) override;
  Status Prefetch(const std::string& key) override;
  Status Forget(const std::string& key) override;
  CacheCounters counters() const override;

  Result<std::shared_ptr<WritableFile>> OpenWrite(const std::string& key, bool truncate,
                                                  bool create,
                                                  const std::optional<ListingHint>& hint) override;
  Result<std::shared_ptr<WritableFile>> Create(const std::string& key,
                                               const FileMeta& meta) override;
  std::optional<LocalFile> Local(const std::string& key) override;
  std::vector<LocalFile> LocalUnder(const std::string& prefix) override;
  std::optional<FileMeta> Meta(const std::string& key) override;
  Status SetMeta(const std::string& key, const FileMeta& meta) override;
  Status Remove(const std::string& key) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status DrainUploads(std::chrono::seconds timeout) override;
  size_t pending_uploads() const override;

  // For WriteHandle (write_back.cc). bracket is the handle's flag, guarded by entry.mu;
  // keep_bracket: the handle's writes are unseen (WritableFile::BeginUnseenWrites).
  Status MarkDirty(WriteEntry& entry, bool* bracket);
  Status Flush(const std::shared_ptr<WriteEntry>& entry, bool* bracket, bool keep_bracket);
  // Makes entry's local changes survive a power loss: the file's data (fd), its name in its
  // directory and, when it was committed lazily, its DIRTY row, in that order.
  Status SyncLocal(const std::shared_ptr<WriteEntry>& entry, int fd, const std::string& path);
  void ReleaseWriter(const std::shared_ptr<WriteEntry>& entry, bool* bracket);

 private:
  friend class WriteHandle;

  std::string FileName(const std::string& key) const {
    return Sha256Hex(config_.bucket + "/" + key);
  }
  std::string ObjectPath(const std::string& file_name) const {
    return objects_dir_ + "/" + file_name.substr(0, 2) + "/" + file_name;
  }
  std::string NewTmpPath(const std::string& file_name) {
    return tmp_dir_ + "/" + file_name + "." + std::to_string(tmp_counter_++);
  }
  int64_t NowMs() const { return ToMs(config_.clock()); }

  // ---- read path (object_cache.cc) ----
  // The cached file of entry, or an invalid fd if it is missing or (for CLEAN rows) has the
  // wrong size. Errors other than a missing file are returned.
  Result<UniqueFd> OpenCachedFile(const IndexEntry& entry);
  // Waits for a joined download's first answer. A null handle means it was a revalidation
  // that got 304: the caller looks at the index again.
  Result<std::shared_ptr<ObjectHandle>> Join(const std::shared_ptr<Download>& download);
  Status Commit(Download& download);
  void Finished(Download& download, Download::Phase phase);
  // Removes the CLEAN row of key and its file, unless key has a WriteEntry.
  Status DropEntry(const std::string& key);
  // Stops an in-flight download of key from being committed, forgets its pending times.
  void CancelDownload(const std::string& key);
  int64_t ValidatedAt(const std::string& key, const IndexEntry& entry);
  void NoteTimes(const std::string& key, const std::string& etag, int64_t validated_at,
                 int64_t accessed_at);
  void FlushLoop();
  void FlushTimes();
  // Drops (or completes) on-demand downloads nobody has read for partial_grace; runs in the
  // flusher's loop.
  // A download of key (a conditional one when revalidate_etag is set), not yet started or
  // known to anyone.
  Result<std::shared_ptr<Download>> NewDownload(const std::string& key,
                                                const std::string& revalidate_etag);
  void ReapIdleDownloads();
  std::pair<uint64_t, uint64_t> ReadaheadRange() const;

  // ---- budget (object_cache_budget.cc) ----
  // OpenRead without the pin that OpenRead attaches to the handle it returns.
  Result<std::shared_ptr<ObjectHandle>> OpenReadUnpinned(const std::string& key,
                                                         const std::optional<ListingHint>& hint);
  // The evictor's is_pinned: open handles, WriteEntries, times not yet flushed.
  bool IsPinned(const std::string& bucket, const std::string& key);
  // A download's on_size_known: makes room for it, or has it served without being kept.
  void MakeRoomFor(Download& d);
  // Gives back what MakeRoomFor admitted for d: it is in the index now, or will not be.
  void ReleaseRoom(const Download& d);
  // Adds what the counters gained since the last call to the index. Requires flush_mu_.
  void PersistCounters();
  // The in-memory activity counters (everything in CacheCounters but the index totals).
  CacheCounters ActivityCounters() const;

  // ---- write path (write_back.cc) ----
  bool Pinned(const std::string& key);
  // Adds/removes key from wentries_ and pinned_. Require wmu_.
  void InsertEntryLocked(const std::string& key, const std::shared_ptr<WriteEntry>& entry);
  void EraseEntryLocked(const std::string& key, const WriteEntry* entry);
  // The entry of key if it is ready and not removed (waiting while it is being opened), else
  // null.
  std::shared_ptr<WriteEntry> FindReady(const std::string& key);
  // For OpenRead: a handle on the local file of key when it has a WriteEntry; null if none.
  Result<std::shared_ptr<ObjectHandle>> OpenLocal(const std::string& key);
  // OpenWrite's creator paths: fills a kOpening entry; on failure marks it failed and drops it.
  // meta, if set, is merged into the entry's metadata before it is recorded.
  Status CreateEmpty(const std::shared_ptr<WriteEntry>& entry, const std::string& base_etag,
                     const FileMeta* meta = nullptr);
  // OpenWrite and Create: meta as for Create, or null.
  Result<std::shared_ptr<WritableFile>> OpenWriteWith(const std::string& key, bool truncate,
                                                      bool create,
                                                      const std::optional<ListingHint>& hint,
                                                      const FileMeta* meta);
  Status AdoptCached(const std::shared_ptr<WriteEntry>& entry, ObjectHandle& source);
  void FailOpening(const std::shared_ptr<WriteEntry>& entry, const Status& why);
  // A handle on a ready entry. truncate empties the file; created says the open created it:
  // either counts as a change of the handle (its Flush then syncs or uploads).
  Result<std::shared_ptr<WritableFile>> Attach(const std::shared_ptr<WriteEntry>& entry,
                                               bool truncate, bool created = false);
  Status EnsureFdLocked(WriteEntry& entry);
  // One upload of entry (waiting for one in flight first); OK when there was nothing to do.
  Status Upload(const std::shared_ptr<WriteEntry>& entry);
  // The Uploader's RunFn.
  std::optional<std::chrono::milliseconds> BackgroundUpload(const std::shared_ptr<WriteEntry>& e);
  std::chrono::milliseconds RetryDelay(int failures) const;
  // Queues entry when it is dirty and no handle will flush it.
  void QueueIfOrphaned(const std::shared_ptr<WriteEntry>& entry);
  // Drops entry from wentries_ if it is clean, unused and idle.
  void MaybeRetire(const std::shared_ptr<WriteEntry>& entry);
  void SetDirtyLocked(WriteEntry& entry, bool dirty);
  void NoteMeta(const std::string& key, const FileMeta& meta);

  // ---- object operations (object_ops.cc) ----
  // Stops uploads of entry from starting and waits for one in flight; Release undoes it.
  void Hold(WriteEntry& entry);
  void Release(WriteEntry& entry);
  // Marks a held entry removed, drops its row and file, and takes it out of wentries_.
  Status Discard(const std::shared_ptr<WriteEntry>& entry);
  // Rename of a key without a WriteEntry / with one (entry). target: the held WriteEntry of
  // to, if any; replaced (discarded) once the rename is sure to happen.
  Status RenameClean(const std::shared_ptr<WriteEntry>& target, const std::string& from,
                     const std::string& to);
  Status RenameLocal(const std::shared_ptr<WriteEntry>& entry,
                     const std::shared_ptr<WriteEntry>& target, const std::string& from,
                     const std::string& to);
  LocalFile LocalLocked(WriteEntry& entry);

  s3::Client& client_;
  const ObjectCacheConfig config_;
  const std::string objects_dir_;
  const std::string tmp_dir_;
  UniqueFd lock_fd_;  // flock()ed for the cache's lifetime
  std::unique_ptr<Index> index_;
  std::shared_ptr<DiskReserve> reserve_;  // set before the threads start
  ChunkPool pool_;
  SerialExecutor committer_;  // commits finished downloads (fdatasync, row, rename)
  std::shared_ptr<Lifeline> lifeline_;
  Uploader uploader_;

  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> revalidated_{0};
  std::atomic<uint64_t> misses_{0};
  std::atomic<uint64_t> downloads_{0};
  std::atomic<uint64_t> prefetches_{0};
  std::atomic<uint64_t> bytes_downloaded_{0};
  std::atomic<uint64_t> tmp_counter_{0};
  std::atomic<uint64_t> uploads_{0};
  std::atomic<uint64_t> bytes_uploaded_{0};
  std::atomic<uint64_t> upload_failures_{0};
  std::atomic<uint64_t> dirty_entries_{0};
  std::atomic<uint64_t> write_syncs_{0};   // fdatasync and directory fsyncs of the write path
  std::atomic<uint64_t> sync_uploads_{0};  // uploads running in a Flush or Rename

  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Download>> inflight_;  // single flight
  bool stopping_ = false;

  std::mutex flush_mu_;
  std::mutex times_mu_;
  std::condition_variable flush_cv_;  // flush_stop_ set
  std::unordered_map<std::string, PendingTimes> pending_;
  std::unordered_map<std::string, PendingTimes> flushing_;  // being written by FlushTimes()
  bool flush_stop_ = false;
  std::thread flusher_;

  std::mutex wmu_;
  std::map<std::string, std::shared_ptr<WriteEntry>> wentries_;  // ordered for LocalUnder
  bool wstopping_ = false;
  std::mutex pinned_mu_;
  std::unordered_set<std::string> pinned_;
  std::mutex meta_mu_;
  std::unordered_map<std::string, FileMeta> metas_;

  // Read handles open per key; shared, since handles may outlive the cache.
  std::shared_ptr<PinTable> pins_ = std::make_shared<PinTable>();
  Index::Counters persisted_;  // counters already added to the index; guarded by flush_mu_
  // Set by StartBudget before the cache is handed out; stopped first in the destructor.
  std::unique_ptr<Evictor> evictor_;
  std::mutex room_mu_;                                  // guards room_ (a leaf)
  std::unordered_map<const Download*, uint64_t> room_;  // bytes admitted per download
};

}  // namespace s3cachefs::cache
