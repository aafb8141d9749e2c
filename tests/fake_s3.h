// FakeS3: an in-memory, thread-safe s3::Client for the unit tests of the layers above s3/.
//
// It behaves like S3 where the cache and fs layers can tell the difference:
//  - ETags are the quoted hex MD5 of the body; multipart ETags are "<md5 of part md5s>-N".
//  - ListObjectsV2 honours prefix, delimiter (common prefixes), start_after, max_keys and
//    continuation tokens; keys and common prefixes count together against max_keys, in order.
//  - GetObject honours ranges (a range starting at or past the end fails with EINVAL, a range
//    running past the end is clipped), If-None-Match (304 -> not_modified) and If-Match
//    (mismatch -> ESTALE).
//  - Multipart uploads check part numbers, ETags and the minimum part size (5 MiB by default;
//    set_min_part_size() lowers it so tests can use small parts).
//  - Deleting a missing key succeeds.
//  - stats() counts as CurlClient does (one "request" per call).
//
// Test hooks: FailNext(op, n, status) makes the next n calls of op fail with status (before any
// effect); calls(op) counts calls of op, failed ones included; Seed()/Body()/Exists() reach the
// store directly without counting; set_now() fixes LastModified times.
//
// Thread safety: every method may be called from many threads; one mutex guards all state.
#pragma once

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "s3/client.h"

namespace s3cachefs::testing {

class FakeS3 : public s3::Client {
 public:
  enum class Op {
    kCheckBucket,
    kList,
    kHead,
    kGet,
    kPut,
    kCreateMultipart,
    kUploadPart,
    kUploadPartCopy,
    kComplete,
    kAbort,
    kCopy,
    kDelete,
    kDeleteObjects,
    kCount,
  };

  struct Object {
    std::string body;
    std::string etag;  // with quotes
    time_t last_modified = 0;
    std::string content_type;
    s3::Metadata metadata;
  };

  explicit FakeS3(std::string bucket = "fake-bucket") : bucket_(std::move(bucket)) {}

  // ---- test hooks -------------------------------------------------------------------------

