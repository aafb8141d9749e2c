// HTTP transport on libcurl: a bounded pool of reusable easy handles (each keeps its keep-alive
// connection between requests), with bodies streamed from files and to sinks.
//
// Only s3/ sees libcurl; this header does not include it.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "s3/client.h"
#include "s3/errors.h"
#include "s3/sigv4.h"

namespace s3cachefs::s3 {

struct CaseInsensitiveLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using ResponseHeaders = std::map<std::string, std::string, CaseInsensitiveLess>;

struct HttpOptions {
  std::string ca_bundle;  // "" = curl's default store
  bool verify_tls = true;
  long connect_timeout_ms = 10000;
  long low_speed_limit = 1;
  long low_speed_time_s = 30;
  int max_connections = 32;
  std::string user_agent;
};

struct HttpRequest {
  std::string method;  // GET, HEAD, PUT, POST, DELETE
  std::string url;
  HeaderList headers;  // sent verbatim (Host and Authorization included)
  // At most one body; none means an empty body (Content-Length: 0 for PUT/POST).
  const std::string* body = nullptr;      // small in-memory body (XML)
  const FileRegion* file_body = nullptr;  // streamed with pread, never loaded whole
};

struct HttpResponse {
  // Set when no complete HTTP answer arrived.
  bool transport_failed = false;
  TransportFailure failure = TransportFailure::kOther;
  std::string transport_message;  // curl's explanation
  // Set when the sink or the body file failed; the transfer was aborted because of it.
  Status local_error;

  long status = 0;
  ResponseHeaders headers;  // of the final answer (1xx answers are dropped)
  std::string error_body;   // body of a non-2xx answer (truncated at 64 KiB)
  uint64_t body_bytes = 0;  // 2xx body bytes handed to the sink
  uint64_t bytes_sent = 0;  // request body bytes read from the file/string
};

// Parses one raw header line into headers; a status line ("HTTP/1.1 200 OK") clears them and sets
// status. Returns false for lines that are neither (the blank end-of-headers line included).
bool ParseHeaderLine(const std::string& line, long* status, ResponseHeaders* headers);

class HttpClient {
 public:
  // Fails when the CA bundle is set but unreadable (only checked for TLS endpoints by callers).
  static Result<std::unique_ptr<HttpClient>> Create(const HttpOptions& options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // One attempt, no retries. 2xx bodies are written to sink (discarded when sink is null); other
  // bodies are kept in error_body. Blocks while max_connections requests are in flight.
  // Thread-safe.
  HttpResponse Perform(const HttpRequest& request, Sink* sink);

 private:
  struct Handle;
  explicit HttpClient(const HttpOptions& options);
  std::unique_ptr<Handle> Acquire();
  void Release(std::unique_ptr<Handle> handle);

  const HttpOptions options_;
  struct Share;
  std::unique_ptr<Share> share_;  // DNS cache and TLS sessions shared by all handles

  std::mutex mu_;
  std::condition_variable idle_cv_;
  std::vector<std::unique_ptr<Handle>> idle_;  // guarded by mu_
  int total_ = 0;                              // handles alive; guarded by mu_
};

}  // namespace s3cachefs::s3
