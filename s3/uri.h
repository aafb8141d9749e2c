// Percent-encoding as S3 and SigV4 need it: object keys in paths, query strings, and the
// url-encoded keys that ListObjectsV2 returns with encoding-type=url.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace s3cachefs::s3 {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// SigV4 UriEncode: keeps the unreserved bytes A-Z a-z 0-9 - . _ ~ and writes every other byte as
// %XX (upper-case hex). With keep_slash, '/' is kept too (object key paths); query names and
// values encode it. Works byte-wise, so any UTF-8 (or any byte string) round-trips.
std::string UriEncode(std::string_view s, bool keep_slash);

// Reverses %XX escapes. With plus_is_space, '+' decodes to ' ' (form encoding, which S3 uses for
// encoding-type=url listings). Malformed escapes are kept literally.
std::string UriDecode(std::string_view s, bool plus_is_space);

// The SigV4 canonical query string: each name and value UriEncoded, pairs sorted by encoded name
// then encoded value, joined as n=v&n=v (a valueless parameter is "n="). The same string is sent
// on the wire, so what is signed is exactly what the server sees.
std::string CanonicalQueryString(const QueryParams& params);

}  // namespace s3cachefs::s3
