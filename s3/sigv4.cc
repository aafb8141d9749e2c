#include "s3/sigv4.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "s3/crypto.h"

namespace s3cachefs::s3 {

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Trims and folds runs of spaces, as SigV4's Trimall requires.
std::string TrimAll(const std::string& v) {
  std::string out;
  bool in_space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      in_space = !out.empty();
      continue;
    }
    if (in_space) out.push_back(' ');
    in_space = false;
    out.push_back(c);
  }
  return out;
}

// name -> joined values, sorted by name.
std::map<std::string, std::string> CanonicalHeaders(const HeaderList& headers) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : headers) {
    auto [it, inserted] = out.emplace(Lower(name), TrimAll(value));
    if (!inserted) it->second += "," + TrimAll(value);
  }
  return out;
}

}  // namespace

std::string AmzDate(time_t t) {
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string SignedHeaderNames(const SigningRequest& request) {
  std::string out;
  for (const auto& [name, value] : CanonicalHeaders(request.headers)) {
    if (!out.empty()) out.push_back(';');
    out += name;
  }
  return out;
}

std::string CanonicalRequest(const SigningRequest& request) {
  std::string out =
      request.method + "\n" + request.canonical_uri + "\n" + request.canonical_query + "\n";
  for (const auto& [name, value] : CanonicalHeaders(request.headers)) {
    out.append(name).append(":").append(value).append("\n");
  }
  out += "\n" + SignedHeaderNames(request) + "\n" + request.payload_hash;
  return out;
}

std::string StringToSign(const std::string& amz_date, const std::string& region,
                         const std::string& canonical_request) {
  return "AWS4-HMAC-SHA256\n" + amz_date + "\n" + amz_date.substr(0, 8) + "/" + region +
         "/s3/aws4_request\n" + Sha256Hex(canonical_request);
}

std::string SigningKey(const std::string& secret, const std::string& date8,
                       const std::string& region) {
  const std::string k_date = HmacSha256("AWS4" + secret, date8);
  const std::string k_region = HmacSha256(k_date, region);
  const std::string k_service = HmacSha256(k_region, "s3");
  return HmacSha256(k_service, "aws4_request");
}

std::string SignRequest(SigningRequest& request, const Credentials& credentials,
                        const std::string& region, time_t now) {
  if (credentials.anonymous()) return "";
  const std::string amz_date = AmzDate(now);
  request.headers.emplace_back("x-amz-date", amz_date);
  request.headers.emplace_back("x-amz-content-sha256", request.payload_hash);
  if (!credentials.session_token.empty()) {
    request.headers.emplace_back("x-amz-security-token", credentials.session_token);
  }
  const std::string date8 = amz_date.substr(0, 8);
  const std::string to_sign = StringToSign(amz_date, region, CanonicalRequest(request));
  const std::string signature =
      HexEncode(HmacSha256(SigningKey(credentials.secret_access_key, date8, region), to_sign));
  return "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" + date8 + "/" + region +
         "/s3/aws4_request,SignedHeaders=" + SignedHeaderNames(request) + ",Signature=" + signature;
}

}  // namespace s3cachefs::s3
