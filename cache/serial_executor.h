// SerialExecutor: one background thread running posted tasks in order.
//
// The object cache uses it to commit finished downloads (fdatasync, index row, rename) off the
// reader's path: an open of a small uncached object returns as soon as its bytes are in and
// checked, not after the disk has flushed them.
//
// Lock: mu_ guards the queue and stop_; it is a leaf (tasks run without it).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace s3cachefs::cache {

class SerialExecutor {
 public:
  SerialExecutor() : thread_([this] { Run(); }) {}
  ~SerialExecutor() { Shutdown(); }
  SerialExecutor(const SerialExecutor&) = delete;
  SerialExecutor& operator=(const SerialExecutor&) = delete;

  // Queues task. After Shutdown() the task runs at once on the calling thread, so nothing
  // posted is ever dropped.
  void Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stop_) {
        queue_.push_back(std::move(task));
        cv_.notify_one();
        return;
      }
    }
    task();
  }

  // Runs what is queued, then stops and joins the thread. Idempotent.
  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      stop_ = true;
      cv_.notify_one();
    }
    thread_.join();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and nothing left
      std::function<void()> task = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      task();
      task = nullptr;  // whatever it captured goes before the lock is taken again
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace s3cachefs::cache
