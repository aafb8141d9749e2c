#include "s3/curl_client.h"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <random>
#include <thread>

#include "s3/addressing.h"
#include "s3/crypto.h"
#include "s3/errors.h"
#include "s3/http.h"
#include "s3/log.h"
#include "s3/retry.h"
#include "s3/sigv4.h"
#include "s3/timestamps.h"
#include "s3/uri.h"
#include "s3/xml.h"

namespace s3cachefs::s3 {

namespace {

constexpr size_t kMaxDeleteBatch = 1000;

// One S3 operation as the retry loop sees it.
struct S3Call {
  const char* op = "";  // for messages: "GetObject"
  std::string method;
  std::string key;  // "" for bucket-level requests
  QueryParams query;
  HeaderList headers;  // extra headers, signed and sent
  std::string body;    // small body (XML)
  const FileRegion* file_body = nullptr;
  Idempotency idempotency = Idempotency::kIdempotent;
  bool error_in_200_possible = false;  // copies and Complete: parse the 200 body for <Error>
  bool allow_304 = false;
  std::atomic<uint64_t>* op_counter = nullptr;  // per-operation ClientStats counter
};

struct S3Reply {
  long status = 0;
  ResponseHeaders headers;
  uint64_t body_bytes = 0;
};

std::string Header(const ResponseHeaders& h, const std::string& name) {
  auto it = h.find(name);
  return it == h.end() ? "" : it->second;
}

// Metadata and content types go into header lines: refuse anything that could split them.
Status CheckHeaderValue(const std::string& what, const std::string& value) {
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return Status::Error(EINVAL, what + " contains a control character");
    }
  }
  return Status::Ok();
}

Status AddPutOptions(const PutOptions& options, HeaderList* headers) {
  if (!options.content_type.empty()) {
    Status s = CheckHeaderValue("content type", options.content_type);
    if (!s.ok()) return s;
    headers->emplace_back("Content-Type", options.content_type);
  }
  for (const auto& [name, value] : options.metadata) {
    const bool name_ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    });
    if (!name_ok) return Status::Error(EINVAL, "invalid metadata name \"" + name + "\"");
    Status s = CheckHeaderValue("metadata value of " + name, value);
    if (!s.ok()) return s;
    headers->emplace_back("x-amz-meta-" + name, value);
  }
  return Status::Ok();
}

ObjectInfo InfoFromHeaders(const std::string& key, const ResponseHeaders& h) {
  ObjectInfo info;
  info.key = key;
  info.etag = Header(h, "ETag");
  info.content_type = Header(h, "Content-Type");
  info.last_modified = ParseHttpDate(Header(h, "Last-Modified")).value_or(0);
  info.size = std::strtoull(Header(h, "Content-Length").c_str(), nullptr, 10);
  // "bytes 0-9/1234": the whole object's size is after the slash.
  const std::string range = Header(h, "Content-Range");
  const size_t slash = range.rfind('/');
  if (slash != std::string::npos && range.compare(slash + 1, 1, "*") != 0) {
    info.size = std::strtoull(range.c_str() + slash + 1, nullptr, 10);
  }
  static const std::string kMeta = "x-amz-meta-";
  for (const auto& [name, value] : h) {
    if (name.size() > kMeta.size() && strncasecmp(name.c_str(), kMeta.c_str(), kMeta.size()) == 0) {
      std::string n = name.substr(kMeta.size());
      for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      info.metadata[n] = value;
    }
  }
  return info;
}

double UnitRandom() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

class CurlClient : public Client {
 public:
  CurlClient(const ClientConfig& config, Endpoint endpoint, std::unique_ptr<HttpClient> http)
      : config_(config),
        endpoint_(std::move(endpoint)),
        virtual_host_(UseVirtualHost(config.addressing, endpoint_, config.bucket)),
        http_(std::move(http)) {}

