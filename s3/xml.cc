#include "s3/xml.h"

#include <cstdlib>
#include <pugixml.hpp>
#include <sstream>

#include "s3/timestamps.h"
#include "s3/uri.h"

namespace s3cachefs::s3 {

namespace {

Status Malformed(const std::string& what) {
  return Status::Error(EIO, "malformed " + what + " answer from the server");
}

// Parses body and returns its root element if it is named root_name.
pugi::xml_node Root(pugi::xml_document& doc, const std::string& body, const char* root_name) {
  if (!doc.load_buffer(body.data(), body.size(), pugi::parse_default | pugi::parse_ws_pcdata_single,
                       pugi::encoding_utf8)) {
    return {};
  }
  pugi::xml_node root = doc.document_element();
  if (std::string(root.name()) != root_name) return {};
  return root;
}

std::string Text(const pugi::xml_node& parent, const char* name) {
  return parent.child(name).text().as_string();
}

}  // namespace

std::optional<ErrorBody> ParseErrorBody(const std::string& body) {
  pugi::xml_document doc;
  pugi::xml_node root = Root(doc, body, "Error");
  if (!root) return std::nullopt;
  ErrorBody e;
  e.code = Text(root, "Code");
  e.message = Text(root, "Message");
  e.request_id = Text(root, "RequestId");
  e.region = Text(root, "Region");
  if (e.region.empty()) e.region = Text(root, "BucketRegion");
  e.endpoint = Text(root, "Endpoint");
  return e;
}

Result<ListPage> ParseListBucketResult(const std::string& body) {
  pugi::xml_document doc;
  pugi::xml_node root = Root(doc, body, "ListBucketResult");
  if (!root) return Malformed("ListObjectsV2");
  const bool url_encoded = Text(root, "EncodingType") == "url";
  auto decode = [url_encoded](const std::string& s) {
    return url_encoded ? UriDecode(s, /*plus_is_space=*/true) : s;
  };
  ListPage page;
  page.truncated = Text(root, "IsTruncated") == "true";
  page.next_token = Text(root, "NextContinuationToken");
  for (pugi::xml_node c : root.children("Contents")) {
    ObjectInfo info;
    info.key = decode(Text(c, "Key"));
    info.size = c.child("Size").text().as_ullong();
    info.etag = Text(c, "ETag");
    info.last_modified = ParseIso8601(Text(c, "LastModified")).value_or(0);
    page.objects.push_back(std::move(info));
  }
  for (pugi::xml_node p : root.children("CommonPrefixes")) {
    page.common_prefixes.push_back(decode(Text(p, "Prefix")));
  }
  if (page.truncated && page.next_token.empty()) {
    return Malformed("ListObjectsV2 (truncated without a continuation token)");
  }
  return page;
}

Result<std::string> ParseInitiateMultipartUploadResult(const std::string& body) {
  pugi::xml_document doc;
  pugi::xml_node root = Root(doc, body, "InitiateMultipartUploadResult");
  std::string id = root ? Text(root, "UploadId") : "";
  if (id.empty()) return Malformed("CreateMultipartUpload");
  return id;
}

Result<std::string> ParseCompleteMultipartUploadResult(const std::string& body) {
  pugi::xml_document doc;
  pugi::xml_node root = Root(doc, body, "CompleteMultipartUploadResult");
  std::string etag = root ? Text(root, "ETag") : "";
  if (etag.empty()) return Malformed("CompleteMultipartUpload");
  return etag;
}

Result<CopyResult> ParseCopyResult(const std::string& body) {
  pugi::xml_document doc;
  pugi::xml_node root = Root(doc, body, "CopyObjectResult");
  if (!root) root = Root(doc, body, "CopyPartResult");
  CopyResult r;
  if (root) {
    r.etag = Text(root, "ETag");
    r.last_modified = ParseIso8601(Text(root, "LastModified")).value_or(0);
  }
  if (r.etag.empty()) return Malformed("copy");
  return r;
}

Result<std::vector<DeleteResultError>> ParseDeleteResult(const std::string& body) {
  pugi::xml_document doc;
  pugi::xml_node root = Root(doc, body, "DeleteResult");
  if (!root) return Malformed("DeleteObjects");
  std::vector<DeleteResultError> errors;
  for (pugi::xml_node e : root.children("Error")) {
    errors.push_back({Text(e, "Key"), Text(e, "Code"), Text(e, "Message")});
  }
  return errors;
}

namespace {

std::string Serialize(const pugi::xml_document& doc) {
  std::ostringstream out;
  doc.save(out, "", pugi::format_raw | pugi::format_no_declaration, pugi::encoding_utf8);
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>" + out.str();
}

}  // namespace

std::string BuildDeleteObjectsBody(const std::vector<std::string>& keys) {
  pugi::xml_document doc;
  pugi::xml_node root = doc.append_child("Delete");
  root.append_attribute("xmlns") = "http://s3.amazonaws.com/doc/2006-03-01/";
  root.append_child("Quiet").text().set("true");
  for (const std::string& key : keys) {
    root.append_child("Object").append_child("Key").text().set(key.c_str());
  }
  return Serialize(doc);
}

std::string BuildCompleteMultipartUploadBody(const std::vector<CompletedPart>& parts) {
  pugi::xml_document doc;
  pugi::xml_node root = doc.append_child("CompleteMultipartUpload");
  root.append_attribute("xmlns") = "http://s3.amazonaws.com/doc/2006-03-01/";
  for (const CompletedPart& part : parts) {
    pugi::xml_node p = root.append_child("Part");
    p.append_child("PartNumber").text().set(part.part_number);
    p.append_child("ETag").text().set(part.etag.c_str());
  }
  return Serialize(doc);
}

}  // namespace s3cachefs::s3
