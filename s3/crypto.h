// Hashes S3 needs, on OpenSSL: SHA-256 (SigV4 payload and canonical request hashes), HMAC-SHA256
// (the signing key chain) and MD5 (Content-MD5 of DeleteObjects bodies, ETags in the fake).
#pragma once

#include <string>
#include <string_view>

#include "s3/client.h"
#include "s3/status.h"

namespace s3cachefs::s3 {

// Lower-case hex of raw bytes.
std::string HexEncode(std::string_view bytes);
// Standard base64 with padding.
std::string Base64Encode(std::string_view bytes);

std::string Sha256(std::string_view data);  // raw 32 bytes
std::string Sha256Hex(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);  // raw 32 bytes
std::string Md5(std::string_view data);                               // raw 16 bytes

// Hex SHA-256 of the empty string: the payload hash of bodiless requests.
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// Hex SHA-256 of a file region, read with pread() in 1 MiB blocks (the file is never held in
// memory). Fails with the read's errno, or EIO if the file is shorter than the region.
Result<std::string> Sha256HexOfRegion(const FileRegion& region);

}  // namespace s3cachefs::s3
