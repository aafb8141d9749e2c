// The rules that turn LIST results into directory listings, shared by the per-directory listing
// (delimiter "/") and the flat, recursive one that Prefetch uses, so both give the same entries.
//
// A key K under the listed prefix P maps to path segments by splitting K minus P at '/':
//   - K == P is the directory's own marker: not an entry, its Last-Modified is the dir's mtime;
//   - a segment followed by more of the key is a directory ("x/y/z" implies x and x/y);
//   - a key ending in '/' is the marker of the directory it names;
//   - the last segment of any other key is a file.
// A segment that IsValidSegment rejects makes the key (for a directory segment: everything under
// it) unreachable; it is reported once through SkipReporter. When a name is both a file and a
// directory, the directory wins and the file is reported.
//
// Pure computation, no I/O and no locking: each builder is used by one thread.
#pragma once

#include <ctime>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cache/namespace.h"
#include "s3/client.h"

namespace s3cachefs::cache::listing {

// One directory's entries by name. Ordered by bytes, as S3 orders keys; a map rather than a sorted
// vector so that one create or delete in a 100,000-entry directory stays O(log n).
using EntryMap = std::map<std::string, NodeAttr, std::less<>>;

struct DirListing {
  EntryMap entries;
  bool has_marker = false;  // the "dir/" object itself exists
  time_t marker_mtime = 0;  // its Last-Modified
};

// Told about each key that cannot become an entry. `item` names what became unreachable (a key,
// or a key prefix ending in '/' for a whole subtree) and is the same for both kinds of listing, so
// callers can report each item once; `why` is a short reason.
using SkipReporter = std::function<void(const std::string& item, const std::string& why)>;

// Builds one directory from the pages of ListObjectsV2(prefix, delimiter "/").
class DirectoryBuilder {
 public:
  DirectoryBuilder(std::string prefix, SkipReporter report);

  void AddPage(const s3::ListPage& page);

  // True once any object or common prefix was listed, the marker included: the directory then
  // exists whatever its parent says (it is a common prefix of the parent).
  bool saw_anything() const { return saw_anything_; }

  DirListing Finish() && { return std::move(listing_); }

 private:
  void AddObject(const s3::ObjectInfo& object);
  void AddCommonPrefix(const std::string& common_prefix);

  const std::string prefix_;
  SkipReporter report_;
  DirListing listing_;
  bool saw_anything_ = false;
};

// Builds every directory under root_path from a flat ListObjectsV2(prefix) with no delimiter,
// where prefix is the key prefix of root_path.
class TreeBuilder {
 public:
  TreeBuilder(std::string root_path, std::string prefix, SkipReporter report);

  void AddObject(const s3::ObjectInfo& object);

  // Listings keyed by directory path (root_path included, even when nothing was listed).
  std::unordered_map<std::string, DirListing> Finish() && { return std::move(dirs_); }

 private:
  // The listing of directory `rel_dir` (relative to the root, "" for the root), creating it and
  // its ancestors' entries; nullptr if a segment is invalid (reported).
  DirListing* ResolveDir(std::string_view rel_dir);

  const std::string root_path_;
  const std::string prefix_;
  SkipReporter report_;
  std::unordered_map<std::string, DirListing> dirs_;
  // S3 returns keys in order, so consecutive keys mostly share their directory: remember the
  // last one to avoid walking its segments again.
  std::string last_rel_dir_;
  DirListing* last_dir_ = nullptr;
  bool have_last_ = false;
};

// Adds name to listing, merging a duplicate: directory beats file (the file is reported as
// file_key); two directories keep a known marker mtime.
void MergeEntry(DirListing& listing, std::string_view name, const NodeAttr& attr,
                const std::string& file_key, const SkipReporter& report);

// Why name is not a valid segment ("" if it is).
const char* SegmentProblem(std::string_view name);

// "a/b" + "c" = "a/b/c"; "" + "c" = "c".
std::string JoinPath(std::string_view dir, std::string_view name);
// The directory containing path ("" for a top-level name) and the last segment.
std::string_view ParentPath(std::string_view path);
std::string_view BaseName(std::string_view path);
// True if path is dir itself or lies below it (every path lies below the root "").
bool IsAtOrBelow(std::string_view path, std::string_view dir);

}  // namespace s3cachefs::cache::listing