  Status CheckBucket() override;
  Result<ListPage> ListObjectsV2(const ListRequest& request) override;
  Result<ObjectInfo> HeadObject(const std::string& key) override;
  Result<GetResult> GetObject(const GetRequest& request, Sink& sink) override;
  Result<std::string> PutObject(const std::string& key, const FileRegion& body,
                                const PutOptions& options) override;
  Result<std::string> CreateMultipartUpload(const std::string& key,
                                            const PutOptions& options) override;
  Result<std::string> UploadPart(const std::string& key, const std::string& upload_id,
                                 int part_number, const FileRegion& body) override;
  Result<std::string> UploadPartCopy(const std::string& key, const std::string& upload_id,
                                     int part_number, const std::string& source_key,
                                     const ByteRange& range) override;
  Result<std::string> CompleteMultipartUpload(const std::string& key, const std::string& upload_id,
                                              const std::vector<CompletedPart>& parts) override;
  Status AbortMultipartUpload(const std::string& key, const std::string& upload_id) override;
  Result<std::string> CopyObject(const std::string& source_key, const std::string& dest_key,
                                 const std::optional<PutOptions>& options) override;
  Status DeleteObject(const std::string& key) override;
  Result<std::vector<DeleteError>> DeleteObjects(const std::vector<std::string>& keys) override;
  const ClientStats& stats() const override { return stats_; }

 private:
  // Sends call with retries. 2xx bodies go to sink (may be null).
  Result<S3Reply> Call(const S3Call& call, Sink* sink);
  // Call() collecting a small XML body.
  Result<std::string> CallForXml(const S3Call& call);
  S3Error ErrorOf(const S3Call& call, long status, const ResponseHeaders& headers,
                  const std::string& body) const;
  std::string CopySource(const std::string& source_key) const {
    return "/" + config_.bucket + "/" + UriEncode(source_key, /*keep_slash=*/true);
  }

  const ClientConfig config_;
  const Endpoint endpoint_;
  const bool virtual_host_;
  std::unique_ptr<HttpClient> http_;
  ClientStats stats_;
};

S3Error CurlClient::ErrorOf(const S3Call& call, long status, const ResponseHeaders& headers,
                            const std::string& body) const {
  S3Error e;
  e.http_status = status;
  e.bucket = config_.bucket;
  e.key = call.key;
  e.configured_region = config_.region;
  e.request_id = Header(headers, "x-amz-request-id");
  e.region = Header(headers, "x-amz-bucket-region");
  if (std::optional<ErrorBody> b = ParseErrorBody(body)) {
    e.code = b->code;
    e.message = b->message;
    if (!b->request_id.empty()) e.request_id = b->request_id;
    if (e.region.empty()) e.region = b->region;
  }
  return e;
}

Result<S3Reply> CurlClient::Call(const S3Call& call, Sink* sink) {
  // The payload hash is computed once: a file body is read a first time here, so that S3 can
  // verify every byte it stores (x-amz-content-sha256 is part of the signature).
  std::string payload_hash(kEmptySha256);
  if (call.file_body != nullptr) {
    if (!config_.credentials.anonymous()) {
      Result<std::string> h = Sha256HexOfRegion(*call.file_body);
      if (!h.ok()) return h.status().WithContext(std::string(call.op) + " " + call.key);
      payload_hash = *h;
    }
  } else if (!call.body.empty()) {
    payload_hash = Sha256Hex(call.body);
  }
  const std::string query = CanonicalQueryString(call.query);
  const RequestTarget target =
      MakeTarget(endpoint_, virtual_host_, config_.bucket, call.key, query);
  const int max_attempts = std::max(1, config_.retry.max_attempts);
  Status last;
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    if (attempt > 0) {
      if (sink != nullptr) {
        Status reset = sink->Reset();
        if (!reset.ok()) break;  // cannot restart: report the previous failure
      }
      stats_.retries++;
      std::this_thread::sleep_for(BackoffDelay(config_.retry, attempt - 1, UnitRandom()));
    }
    SigningRequest sreq;
    sreq.method = call.method;
    sreq.canonical_uri = target.canonical_uri;
    sreq.canonical_query = query;
    sreq.headers = call.headers;
    sreq.headers.emplace_back("Host", target.host_header);
    sreq.payload_hash = payload_hash;
    const std::string auth = SignRequest(sreq, config_.credentials, config_.region, time(nullptr));

    HttpRequest hreq;
    hreq.method = call.method;
    hreq.url = target.url;
    hreq.headers = std::move(sreq.headers);
    if (!auth.empty()) hreq.headers.emplace_back("Authorization", auth);
    if (call.file_body != nullptr) {
      hreq.file_body = call.file_body;
    } else if (!call.body.empty()) {
      hreq.body = &call.body;
    }

    stats_.requests++;
    if (call.op_counter != nullptr) (*call.op_counter)++;
    HttpResponse resp = http_->Perform(hreq, sink);
    stats_.bytes_sent += resp.bytes_sent;
    if (call.method == "GET" && call.op_counter == &stats_.get_requests) {
      stats_.bytes_received += resp.body_bytes;
    }
    if (!resp.local_error.ok()) {
      stats_.errors++;
      return resp.local_error.WithContext(std::string(call.op) + " " + call.key);
    }

    AttemptOutcome outcome;
    if (resp.transport_failed) {
      outcome.transport_failed = true;
      outcome.failure = resp.failure;
      last =
          MapTransportError(resp.failure, resp.transport_message, endpoint_.url, config_.ca_bundle);
    } else {
      outcome.http_status = resp.status;
      const bool ok =
          (resp.status >= 200 && resp.status < 300) || (call.allow_304 && resp.status == 304);
      std::optional<ErrorBody> embedded;
      if (ok && call.error_in_200_possible) {
        if (auto* s = dynamic_cast<StringSink*>(sink)) embedded = ParseErrorBody(s->data());
      }
      if (ok && !embedded) return S3Reply{resp.status, std::move(resp.headers), resp.body_bytes};
      S3Error e = ErrorOf(call, resp.status, resp.headers, resp.error_body);
      if (embedded) {
        e.code = embedded->code;
        e.message = embedded->message;
        e.request_id = embedded->request_id;
        e.http_status = 500;  // an error in a 200 is a server-side failure
        outcome.error_in_200 = true;
      }
      outcome.s3_code = e.code;
      last = MapS3Error(e);
    }
    if (!IsRetryable(outcome, call.idempotency)) break;
    LOG_DEBUG("%s %s: attempt %d failed, may retry: %s", call.op, call.key.c_str(), attempt + 1,
              last.ToString().c_str());
  }
  stats_.errors++;
  return last.WithContext(std::string(call.op) + (call.key.empty() ? "" : " " + call.key));
}

