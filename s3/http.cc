#include "s3/http.h"

#include <curl/curl.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace s3cachefs::s3 {

namespace {

constexpr size_t kMaxErrorBody = 64 << 10;

void GlobalInitOnce() {
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)rc;  // a failure surfaces as curl_easy_init() returning null
}

struct EasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

TransportFailure Classify(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return TransportFailure::kConnect;
    case CURLE_COULDNT_RESOLVE_HOST:
      return TransportFailure::kResolve;
    case CURLE_OPERATION_TIMEDOUT:
      return TransportFailure::kTimeout;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_ENGINE_NOTFOUND:
      return TransportFailure::kTls;
    // A handshake cut short is usually the network, not the certificate: retryable.
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
      return TransportFailure::kSend;
    default:
      return TransportFailure::kOther;
  }
}

// Per-attempt state the curl callbacks work on.
struct Transfer {
  const HttpRequest* request = nullptr;
  Sink* sink = nullptr;
  HttpResponse* response = nullptr;
  uint64_t body_pos = 0;  // next request body byte to send
  bool headers_done = false;

  uint64_t BodyLength() const {
    if (request->file_body != nullptr) return request->file_body->length;
    return request->body != nullptr ? request->body->size() : 0;
  }
};

size_t OnHeader(char* data, size_t size, size_t n, void* arg) {
  auto* t = static_cast<Transfer*>(arg);
  ParseHeaderLine(std::string(data, size * n), &t->response->status, &t->response->headers);
  return size * n;
}

size_t OnWrite(char* data, size_t size, size_t n, void* arg) {
  auto* t = static_cast<Transfer*>(arg);
  const size_t len = size * n;
  HttpResponse& r = *t->response;
  if (r.status >= 200 && r.status < 300) {
    if (t->sink != nullptr) {
      Status s = t->sink->Write(data, len);
      if (!s.ok()) {
        r.local_error = s;
        return 0;  // anything but len aborts the transfer
      }
    }
    r.body_bytes += len;
  } else if (r.error_body.size() < kMaxErrorBody) {
    r.error_body.append(data, std::min(len, kMaxErrorBody - r.error_body.size()));
  }
  return len;
}

size_t OnRead(char* buf, size_t size, size_t n, void* arg) {
  auto* t = static_cast<Transfer*>(arg);
  const uint64_t total = t->BodyLength();
  const size_t want = static_cast<size_t>(std::min<uint64_t>(size * n, total - t->body_pos));
  if (want == 0) return 0;
  const HttpRequest& req = *t->request;
  if (req.file_body == nullptr) {
    std::memcpy(buf, req.body->data() + t->body_pos, want);
    t->body_pos += want;
    t->response->bytes_sent += want;
    return want;
  }
  for (;;) {
    const ssize_t got = pread(req.file_body->fd, buf, want,
                              static_cast<off_t>(req.file_body->offset + t->body_pos));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const int err = got < 0 ? errno : EIO;
      t->response->local_error =
          Status::Error(err, got < 0 ? std::string("cannot read the upload body: ") + strerror(err)
                                     : "upload body file shrank while it was being sent");
      return CURL_READFUNC_ABORT;
    }
    t->body_pos += static_cast<uint64_t>(got);
    t->response->bytes_sent += static_cast<uint64_t>(got);
    return static_cast<size_t>(got);
  }
}

// curl rewinds the body when it must resend it (a reused connection that turned out dead).
int OnSeek(void* arg, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(arg);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > t->BodyLength()) {
    return CURL_SEEKFUNC_FAIL;
  }
  t->body_pos = static_cast<uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

}  // namespace

bool CaseInsensitiveLess::operator()(const std::string& a, const std::string& b) const {
  return strcasecmp(a.c_str(), b.c_str()) < 0;
}

bool ParseHeaderLine(const std::string& raw, long* status, ResponseHeaders* headers) {
  std::string line = raw;
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {
    const size_t sp = line.find(' ');
    if (sp == std::string::npos) return false;
    *status = std::strtol(line.c_str() + sp + 1, nullptr, 10);
    headers->clear();
    return true;
  }
  const size_t colon = line.find(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string value = line.substr(colon + 1);
  const size_t b = value.find_first_not_of(" \t");
  value = b == std::string::npos ? "" : value.substr(b);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
  (*headers)[line.substr(0, colon)] = value;
  return true;
}

struct HttpClient::Handle {
  EasyPtr easy;
};

struct HttpClient::Share {
  CURLSH* sh = nullptr;
  std::mutex locks[CURL_LOCK_DATA_LAST];
  ~Share() {
    if (sh != nullptr) curl_share_cleanup(sh);
  }
  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* arg) {
    static_cast<Share*>(arg)->locks[data].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* arg) {
    static_cast<Share*>(arg)->locks[data].unlock();
  }
};

