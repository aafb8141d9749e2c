// Test doubles for the cache's unit tests: HookedClient, a decorator over any s3::Client
// (normally tests/fake_s3.h) whose GETs can be delayed, held, failed or corrupted, and Gate,
// which holds threads until opened. Header-only; not part of the library.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "s3/client.h"

namespace s3cachefs::testing {

// Forwards to another client; GETs pass through before_get (may sleep, block or fail) and, when
// corrupt says so, get their first body byte flipped. Hooks are set before use.
class HookedClient : public s3::Client {
 public:
  explicit HookedClient(s3::Client& fake) : fake_(fake) {}

  std::function<Status(const s3::GetRequest&)> before_get;
  std::function<bool(const s3::GetRequest&)> corrupt;

  Result<s3::GetResult> GetObject(const s3::GetRequest& req, s3::Sink& sink) override {
    if (before_get) {
      Status s = before_get(req);
      if (!s.ok()) return s;
    }
    if (corrupt && corrupt(req)) {
      FlipSink flip(sink);
      return fake_.GetObject(req, flip);
    }
    return fake_.GetObject(req, sink);
  }

  Status CheckBucket() override { return fake_.CheckBucket(); }
  Result<s3::ListPage> ListObjectsV2(const s3::ListRequest& r) override {
    return fake_.ListObjectsV2(r);
  }
  Result<s3::ObjectInfo> HeadObject(const std::string& key) override {
    return fake_.HeadObject(key);
  }
  Result<std::string> PutObject(const std::string& key, const s3::FileRegion& body,
                                const s3::PutOptions& options) override {
    return fake_.PutObject(key, body, options);
  }
  Result<std::string> CreateMultipartUpload(const std::string& key,
                                            const s3::PutOptions& options) override {
    return fake_.CreateMultipartUpload(key, options);
  }
  Result<std::string> UploadPart(const std::string& key, const std::string& id, int n,
                                 const s3::FileRegion& body) override {
    return fake_.UploadPart(key, id, n, body);
  }
  Result<std::string> UploadPartCopy(const std::string& key, const std::string& id, int n,
                                     const std::string& src, const s3::ByteRange& r) override {
    return fake_.UploadPartCopy(key, id, n, src, r);
  }
  Result<std::string> CompleteMultipartUpload(
      const std::string& key, const std::string& id,
      const std::vector<s3::CompletedPart>& parts) override {
    return fake_.CompleteMultipartUpload(key, id, parts);
  }
  Status AbortMultipartUpload(const std::string& key, const std::string& id) override {
    return fake_.AbortMultipartUpload(key, id);
  }
  Result<std::string> CopyObject(const std::string& src, const std::string& dst,
                                 const std::optional<s3::PutOptions>& options) override {
    return fake_.CopyObject(src, dst, options);
  }
  Status DeleteObject(const std::string& key) override { return fake_.DeleteObject(key); }
  Result<std::vector<s3::DeleteError>> DeleteObjects(
      const std::vector<std::string>& keys) override {
    return fake_.DeleteObjects(keys);
  }
  const s3::ClientStats& stats() const override { return fake_.stats(); }

 private:
  class FlipSink : public s3::Sink {
   public:
    explicit FlipSink(s3::Sink& inner) : inner_(inner) {}
    Status Write(const char* data, size_t size) override {
      if (!flipped_ && size > 0) {
        flipped_ = true;
        std::string copy(data, size);
        copy[0] = static_cast<char>(copy[0] ^ 0x5a);
        return inner_.Write(copy.data(), size);
      }
      return inner_.Write(data, size);
    }
    Status Reset() override {
      flipped_ = false;
      return inner_.Reset();
    }

   private:
    s3::Sink& inner_;
    bool flipped_ = false;
  };

  s3::Client& fake_;
};

// Holds GETs until Open().
class Gate {
 public:
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return open_; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

}  // namespace s3cachefs::testing
