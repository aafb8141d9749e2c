// Parsing the two time formats S3 answers with: ISO 8601 in XML bodies (LastModified) and
// RFC 1123 in HTTP headers (Last-Modified).
#pragma once

#include <ctime>
#include <optional>
#include <string>

namespace s3cachefs::s3 {

// "2009-10-12T17:50:30.000Z" (fraction and 'Z' optional) -> seconds since the epoch (UTC).
std::optional<time_t> ParseIso8601(const std::string& s);

// "Wed, 12 Oct 2009 17:50:00 GMT" -> seconds since the epoch.
std::optional<time_t> ParseHttpDate(const std::string& s);

}  // namespace s3cachefs::s3