HttpClient::HttpClient(const HttpOptions& options) : options_(options) {}

HttpClient::~HttpClient() = default;

Result<std::unique_ptr<HttpClient>> HttpClient::Create(const HttpOptions& options) {
  GlobalInitOnce();
  if (!options.ca_bundle.empty() && access(options.ca_bundle.c_str(), R_OK) != 0) {
    const int err = errno;
    return Status::Error(err,
                         "cannot read the CA bundle " + options.ca_bundle + ": " + strerror(err));
  }
  std::unique_ptr<HttpClient> client(new HttpClient(options));
  auto share = std::make_unique<Share>();
  share->sh = curl_share_init();
  if (share->sh == nullptr) return Status::Error(ENOMEM, "curl_share_init failed");
  curl_share_setopt(share->sh, CURLSHOPT_LOCKFUNC, &Share::Lock);
  curl_share_setopt(share->sh, CURLSHOPT_UNLOCKFUNC, &Share::Unlock);
  curl_share_setopt(share->sh, CURLSHOPT_USERDATA, share.get());
  curl_share_setopt(share->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(share->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  client->share_ = std::move(share);
  return client;
}

std::unique_ptr<HttpClient::Handle> HttpClient::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [this] { return !idle_.empty() || total_ < options_.max_connections; });
  if (!idle_.empty()) {
    std::unique_ptr<Handle> h = std::move(idle_.back());
    idle_.pop_back();
    return h;
  }
  ++total_;
  lock.unlock();
  auto h = std::make_unique<Handle>();
  h->easy.reset(curl_easy_init());
  return h;
}

void HttpClient::Release(std::unique_ptr<Handle> handle) {
  std::lock_guard<std::mutex> lock(mu_);
  if (handle->easy) {
    idle_.push_back(std::move(handle));
  } else {
    --total_;
  }
  idle_cv_.notify_one();
}

HttpResponse HttpClient::Perform(const HttpRequest& request, Sink* sink) {
  HttpResponse response;
  std::unique_ptr<Handle> handle = Acquire();
  CURL* c = handle->easy.get();
  if (c == nullptr) {
    Release(std::move(handle));
    response.transport_failed = true;
    response.transport_message = "curl_easy_init failed";
    return response;
  }
  // Reset keeps the handle's live connections, DNS and TLS session caches.
  curl_easy_reset(c);

  Transfer t;
  t.request = &request;
  t.sink = sink;
  t.response = &response;

  SlistPtr headers;
  auto add_header = [&headers](const std::string& line) {
    curl_slist* next = curl_slist_append(headers.get(), line.c_str());
    if (next != nullptr) {
      (void)headers.release();
      headers.reset(next);
    }
  };
  for (const auto& [name, value] : request.headers) {
    std::string line = name;
    line.append(": ").append(value);
    add_header(line);
  }
  add_header("Expect:");  // no 100-continue round trip before bodies
  add_header("Accept:");

  char error_buf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);  // keys like "a/../b" and "a//b" go as they are
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_SHARE, share_->sh);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, options_.low_speed_limit);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, options_.low_speed_time_s);
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L << 10);
  curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 512L << 10);
  curl_easy_setopt(c, CURLOPT_MAXCONNECTS, 1L);  // one connection per handle: the pool bounds them
  if (!options_.user_agent.empty()) {
    curl_easy_setopt(c, CURLOPT_USERAGENT, options_.user_agent.c_str());
  }
  if (!options_.ca_bundle.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_bundle.c_str());
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnWrite);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);

  if (request.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT" || request.method == "POST") {
    // Both go through the upload path so every body streams through OnRead with a known length.
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t.BodyLength()));
    curl_easy_setopt(c, CURLOPT_READFUNCTION, &OnRead);
    curl_easy_setopt(c, CURLOPT_READDATA, &t);
    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, &OnSeek);
    curl_easy_setopt(c, CURLOPT_SEEKDATA, &t);
    if (request.method == "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (request.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  const CURLcode rc = curl_easy_perform(c);
  // Drop pointers to this call's stack before the handle goes back to the pool.
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
  Release(std::move(handle));

  if (rc != CURLE_OK && response.local_error.ok()) {
    response.transport_failed = true;
    response.failure = Classify(rc);
    response.transport_message = error_buf[0] != '\0' ? error_buf : curl_easy_strerror(rc);
  }
  return response;
}

}  // namespace s3cachefs::s3
