#include "cache/download.h"

#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "s3/log.h"

namespace s3cachefs::cache {
namespace {

// Most blocks a single WaitReadable pulls to the front: enough for the largest FUSE read, few
// enough that one reader of a huge range cannot starve the others.
constexpr uint64_t kMaxPrioritized = 64;

std::string RangeText(uint64_t first, uint64_t last) {
  return std::to_string(first) + "-" + std::to_string(last);
}

}  // namespace

Result<std::shared_ptr<Download>> Download::Create(DownloadParams params, ChunkPool* pool,
                                                   CommitFn commit, FinishFn finish) {
  std::shared_ptr<Download> d(
      new Download(std::move(params), pool, std::move(commit), std::move(finish)));
  const std::string& path = d->params_.tmp_path;
  d->write_fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!d->write_fd_.valid()) return ErrnoStatus(errno, "cannot create download file", path);
  d->read_fd_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!d->read_fd_.valid()) {
    Status s = ErrnoStatus(errno, "cannot open download file", path);
    ::unlink(path.c_str());
    d->phase_ = Phase::kFailed;  // the destructor must not touch the path again
    return s;
  }
  return d;
}

Download::Download(DownloadParams params, ChunkPool* pool, CommitFn commit, FinishFn finish)
    : params_(std::move(params)),
      commit_(std::move(commit)),
      finish_(std::move(finish)),
      pool_(pool) {}

Download::~Download() {
  // Discarded before Start (a racing open won), or an on-demand download that nobody needs any
  // more (forgotten, so never reaped): nobody else knows the file.
  if ((phase_ == Phase::kStarting || phase_ == Phase::kRunning) && write_fd_.valid()) {
    ::unlink(params_.tmp_path.c_str());
  }
}

Download::Phase Download::phase() const {
  std::lock_guard<std::mutex> lock(mu_);
  return phase_;
}

WriteUnits Download::Units() const {
  // Blocks smaller than a unit (tests) are written block by block, so that each block is done
  // as soon as it is in.
  if (params_.block_size < WriteUnits{}.min) return {params_.block_size, params_.block_size};
  return WriteUnits{};
}

uint64_t Download::BlockLength(uint64_t index) const {
  uint64_t first = index * params_.block_size;
  return std::min(params_.block_size, size_ - first);
}

void Download::Start() {
  s3::FdSink file(write_fd_.get(), 0);
  SerialSink out(file, write_mu_);
  ChunkSink sink(out, 0, std::numeric_limits<uint64_t>::max(), Units(), &cancelled_,
                 params_.bytes_counter);
  s3::GetRequest request;
  request.key = params_.key;
  request.range = s3::ByteRange{0, params_.first_request - 1};
  request.if_none_match = params_.if_none_match;
  Result<s3::GetResult> r = params_.client->GetObject(request, sink);
  if (!r.ok() && r.status().code() == EINVAL) {
    // 416: the object is empty, so no range of it exists. Ask for the whole (empty) body.
    Status s = sink.Reset();
    if (!s.ok()) return Fail(s);
    request.range.reset();
    r = params_.client->GetObject(request, sink);
  }
  if (r.ok()) {
    if (Status s = sink.Finish(); !s.ok()) return Fail(s);
  }
  if (!r.ok()) return Fail(r.status());

  if (r->not_modified) {
    ::unlink(params_.tmp_path.c_str());
    finish_(*this, Phase::kNotModified);
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != Phase::kStarting || failing_) return;  // cancelled meanwhile
    phase_ = Phase::kNotModified;
    pool_ = nullptr;
    NotifyAllLocked();
    return;
  }

  size_ = r->info.size;
  etag_ = r->info.etag;
  mtime_ = r->info.last_modified;
  metadata_ = r->info.metadata;
  validated_at_ = params_.clock ? params_.clock() : std::chrono::system_clock::now();
  num_blocks_ = (size_ + params_.block_size - 1) / params_.block_size;
  uint64_t got = r->bytes;
  uint64_t expected = std::min(size_, params_.first_request);
  if (got != expected && got != size_) {
    return Fail(Status::Error(EIO, "short answer for the first bytes of " + params_.key + ": got " +
                                       std::to_string(got) + " of " + std::to_string(expected) +
                                       " bytes"));
  }
  bool all_in = got == size_;  // also when a server ignored the Range header
  if (params_.verify_md5 && IsMd5Etag(etag_)) md5_ = std::make_unique<Md5Stream>();

  {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != Phase::kStarting || failing_) return;  // cancelled meanwhile
    uint64_t first_done = all_in ? num_blocks_ : got / params_.block_size;
    blocks_.assign(num_blocks_, BlockState::kMissing);
    for (uint64_t i = 0; i < first_done; ++i) blocks_[i] = BlockState::kDone;
    blocks_done_ = first_done;
    phase_ = Phase::kRunning;
    headers_known_ = true;
    NotifyAllLocked();
  }
  if (params_.on_size_known) params_.on_size_known(*this);
  // This runs before the hash of the first bytes, so the transfer of the rest starts at once.
  if (size_ <= params_.fetch_whole_max) FetchAll();
  AdvanceHash();
}

