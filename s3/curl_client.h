// CurlClient: the real s3::Client, on libcurl (connection pool, keep-alive, TLS) with SigV4
// signing, XML bodies parsed with pugixml, and bounded retries with exponential backoff and
// jitter for 5xx, throttling (SlowDown, 503) and connection errors on idempotent requests.
#pragma once

#include <memory>

#include "s3/client.h"
#include "s3/config.h"

namespace s3cachefs::s3 {

// Fails only on an invalid configuration (bad endpoint URL, unreadable CA bundle).
Result<std::unique_ptr<Client>> CreateCurlClient(const ClientConfig& config);

}  // namespace s3cachefs::s3
