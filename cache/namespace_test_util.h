// Helpers shared by the Namespace unit tests: a FakeS3 whose LISTs can be held back or slowed
// (to observe single-flight and blocking), a log collector and a tree walk.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cache/namespace.h"
#include "fake_s3.h"

namespace s3cachefs::cache::test {

// FakeS3 whose ListObjectsV2 can sleep, or stop at a gate for requests with a given prefix
// until Release().
class SlowS3 : public s3cachefs::testing::FakeS3 {
 public:
  void set_delay(std::chrono::milliseconds delay) {
    std::lock_guard<std::mutex> lock(mu_);
    delay_ = delay;
  }
  void Hold(const std::string& prefix) {
    std::lock_guard<std::mutex> lock(mu_);
    held_prefix_ = prefix;
    holding_ = true;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    holding_ = false;
    cv_.notify_all();
  }
  // Waits until a request is stopped at the gate.
  bool WaitHeld(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return waiting_ > 0; });
  }

  Result<s3::ListPage> ListObjectsV2(const s3::ListRequest& request) override {
    std::chrono::milliseconds delay;
    {
      std::unique_lock<std::mutex> lock(mu_);
      delay = delay_;
      if (holding_ && request.prefix == held_prefix_) {
        ++waiting_;
        cv_.notify_all();
        cv_.wait(lock, [&] { return !holding_; });
        --waiting_;
      }
    }
    std::this_thread::sleep_for(delay);
    return FakeS3::ListObjectsV2(request);
  }

 private:
  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  std::chrono::milliseconds delay_{0};
  std::string held_prefix_;
  bool holding_ = false;
  int waiting_ = 0;
};

// Collects the lines a Namespace logs.
class LogCollector {
 public:
  NamespaceLogger logger() {
    return [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(line);
    };
  }
  std::vector<std::string> lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

inline std::vector<std::string> Names(const std::vector<DirEntry>& entries) {
  std::vector<std::string> names;
  names.reserve(entries.size());
  for (const DirEntry& e : entries) {
    names.push_back(e.name);
  }
  return names;
}

// One line per entry with every attribute, so that two listings compare in one EXPECT_EQ.
inline std::string Describe(const DirEntry& e) {
  return e.name + (e.attr.type == NodeType::kDirectory ? " dir" : " file") +
         " size=" + std::to_string(e.attr.size) + " mtime=" + std::to_string(e.attr.mtime) +
         " etag=" + e.attr.etag;
}

// Lists every directory under path (depth first), keyed by directory path.
inline std::map<std::string, std::vector<std::string>> Walk(Namespace& ns,
                                                            const std::string& path) {
  std::map<std::string, std::vector<std::string>> tree;
  std::vector<std::string> todo{path};
  while (!todo.empty()) {
    std::string dir = todo.back();
    todo.pop_back();
    Result<std::vector<DirEntry>> entries = ns.List(dir);
    EXPECT_TRUE(entries.ok()) << dir << ": " << entries.status().ToString();
    if (!entries.ok()) {
      continue;
    }
    std::vector<std::string>& described = tree[dir];
    for (const DirEntry& e : *entries) {
      described.push_back(Describe(e));
      const std::string child = dir.empty() ? e.name : dir + "/" + e.name;
      Result<NodeAttr> attr = ns.Lookup(child);
      EXPECT_TRUE(attr.ok()) << child;
      if (e.attr.type == NodeType::kDirectory) {
        todo.push_back(child);
      }
    }
  }
  return tree;
}

}  // namespace s3cachefs::cache::test