void Download::QueueLocked(uint64_t first, uint64_t last, bool front) {
  if (pool_ == nullptr || failing_ || phase_ != Phase::kRunning) return;
  last = std::min(last, num_blocks_);
  // Runs of missing blocks: each run is queued in order (the pool coalesces it into requests).
  uint64_t i = first;
  while (i < last) {
    if (blocks_[i] != BlockState::kMissing) {
      ++i;
      continue;
    }
    uint64_t j = i;
    while (j < last && blocks_[j] == BlockState::kMissing) blocks_[j++] = BlockState::kQueued;
    pool_->Enqueue(shared_from_this(), i, j, front);
    i = j;
  }
}

void Download::FetchAll() {
  std::lock_guard<std::mutex> lock(mu_);
  QueueLocked(0, num_blocks_, false);
}

bool Download::AddReader() {
  std::lock_guard<std::mutex> lock(mu_);
  if (failing_ || phase_ == Phase::kFailed) return false;
  ++readers_;
  return true;
}

void Download::RemoveReader() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--readers_ == 0) idle_since_ = std::chrono::steady_clock::now();
}

bool Download::ReapIfIdle(std::chrono::steady_clock::duration grace) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != Phase::kRunning || failing_ || readers_ > 0) return false;
    if (std::chrono::steady_clock::now() - idle_since_ < grace) return false;
    bool missing = std::find(blocks_.begin(), blocks_.end(), BlockState::kMissing) != blocks_.end();
    if (!missing) return false;  // everything is on its way: it completes by itself
    if (blocks_done_ * 2 >= num_blocks_) {
      QueueLocked(0, num_blocks_, false);  // mostly here: worth keeping
      return false;
    }
  }
  Fail(Status::Error(ECANCELED, "download of " + params_.key +
                                    " abandoned: its readers are gone and most of it was never "
                                    "read"));
  return true;
}

Status Download::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

Status Download::WaitStarted(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_until(lock, deadline,
                      [this] { return headers_known_ || phase_ != Phase::kStarting; })) {
    return Status::Error(ETIMEDOUT, "timed out waiting for the first answer for " + params_.key);
  }
  // Once size and ETag are known an open succeeds; a later failure reaches its reads.
  if (!headers_known_ && phase_ == Phase::kFailed) return error_;
  return Status::Ok();
}