Result<std::string> CurlClient::CallForXml(const S3Call& call) {
  StringSink sink;
  Result<S3Reply> r = Call(call, &sink);
  if (!r.ok()) return r.status();
  return sink.data();
}

Status CurlClient::CheckBucket() {
  // A one-key listing rather than HeadBucket: it needs the permission we will use, and error
  // answers carry a code (HEAD answers have no body to tell a bad key id from a bad secret).
  ListRequest req;
  req.max_keys = 1;
  Result<ListPage> page = ListObjectsV2(req);
  return page.ok() ? Status::Ok() : page.status();
}

Result<ListPage> CurlClient::ListObjectsV2(const ListRequest& request) {
  S3Call call;
  call.op = "ListObjectsV2";
  call.method = "GET";
  call.op_counter = &stats_.list_requests;
  call.query = {{"list-type", "2"}, {"encoding-type", "url"}};
  if (!request.prefix.empty()) call.query.emplace_back("prefix", request.prefix);
  if (!request.delimiter.empty()) call.query.emplace_back("delimiter", request.delimiter);
  if (!request.continuation_token.empty()) {
    call.query.emplace_back("continuation-token", request.continuation_token);
  }
  if (!request.start_after.empty()) call.query.emplace_back("start-after", request.start_after);
  call.query.emplace_back("max-keys", std::to_string(std::clamp(request.max_keys, 1, 1000)));
  Result<std::string> xml = CallForXml(call);
  if (!xml.ok()) return xml.status();
  return ParseListBucketResult(*xml);
}

Result<ObjectInfo> CurlClient::HeadObject(const std::string& key) {
  S3Call call;
  call.op = "HeadObject";
  call.method = "HEAD";
  call.key = key;
  call.op_counter = &stats_.head_requests;
  Result<S3Reply> r = Call(call, nullptr);
  if (!r.ok()) return r.status();
  return InfoFromHeaders(key, r->headers);
}

