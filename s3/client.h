// s3::Client: the S3 operations s3cachefs needs, as an abstract interface.
//
// The real implementation (CurlClient, s3/curl_client.h) speaks HTTP with SigV4; tests of the
// layers above use an in-memory fake. Keys are relative to the bucket the client was made for and
// are passed unencoded (any UTF-8, including spaces, '+', '%', '//'). Nothing here knows about
// files, paths or caching; a "sink" or a file descriptor range is the only I/O.
//
// Thread safety: every method of a Client may be called from many threads at once.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "s3/status.h"

namespace s3cachefs::s3 {

// User metadata: x-amz-meta-<name> headers, names lower-case and without the prefix.
using Metadata = std::map<std::string, std::string>;

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;         // whole object size (from Content-Range on ranged GETs)
  std::string etag;          // as S3 sends it, including the quotes
  time_t last_modified = 0;  // seconds since the epoch, UTC
  std::string content_type;  // HEAD/GET only
  Metadata metadata;         // HEAD/GET only
};

struct ListRequest {
  std::string prefix;
  std::string delimiter;           // "" for a flat (recursive) listing
  std::string continuation_token;  // from ListPage::next_token
  std::string start_after;
  int max_keys = 1000;
};

struct ListPage {
  std::vector<ObjectInfo> objects;           // key, size, etag, last_modified
  std::vector<std::string> common_prefixes;  // full prefixes, ending in the delimiter
  bool truncated = false;
  std::string next_token;  // continuation token when truncated
};

// Receives a response body as it streams in. Returning an error aborts the transfer; the
// request then fails with that status (and is not retried).
class Sink {
 public:
  virtual ~Sink() = default;
  virtual Status Write(const char* data, size_t size) = 0;
  // Called before a retried attempt re-sends the body from its start; a sink that cannot
  // restart returns an error (the retry is then abandoned).
  virtual Status Reset() = 0;
};

// Writes the body with pwrite() to fd starting at offset (no buffering of whole objects).
class FdSink : public Sink {
 public:
  FdSink(int fd, off_t offset) : fd_(fd), start_(offset), pos_(offset) {}
  Status Write(const char* data, size_t size) override;
  Status Reset() override;
  uint64_t written() const { return static_cast<uint64_t>(pos_ - start_); }

 private:
  int fd_;
  off_t start_;
  off_t pos_;
};

// Collects the body in memory: for small bodies only (tests, XML).
class StringSink : public Sink {
 public:
  Status Write(const char* data, size_t size) override;
  Status Reset() override;
  const std::string& data() const { return data_; }

 private:
  std::string data_;
};

struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive, as in HTTP
};

struct GetRequest {
  std::string key;
  std::optional<ByteRange> range;
  std::string if_none_match;  // an ETag (with quotes); "" = unconditional
  std::string if_match;       // an ETag; a mismatch fails with ESTALE (412 PreconditionFailed)
};

struct GetResult {
  bool not_modified = false;  // 304: nothing was written to the sink
  ObjectInfo info;            // headers of the response (etag, size of the whole object, ...)
  uint64_t bytes = 0;         // body bytes delivered to the sink
};

// A region of a local file to upload as a body. The file is read with pread(); the caller keeps
// fd open and the region unchanged until the call returns.
struct FileRegion {
  int fd = -1;
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct PutOptions {
  Metadata metadata;
  std::string content_type;
};

struct CompletedPart {
  int part_number = 0;
  std::string etag;
};

struct DeleteError {
  std::string key;
  Status status;
};

// Request and byte counters, for tests, benchmarks and `cache stats`. Monotonic.
struct ClientStats {
  std::atomic<uint64_t> requests{0};        // every HTTP attempt, retries included
  std::atomic<uint64_t> get_requests{0};    // GetObject attempts
  std::atomic<uint64_t> not_modified{0};    // 304 answers
  std::atomic<uint64_t> bytes_received{0};  // GET body bytes
  std::atomic<uint64_t> bytes_sent{0};      // PUT/UploadPart body bytes
  std::atomic<uint64_t> list_requests{0};
  std::atomic<uint64_t> head_requests{0};
  std::atomic<uint64_t> put_requests{0};  // PutObject + UploadPart + Complete
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> errors{0};  // requests that finally failed
};

class Client {
 public:
  virtual ~Client() = default;

  // Checks that the bucket exists and the credentials may list it. Errors name the cause:
  // ENOENT "bucket X does not exist", EACCES "access denied (check credentials)", a wrong
  // region ("bucket X is in region Y; use region=Y"), or the endpoint being unreachable.
  virtual Status CheckBucket() = 0;

  virtual Result<ListPage> ListObjectsV2(const ListRequest& request) = 0;

  // ENOENT when the key does not exist.
  virtual Result<ObjectInfo> HeadObject(const std::string& key) = 0;

  // Streams the body (or the range) into sink. A 304 is a success with not_modified set.
  // A range past the end of the object fails with EINVAL (416).
  virtual Result<GetResult> GetObject(const GetRequest& request, Sink& sink) = 0;

  // Uploads body as one PUT (S3 limit 5 GiB). Returns the ETag S3 answered with.
  virtual Result<std::string> PutObject(const std::string& key, const FileRegion& body,
                                        const PutOptions& options) = 0;

  // Multipart upload primitives. Parts are numbered from 1; all but the last must be >= 5 MiB.
  virtual Result<std::string> CreateMultipartUpload(const std::string& key,
                                                    const PutOptions& options) = 0;
  virtual Result<std::string> UploadPart(const std::string& key, const std::string& upload_id,
                                         int part_number, const FileRegion& body) = 0;
  // Copies bytes [range] of source_key as a part (UploadPartCopy).
  virtual Result<std::string> UploadPartCopy(const std::string& key, const std::string& upload_id,
                                             int part_number, const std::string& source_key,
                                             const ByteRange& range) = 0;
  virtual Result<std::string> CompleteMultipartUpload(const std::string& key,
                                                      const std::string& upload_id,
                                                      const std::vector<CompletedPart>& parts) = 0;
  virtual Status AbortMultipartUpload(const std::string& key, const std::string& upload_id) = 0;

  // Server-side copy. With options set, metadata is replaced (REPLACE directive); otherwise it is
  // copied from the source. Returns the new ETag. Only for sources up to 5 GiB: see
  // CopyObjectAnySize in s3/transfer.h for larger ones.
  virtual Result<std::string> CopyObject(const std::string& source_key, const std::string& dest_key,
                                         const std::optional<PutOptions>& options) = 0;

  // Deleting a missing key succeeds, as in S3.
  virtual Status DeleteObject(const std::string& key) = 0;
  // Up to 1000 keys per request (larger lists are split). Returns the keys that failed.
  virtual Result<std::vector<DeleteError>> DeleteObjects(const std::vector<std::string>& keys) = 0;

  virtual const ClientStats& stats() const = 0;
};

}  // namespace s3cachefs::s3