Status Download::WaitReadable(uint64_t offset, uint64_t length, uint64_t readahead,
                              std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  BlockWaiter waiter;
  bool registered = false;
  auto unregister = [&] {
    if (!registered) return;
    block_waiters_.erase(std::find(block_waiters_.begin(), block_waiters_.end(), &waiter));
    registered = false;
  };
  bool requested = false;
  for (;;) {
    if (phase_ == Phase::kFailed) {
      unregister();
      return error_;
    }
    if (phase_ != Phase::kStarting) {
      uint64_t end = offset + std::min(length, size_ - std::min(offset, size_));
      if (offset >= end) {
        unregister();
        return Status::Ok();
      }
      uint64_t first = offset / params_.block_size;
      uint64_t last = (end - 1) / params_.block_size;
      waiter.first = first;
      waiter.last = last;
      if (!requested) {
        requested = true;
        // Back to front, so that the first block the reader needs ends up first in line.
        std::vector<uint64_t> queued;
        for (uint64_t i = first; i <= last && queued.size() < kMaxPrioritized; ++i) {
          if (blocks_[i] == BlockState::kQueued) queued.push_back(i);
        }
        if (pool_ != nullptr) {
          for (auto it = queued.rbegin(); it != queued.rend(); ++it) pool_->Prioritize(this, *it);
        }
        QueueLocked(first, last + 1, /*front=*/true);
        if (readahead > 0) {
          // Read-ahead in large steps: only once less than half of it is on its way, so that
          // the pool can make full-sized requests of it.
          // It ends on a request boundary, so that the next step starts with whole requests.
          uint64_t per_request = std::max<uint64_t>(1, params_.request_size / params_.block_size);
          uint64_t ra_end = (end + readahead + params_.block_size - 1) / params_.block_size;
          ra_end = std::min(num_blocks_, (ra_end + per_request - 1) / per_request * per_request);
          uint64_t frontier = last + 1;
          while (frontier < ra_end && blocks_[frontier] != BlockState::kMissing) ++frontier;
          if (frontier < ra_end && (frontier - last - 1) * params_.block_size < readahead / 2) {
            QueueLocked(frontier, ra_end, /*front=*/false);
          }
        }
      }
      if (BlocksDoneLocked(first, last)) {
        unregister();
        return Status::Ok();
      }
    }
    if (!registered) {
      block_waiters_.push_back(&waiter);
      registered = true;
    }
    if (waiter.cv.wait_until(lock, deadline) == std::cv_status::timeout &&
        std::chrono::steady_clock::now() >= deadline) {
      unregister();
      if (phase_ == Phase::kFailed) return error_;
      return Status::Error(ETIMEDOUT, "timed out waiting for bytes " +
                                          RangeText(offset, offset + length - 1) + " of " +
                                          params_.key + " (the download goes on)");
    }
  }
}

bool Download::BlocksDoneLocked(uint64_t first, uint64_t last) const {
  for (uint64_t i = first; i <= last; ++i) {
    if (blocks_[i] != BlockState::kDone) return false;
  }
  return true;
}

void Download::NotifyAllLocked() {
  cv_.notify_all();
  for (BlockWaiter* w : block_waiters_) w->cv.notify_one();
}

void Download::NotifyBlocksLocked(uint64_t first, uint64_t last) {
  for (BlockWaiter* w : block_waiters_) {
    if (w->last < first || w->first >= last) continue;  // no block of it changed
    if (w->last != UINT64_MAX && BlocksDoneLocked(w->first, w->last)) w->cv.notify_one();
  }
}

Status Download::WaitVerified(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_until(lock, deadline, [this] { return verified_ || phase_ == Phase::kFailed; })) {
    return Status::Error(ETIMEDOUT, "timed out waiting for the check of " + params_.key +
                                        " against its ETag (the download goes on)");
  }
  if (phase_ == Phase::kFailed) return error_;
  return Status::Ok();
}

bool Download::verified() const {
  std::lock_guard<std::mutex> lock(mu_);
  return verified_ && phase_ != Phase::kFailed;
}

Status Download::WaitDone(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_until(lock, deadline, [this] {
        return phase_ == Phase::kDone || phase_ == Phase::kFailed || phase_ == Phase::kNotModified;
      })) {
    return Status::Error(ETIMEDOUT, "timed out waiting for the download of " + params_.key);
  }
  if (phase_ == Phase::kFailed) return error_;
  return Status::Ok();
}

void Download::Cancel(const Status& why) {
  Fail(why);
}

