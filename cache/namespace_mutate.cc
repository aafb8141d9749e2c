// Namespace: the directory changes made through the mount (mkdir, rmdir, listing a subtree to
// rename it). The read side is in cache/namespace.cc.
#include "cache/namespace.h"

namespace s3cachefs::cache {

Status Namespace::MakeDirectory(const std::string& path, const s3::Metadata& metadata) {
  if (path.empty()) return Status::Error(EEXIST, "the root directory exists");
  s3::PutOptions options;
  options.metadata = metadata;
  Result<std::string> etag = client_.PutObject(DirPrefix(path), s3::FileRegion{}, options);
  if (!etag.ok()) return etag.status().WithContext("mkdir " + path);
  NoteDirectory(path);
  return Status::Ok();
}

Status Namespace::RemoveDirectoryMarker(const std::string& path) {
  if (path.empty()) return Status::Error(EBUSY, "cannot remove the root directory");
  Status s = client_.DeleteObject(DirPrefix(path));
  if (!s.ok()) return s.WithContext("rmdir " + path);
  NoteRemoved(path);
  return Status::Ok();
}

Result<std::vector<s3::ObjectInfo>> Namespace::ListKeysUnder(const std::string& path) {
  std::vector<s3::ObjectInfo> keys;
  s3::ListRequest request;
  request.prefix = DirPrefix(path);
  do {
    Result<s3::ListPage> page = client_.ListObjectsV2(request);
    if (!page.ok()) return page.status().WithContext("listing " + request.prefix);
    list_requests_ += 1;
    for (s3::ObjectInfo& object : page->objects) keys.push_back(std::move(object));
    request.continuation_token = page->next_token;
    if (!page->truncated) break;
  } while (!request.continuation_token.empty());
  return keys;
}

}  // namespace s3cachefs::cache
