// Where a request goes: the endpoint URL parsed, and the choice between virtual-hosted
// (bucket.host/key) and path-style (host/bucket/key) addressing.
#pragma once

#include <string>

#include "s3/config.h"
#include "s3/status.h"

namespace s3cachefs::s3 {

struct Endpoint {
  std::string scheme;  // "http" or "https"
  std::string host;    // without brackets for IPv6 ("::1")
  int port = 0;        // 0 = the scheme's default
  std::string url;     // as given, for messages
  bool https() const { return scheme == "https"; }
};

// Parses "scheme://host[:port][/]". A path, query, or user info is refused (S3 endpoints have
// none), as is any scheme but http and https.
Result<Endpoint> ParseEndpoint(const std::string& url);

// True for IPv4/IPv6 literals and "localhost" (and its subdomains).
bool IsIpOrLocalhost(const std::string& host);

// A bucket usable as a DNS label: 3-63 chars of [a-z0-9.-], starting and ending alphanumeric, no
// "..", not an IP address; with https also no '.' (it would break the *.s3 wildcard certificate).
bool IsVirtualHostableBucket(const std::string& bucket, bool https);

// kAuto: path-style for IP/localhost endpoints and for buckets that cannot be a host name.
bool UseVirtualHost(AddressingStyle style, const Endpoint& endpoint, const std::string& bucket);

// Where one request goes.
struct RequestTarget {
  std::string url;            // full URL with the query string
  std::string host_header;    // value of Host (host[:port]), as signed
  std::string canonical_uri;  // the encoded path, as signed
};

// Builds the target for key ("" for bucket-level requests) and an already canonical query.
RequestTarget MakeTarget(const Endpoint& endpoint, bool virtual_host, const std::string& bucket,
                         const std::string& key, const std::string& canonical_query);

}  // namespace s3cachefs::s3
