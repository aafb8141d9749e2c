#include "cache/download.h"

#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <limits>

#include "s3/log.h"

namespace s3cachefs::cache {
namespace {

// Most chunks a single WaitReadable pulls to the front: enough to fill a download's parallel
// slots, few enough that one reader of a huge range cannot starve the others.
constexpr uint64_t kMaxPrioritized = 4;

// Writes a body at its place in the file and refuses more than was asked for, so a server
// that ignores the Range header cannot write over other chunks.
class ChunkSink : public s3::Sink {
 public:
  ChunkSink(int fd, uint64_t offset, uint64_t limit, const std::atomic<bool>* cancelled,
            std::atomic<uint64_t>* counter)
      : sink_(fd, static_cast<off_t>(offset)),
        limit_(limit),
        cancelled_(cancelled),
        counter_(counter) {}

  Status Write(const char* data, size_t size) override {
    if (cancelled_->load()) return Status::Error(ECANCELED, "download cancelled");
    if (sink_.written() + size > limit_) {
      return Status::Error(
          EIO, "server sent more than the " + std::to_string(limit_) + " bytes requested");
    }
    Status s = sink_.Write(data, size);
    if (s.ok() && counter_ != nullptr) counter_->fetch_add(size);
    return s;
  }
  Status Reset() override { return sink_.Reset(); }

 private:
  s3::FdSink sink_;
  uint64_t limit_;
  const std::atomic<bool>* cancelled_;
  std::atomic<uint64_t>* counter_;
};

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
  // Discarded before Start (a racing open won): nobody else knows the file.
  if (phase_ == Phase::kStarting && write_fd_.valid()) ::unlink(params_.tmp_path.c_str());
}

Download::Phase Download::phase() const {
  std::lock_guard<std::mutex> lock(mu_);
  return phase_;
}

uint64_t Download::ChunkLength(uint64_t index) const {
  uint64_t first = index * params_.chunk_size;
  return std::min(params_.chunk_size, size_ - first);
}

void Download::Start() {
  ChunkSink sink(write_fd_.get(), 0, std::numeric_limits<uint64_t>::max(), &cancelled_,
                 params_.bytes_counter);
  s3::GetRequest request;
  request.key = params_.key;
  request.range = s3::ByteRange{0, params_.chunk_size - 1};
  request.if_none_match = params_.if_none_match;
  Result<s3::GetResult> r = params_.client->GetObject(request, sink);
  if (!r.ok() && r.status().code() == EINVAL) {
    // 416: the object is empty, so no range of it exists. Ask for the whole (empty) body.
    Status s = sink.Reset();
    if (!s.ok()) return Fail(s);
    request.range.reset();
    r = params_.client->GetObject(request, sink);
  }
  if (!r.ok()) return Fail(r.status());

  if (r->not_modified) {
    ::unlink(params_.tmp_path.c_str());
    finish_(*this, Phase::kNotModified);
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != Phase::kStarting || failing_) return;  // cancelled meanwhile
    phase_ = Phase::kNotModified;
    pool_ = nullptr;
    cv_.notify_all();
    return;
  }

  size_ = r->info.size;
  etag_ = r->info.etag;
  mtime_ = r->info.last_modified;
  metadata_ = r->info.metadata;
  validated_at_ = params_.clock ? params_.clock() : std::chrono::system_clock::now();
  num_chunks_ = (size_ + params_.chunk_size - 1) / params_.chunk_size;
  uint64_t got = r->bytes;
  uint64_t expected = std::min(size_, params_.chunk_size);
  if (got != expected && got != size_) {
    return Fail(Status::Error(EIO, "short answer for the first bytes of " + params_.key + ": got " +
                                       std::to_string(got) + " of " + std::to_string(expected) +
                                       " bytes"));
  }
  bool all_in = got == size_;  // also when a server ignored the Range header
  if (params_.verify_md5 && IsMd5Etag(etag_)) md5_ = std::make_unique<Md5Stream>();

  ChunkPool* pool;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != Phase::kStarting || failing_) return;  // cancelled meanwhile
    chunks_.assign(num_chunks_, all_in ? ChunkState::kDone : ChunkState::kQueued);
    if (num_chunks_ > 0) chunks_[0] = ChunkState::kDone;
    phase_ = Phase::kRunning;
    headers_known_ = true;
    pool = pool_;
    cv_.notify_all();
  }
  if (params_.on_size_known) params_.on_size_known(*this);
  // This runs before the hash of chunk 0, so the transfer of the rest starts at once.
  if (!all_in && num_chunks_ > 1 && pool != nullptr) {
    // The pool's tasks hold the download alive until they have run.
    pool->Enqueue(shared_from_this(), 1, num_chunks_);
  }
  AdvanceHash();
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