Result<GetResult> CurlClient::GetObject(const GetRequest& request, Sink& sink) {
  S3Call call;
  call.op = "GetObject";
  call.method = "GET";
  call.key = request.key;
  call.allow_304 = !request.if_none_match.empty();
  call.op_counter = &stats_.get_requests;
  if (request.range) {
    if (request.range->last < request.range->first) {
      return Status::Error(EINVAL, "GetObject " + request.key + ": empty byte range");
    }
    call.headers.emplace_back("Range", "bytes=" + std::to_string(request.range->first) + "-" +
                                           std::to_string(request.range->last));
  }
  if (!request.if_none_match.empty()) {
    call.headers.emplace_back("If-None-Match", request.if_none_match);
  }
  if (!request.if_match.empty()) call.headers.emplace_back("If-Match", request.if_match);
  Result<S3Reply> r = Call(call, &sink);
  if (!r.ok()) return r.status();
  GetResult result;
  result.info = InfoFromHeaders(request.key, r->headers);
  result.bytes = r->body_bytes;
  if (r->status == 304) {
    result.not_modified = true;
    result.info.etag = request.if_none_match;  // a 304 may omit the ETag; it is the one we sent
    stats_.not_modified++;
    return result;
  }
  if (request.range && r->status == 200 &&
      (request.range->first != 0 || request.range->last + 1 < result.info.size)) {
    stats_.errors++;
    return Status::Error(EIO, "GetObject " + request.key + ": the server ignored the Range header");
  }
  return result;
}

Result<std::string> CurlClient::PutObject(const std::string& key, const FileRegion& body,
                                          const PutOptions& options) {
  S3Call call;
  call.op = "PutObject";
  call.method = "PUT";
  call.key = key;
  call.file_body = &body;
  call.op_counter = &stats_.put_requests;
  Status s = AddPutOptions(options, &call.headers);
  if (!s.ok()) return s;
  Result<S3Reply> r = Call(call, nullptr);
  if (!r.ok()) return r.status();
  return Header(r->headers, "ETag");
}

Result<std::string> CurlClient::CreateMultipartUpload(const std::string& key,
                                                      const PutOptions& options) {
  S3Call call;
  call.op = "CreateMultipartUpload";
  call.method = "POST";
  call.key = key;
  call.query = {{"uploads", ""}};
  call.idempotency = Idempotency::kNonIdempotent;
  Status s = AddPutOptions(options, &call.headers);
  if (!s.ok()) return s;
  Result<std::string> xml = CallForXml(call);
  if (!xml.ok()) return xml.status();
  return ParseInitiateMultipartUploadResult(*xml);
}

Result<std::string> CurlClient::UploadPart(const std::string& key, const std::string& upload_id,
                                           int part_number, const FileRegion& body) {
  S3Call call;
  call.op = "UploadPart";
  call.method = "PUT";
  call.key = key;
  call.query = {{"partNumber", std::to_string(part_number)}, {"uploadId", upload_id}};
  call.file_body = &body;
  call.op_counter = &stats_.put_requests;
  Result<S3Reply> r = Call(call, nullptr);
  if (!r.ok()) return r.status();
  return Header(r->headers, "ETag");
}

Result<std::string> CurlClient::UploadPartCopy(const std::string& key, const std::string& upload_id,
                                               int part_number, const std::string& source_key,
                                               const ByteRange& range) {
  S3Call call;
  call.op = "UploadPartCopy";
  call.method = "PUT";
  call.key = key;
  call.query = {{"partNumber", std::to_string(part_number)}, {"uploadId", upload_id}};
  call.headers = {{"x-amz-copy-source", CopySource(source_key)},
                  {"x-amz-copy-source-range",
                   "bytes=" + std::to_string(range.first) + "-" + std::to_string(range.last)}};
  call.error_in_200_possible = true;
  Result<std::string> xml = CallForXml(call);
  if (!xml.ok()) return xml.status();
  Result<CopyResult> copy = ParseCopyResult(*xml);
  if (!copy.ok()) return copy.status();
  return copy->etag;
}

Result<std::string> CurlClient::CompleteMultipartUpload(const std::string& key,
                                                        const std::string& upload_id,
                                                        const std::vector<CompletedPart>& parts) {
  S3Call call;
  call.op = "CompleteMultipartUpload";
  call.method = "POST";
  call.key = key;
  call.query = {{"uploadId", upload_id}};
  call.body = BuildCompleteMultipartUploadBody(parts);
  call.headers = {{"Content-Type", "application/xml"}};
  call.idempotency = Idempotency::kNonIdempotent;
  call.error_in_200_possible = true;
  call.op_counter = &stats_.put_requests;
  Result<std::string> xml = CallForXml(call);
  if (!xml.ok()) return xml.status();
  return ParseCompleteMultipartUploadResult(*xml);
}

