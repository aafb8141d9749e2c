#include "cache/file_prefetcher.h"

#include <algorithm>

#include "cache/namespace_listing.h"
#include "s3/log.h"

namespace s3cachefs::cache {
namespace {

// Bounds on what a fast scan can pile up: opens not yet looked at, keys not yet fetched, and
// directories remembered.
constexpr size_t kMaxOpened = 256;
constexpr size_t kMaxKeys = 64;
constexpr size_t kMaxScans = 64;

}  // namespace

FilePrefetcher::FilePrefetcher(Namespace& names, ObjectCache& objects, FilePrefetchConfig config)
    : names_(names), objects_(objects), config_(config) {
  if (config_.lookahead == 0) return;
  for (size_t i = 0; i < config_.lookahead + 1; ++i) {
    workers_.emplace_back([this] { Work(); });
  }
}

FilePrefetcher::~FilePrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void FilePrefetcher::Opened(const std::string& path) {
  if (config_.lookahead == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (opened_.size() >= kMaxOpened) opened_.pop_front();
  opened_.push_back(path);
  work_.notify_one();
}

void FilePrefetcher::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return opened_.empty() && keys_.empty() && busy_ == 0; });
}

uint64_t FilePrefetcher::requested() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requested_;
}

std::vector<std::string> FilePrefetcher::Plan(const std::string& path) {
  const std::string dir(listing::ParentPath(path));
  const std::string name(listing::BaseName(path));
  // Normally served from the cache: the open that got us here has just looked the file up.
  Result<std::vector<DirEntry>> entries = names_.List(dir);
  if (!entries.ok()) return {};
  constexpr size_t kAbsent = static_cast<size_t>(-1);
  auto index_of = [&](const std::string& n) {
    auto it = std::lower_bound(entries->begin(), entries->end(), n,
                               [](const DirEntry& e, const std::string& v) { return e.name < v; });
    return it == entries->end() || it->name != n ? kAbsent
                                                 : static_cast<size_t>(it - entries->begin());
  };
  const size_t here = index_of(name);
  if (here == kAbsent) return {};

  std::lock_guard<std::mutex> lock(mu_);
  if (scans_.size() >= kMaxScans && scans_.count(dir) == 0) scans_.clear();
  DirScan& scan = scans_[dir];
  const size_t previous = scan.last.empty() ? kAbsent : index_of(scan.last);
  scan.last = name;
  // In order: right after the previous open, or one entry further (a skipped subdirectory).
  if (previous == kAbsent || previous >= here || here - previous > 2) return {};
  // The next lookahead files after this one (subdirectories do not count), each queued once.
  std::vector<std::string> keys;
  size_t files = 0;
  for (size_t i = here + 1; i < entries->size() && files < config_.lookahead; ++i) {
    const DirEntry& e = (*entries)[i];
    if (e.attr.type != NodeType::kFile) continue;
    ++files;
    if (e.attr.size > config_.max_size) continue;
    if (!scan.ahead.empty() && e.name <= scan.ahead) continue;  // queued before
    keys.push_back(names_.FileKey(listing::JoinPath(dir, e.name)));
    scan.ahead = e.name;
  }
  return keys;
}

void FilePrefetcher::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_.wait(lock,
               [this] { return stop_ || (!opened_.empty() && !planning_) || !keys_.empty(); });
    if (stop_) return;
    ++busy_;
    if (!opened_.empty() && !planning_) {
      // One planner at a time, so that a directory's opens are looked at in order.
      planning_ = true;
      std::string path = std::move(opened_.front());
      opened_.pop_front();
      lock.unlock();
      std::vector<std::string> keys = Plan(path);
      lock.lock();
      planning_ = false;
      for (std::string& k : keys) {
        if (keys_.size() >= kMaxKeys) keys_.pop_front();
        keys_.push_back(std::move(k));
        work_.notify_one();
      }
    } else {
      std::string key = std::move(keys_.front());
      keys_.pop_front();
      ++requested_;
      lock.unlock();
      Status s = objects_.Prefetch(key);
      if (!s.ok()) LOG_DEBUG("prefetch of %s: %s", key.c_str(), s.ToString().c_str());
      lock.lock();
    }
    --busy_;
    idle_.notify_all();
  }
}

}  // namespace s3cachefs::cache
