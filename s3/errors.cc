#include "s3/errors.h"

#include <cerrno>

namespace s3cachefs::s3 {

namespace {

std::string Suffix(const S3Error& e) {
  std::string s = " (";
  s += e.code.empty() ? "HTTP " + std::to_string(e.http_status)
                      : "S3 " + e.code + ", HTTP " + std::to_string(e.http_status);
  if (!e.request_id.empty()) s += ", request id " + e.request_id;
  return s + ")";
}

std::string What(const S3Error& e) {
  if (!e.key.empty()) return "key \"" + e.key + "\"";
  return "bucket " + e.bucket;
}

Status Err(int code, const std::string& text, const S3Error& e) {
  return Status::Error(code, text + Suffix(e));
}

// S3's own sentence when it sent one, else ours.
std::string MessageOr(const S3Error& e, const std::string& fallback) {
  return e.message.empty() ? fallback : e.message;
}

}  // namespace

// Choices worth explaining:
//  - A bucket in another region (301 PermanentRedirect, 400 AuthorizationHeaderMalformed with
//    a region) is EREMOTE: the data exists but lives elsewhere, and the fix is configuration.
//  - Throttling that outlived the retries is EAGAIN, so a caller may try again later.
//  - A bodiless 404 (HEAD) is a missing key, or a missing bucket for bucket-level requests.
Status MapS3Error(const S3Error& e) {
  const std::string& c = e.code;
  const long s = e.http_status;

  if (c == "NoSuchBucket" || (s == 404 && e.key.empty() && c.empty())) {
    return Err(ENOENT, "bucket " + e.bucket + " does not exist", e);
  }
  if (c == "NoSuchKey" || (s == 404 && c.empty())) {
    return Err(ENOENT, What(e) + " does not exist", e);
  }
  if (c == "NoSuchUpload") {
    return Err(ENOENT, "multipart upload of " + What(e) + " no longer exists", e);
  }
  if (c == "PermanentRedirect" || c == "AuthorizationHeaderMalformed" ||
      c == "IllegalLocationConstraintException" || s == 301 ||
      (s == 400 && !e.region.empty() && e.region != e.configured_region)) {
    if (!e.region.empty()) {
      return Err(EREMOTE,
                 "bucket " + e.bucket + " is in region " + e.region + "; use region=" + e.region,
                 e);
    }
    return Err(EREMOTE, "bucket " + e.bucket + " is in another region or needs another endpoint",
               e);
  }
  if (c == "InvalidAccessKeyId") {
    return Err(EACCES, "credentials rejected: the access key id is unknown", e);
  }
  if (c == "SignatureDoesNotMatch") {
    return Err(EACCES, "signature mismatch: check the secret key", e);
  }
  if (c == "ExpiredToken" || c == "TokenRefreshRequired") {
    return Err(EACCES, "credentials rejected: the session token has expired", e);
  }
  if (c == "InvalidToken") {
    return Err(EACCES, "credentials rejected: the session token is invalid", e);
  }
  if (c == "RequestTimeTooSkewed") {
    return Err(EACCES, "request rejected: the local clock differs from the server's by too much",
               e);
  }
  if (c == "AccessDenied" || c == "AllAccessDisabled" || s == 403) {
    return Err(EACCES, "access denied to " + What(e) + " (check credentials and permissions)", e);
  }
  if (c == "PreconditionFailed" || s == 412) {
    return Err(ESTALE, What(e) + " changed (ETag no longer matches)", e);
  }
  if (c == "InvalidRange" || s == 416) {
    return Err(EINVAL, "range is outside " + What(e), e);
  }
  if (c == "EntityTooLarge") return Err(EFBIG, "object too large for S3", e);
  if (c == "KeyTooLongError") return Err(ENAMETOOLONG, "key is too long for S3", e);
  if (c == "NotImplemented" || s == 501 || c == "MethodNotAllowed" || s == 405) {
    return Err(ENOTSUP, "not supported by this server: " + MessageOr(e, "not implemented"), e);
  }
  if (c == "SlowDown" || c == "Throttling" || c == "ThrottlingException" ||
      c == "RequestLimitExceeded" || c == "TooManyRequests" || s == 503 || s == 429) {
    return Err(EAGAIN, "server is throttling requests; try again later", e);
  }
  if (c == "BucketNotEmpty" || c == "OperationAborted" || s == 409) {
    return Err(EBUSY, MessageOr(e, "conflicting operation in progress"), e);
  }
  if (c == "InvalidArgument" || c == "InvalidRequest" || c == "EntityTooSmall" ||
      c == "InvalidPart" || c == "InvalidPartOrder" || c == "MalformedXML" || s == 411) {
    return Err(EINVAL, "request rejected: " + MessageOr(e, c), e);
  }
  if (c == "InvalidObjectState") {
    return Err(EIO, What(e) + " is archived and must be restored before it can be read", e);
  }
  if (s >= 500) return Err(EIO, "server error: " + MessageOr(e, "internal error"), e);
  return Err(EIO, "request failed: " + MessageOr(e, "unexpected answer"), e);
}

Status MapTransportError(TransportFailure failure, const std::string& curl_message,
                         const std::string& endpoint, const std::string& ca_bundle) {
  switch (failure) {
    case TransportFailure::kConnect:
    case TransportFailure::kResolve:
      return Status::Error(EHOSTUNREACH,
                           "cannot reach endpoint URL " + endpoint + ": " + curl_message);
    case TransportFailure::kTimeout:
      return Status::Error(ETIMEDOUT, "timed out talking to " + endpoint + ": " + curl_message);
    case TransportFailure::kTls:
      return Status::Error(EIO, "TLS failure with " + endpoint + ": " + curl_message +
                                    " (trusted CA certificates: " +
                                    (ca_bundle.empty() ? "the system's store" : ca_bundle) +
                                    "; AWS_CA_BUNDLE or ca_bundle names another file)");
    case TransportFailure::kSend:
      return Status::Error(EIO, "connection to " + endpoint + " failed: " + curl_message);
    case TransportFailure::kOther:
      break;
  }
  return Status::Error(EIO, "request to " + endpoint + " failed: " + curl_message);
}

}  // namespace s3cachefs::s3
