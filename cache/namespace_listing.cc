#include "cache/namespace_listing.h"

#include <chrono>
#include <utility>

namespace s3cachefs::cache {

bool IsValidSegment(const std::string& name) {
  return listing::SegmentProblem(name)[0] == '\0';
}

namespace listing {

namespace {

constexpr size_t kMaxSegment = 255;  // NAME_MAX: the kernel cannot pass a longer name

NodeAttr DirectoryAttr(time_t mtime) {
  NodeAttr attr;
  attr.type = NodeType::kDirectory;
  attr.mtime = mtime;
  return attr;
}

NodeAttr FileAttr(const s3::ObjectInfo& object) {
  NodeAttr attr;
  attr.type = NodeType::kFile;
  attr.size = object.size;
  attr.mtime = object.last_modified;
  attr.etag = object.etag;
  // Entries are built as the LIST page arrives, so now is when S3 vouched for this ETag.
  attr.listed_at = std::chrono::system_clock::now();
  return attr;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

const char* SegmentProblem(std::string_view name) {
  if (name.empty()) {
    return "empty path segment";
  }
  if (name == "." || name == "..") {
    return "'.' or '..' path segment";
  }
  if (name.size() > kMaxSegment) {
    return "path segment longer than 255 bytes";
  }
  if (name.find('\0') != std::string_view::npos) {
    return "NUL byte in key";
  }
  if (name.find('/') != std::string_view::npos) {
    return "'/' in name";
  }
  return "";
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string path;
  path.reserve(dir.size() + 1 + name.size());
  path.append(dir);
  if (!dir.empty()) {
    path.push_back('/');
  }
  path.append(name);
  return path;
}

std::string_view ParentPath(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool IsAtOrBelow(std::string_view path, std::string_view dir) {
  if (dir.empty()) {
    return true;
  }
  if (!StartsWith(path, dir)) {
    return false;
  }
  return path.size() == dir.size() || path[dir.size()] == '/';
}

void MergeEntry(DirListing& listing, std::string_view name, const NodeAttr& attr,
                const std::string& file_key, const SkipReporter& report) {
  auto it = listing.entries.find(name);
  if (it == listing.entries.end()) {
    listing.entries.emplace(std::string(name), attr);
    return;
  }
  NodeAttr& existing = it->second;
  const bool existing_dir = existing.type == NodeType::kDirectory;
  const bool new_dir = attr.type == NodeType::kDirectory;
  if (existing_dir && new_dir) {
    // A common prefix and the "x/" marker object: one directory; keep the marker's time.
    if (existing.mtime == 0) {
      existing.mtime = attr.mtime;
    }
  } else if (existing_dir || new_dir) {
    // The directory wins: hiding it would hide everything below it, hiding the file loses one.
    report(file_key, "a directory of the same name exists; the file is not reachable");
    if (new_dir) {
      existing = attr;
    }
  }
  // Two files of one name cannot come from S3; keep the first.
}

DirectoryBuilder::DirectoryBuilder(std::string prefix, SkipReporter report)
    : prefix_(std::move(prefix)), report_(std::move(report)) {}

void DirectoryBuilder::AddPage(const s3::ListPage& page) {
  if (!page.objects.empty() || !page.common_prefixes.empty()) {
    saw_anything_ = true;
  }
  for (const s3::ObjectInfo& object : page.objects) {
    AddObject(object);
  }
  for (const std::string& common_prefix : page.common_prefixes) {
    AddCommonPrefix(common_prefix);
  }
}

void DirectoryBuilder::AddObject(const s3::ObjectInfo& object) {
  if (!StartsWith(object.key, prefix_)) {
    return;  // not ours: a server bug, nothing to show
  }
  std::string_view rest = std::string_view(object.key).substr(prefix_.size());
  if (rest.empty()) {
    listing_.has_marker = true;
    listing_.marker_mtime = object.last_modified;
    return;
  }
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    const char* problem = SegmentProblem(rest);
    if (problem[0] != '\0') {
      report_(object.key, problem);
      return;
    }
    MergeEntry(listing_, rest, FileAttr(object), object.key, report_);
    return;
  }
  // A key below a subdirectory that the server did not roll up into a common prefix; the
  // marker "x/" is the usual case. Same rules as the flat listing.
  std::string_view name = rest.substr(0, slash);
  const char* problem = SegmentProblem(name);
  if (problem[0] != '\0') {
    report_(prefix_ + std::string(name) + "/", problem);
    return;
  }
  const bool is_marker = slash + 1 == rest.size();
  MergeEntry(listing_, name, DirectoryAttr(is_marker ? object.last_modified : 0),
             prefix_ + std::string(name), report_);
}

void DirectoryBuilder::AddCommonPrefix(const std::string& common_prefix) {
  if (!StartsWith(common_prefix, prefix_) || common_prefix.size() <= prefix_.size()) {
    return;
  }
  std::string_view rest = std::string_view(common_prefix).substr(prefix_.size());
  std::string_view name = rest.substr(0, rest.find('/'));
  const char* problem = SegmentProblem(name);
  if (problem[0] != '\0') {
    report_(prefix_ + std::string(name) + "/", problem);
    return;
  }
  MergeEntry(listing_, name, DirectoryAttr(0), prefix_ + std::string(name), report_);
}

TreeBuilder::TreeBuilder(std::string root_path, std::string prefix, SkipReporter report)
    : root_path_(std::move(root_path)), prefix_(std::move(prefix)), report_(std::move(report)) {
  dirs_.emplace(root_path_, DirListing());
}

DirListing* TreeBuilder::ResolveDir(std::string_view rel_dir) {
  if (have_last_ && rel_dir == last_rel_dir_) {
    return last_dir_;
  }
  DirListing* dir = &dirs_[root_path_];
  std::string path = root_path_;
  size_t pos = 0;
  while (dir != nullptr && pos < rel_dir.size() + (rel_dir.empty() ? 0 : 1)) {
    size_t slash = rel_dir.find('/', pos);
    if (slash == std::string_view::npos) {
      slash = rel_dir.size();
    }
    std::string_view name = rel_dir.substr(pos, slash - pos);
    const char* problem = SegmentProblem(name);
    if (problem[0] != '\0') {
      report_(prefix_ + std::string(rel_dir.substr(0, slash)) + "/", problem);
      dir = nullptr;
      break;
    }
    path = JoinPath(path, name);
    MergeEntry(*dir, name, DirectoryAttr(0), prefix_ + std::string(rel_dir.substr(0, slash)),
               report_);
    dir = &dirs_[path];  // unordered_map keeps element addresses stable across rehashing
    pos = slash + 1;
  }
  last_rel_dir_.assign(rel_dir);
  last_dir_ = dir;
  have_last_ = true;
  return dir;
}

void TreeBuilder::AddObject(const s3::ObjectInfo& object) {
  if (!StartsWith(object.key, prefix_)) {
    return;
  }
  std::string_view rest = std::string_view(object.key).substr(prefix_.size());
  size_t slash = rest.rfind('/');
  std::string_view rel_dir =
      slash == std::string_view::npos ? std::string_view() : rest.substr(0, slash);
  std::string_view leaf = slash == std::string_view::npos ? rest : rest.substr(slash + 1);
  if (rest.empty()) {
    DirListing& root = dirs_[root_path_];
    root.has_marker = true;
    root.marker_mtime = object.last_modified;
    return;
  }
  DirListing* dir = ResolveDir(rel_dir);
  if (dir == nullptr) {
    return;  // reported in ResolveDir (once per run of keys)
  }
  if (leaf.empty()) {
    dir->has_marker = true;
    dir->marker_mtime = object.last_modified;
    return;
  }
  const char* problem = SegmentProblem(leaf);
  if (problem[0] != '\0') {
    report_(object.key, problem);
    return;
  }
  MergeEntry(*dir, leaf, FileAttr(object), object.key, report_);
}

}  // namespace listing
}  // namespace s3cachefs::cache
