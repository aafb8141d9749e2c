// Which failed attempts are retried, and how long to wait first. Pure functions, so the policy is
// unit-tested without a network; CurlClient applies them.
#pragma once

#include <chrono>
#include <string>

#include "s3/config.h"
#include "s3/errors.h"

namespace s3cachefs::s3 {

enum class Idempotency {
  // GET, HEAD, PUT, DELETE, UploadPart(Copy), List, DeleteObjects: repeating them is harmless.
  kIdempotent,
  // POST CreateMultipartUpload / CompleteMultipartUpload: a repeat could create a second upload
  // or complete twice. Retried only when the server certainly did not act on the first attempt:
  // the connection was never made, or it answered with throttling (503 / SlowDown), or with an
  // error inside a 200 answer (S3 documents these as "retry the request").
  kNonIdempotent,
};

struct AttemptOutcome {
  bool transport_failed = false;
  TransportFailure failure = TransportFailure::kOther;  // when transport_failed
  long http_status = 0;
  std::string s3_code;        // "" when the answer had no <Error> body
  bool error_in_200 = false;  // 200 answer whose body was an <Error> document
};

// True for S3's throttling answers: 503, 429, and the throttling error codes.
bool IsThrottling(long http_status, const std::string& s3_code);

// Whether the attempt may be repeated (ignoring the attempt budget).
bool IsRetryable(const AttemptOutcome& outcome, Idempotency idempotency);

// Delay before retry number retry_index (0 for the first retry): "full jitter", a uniform pick
// in [0, min(max_delay, base_delay * 2^retry_index)], with unit_random in [0, 1) supplying the
// randomness.
std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int retry_index,
                                       double unit_random);

}  // namespace s3cachefs::s3