Status Download::WaitReadable(uint64_t offset, uint64_t length,
                              std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  bool prioritized = false;
  for (;;) {
    if (phase_ == Phase::kFailed) return error_;
    if (phase_ != Phase::kStarting) {
      uint64_t end = offset + std::min(length, size_ - std::min(offset, size_));
      if (offset >= end) return Status::Ok();
      uint64_t first = offset / params_.chunk_size;
      uint64_t last = (end - 1) / params_.chunk_size;
      std::vector<uint64_t> queued;
      bool all_done = true;
      for (uint64_t i = first; i <= last; ++i) {
        if (chunks_[i] == ChunkState::kDone) continue;
        all_done = false;
        if (chunks_[i] == ChunkState::kQueued && queued.size() < kMaxPrioritized) {
          queued.push_back(i);
        }
      }
      if (all_done) return Status::Ok();
      if (!prioritized && pool_ != nullptr) {
        // Back to front, so that the first chunk the reader needs ends up first in line.
        for (auto it = queued.rbegin(); it != queued.rend(); ++it) pool_->Prioritize(this, *it);
        prioritized = true;
      }
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout &&
        std::chrono::steady_clock::now() >= deadline) {
      if (phase_ == Phase::kFailed) return error_;
      return Status::Error(ETIMEDOUT, "timed out waiting for bytes " +
                                          RangeText(offset, offset + length - 1) + " of " +
                                          params_.key + " (the download goes on)");
    }
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
  cv_.notify_all();
}

Status Download::FetchRange(uint64_t first, uint64_t last) {
  uint64_t length = last - first + 1;
  ChunkSink sink(write_fd_.get(), first, length, &cancelled_, params_.bytes_counter);
  s3::GetRequest request;
  request.key = params_.key;
  request.range = s3::ByteRange{first, last};
  request.if_match = etag_;
  Result<s3::GetResult> r = params_.client->GetObject(request, sink);
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

void Download::FetchChunk(uint64_t index) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != Phase::kRunning || failing_ || chunks_[index] != ChunkState::kQueued) return;
    chunks_[index] = ChunkState::kRunning;
  }
  uint64_t first = index * params_.chunk_size;
  Status s = FetchRange(first, first + ChunkLength(index) - 1);
  if (!s.ok()) return Fail(s);
  {
    std::lock_guard<std::mutex> lock(mu_);
    chunks_[index] = ChunkState::kDone;
    cv_.notify_all();
  }
  AdvanceHash();
}

void Download::AdvanceHash() {
  {
    std::lock_guard<std::mutex> hash_lock(hash_mu_);
    std::vector<char> buffer;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (phase_ != Phase::kRunning || failing_ || finalizing_) return;
        if (hashed_ == num_chunks_) {
          finalizing_ = true;
          break;
        }
        if (chunks_[hashed_] != ChunkState::kDone) return;
      }
      if (md5_ != nullptr) {
        // Read back from the page cache the bytes just written; 1 MiB at a time.
        buffer.resize(std::min<uint64_t>(params_.chunk_size, 1 << 20));
        uint64_t pos = hashed_ * params_.chunk_size;
        uint64_t end = pos + ChunkLength(hashed_);
        while (pos < end) {
          size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), end - pos));
          ssize_t n = ::pread(read_fd_.get(), buffer.data(), want, static_cast<off_t>(pos));
          if (n <= 0) {
            Status s = n < 0 ? ErrnoStatus(errno, "cannot read back", params_.tmp_path)
                             : Status::Error(EIO, "download file " + params_.tmp_path +
                                                      " is shorter than written");
            return Fail(s);
          }
          md5_->Update(buffer.data(), static_cast<size_t>(n));
          pos += static_cast<uint64_t>(n);
        }
      }
      ++hashed_;
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
    cv_.notify_all();
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
    cv_.notify_all();
  }
  finish_(*this, Phase::kDone);
}

ChunkPool::ChunkPool(int threads, int per_object) : per_object_(std::max(1, per_object)) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { Run(); });
}

ChunkPool::~ChunkPool() {
  Shutdown();
}

void ChunkPool::Enqueue(const std::shared_ptr<Download>& download, uint64_t first, uint64_t last) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return;
  for (uint64_t i = first; i < last; ++i) queue_.push_back(Task{download, i});
  cv_.notify_all();
}

void ChunkPool::Prioritize(const Download* download, uint64_t chunk) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(queue_.begin(), queue_.end(), [&](const Task& t) {
    return t.download.get() == download && t.chunk == chunk;
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
    queue_.erase(it);
    const Download* d = task.download.get();
    ++in_flight_[d];
    lock.unlock();
    task.download->FetchChunk(task.chunk);
    lock.lock();
    if (--in_flight_[d] == 0) in_flight_.erase(d);
    cv_.notify_all();  // a slot of d is free
    lock.unlock();
    task.download.reset();  // may destroy the download: not under our lock
    lock.lock();
  }
}

}  // namespace s3cachefs::cache
