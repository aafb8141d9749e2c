// Small POSIX helpers for the cache layer: an owning file descriptor, directory creation with
// the cache's permissions, directory sync and file copy, and the hashes that name and verify cache
// files (OpenSSL EVP).
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "s3/status.h"

namespace s3cachefs::cache {

// Owns a file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A Status for a failed system call: errno's code with "<what> <path>: <strerror>".
Status ErrnoStatus(int err, const std::string& what, const std::string& path);

// Creates path as a directory with mode 0700 if it does not exist. Fails with the path named
// when it cannot be created or exists and is not a directory.
Status EnsureDir(const std::string& path);

// fsync()s the directory dir, so that names created or renamed in it survive a power loss.
Status SyncDir(const std::string& dir);

// The directory part of path ("a/b/c" -> "a/b").
std::string ParentDir(const std::string& path);

// Copies size bytes from the start of src to the start of dst with pread/pwrite. Errors
// (ENOSPC, a short source) name dst_path.
Status CopyFile(int src, int dst, uint64_t size, const std::string& dst_path);

// Lower-case hex SHA-256 of data.
std::string Sha256Hex(std::string_view data);

// Incremental MD5 over data fed in order. Used to check single-part ETags as a download
// arrives. Not thread-safe.
class Md5Stream {
 public:
  Md5Stream();
  ~Md5Stream();
  Md5Stream(const Md5Stream&) = delete;
  Md5Stream& operator=(const Md5Stream&) = delete;

  void Update(const char* data, size_t size);
  // Lower-case hex digest of everything fed so far. Call once.
  std::string FinishHex();

 private:
  EVP_MD_CTX* ctx_;
};

// True when etag (with or without quotes) is a plain MD5 hex, i.e. the object was uploaded in
// one part without SSE-KMS: then it is the MD5 of the body. Multipart ETags contain a '-'.
bool IsMd5Etag(std::string_view etag);

// etag without surrounding quotes, for comparisons that must not care how it was quoted.
std::string_view UnquoteEtag(std::string_view etag);

}  // namespace s3cachefs::cache
