#include "s3/retry.h"

#include <gtest/gtest.h>

namespace s3cachefs::s3 {
namespace {

AttemptOutcome Http(long status, std::string code = "") {
  AttemptOutcome o;
  o.http_status = status;
  o.s3_code = std::move(code);
  return o;
}

AttemptOutcome Transport(TransportFailure f) {
  AttemptOutcome o;
  o.transport_failed = true;
  o.failure = f;
  return o;
}

constexpr Idempotency kIdem = Idempotency::kIdempotent;
constexpr Idempotency kNonIdem = Idempotency::kNonIdempotent;

TEST(RetryTest, IdempotentRequests) {
  EXPECT_TRUE(IsRetryable(Http(500, "InternalError"), kIdem));
  EXPECT_TRUE(IsRetryable(Http(502), kIdem));
  EXPECT_TRUE(IsRetryable(Http(503, "SlowDown"), kIdem));
  EXPECT_TRUE(IsRetryable(Http(400, "RequestTimeout"), kIdem));
  EXPECT_TRUE(IsRetryable(Http(400, "Throttling"), kIdem));
  EXPECT_TRUE(IsRetryable(Http(429), kIdem));
  EXPECT_TRUE(IsRetryable(Transport(TransportFailure::kConnect), kIdem));
  EXPECT_TRUE(IsRetryable(Transport(TransportFailure::kTimeout), kIdem));
  EXPECT_TRUE(IsRetryable(Transport(TransportFailure::kSend), kIdem));
  EXPECT_FALSE(IsRetryable(Transport(TransportFailure::kTls), kIdem));
  for (auto [status, code] :
       std::vector<std::pair<long, std::string>>{{404, "NoSuchKey"},
                                                 {403, "AccessDenied"},
                                                 {403, "SignatureDoesNotMatch"},
                                                 {400, "RequestTimeTooSkewed"},
                                                 {412, "PreconditionFailed"},
                                                 {416, "InvalidRange"},
                                                 {301, "PermanentRedirect"},
                                                 {501, "NotImplemented"},
                                                 {404, ""}}) {
    if (status >= 500) continue;
    EXPECT_FALSE(IsRetryable(Http(status, code), kIdem)) << status << " " << code;
  }
}

TEST(RetryTest, NonIdempotentOnlyWhenCertainlyNotApplied) {
  EXPECT_TRUE(IsRetryable(Transport(TransportFailure::kConnect), kNonIdem));
  EXPECT_TRUE(IsRetryable(Transport(TransportFailure::kResolve), kNonIdem));
  EXPECT_TRUE(IsRetryable(Http(503, "SlowDown"), kNonIdem));
  EXPECT_FALSE(IsRetryable(Transport(TransportFailure::kTimeout), kNonIdem));
  EXPECT_FALSE(IsRetryable(Transport(TransportFailure::kSend), kNonIdem));
  EXPECT_FALSE(IsRetryable(Http(500, "InternalError"), kNonIdem));
  AttemptOutcome in200 = Http(500, "InternalError");
  in200.error_in_200 = true;
  EXPECT_TRUE(IsRetryable(in200, kNonIdem));
}

TEST(RetryTest, BackoffIsFullJitterWithCap) {
  RetryPolicy p;
  p.base_delay = std::chrono::milliseconds(100);
  p.max_delay = std::chrono::milliseconds(1000);
  EXPECT_EQ(BackoffDelay(p, 0, 0.0).count(), 0);
  EXPECT_EQ(BackoffDelay(p, 0, 0.5).count(), 50);
  EXPECT_EQ(BackoffDelay(p, 1, 0.5).count(), 100);
  EXPECT_EQ(BackoffDelay(p, 2, 0.999).count(), 399);
  EXPECT_EQ(BackoffDelay(p, 3, 1.0).count(), 800);
  EXPECT_EQ(BackoffDelay(p, 4, 1.0).count(), 1000);   // capped
  EXPECT_EQ(BackoffDelay(p, 60, 1.0).count(), 1000);  // no overflow
  EXPECT_EQ(BackoffDelay(p, 1, 7.0).count(), 200);    // randomness clamped
}

}  // namespace
}  // namespace s3cachefs::s3