  // The next n calls of op fail with status, without side effects.
  void FailNext(Op op, int n, Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_[Index(op)] = {n, std::move(status)};
  }
  // Calls of op so far (failed ones included).
  int calls(Op op) const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_[Index(op)];
  }
  // Stores an object directly (no counters). Returns its ETag.
  std::string Seed(const std::string& key, const std::string& body, s3::Metadata metadata = {},
                   std::string content_type = "") {
    std::lock_guard<std::mutex> lock(mu_);
    return Store(key, body, std::move(metadata), std::move(content_type), Md5Etag(body));
  }
  std::optional<std::string> Body(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return std::nullopt;
    return it->second.body;
  }
  std::optional<Object> Find(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }
  bool Exists(const std::string& key) const { return Find(key).has_value(); }
  std::vector<std::string> Keys() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> keys;
    for (const auto& [k, o] : objects_) keys.push_back(k);
    return keys;
  }
  size_t pending_uploads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return uploads_.size();
  }
  // LastModified of objects written from now on (0 = the real clock).
  void set_now(time_t now) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ = now;
  }
  void set_min_part_size(uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    min_part_size_ = bytes;
  }

  // The quoted hex MD5 S3 uses as the ETag of a single-PUT object.
  static std::string Md5Etag(const std::string& body) { return "\"" + Hex(Md5(body)) + "\""; }

  // ---- s3::Client -------------------------------------------------------------------------

  Status CheckBucket() override {
    std::lock_guard<std::mutex> lock(mu_);
    return Begin(Op::kCheckBucket);
  }

  Result<s3::ListPage> ListObjectsV2(const s3::ListRequest& req) override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.list_requests++;
    if (Status s = Begin(Op::kList); !s.ok()) return s;
    std::string after = req.start_after;
    if (!req.continuation_token.empty()) {
      if (req.continuation_token.rfind("fake:", 0) != 0) {
        return Status::Error(EINVAL, "ListObjectsV2: the continuation token is invalid");
      }
      after = req.continuation_token.substr(5);
    }
    const int max_keys = std::clamp(req.max_keys, 1, 1000);
    s3::ListPage page;
    int count = 0;
    std::string last;
    for (auto it = objects_.lower_bound(req.prefix); it != objects_.end(); ++it) {
      const std::string& key = it->first;
      if (key.compare(0, req.prefix.size(), req.prefix) != 0) break;
      if (!after.empty() && key <= after) continue;
      std::string common;
      if (!req.delimiter.empty()) {
        const size_t d = key.find(req.delimiter, req.prefix.size());
        if (d != std::string::npos) common = key.substr(0, d + req.delimiter.size());
      }
      if (!common.empty() && !page.common_prefixes.empty() &&
          page.common_prefixes.back() == common) {
        continue;
      }
      if (count == max_keys) {
        page.truncated = true;
        page.next_token = "fake:" + last;
        break;
      }
      ++count;
      if (!common.empty()) {
        page.common_prefixes.push_back(common);
        // Resuming after the prefix itself skips every key under it: keys under "a/" sort
        // after "a/" and, for the '/' delimiter, before "a/\xff...".
        last = common + "\xff";
      } else {
        const Object& o = it->second;
        page.objects.push_back({key, o.body.size(), o.etag, o.last_modified, "", {}});
        last = key;
      }
    }
    return page;
  }

  Result<s3::ObjectInfo> HeadObject(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.head_requests++;
    if (Status s = Begin(Op::kHead); !s.ok()) return s;
    auto it = objects_.find(key);
    if (it == objects_.end()) return Fail(ENOENT, "HeadObject " + key + ": key does not exist");
    return Info(key, it->second);
  }

  Result<s3::GetResult> GetObject(const s3::GetRequest& req, s3::Sink& sink) override {
    std::string data;
    s3::GetResult result;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.get_requests++;
      if (Status s = Begin(Op::kGet); !s.ok()) return s;
      auto it = objects_.find(req.key);
      if (it == objects_.end()) return Fail(ENOENT, "GetObject " + req.key + ": no such key");
      const Object& o = it->second;
      result.info = Info(req.key, o);
      if (!req.if_match.empty() && req.if_match != o.etag) {
        return Fail(ESTALE, "GetObject " + req.key + ": ETag no longer matches");
      }
      if (!req.if_none_match.empty() && req.if_none_match == o.etag) {
        stats_.not_modified++;
        result.not_modified = true;
        return result;
      }
      uint64_t first = 0;
      uint64_t len = o.body.size();
      if (req.range) {
        if (req.range->first >= o.body.size() || req.range->last < req.range->first) {
          return Fail(EINVAL, "GetObject " + req.key + ": range is outside the object");
        }
        first = req.range->first;
        len = std::min<uint64_t>(req.range->last, o.body.size() - 1) - first + 1;
      }
      data = o.body.substr(first, len);
      stats_.bytes_received += len;
    }
    // Outside the lock: a sink may be slow, and other calls must not wait for it.
    constexpr size_t kChunk = 64 << 10;
    for (size_t pos = 0; pos < data.size(); pos += kChunk) {
      Status s = sink.Write(data.data() + pos, std::min(kChunk, data.size() - pos));
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        stats_.errors++;
        return s;
      }
    }
    result.bytes = data.size();
    return result;
  }

  Result<std::string> PutObject(const std::string& key, const s3::FileRegion& body,
                                const s3::PutOptions& options) override {
    Result<std::string> data = ReadRegion(body);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.put_requests++;
    if (Status s = Begin(Op::kPut); !s.ok()) return s;
    if (!data.ok()) return FailWith(data.status());
    stats_.bytes_sent += data->size();
    return Store(key, *data, options.metadata, options.content_type, Md5Etag(*data));
  }

  Result<std::string> CreateMultipartUpload(const std::string& key,
                                            const s3::PutOptions& options) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = Begin(Op::kCreateMultipart); !s.ok()) return s;
    const std::string id = "upload-" + std::to_string(++next_upload_);
    uploads_[id] = Upload{key, options, {}};
    return id;
  }

  Result<std::string> UploadPart(const std::string& key, const std::string& upload_id,
                                 int part_number, const s3::FileRegion& body) override {
    Result<std::string> data = ReadRegion(body);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.put_requests++;
    if (Status s = Begin(Op::kUploadPart); !s.ok()) return s;
    if (!data.ok()) return FailWith(data.status());
    stats_.bytes_sent += data->size();
    return AddPart(key, upload_id, part_number, std::move(*data));
  }

  Result<std::string> UploadPartCopy(const std::string& key, const std::string& upload_id,
                                     int part_number, const std::string& source_key,
                                     const s3::ByteRange& range) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = Begin(Op::kUploadPartCopy); !s.ok()) return s;
    auto src = objects_.find(source_key);
    if (src == objects_.end()) return Fail(ENOENT, "UploadPartCopy: no such key " + source_key);
    const std::string& b = src->second.body;
    if (range.last < range.first || range.last >= b.size()) {
      return Fail(EINVAL, "UploadPartCopy: range is outside " + source_key);
    }
    return AddPart(key, upload_id, part_number,
                   b.substr(range.first, range.last - range.first + 1));
  }

  Result<std::string> CompleteMultipartUpload(
      const std::string& key, const std::string& upload_id,
      const std::vector<s3::CompletedPart>& parts) override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.put_requests++;
    if (Status s = Begin(Op::kComplete); !s.ok()) return s;
    auto up = uploads_.find(upload_id);
    if (up == uploads_.end() || up->second.key != key) {
      return Fail(ENOENT, "CompleteMultipartUpload " + key + ": no such upload");
    }
    if (parts.empty()) return Fail(EINVAL, "CompleteMultipartUpload: no parts");
    std::string body;
    std::string md5s;
    int previous = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      const s3::CompletedPart& p = parts[i];
      auto part = up->second.parts.find(p.part_number);
      if (p.part_number <= previous) return Fail(EINVAL, "CompleteMultipartUpload: part order");
      if (part == up->second.parts.end() || part->second.etag != p.etag) {
        return Fail(EINVAL, "CompleteMultipartUpload: part " + std::to_string(p.part_number) +
                                " is missing or its ETag differs");
      }
      if (i + 1 < parts.size() && part->second.data.size() < min_part_size_) {
        return Fail(EINVAL, "CompleteMultipartUpload: part " + std::to_string(p.part_number) +
                                " is smaller than the minimum part size");
      }
      previous = p.part_number;
      body += part->second.data;
      md5s += Md5(part->second.data);
    }
    const std::string etag = "\"" + Hex(Md5(md5s)) + "-" + std::to_string(parts.size()) + "\"";
    Upload upload = std::move(up->second);
    uploads_.erase(up);
    return Store(key, body, upload.options.metadata, upload.options.content_type, etag);
  }

  Status AbortMultipartUpload(const std::string& key, const std::string& upload_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = Begin(Op::kAbort); !s.ok()) return s;
    auto up = uploads_.find(upload_id);
    if (up == uploads_.end() || up->second.key != key) {
      return Fail(ENOENT, "AbortMultipartUpload " + key + ": no such upload");
    }
    uploads_.erase(up);
    return Status::Ok();
  }

  Result<std::string> CopyObject(const std::string& source_key, const std::string& dest_key,
                                 const std::optional<s3::PutOptions>& options) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = Begin(Op::kCopy); !s.ok()) return s;
    auto src = objects_.find(source_key);
    if (src == objects_.end()) return Fail(ENOENT, "CopyObject: no such key " + source_key);
    if (source_key == dest_key && !options) {
      return Fail(EINVAL, "CopyObject: copying an object to itself needs new metadata");
    }
    const Object o = src->second;  // copy: dest may be the same entry
    if (options) return Store(dest_key, o.body, options->metadata, options->content_type, o.etag);
    return Store(dest_key, o.body, o.metadata, o.content_type, o.etag);
  }

  Status DeleteObject(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = Begin(Op::kDelete); !s.ok()) return s;
    objects_.erase(key);
    return Status::Ok();
  }

  Result<std::vector<s3::DeleteError>> DeleteObjects(
      const std::vector<std::string>& keys) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = Begin(Op::kDeleteObjects); !s.ok()) return s;
    for (const std::string& k : keys) objects_.erase(k);
    return std::vector<s3::DeleteError>{};
  }

  const s3::ClientStats& stats() const override { return stats_; }

 private:
  struct Part {
    std::string data;
    std::string etag;
  };
  struct Upload {
    std::string key;
    s3::PutOptions options;
    std::map<int, Part> parts;
  };
  struct Failure {
    int remaining = 0;
    Status status;
  };

  static size_t Index(Op op) { return static_cast<size_t>(op); }

  static std::string Md5(const std::string& data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), out, &len, EVP_md5(), nullptr);
    return std::string(reinterpret_cast<char*>(out), len);
  }
  static std::string Hex(const std::string& bytes) {
    std::string out;
    char buf[3];
    for (unsigned char c : bytes) {
      std::snprintf(buf, sizeof(buf), "%02x", c);
      out += buf;
    }
    return out;
  }

  static Result<std::string> ReadRegion(const s3::FileRegion& r) {
    std::string data(r.length, '\0');
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n =
          pread(r.fd, data.data() + done, data.size() - done, static_cast<off_t>(r.offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::Error(errno, "cannot read the upload body");
      if (n == 0) return Status::Error(EIO, "upload body file is shorter than the region");
      done += static_cast<size_t>(n);
    }
    return data;
  }

  // Counts the call and applies an injected failure. Requires mu_.
  Status Begin(Op op) {
    stats_.requests++;
    calls_[Index(op)]++;
    Failure& f = failures_[Index(op)];
    if (f.remaining > 0) {
      f.remaining--;
      stats_.errors++;
      return f.status;
    }
    return Status::Ok();
  }
  Status Fail(int code, const std::string& message) {
    return FailWith(Status::Error(code, message));
  }
  Status FailWith(Status s) {
    stats_.errors++;
    return s;
  }

  s3::ObjectInfo Info(const std::string& key, const Object& o) const {
    return {key, o.body.size(), o.etag, o.last_modified, o.content_type, o.metadata};
  }

  // Requires mu_.
  std::string Store(const std::string& key, std::string body, s3::Metadata metadata,
                    std::string content_type, std::string etag) {
    Object& o = objects_[key];
    o.body = std::move(body);
    o.etag = std::move(etag);
    o.last_modified = now_ != 0 ? now_ : time(nullptr);
    o.metadata = std::move(metadata);
    o.content_type = std::move(content_type);
    return o.etag;
  }

  // Requires mu_.
  Result<std::string> AddPart(const std::string& key, const std::string& upload_id, int part_number,
                              std::string data) {
    auto up = uploads_.find(upload_id);
    if (up == uploads_.end() || up->second.key != key) {
      return Fail(ENOENT, "UploadPart " + key + ": no such upload");
    }
    if (part_number < 1 || part_number > 10000) return Fail(EINVAL, "invalid part number");
    std::string etag = Md5Etag(data);
    up->second.parts[part_number] = Part{std::move(data), etag};
    return etag;
  }

  const std::string bucket_;
  mutable std::mutex mu_;
  // All below guarded by mu_ (stats_ counters are atomics, read without it).
  std::map<std::string, Object> objects_;
  std::map<std::string, Upload> uploads_;
  int next_upload_ = 0;
  time_t now_ = 0;
  uint64_t min_part_size_ = 5ull << 20;
  std::array<int, static_cast<size_t>(Op::kCount)> calls_{};
  std::array<Failure, static_cast<size_t>(Op::kCount)> failures_{};
  s3::ClientStats stats_;
};

}  // namespace s3cachefs::testing
