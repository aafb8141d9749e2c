#include "s3/crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace s3cachefs::s3 {

namespace {

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

std::string Digest(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

}  // namespace

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xF]);
  }
  return out;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Sha256(std::string_view data) {
  return Digest(EVP_sha256(), data);
}

std::string Sha256Hex(std::string_view data) {
  return HexEncode(Sha256(data));
}

std::string Md5(std::string_view data) {
  return Digest(EVP_md5(), data);
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

Result<std::string> Sha256HexOfRegion(const FileRegion& region) {
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return Status::Error(ENOMEM, "cannot create a SHA-256 context");
  }
  // Sized to the region (a 4 KiB file does not need a 1 MiB buffer) and left uninitialised:
  // zeroing a fresh 1 MiB for every small upload cost more than hashing it.
  const size_t buf_size = static_cast<size_t>(std::clamp<uint64_t>(region.length, 1, 1 << 20));
  std::unique_ptr<char[]> buf = std::make_unique_for_overwrite<char[]>(buf_size);
  uint64_t done = 0;
  while (done < region.length) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf_size, region.length - done));
    const ssize_t n = pread(region.fd, buf.get(), want, static_cast<off_t>(region.offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      return Status::Error(err, std::string("cannot read the upload body: ") + strerror(err));
    }
    if (n == 0) {
      return Status::Error(EIO, "upload body file is shorter than the region to send");
    }
    EVP_DigestUpdate(ctx.get(), buf.get(), static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), out, &len);
  return HexEncode(std::string_view(reinterpret_cast<char*>(out), len));
}

}  // namespace s3cachefs::s3
