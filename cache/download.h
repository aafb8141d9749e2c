// Download: one object being fetched into a temporary file, readable while it arrives.
// ChunkPool: the worker threads that fetch the blocks of all downloads.
//
// The object is cut into blocks of block_size, each missing, queued, running or done. The first
// request (Range: bytes=0-(first_request-1), optionally If-None-Match) is made by the thread
// that starts the download: its answer gives the size and ETag that every reader needs before
// its first read, or a 304 for a revalidation. Later requests are ranged GETs with If-Match on
// that ETag, written with pwrite() where they belong; a worker that takes a queued block takes
// the queued blocks right after it too, up to request_size, so a run of blocks is one request,
// and each block counts as done as soon as its bytes are in. Near the start of the object a
// request spans at most [offset, 2 * offset) (sizes double from first_request's), so the bytes
// a new reader needs next come after a short request while the longer ones after them run.
//
// Which blocks are fetched: an object of at most fetch_whole_max bytes is fetched whole at once.
// A larger one is fetched on demand: the blocks a reader waits for (pulled to the front of the
// queue), plus the read-ahead its handle asks for (which grows while it reads sequentially). So a
// random reader of a large object fetches about what it reads. A download whose readers are all
// gone is kept for a grace period (a new open joins it); then ReapIfIdle either completes it
// (when at least half of it is in) or abandons it: nothing of it is kept.
//
// As blocks complete, the contiguous prefix is hashed (MD5, for single-part ETags) by the
// download threads, so verification overlaps the transfer. When everything has arrived and
// checks out, the commit callback moves the file into the cache (on the defer_commit
// executor when one is given, so that the reader that completed it does not wait for the disk).
// Any failure is final for this download: readers get the error, the temporary file is
// removed and the next open starts again.
//
// An object that changes while it downloads (412 on a request) fails the download with ESTALE
// rather than restarting it: handles already given out have promised a size and ETag, so the
// new content cannot be served through them. The next open downloads the new version.
//
// Lock order: Download::hash_mu_, then Download::mu_, then ChunkPool::mu_. No lock is held
// across a request or a callback.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache/chunk_sink.h"
#include "cache/file_util.h"
#include "s3/client.h"
#include "s3/status.h"

namespace s3cachefs::cache {

class ChunkPool;
class Download;

struct DownloadParams {
  s3::Client* client = nullptr;
  std::string key;
  std::string tmp_path;                   // created here (O_EXCL); removed unless committed
  uint64_t request_size = 8ull << 20;     // the largest ranged GET
  uint64_t block_size = 256ull << 10;     // the unit fetched on demand; <= request_size
  uint64_t first_request = 1ull << 20;    // asked for by Start(); a multiple of block_size
  uint64_t fetch_whole_max = 8ull << 20;  // objects up to this size are fetched whole at once
  bool verify_md5 = true;
  std::string if_none_match;  // ETag of a cached copy to revalidate; "" for a plain download
  std::atomic<uint64_t>* bytes_counter = nullptr;                // body bytes received, may be null
  std::function<std::chrono::system_clock::time_point()> clock;  // for validated_at()
  // Called once by Start() when the first answer gave the size, before any other block is
  // requested and before anything can be committed: the cache makes room there for size()
  // bytes, or calls SkipCommit() to serve the object without keeping it. May be empty.
  std::function<void(Download&)> on_size_known;
  // Runs the commit of a verified download (fdatasync, the CommitFn, the FinishFn) elsewhere,
  // so that the thread that verified it, often an opener, does not wait for the disk. Empty:
  // the commit runs on that thread.
  std::function<void(std::function<void()>)> defer_commit;
};

class Download : public std::enable_shared_from_this<Download> {
 public:
  enum class Phase { kStarting, kNotModified, kRunning, kDone, kFailed };

  // Moves the complete, verified file into the cache. Runs once, on the thread that finished
  // the download, with no Download lock held. An error is logged; readers are unaffected.
  using CommitFn = std::function<Status(Download&)>;
  // Called once when the download reaches kNotModified, kDone or kFailed (after any commit),
  // with no Download lock held: the cache drops it from its single-flight map there. For
  // kNotModified it runs before the phase is published, so the cache can record the
  // validation before joined openers look for it. The Phase argument is the final phase.
  using FinishFn = std::function<void(Download&, Phase)>;

  // Creates the temporary file. pool must outlive the download's kRunning phase (the cache
  // cancels its downloads before destroying the pool).
  static Result<std::shared_ptr<Download>> Create(DownloadParams params, ChunkPool* pool,
                                                  CommitFn commit, FinishFn finish);
  ~Download();
  Download(const Download&) = delete;
  Download& operator=(const Download&) = delete;

