// Helpers shared by the object cache's unit tests (test-only).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

#include "cache/object_cache.h"
#include "s3/status.h"

namespace s3cachefs::cache::testutil {

// size bytes of reproducible noise (a different sequence per seed).
inline std::string MakeBody(size_t size, unsigned seed) {
  std::string body(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (char& c : body) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return body;
}

// The whole content behind a handle, once it has arrived.
inline Result<std::string> ReadAll(ObjectHandle& h) {
  Status s = h.WaitReadable(0, h.size());
  if (!s.ok()) return s;
  std::string out(h.size(), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(h.fd(), out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n <= 0) return Status::Error(EIO, "short pread");
    done += static_cast<size_t>(n);
  }
  return out;
}

// A new empty directory /tmp/<name>.XXXXXX; "" if it cannot be made.
inline std::string MakeTempDir(const std::string& name) {
  std::string tmpl = "/tmp/" + name + ".XXXXXX";
  return ::mkdtemp(tmpl.data()) != nullptr ? tmpl : std::string();
}

// Wall-clock milliseconds since the epoch, as the index stores times.
inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Polls pred until it holds (true) or timeout passes (false).
template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Counts the threads inside Hold at once, and the most there ever were. Hold(d) stays d, as a
// slow request does.
class Overlap {
 public:
  void Hold(std::chrono::milliseconds d) {
    const int now = ++inside_;
    for (int m = most_.load(); now > m && !most_.compare_exchange_weak(m, now);) {
    }
    std::this_thread::sleep_for(d);
    --inside_;
  }
  int most() const { return most_.load(); }

 private:
  std::atomic<int> inside_{0};
  std::atomic<int> most_{0};
};

}  // namespace s3cachefs::cache::testutil
