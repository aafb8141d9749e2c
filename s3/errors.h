// The one place where S3 and transport failures become Status values with an errno.
//
// Messages name the cause in words a user can act on ("bucket X does not exist", "signature
// mismatch: check the secret key") and end with S3's code and request id for support; they never
// contain credentials, signatures or the string to sign.
#pragma once

#include <string>

#include "s3/status.h"

namespace s3cachefs::s3 {

// An S3 error answer: HTTP status plus what the <Error> body and headers said.
struct S3Error {
  long http_status = 0;
  std::string code;  // "" for bodiless answers (HEAD)
  std::string message;
  std::string request_id;
  std::string region;             // x-amz-bucket-region header or <Region>/<BucketRegion>
  std::string configured_region;  // the region the request was signed for
  std::string bucket;             // the bucket of the request, for messages
  std::string key;                // the key of the request ("" for bucket-level requests)
};

// Maps an S3 error to a Status. See errors.cc for the table.
Status MapS3Error(const S3Error& error);

// Why a request got no HTTP answer.
enum class TransportFailure {
  kConnect,  // refused, unreachable, or no route: the request was never sent
  kResolve,  // DNS: never sent
  kTimeout,  // connect or transfer timeout, low-speed limit
  kTls,      // handshake, certificate verification, CA bundle
  kSend,     // connection broke while sending or receiving
  kOther,
};

// "cannot reach endpoint URL <endpoint>: <curl message>" and friends. A TLS failure also names
// the CA certificates it was checked against (ca_bundle, or the system's store when empty) and
// how to trust others.
Status MapTransportError(TransportFailure failure, const std::string& curl_message,
                         const std::string& endpoint, const std::string& ca_bundle = "");

}  // namespace s3cachefs::s3