  // Fetches the first request's bytes on the calling thread and queues the rest (all of it, or
  // nothing for an on-demand download). Called once by the creator, after AddReader() for the
  // handle it is going to make. Returns when the phase is no longer kStarting.
  void Start();

  // Waits until the first response is in. OK once size and ETag are known (even if the
  // download fails later: readers then get the error) or on a 304; the download's error if it
  // failed before that; ETIMEDOUT at deadline.
  Status WaitStarted(std::chrono::steady_clock::time_point deadline);

  // Waits until bytes [offset, offset + length), clamped to size(), are in the file, fetching
  // them first if they are not on their way, and queues the readahead bytes after them. Returns
  // the download's error if it failed, ETIMEDOUT at deadline (the download goes on).
  Status WaitReadable(uint64_t offset, uint64_t length, uint64_t readahead,
                      std::chrono::steady_clock::time_point deadline);

  // Waits until every byte is in and the size and (if applicable) MD5 are checked. Returns
  // the download's error if it failed, ETIMEDOUT at deadline.
  Status WaitVerified(std::chrono::steady_clock::time_point deadline);
  // Every byte is in and checked (the commit may still be running), and it did not fail.
  bool verified() const;

  // Waits until the download is over: committed (or not kept), failed, or answered 304.
  // Returns the download's error if it failed, ETIMEDOUT at deadline.
  Status WaitDone(std::chrono::steady_clock::time_point deadline);

  // Queues every block not yet requested, so that the download completes.
  void FetchAll();

  // Readers: each handle reading through the download counts as one. AddReader fails (false)
  // once the download has failed or is failing: open it again then.
  bool AddReader();
  void RemoveReader();
  // With no reader for at least grace and blocks never requested: completes the download if
  // at least half of it is in, else abandons it (fails it with ECANCELED; nothing is kept).
  // Returns true when it abandoned it.
  bool ReapIfIdle(std::chrono::steady_clock::duration grace);

  // Fails the download with why unless it is already finishing; in-flight requests are
  // aborted at their next body write.
  void Cancel(const Status& why);
  // Readers keep being served, but the result is not committed to the cache (Forget).
  void SkipCommit() { skip_commit_.store(true); }
  bool skip_commit() const { return skip_commit_.load(); }

  // Fetches blocks [first, first + taken), which a ChunkPool worker took from the queue
  // together, in one request (one per run that is still queued); called by ChunkPool workers.
  void FetchChunk(uint64_t first, uint64_t taken);
  // The most blocks one request starting at block index may span: params only, no lock.
  uint64_t MaxRequestBlocks(uint64_t index) const;

  Phase phase() const;
  // The failure, once the phase is kFailed.
  Status error() const;
  // Valid once the phase is kRunning or kDone.
  uint64_t size() const { return size_; }
  const std::string& etag() const { return etag_; }
  time_t mtime() const { return mtime_; }
  // User metadata of the first answer (valid like size()).
  const s3::Metadata& metadata() const { return metadata_; }
  // Wall-clock time of the first response: when the ETag was known to be current.
  std::chrono::system_clock::time_point validated_at() const { return validated_at_; }
  int read_fd() const { return read_fd_.get(); }
  const std::string& key() const { return params_.key; }
  const std::string& tmp_path() const { return params_.tmp_path; }
  const std::string& if_none_match() const { return params_.if_none_match; }

 private:
  enum class BlockState : uint8_t { kMissing, kQueued, kRunning, kDone };
  // A reader in WaitReadable, waiting for blocks [first, last] (all of them, while the size is
  // not known yet). It is woken when they are all in or the phase changes, not by every block
  // of the object: a sequential reader's kernel keeps several reads waiting at once, and each
  // needless wake-up costs a context switch.
  struct BlockWaiter {
    uint64_t first = 0;
    uint64_t last = UINT64_MAX;
    std::condition_variable cv;
  };