void Download::Fail(const Status& status, bool from_finalizer) {
  ChunkPool* pool;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != Phase::kStarting && phase_ != Phase::kRunning) return;
    if (failing_ || (finalizing_ && !from_finalizer)) return;
    failing_ = true;  // from here on, nothing new starts and other failures are ignored
    error_ = status;
    pool = pool_;
    pool_ = nullptr;
  }
  cancelled_.store(true);
  if (pool != nullptr) pool->Remove(this);
  // Workers may still pwrite() into the unlinked inode until their request aborts; harmless.
  // write_fd_ stays open until destruction so its number cannot be reused under them.
  ::unlink(params_.tmp_path.c_str());
  // Out of the single-flight map before anyone hears of the failure, so that an open that
  // follows the error starts afresh instead of joining this download.
  finish_(*this, Phase::kFailed);
  std::lock_guard<std::mutex> lock(mu_);
  phase_ = Phase::kFailed;
  NotifyAllLocked();
}

Status Download::FetchRange(uint64_t first_block, uint64_t count) {
  uint64_t first = first_block * params_.block_size;
  uint64_t last = std::min(size_, (first_block + count) * params_.block_size) - 1;
  uint64_t length = last - first + 1;
  s3::FdSink file(write_fd_.get(), static_cast<off_t>(first));
  SerialSink out(file, write_mu_);
  ChunkSink sink(out, first, length, Units(), &cancelled_, params_.bytes_counter,
                 [&](uint64_t bytes) { NoteProgress(first_block, count, bytes); });
  s3::GetRequest request;
  request.key = params_.key;
  request.range = s3::ByteRange{first, last};
  request.if_match = etag_;
  Result<s3::GetResult> r = params_.client->GetObject(request, sink);
  if (r.ok()) {
    if (Status s = sink.Finish(); !s.ok()) return s;
  }
  std::string what = "bytes " + RangeText(first, last) + " of " + params_.key;
  auto changed = [&] {
    return Status::Error(ESTALE, "object " + params_.key + " changed while it was being " +
                                     "downloaded (was ETag " + etag_ + "); open it again");
  };
  if (!r.ok()) {
    if (r.status().code() == ESTALE) return changed();
    return r.status().WithContext("while downloading " + what);
  }
  if (!r->info.etag.empty() && !etag_.empty() && UnquoteEtag(r->info.etag) != UnquoteEtag(etag_)) {
    return changed();
  }
  if (r->not_modified || r->bytes != length) {
    return Status::Error(
        EIO, "short answer for " + what + ": got " + std::to_string(r->bytes) + " bytes");
  }
  return Status::Ok();
}

void Download::NoteProgress(uint64_t first, uint64_t count, uint64_t bytes) {
  uint64_t length =
      std::min(size_, (first + count) * params_.block_size) - first * params_.block_size;
  // All of it: that includes the object's last block, which may be shorter.
  uint64_t full = bytes >= length ? count : std::min(count, bytes / params_.block_size);
  std::lock_guard<std::mutex> lock(mu_);
  bool changed = false;
  for (uint64_t i = first; i < first + full; ++i) {
    if (blocks_[i] == BlockState::kRunning) {
      blocks_[i] = BlockState::kDone;
      ++blocks_done_;
      changed = true;
    }
  }
  if (changed) NotifyBlocksLocked(first, first + full);
}

void Download::FetchChunk(uint64_t first, uint64_t taken) {
  const uint64_t end = first + taken;
  for (uint64_t index = first; index < end;) {
    uint64_t count = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (phase_ != Phase::kRunning || failing_) return;
      // Every block taken is still queued unless the download was cancelled; skipping any that
      // is not keeps the ones after it from being lost.
      while (index < end && blocks_[index] != BlockState::kQueued) ++index;
      while (index + count < end && blocks_[index + count] == BlockState::kQueued) ++count;
      for (uint64_t i = index; i < index + count; ++i) blocks_[i] = BlockState::kRunning;
    }
    if (count == 0) return;
    Status s = FetchRange(index, count);
    if (!s.ok()) return Fail(s);
    // Start writing these bytes to disk now, while the disk is idle, so that the fdatasync
    // before the commit finds little left to do (and does not stall the readers that follow).
    ::sync_file_range(write_fd_.get(), static_cast<off_t>(index * params_.block_size),
                      static_cast<off_t>(count * params_.block_size), SYNC_FILE_RANGE_WRITE);
    {
      // Normally NoteProgress has marked them all; this covers an empty last write.
      std::lock_guard<std::mutex> lock(mu_);
      for (uint64_t i = index; i < index + count; ++i) {
        if (blocks_[i] != BlockState::kDone) {
          blocks_[i] = BlockState::kDone;
          ++blocks_done_;
        }
      }
      NotifyBlocksLocked(index, index + count);
    }
    AdvanceHash();
    index += count;
  }
}