Status CurlClient::AbortMultipartUpload(const std::string& key, const std::string& upload_id) {
  S3Call call;
  call.op = "AbortMultipartUpload";
  call.method = "DELETE";
  call.key = key;
  call.query = {{"uploadId", upload_id}};
  Result<S3Reply> r = Call(call, nullptr);
  return r.ok() ? Status::Ok() : r.status();
}

Result<std::string> CurlClient::CopyObject(const std::string& source_key,
                                           const std::string& dest_key,
                                           const std::optional<PutOptions>& options) {
  S3Call call;
  call.op = "CopyObject";
  call.method = "PUT";
  call.key = dest_key;
  call.headers = {{"x-amz-copy-source", CopySource(source_key)}};
  if (options) {
    call.headers.emplace_back("x-amz-metadata-directive", "REPLACE");
    Status s = AddPutOptions(*options, &call.headers);
    if (!s.ok()) return s;
  }
  call.error_in_200_possible = true;
  Result<std::string> xml = CallForXml(call);
  if (!xml.ok()) return xml.status();
  Result<CopyResult> copy = ParseCopyResult(*xml);
  if (!copy.ok()) return copy.status();
  return copy->etag;
}

Status CurlClient::DeleteObject(const std::string& key) {
  S3Call call;
  call.op = "DeleteObject";
  call.method = "DELETE";
  call.key = key;
  Result<S3Reply> r = Call(call, nullptr);
  if (r.ok()) return Status::Ok();
  // A missing key is success, as in S3 (some servers answer 404 anyway); a missing bucket is not.
  const bool missing_bucket = r.status().message().find("bucket " + config_.bucket +
                                                        " does not exist") != std::string::npos;
  if (r.status().code() == ENOENT && !missing_bucket) return Status::Ok();
  return r.status();
}

Result<std::vector<DeleteError>> CurlClient::DeleteObjects(const std::vector<std::string>& keys) {
  std::vector<DeleteError> failed;
  for (size_t start = 0; start < keys.size(); start += kMaxDeleteBatch) {
    const size_t end = std::min(keys.size(), start + kMaxDeleteBatch);
    S3Call call;
    call.op = "DeleteObjects";
    call.method = "POST";
    call.query = {{"delete", ""}};
    call.body = BuildDeleteObjectsBody({keys.begin() + start, keys.begin() + end});
    // S3 refuses multi-object deletes without a body checksum.
    call.headers = {{"Content-MD5", Base64Encode(Md5(call.body))},
                    {"Content-Type", "application/xml"}};
    Result<std::string> xml = CallForXml(call);
    if (!xml.ok()) return xml.status();
    Result<std::vector<DeleteResultError>> errors = ParseDeleteResult(*xml);
    if (!errors.ok()) return errors.status();
    for (const DeleteResultError& e : *errors) {
      S3Error s3e;
      s3e.http_status = 200;
      s3e.code = e.code;
      s3e.message = e.message;
      s3e.bucket = config_.bucket;
      s3e.key = e.key;
      failed.push_back({e.key, MapS3Error(s3e).WithContext("DeleteObjects")});
    }
  }
  return failed;
}

}  // namespace

Result<std::unique_ptr<Client>> CreateCurlClient(const ClientConfig& config) {
  if (config.bucket.empty()) return Status::Error(EINVAL, "no bucket name given");
  const std::string url =
      config.endpoint.empty() ? "https://s3." + config.region + ".amazonaws.com" : config.endpoint;
  Result<Endpoint> endpoint = ParseEndpoint(url);
  if (!endpoint.ok()) return endpoint.status();
  HttpOptions options;
  // A CA bundle only matters for TLS; as with the AWS CLI, it must not break http endpoints.
  if (endpoint->https()) options.ca_bundle = config.ca_bundle;
  options.verify_tls = config.verify_tls;
  options.connect_timeout_ms = config.connect_timeout_ms;
  options.low_speed_limit = config.low_speed_limit;
  options.low_speed_time_s = config.low_speed_time_s;
  options.max_connections = std::max(1, config.max_connections);
  options.user_agent = config.user_agent;
  Result<std::unique_ptr<HttpClient>> http = HttpClient::Create(options);
  if (!http.ok()) return http.status();
  return std::unique_ptr<Client>(
      std::make_unique<CurlClient>(config, std::move(*endpoint), std::move(*http)));
}

}  // namespace s3cachefs::s3