  Download(DownloadParams params, ChunkPool* pool, CommitFn commit, FinishFn finish);
  void Fail(const Status& status, bool from_finalizer = false);
  void AdvanceHash();
  void Finalize();
  void Complete();  // after Finalize: commit (unless skipped) and publish kDone
  Status FetchRange(uint64_t first_block, uint64_t count);
  // Marks blocks [first, first + count) kDone as a request's bytes arrive (bytes so far).
  void NoteProgress(uint64_t first, uint64_t count, uint64_t bytes);
  // Marks the missing blocks of [first, last) queued and hands them to the pool (at the front
  // when front). Called with mu_ held.
  void QueueLocked(uint64_t first, uint64_t last, bool front);
  bool BlocksDoneLocked(uint64_t first, uint64_t last) const;  // [first, last] all kDone
  // Wakes everyone waiting (a phase or state change). Called with mu_ held.
  void NotifyAllLocked();
  // Wakes the block waiters whose blocks are now all in, of those overlapping [first, last).
  // Called with mu_ held.
  void NotifyBlocksLocked(uint64_t first, uint64_t last);
  WriteUnits Units() const;  // the sizes of the writes of a body into the file
  uint64_t BlockLength(uint64_t index) const;

  const DownloadParams params_;
  CommitFn commit_;
  FinishFn finish_;
  UniqueFd write_fd_;
  std::mutex write_mu_;  // one request's write into write_fd_ at a time (see SerialSink)
  UniqueFd read_fd_;     // what handles read through; lives as long as the Download
  std::atomic<bool> cancelled_{false};  // tells sinks to abort in-flight bodies
  std::atomic<bool> skip_commit_{false};

  // Written by Start() before the phase leaves kStarting (published under mu_), then constant.
  uint64_t size_ = 0;
  std::string etag_;
  time_t mtime_ = 0;
  s3::Metadata metadata_;
  std::chrono::system_clock::time_point validated_at_;
  uint64_t num_blocks_ = 0;

  mutable std::mutex mu_;       // guards the fields below
  std::condition_variable cv_;  // phase or state changed (block progress: block_waiters_)
  std::vector<BlockWaiter*> block_waiters_;
  Phase phase_ = Phase::kStarting;
  Status error_;
  bool headers_known_ = false;  // the first answer gave size and ETag
  bool failing_ = false;        // Fail() has begun; the phase becomes kFailed once it is done
  bool finalizing_ = false;     // all blocks hashed; Cancel no longer applies
  bool verified_ = false;       // size and MD5 checked; the commit may still be running
  std::vector<BlockState> blocks_;
  uint64_t blocks_done_ = 0;
  int readers_ = 0;
  std::chrono::steady_clock::time_point idle_since_ = std::chrono::steady_clock::now();
  ChunkPool* pool_;  // null once the download is final

  std::mutex hash_mu_;   // guards hashed_ and md5_; held while hashing (never with mu_ waits)
  uint64_t hashed_ = 0;  // blocks [0, hashed_) are hashed (or verification is off)
  std::unique_ptr<Md5Stream> md5_;  // null when the ETag is not an MD5 or verify is off
  // Read-back buffer of the MD5 (guarded by hash_mu_): allocated on first use, uninitialised,
  // min(1 MiB, size_) bytes (size_ is known before anything is hashed).
  std::unique_ptr<char[]> hash_buf_;
};

// A fixed set of threads fetching blocks for all downloads, at most per_object requests at once
// for any one download. Tasks run in queue order, except that Prioritize moves one to the front;
// a worker takes with a block the blocks of the same download queued right after it, as many as
// its request may span (Download::MaxRequestBlocks).
class ChunkPool {
 public:
  ChunkPool(int threads, int per_object);
  ~ChunkPool();  // Shutdown()
  ChunkPool(const ChunkPool&) = delete;
  ChunkPool& operator=(const ChunkPool&) = delete;

  // Queues blocks [first, last) of download, at the back, or in order at the front.
  void Enqueue(const std::shared_ptr<Download>& download, uint64_t first, uint64_t last,
               bool front = false);
  // Moves block of download to the front if it is still queued.
  void Prioritize(const Download* download, uint64_t block);
  // Drops the queued blocks of download.
  void Remove(const Download* download);
  // Stops the workers after their current request and joins them; queued blocks are dropped.
  // Idempotent.
  void Shutdown();

 private:
  struct Task {
    std::shared_ptr<Download> download;
    uint64_t block;
  };
  void Run();
  // First queued task whose download is below per_object_, or queue_.end().
  std::deque<Task>::iterator FindRunnableLocked();

  const int per_object_;
  std::mutex mu_;               // guards the fields below
  std::condition_variable cv_;  // work queued, capacity freed, or stop
  std::deque<Task> queue_;
  std::unordered_map<const Download*, int> in_flight_;
  bool stop_ = false;
  std::vector<std::thread> threads_;  // started in the constructor, joined by Shutdown
};

}  // namespace s3cachefs::cache
