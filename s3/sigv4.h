// AWS Signature Version 4 for S3 with the Authorization header
// (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html).
//
// Pure functions: the caller supplies the time, so the documented examples are unit tests.
#pragma once

#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "s3/config.h"

namespace s3cachefs::s3 {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct SigningRequest {
  std::string method;           // "GET", "PUT", ...
  std::string canonical_uri;    // path, already UriEncoded ("/", "/bucket/a%20b")
  std::string canonical_query;  // from CanonicalQueryString(); "" when none
  HeaderList headers;           // headers to sign (any case); must include host
  std::string payload_hash;     // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
};

// "20130524T000000Z" for t (UTC).
std::string AmzDate(time_t t);

// The canonical request: method, URI, query, canonical headers (lower-case names, trimmed values
// with inner runs of spaces folded, sorted, duplicates joined by ','), signed header names,
// payload hash.
std::string CanonicalRequest(const SigningRequest& request);
// "host;range;x-amz-date": the sorted lower-case names of request.headers.
std::string SignedHeaderNames(const SigningRequest& request);
std::string StringToSign(const std::string& amz_date, const std::string& region,
                         const std::string& canonical_request);
// HMAC chain "AWS4"+secret -> date -> region -> "s3" -> "aws4_request" (raw bytes).
std::string SigningKey(const std::string& secret, const std::string& date8,
                       const std::string& region);

// Signs request in place: adds x-amz-date, x-amz-content-sha256 (= payload_hash) and, with a
// session token, x-amz-security-token to its headers, then returns the Authorization value.
// Anonymous credentials: headers are left alone and "" is returned (send it unsigned).
std::string SignRequest(SigningRequest& request, const Credentials& credentials,
                        const std::string& region, time_t now);

}  // namespace s3cachefs::s3
