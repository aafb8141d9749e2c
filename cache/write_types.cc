#include "cache/write_types.h"

#include <cerrno>
#include <cstdlib>

namespace s3cachefs::cache {
namespace {

template <typename T>
std::optional<T> ParseDecimal(const s3::Metadata& metadata, const char* name) {
  auto it = metadata.find(name);
  if (it == metadata.end() || it->second.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long value = strtoll(it->second.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || value < 0) return std::nullopt;
  return static_cast<T>(value);
}

}  // namespace

void FileMeta::Merge(const FileMeta& other) {
  if (other.mode) mode = other.mode;
  if (other.uid) uid = other.uid;
  if (other.gid) gid = other.gid;
  if (other.mtime) mtime = other.mtime;
}

s3::Metadata FileMeta::ToMetadata() const {
  s3::Metadata out;
  if (mode) out["mode"] = std::to_string(*mode);
  if (uid) out["uid"] = std::to_string(*uid);
  if (gid) out["gid"] = std::to_string(*gid);
  if (mtime) out["mtime"] = std::to_string(*mtime);
  return out;
}

FileMeta FileMeta::FromMetadata(const s3::Metadata& metadata) {
  FileMeta meta;
  meta.mode = ParseDecimal<uint32_t>(metadata, "mode");
  meta.uid = ParseDecimal<uint32_t>(metadata, "uid");
  meta.gid = ParseDecimal<uint32_t>(metadata, "gid");
  meta.mtime = ParseDecimal<int64_t>(metadata, "mtime");
  return meta;
}

}  // namespace s3cachefs::cache