uint64_t Download::MaxRequestBlocks(uint64_t index) const {
  uint64_t max_blocks = std::max<uint64_t>(1, params_.request_size / params_.block_size);
  // Near the start of the object a request spans at most [index, 2 * index): sizes double
  // from the first request's, so a reader that has just begun is not waiting behind one
  // full-sized request while the ones after it are already in flight.
  return std::min(max_blocks, std::max(params_.first_request / params_.block_size, index));
}

void Download::AdvanceHash() {
  {
    std::lock_guard<std::mutex> hash_lock(hash_mu_);
    for (;;) {
      uint64_t run = 0;  // done blocks from hashed_ on
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (phase_ != Phase::kRunning || failing_ || finalizing_) return;
        if (hashed_ == num_blocks_) {
          finalizing_ = true;
          break;
        }
        while (hashed_ + run < num_blocks_ && blocks_[hashed_ + run] == BlockState::kDone) ++run;
        if (run == 0) return;
      }
      if (md5_ != nullptr) {
        // Read back from the page cache the bytes just written; 1 MiB at a time. The buffer is
        // made once per download and not zeroed: zeroing 1 MiB each time cost more than the
        // MD5 of a 64 KiB object.
        const size_t buf_size = static_cast<size_t>(std::clamp<uint64_t>(size_, 1, 1 << 20));
        if (!hash_buf_) hash_buf_ = std::make_unique_for_overwrite<char[]>(buf_size);
        uint64_t pos = hashed_ * params_.block_size;
        uint64_t end = std::min(size_, (hashed_ + run) * params_.block_size);
        while (pos < end) {
          size_t want = static_cast<size_t>(std::min<uint64_t>(buf_size, end - pos));
          ssize_t n = ::pread(read_fd_.get(), hash_buf_.get(), want, static_cast<off_t>(pos));
          if (n <= 0) {
            Status s = n < 0 ? ErrnoStatus(errno, "cannot read back", params_.tmp_path)
                             : Status::Error(EIO, "download file " + params_.tmp_path +
                                                      " is shorter than written");
            return Fail(s);
          }
          md5_->Update(hash_buf_.get(), static_cast<size_t>(n));
          pos += static_cast<uint64_t>(n);
        }
      }
      hashed_ += run;
    }
  }
  Finalize();
}

