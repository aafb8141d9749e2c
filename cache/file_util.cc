#include "cache/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace s3cachefs::cache {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  // close() errors are not actionable for read-only or already-synced files.
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Status ErrnoStatus(int err, const std::string& what, const std::string& path) {
  return Status::Error(err, what + " " + path + ": " + std::strerror(err));
}

Status EnsureDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0) return Status::Ok();
  int err = errno;
  struct stat st;
  if (err == EEXIST && ::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::Ok();
    return Status::Error(ENOTDIR, "cache path " + path + " exists and is not a directory");
  }
  return ErrnoStatus(err, "cannot create directory", path);
}

Status SyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0) return ErrnoStatus(errno, "cannot sync", dir);
  return Status::Ok();
}

std::string ParentDir(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

Status CopyFile(int src, int dst, uint64_t size, const std::string& dst_path) {
  std::vector<char> buffer(static_cast<size_t>(std::clamp<uint64_t>(size, 1, 1 << 20)));
  uint64_t pos = 0;
  while (pos < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - pos));
    ssize_t n = ::pread(src, buffer.data(), want, static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Error(EIO, "short read while copying into " + dst_path);
    size_t done = 0;
    while (done < static_cast<size_t>(n)) {
      ssize_t w = ::pwrite(dst, buffer.data() + done, static_cast<size_t>(n) - done,
                           static_cast<off_t>(pos + done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ErrnoStatus(errno, "cannot write", dst_path);
      done += static_cast<size_t>(w);
    }
    pos += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

Md5Stream::Md5Stream() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(ctx_, EVP_md5(), nullptr);
}

Md5Stream::~Md5Stream() {
  EVP_MD_CTX_free(ctx_);
}

void Md5Stream::Update(const char* data, size_t size) {
  EVP_DigestUpdate(ctx_, data, size);
}

std::string Md5Stream::FinishHex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx_, digest, &length);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

std::string_view UnquoteEtag(std::string_view etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return etag;
}

bool IsMd5Etag(std::string_view etag) {
  etag = UnquoteEtag(etag);
  if (etag.size() != 32) return false;
  for (char c : etag) {
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return false;
  }
  return true;
}

}  // namespace s3cachefs::cache
