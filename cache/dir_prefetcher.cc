#include "cache/dir_prefetcher.h"

#include <algorithm>
#include <cerrno>

#include "cache/namespace_listing.h"
#include "s3/log.h"

namespace s3cachefs::cache {

namespace {

// Directories whose subdirectories are remembered: the depth of a walk's current path, with room.
constexpr size_t kParents = 64;
// Queued directories beyond this are dropped, the least urgent (oldest) first: a walk that moved
// on from them no longer needs them soon.
constexpr size_t kMaxQueued = 256;

}  // namespace

DirPrefetcher::DirPrefetcher(Namespace& names, DirPrefetchConfig config)
    : names_(names), config_(config) {
  if (config_.lookahead == 0) {
    return;
  }
  const size_t threads = config_.threads == 0
                             ? config_.lookahead
                             : std::clamp<size_t>(config_.threads, 1, config_.lookahead);
  workers_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) {
    workers_.emplace_back([this] { Work(); });
  }
}

DirPrefetcher::~DirPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  work_.notify_all();
  for (std::thread& worker : workers_) {
    worker.join();
  }
}

void DirPrefetcher::Read(const std::string& path, const std::vector<DirEntry>& entries) {
  if (config_.lookahead == 0) {
    return;
  }
  std::vector<std::string> subdirs;
  for (const DirEntry& entry : entries) {
    if (entry.attr.type == NodeType::kDirectory) {
      subdirs.push_back(entry.name);
    }
  }
  std::sort(subdirs.begin(), subdirs.end());  // cheap when sorted already, as List returns them
  std::lock_guard<std::mutex> lock(mu_);
  auto it = parents_.find(path);
  if (subdirs.empty()) {
    if (it != parents_.end()) {
      lru_.erase(it->second.lru);
      parents_.erase(it);
    }
    return;
  }
  if (it == parents_.end()) {
    lru_.push_front(path);
    parents_.emplace(path, Parent{std::move(subdirs), lru_.begin()});
    TrimParentsLocked();
  } else {
    it->second.subdirs = std::move(subdirs);
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
}

void DirPrefetcher::Entering(const std::string& path) {
  if (config_.lookahead == 0 || path.empty()) {
    return;
  }
  const std::string parent(listing::ParentPath(path));
  const std::string name(listing::BaseName(path));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = parents_.find(parent);
  if (it == parents_.end()) {
    return;
  }
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  const std::vector<std::string>& subdirs = it->second.subdirs;
  auto next = std::upper_bound(subdirs.begin(), subdirs.end(), name);
  const size_t count = std::min<size_t>(config_.lookahead, subdirs.end() - next);
  if (count == 0) {
    return;
  }
  // The window goes to the front, nearest first: its items queued before are taken out and the
  // whole window is put back in order, but for those being listed right now. path itself is the
  // walk's to list.
  std::vector<std::string> window;
  window.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    window.push_back(listing::JoinPath(parent, next[i]));
  }
  std::erase_if(queue_, [&](const std::string& dir) {
    return dir == path || std::find(window.begin(), window.end(), dir) != window.end();
  });
  for (auto dir = window.rbegin(); dir != window.rend(); ++dir) {
    if (active_.count(*dir) == 0) {
      queue_.push_front(std::move(*dir));
    }
  }
  while (queue_.size() > kMaxQueued) {
    queue_.pop_back();
  }
  work_.notify_all();
}

void DirPrefetcher::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [&] { return queue_.empty() && active_.empty(); });
}

uint64_t DirPrefetcher::warmed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return warmed_;
}

uint64_t DirPrefetcher::failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

void DirPrefetcher::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) {
      return;
    }
    std::string dir = std::move(queue_.front());
    queue_.pop_front();
    active_.insert(dir);
    lock.unlock();
    const Status status = names_.Warm(dir);
    lock.lock();
    active_.erase(dir);
    ++warmed_;
    if (!status.ok()) {
      ++failed_;
      // Gone since its parent was listed is no news; anything else the walk will likely meet
      // too, so say it once in a while rather than per directory.
      const int code = status.code();
      if (code == ENOENT || code == ENOTDIR || (failed_ != 1 && failed_ % 100 != 0)) {
        LOG_DEBUG("prefetching /%s: %s", dir.c_str(), status.ToString().c_str());
      } else {
        LOG_WARN("prefetching /%s: %s (%llu background listings failed so far)", dir.c_str(),
                 status.ToString().c_str(), static_cast<unsigned long long>(failed_));
      }
    }
    idle_.notify_all();
  }
}

void DirPrefetcher::TrimParentsLocked() {
  while (parents_.size() > kParents) {
    parents_.erase(lru_.back());
    lru_.pop_back();
  }
}

}  // namespace s3cachefs::cache