void Download::Finalize() {
  struct stat st;
  if (::fstat(write_fd_.get(), &st) != 0) {
    return Fail(ErrnoStatus(errno, "cannot stat", params_.tmp_path), true);
  }
  if (static_cast<uint64_t>(st.st_size) != size_) {
    return Fail(
        Status::Error(EIO, "download of " + params_.key + " has " + std::to_string(st.st_size) +
                               " bytes, expected " + std::to_string(size_)),
        true);
  }
  if (md5_ != nullptr) {
    std::string md5 = md5_->FinishHex();
    std::string_view expected = UnquoteEtag(etag_);
    if (md5.size() != expected.size() ||
        strncasecmp(md5.data(), expected.data(), md5.size()) != 0) {
      return Fail(
          Status::Error(EIO, "downloaded body of " + params_.key + " does not match its ETag " +
                                 etag_ + " (MD5 is " + md5 + "); not cached"),
          true);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    verified_ = true;
    NotifyAllLocked();
  }
  if (params_.defer_commit) {
    params_.defer_commit([self = shared_from_this()] { self->Complete(); });
  } else {
    Complete();
  }
}

void Download::Complete() {
  bool committed = false;
  if (!skip_commit_.load()) {
    // The row is the promise that the file is complete: make the bytes durable first.
    ::fdatasync(write_fd_.get());
    Status s = commit_(*this);
    if (s.ok()) {
      committed = true;
    } else if (s.code() != ECANCELED) {  // ECANCELED: forgotten meanwhile, nothing to report
      LOG_WARN("cannot add %s to the cache: %s", params_.key.c_str(), s.ToString().c_str());
    }
  }
  if (!committed) ::unlink(params_.tmp_path.c_str());
  {
    std::lock_guard<std::mutex> lock(mu_);
    phase_ = Phase::kDone;
    pool_ = nullptr;
    NotifyAllLocked();
  }
  finish_(*this, Phase::kDone);
}

ChunkPool::ChunkPool(int threads, int per_object) : per_object_(std::max(1, per_object)) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { Run(); });
}

ChunkPool::~ChunkPool() {
  Shutdown();
}

void ChunkPool::Enqueue(const std::shared_ptr<Download>& download, uint64_t first, uint64_t last,
                        bool front) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return;
  for (uint64_t i = first; i < last; ++i) {
    if (front) {
      queue_.insert(queue_.begin() + static_cast<std::ptrdiff_t>(i - first), Task{download, i});
    } else {
      queue_.push_back(Task{download, i});
    }
  }
  // One wake-up per queued block: a worker that finishes a request looks at the queue again by
  // itself, so no more sleeping workers are needed than there are new tasks.
  for (uint64_t i = first; i < last; ++i) cv_.notify_one();
}

void ChunkPool::Prioritize(const Download* download, uint64_t block) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(queue_.begin(), queue_.end(), [&](const Task& t) {
    return t.download.get() == download && t.block == block;
  });
  if (it == queue_.end() || it == queue_.begin()) return;
  Task task = std::move(*it);
  queue_.erase(it);
  queue_.push_front(std::move(task));
}

void ChunkPool::Remove(const Download* download) {
  std::deque<Task> dropped;  // destroyed outside the lock
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->download.get() == download) {
      dropped.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
}

void ChunkPool::Shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    threads.swap(threads_);
    cv_.notify_all();
  }
  for (std::thread& t : threads) t.join();
  std::deque<Task> dropped;
  std::lock_guard<std::mutex> lock(mu_);
  dropped.swap(queue_);
}

std::deque<ChunkPool::Task>::iterator ChunkPool::FindRunnableLocked() {
  return std::find_if(queue_.begin(), queue_.end(), [this](const Task& t) {
    auto it = in_flight_.find(t.download.get());
    return it == in_flight_.end() || it->second < per_object_;
  });
}

void ChunkPool::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || FindRunnableLocked() != queue_.end(); });
    if (stop_) return;
    auto it = FindRunnableLocked();
    Task task = std::move(*it);
    // The blocks queued right after it that its request will span leave the queue with it:
    // otherwise a second worker could take the next block first and start its own request
    // there, and the requests would be cut where the workers happened to race.
    const uint64_t max_blocks = task.download->MaxRequestBlocks(task.block);
    auto end = std::next(it);
    uint64_t taken = 1;
    while (taken < max_blocks && end != queue_.end() && end->download == task.download &&
           end->block == task.block + taken) {
      ++taken;
      ++end;
    }
    queue_.erase(it, end);
    const Download* d = task.download.get();
    ++in_flight_[d];
    lock.unlock();
    task.download->FetchChunk(task.block, taken);
    lock.lock();
    // A slot of d is free; the one block of d this may make runnable is this worker's to take
    // when it looks at the queue again below, so nobody else is woken.
    if (--in_flight_[d] == 0) in_flight_.erase(d);
    lock.unlock();
    task.download.reset();  // may destroy the download: not under our lock
    lock.lock();
  }
}

}  // namespace s3cachefs::cache
