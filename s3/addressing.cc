#include "s3/addressing.h"

#include <arpa/inet.h>

#include <cctype>

#include "s3/uri.h"

namespace s3cachefs::s3 {

Result<Endpoint> ParseEndpoint(const std::string& url) {
  auto bad = [&url](const std::string& why) {
    return Status::Error(EINVAL, "invalid endpoint URL \"" + url + "\": " + why);
  };
  Endpoint ep;
  ep.url = url;
  const size_t sep = url.find("://");
  if (sep == std::string::npos) return bad("expected scheme://host[:port]");
  ep.scheme = url.substr(0, sep);
  for (char& c : ep.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ep.scheme != "http" && ep.scheme != "https") return bad("scheme must be http or https");
  std::string rest = url.substr(sep + 3);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find_first_of("/?#@") != std::string::npos) {
    return bad("a path, query or user name is not supported");
  }
  std::string port;
  if (!rest.empty() && rest[0] == '[') {
    const size_t close = rest.find(']');
    if (close == std::string::npos) return bad("unterminated IPv6 address");
    ep.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return bad("junk after IPv6 address");
      port = rest.substr(close + 2);
    }
  } else {
    const size_t colon = rest.rfind(':');
    ep.host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (ep.host.empty()) return bad("no host");
  if (!port.empty() || rest.find(':') != std::string::npos) {
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != port.npos) {
      return bad("invalid port");
    }
    ep.port = std::stoi(port);
    if (ep.port < 1 || ep.port > 65535) return bad("invalid port");
  }
  for (char& c : ep.host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ep;
}

bool IsIpOrLocalhost(const std::string& host) {
  unsigned char buf[sizeof(struct in6_addr)];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1) {
    return true;
  }
  const std::string suffix = ".localhost";
  return host == "localhost" ||
         (host.size() > suffix.size() &&
          host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0);
}

bool IsVirtualHostableBucket(const std::string& bucket, bool https) {
  if (bucket.size() < 3 || bucket.size() > 63) return false;
  for (char c : bucket) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.')) {
      return false;
    }
  }
  if (!std::isalnum(static_cast<unsigned char>(bucket.front())) ||
      !std::isalnum(static_cast<unsigned char>(bucket.back()))) {
    return false;
  }
  if (bucket.find("..") != std::string::npos || bucket.find(".-") != std::string::npos ||
      bucket.find("-.") != std::string::npos) {
    return false;
  }
  if (IsIpOrLocalhost(bucket)) return false;
  return !(https && bucket.find('.') != std::string::npos);
}

bool UseVirtualHost(AddressingStyle style, const Endpoint& endpoint, const std::string& bucket) {
  switch (style) {
    case AddressingStyle::kPath:
      return false;
    case AddressingStyle::kVirtual:
      return true;
    case AddressingStyle::kAuto:
      break;
  }
  return !IsIpOrLocalhost(endpoint.host) && IsVirtualHostableBucket(bucket, endpoint.https());
}

RequestTarget MakeTarget(const Endpoint& endpoint, bool virtual_host, const std::string& bucket,
                         const std::string& key, const std::string& canonical_query) {
  RequestTarget t;
  std::string host =
      endpoint.host.find(':') != std::string::npos ? "[" + endpoint.host + "]" : endpoint.host;
  if (virtual_host) host = bucket + "." + host;
  const bool default_port = endpoint.port == 0 || (endpoint.https() && endpoint.port == 443) ||
                            (!endpoint.https() && endpoint.port == 80);
  t.host_header = default_port ? host : host + ":" + std::to_string(endpoint.port);
  t.canonical_uri = virtual_host ? "/" : "/" + UriEncode(bucket, false) + (key.empty() ? "" : "/");
  t.canonical_uri += UriEncode(key, /*keep_slash=*/true);
  t.url = endpoint.scheme + "://" + t.host_header + t.canonical_uri;
  if (!canonical_query.empty()) t.url += "?" + canonical_query;
  return t;
}

}  // namespace s3cachefs::s3
