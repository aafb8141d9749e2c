// The XML bodies of the S3 REST API, parsed (and, for requests, built) with pugixml.
//
// Parsers are strict about the root element, so an <Error> document is never mistaken for a
// result: S3 can answer CompleteMultipartUpload and copies with 200 and an Error body, and the
// caller checks ParseErrorBody() first.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "s3/client.h"
#include "s3/status.h"

namespace s3cachefs::s3 {

// The fields of an S3 <Error> document.
struct ErrorBody {
  std::string code;  // "NoSuchKey", "SlowDown", ...
  std::string message;
  std::string request_id;
  std::string region;    // <Region> or <BucketRegion>, present on wrong-region answers
  std::string endpoint;  // <Endpoint>, on PermanentRedirect
};

// nullopt when body is not an <Error> document (empty, HTML from a proxy, a result, ...).
std::optional<ErrorBody> ParseErrorBody(const std::string& body);

// ListObjectsV2's ListBucketResult. Keys, prefixes and StartAfter are url-decoded when the
// answer says <EncodingType>url</EncodingType>.
Result<ListPage> ParseListBucketResult(const std::string& body);

// InitiateMultipartUploadResult -> UploadId.
Result<std::string> ParseInitiateMultipartUploadResult(const std::string& body);

// CompleteMultipartUploadResult -> ETag.
Result<std::string> ParseCompleteMultipartUploadResult(const std::string& body);

struct CopyResult {
  std::string etag;
  time_t last_modified = 0;
};
// CopyObjectResult or CopyPartResult.
Result<CopyResult> ParseCopyResult(const std::string& body);

// One <Error> entry of a DeleteResult.
struct DeleteResultError {
  std::string key;
  std::string code;
  std::string message;
};
// DeleteResult -> its Error entries (Deleted entries are ignored: Quiet mode omits them).
Result<std::vector<DeleteResultError>> ParseDeleteResult(const std::string& body);

// <Delete><Quiet>true</Quiet><Object><Key>k</Key></Object>...</Delete>
std::string BuildDeleteObjectsBody(const std::vector<std::string>& keys);

// <CompleteMultipartUpload><Part><PartNumber>n</PartNumber><ETag>e</ETag></Part>...
std::string BuildCompleteMultipartUploadBody(const std::vector<CompletedPart>& parts);

}  // namespace s3cachefs::s3
