#include "cache/uploader.h"

#include <algorithm>

namespace s3cachefs::cache {

Uploader::Uploader(int threads, RunFn run) : threads_(std::max(1, threads)), run_(std::move(run)) {}

Uploader::~Uploader() {
  Shutdown();
}

void Uploader::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_ || !workers_.empty()) return;
  for (int i = 0; i < threads_; ++i) workers_.emplace_back([this] { Run(); });
}

void Uploader::Enqueue(const std::shared_ptr<WriteEntry>& entry, std::chrono::milliseconds delay) {
  auto due = std::chrono::steady_clock::now() + delay;
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return;
  auto [it, inserted] = queue_.try_emplace(entry.get(), Item{entry, due});
  if (!inserted) it->second.due = std::min(it->second.due, due);
  // One sleeper looks at the new item (takes it, or waits until it is due); see Run.
  cv_.notify_one();
}

void Uploader::Remove(const WriteEntry* entry) {
  std::shared_ptr<WriteEntry> dropped;  // released outside the lock
  std::lock_guard<std::mutex> lock(mu_);
  auto it = queue_.find(entry);
  if (it == queue_.end()) return;
  dropped = std::move(it->second.entry);
  queue_.erase(it);
}

size_t Uploader::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = running_.size();
  for (const auto& [ptr, item] : queue_) n += running_.count(ptr) ? 0 : 1;
  return n;
}

std::vector<std::shared_ptr<WriteEntry>> Uploader::PendingEntries() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<WriteEntry>> out;
  for (const auto& [ptr, entry] : running_) out.push_back(entry);
  for (const auto& [ptr, item] : queue_) {
    if (!running_.count(ptr)) out.push_back(item.entry);
  }
  return out;
}

void Uploader::Shutdown() {
  std::vector<std::thread> workers;
  std::map<const WriteEntry*, Item> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    workers.swap(workers_);
    cv_.notify_all();
  }
  for (std::thread& t : workers) t.join();
  std::lock_guard<std::mutex> lock(mu_);
  dropped.swap(queue_);
}

void Uploader::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (stop_) return;
    auto now = std::chrono::steady_clock::now();
    auto next = queue_.end();
    std::optional<std::chrono::steady_clock::time_point> earliest;
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (running_.count(it->first)) continue;  // waits for its current run to end
      if (!earliest || it->second.due < *earliest) {
        earliest = it->second.due;
        next = it;
      }
    }
    if (next == queue_.end() || *earliest > now) {
      if (earliest) {
        cv_.wait_until(lock, *earliest);
      } else {
        cv_.wait(lock);
      }
      continue;
    }
    std::shared_ptr<WriteEntry> entry = std::move(next->second.entry);
    queue_.erase(next);
    running_[entry.get()] = entry;
    // Wakes are handed on one at a time: with items left, one sleeper takes the next or waits
    // until it is due, so that this worker's own wait for it is not missed while this runs.
    if (!queue_.empty()) cv_.notify_one();
    lock.unlock();
    std::optional<std::chrono::milliseconds> retry = run_(entry);
    lock.lock();
    running_.erase(entry.get());
    if (retry && !stop_) {
      auto due = std::chrono::steady_clock::now() + *retry;
      auto [it, inserted] = queue_.try_emplace(entry.get(), Item{entry, due});
      if (!inserted) it->second.due = std::min(it->second.due, due);
    }
    // An item that waited for this run (the same entry queued again) or the retry is this
    // worker's to take or wait for when it looks at the queue again below.
    lock.unlock();
    entry.reset();  // not under our lock
    lock.lock();
  }
}

}  // namespace s3cachefs::cache
