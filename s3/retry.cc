#include "s3/retry.h"

#include <algorithm>

namespace s3cachefs::s3 {

bool IsThrottling(long http_status, const std::string& c) {
  return http_status == 503 || http_status == 429 || c == "SlowDown" || c == "Throttling" ||
         c == "ThrottlingException" || c == "RequestLimitExceeded" || c == "TooManyRequests" ||
         c == "RequestThrottled" || c == "ServiceUnavailable";
}

bool IsRetryable(const AttemptOutcome& o, Idempotency idempotency) {
  if (o.transport_failed) {
    switch (o.failure) {
      case TransportFailure::kConnect:
      case TransportFailure::kResolve:
        return true;  // nothing was sent
      case TransportFailure::kTimeout:
      case TransportFailure::kSend:
      case TransportFailure::kOther:
        return idempotency == Idempotency::kIdempotent;
      case TransportFailure::kTls:
        return false;  // certificate problems do not fix themselves
    }
    return false;
  }
  if (IsThrottling(o.http_status, o.s3_code)) return true;
  if (o.error_in_200) return true;
  if (idempotency != Idempotency::kIdempotent) return false;
  // RequestTimeout (400): S3 gave up waiting for our body; InternalError: S3's own failure.
  return o.http_status >= 500 || o.s3_code == "InternalError" || o.s3_code == "RequestTimeout";
}

std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int retry_index,
                                       double unit_random) {
  const int64_t base = std::max<int64_t>(policy.base_delay.count(), 0);
  const int64_t cap = std::max<int64_t>(policy.max_delay.count(), 0);
  int64_t ceiling = base;
  for (int i = 0; i < retry_index && ceiling < cap; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, cap);
  const double r = std::clamp(unit_random, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<int64_t>(r * static_cast<double>(ceiling)));
}

}  // namespace s3cachefs::s3
