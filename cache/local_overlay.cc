#include "cache/local_overlay.h"

#include <algorithm>

namespace s3cachefs::cache {

NodeAttr LocalAttr(const LocalFile& file) {
  NodeAttr attr;
  attr.type = NodeType::kFile;
  attr.size = file.size;
  attr.mtime = file.mtime;
  return attr;
}

void OverlayLocalFiles(const std::string& dir_prefix, const std::vector<LocalFile>& local,
                       std::vector<DirEntry>& entries) {
  auto by_name = [](const DirEntry& e, const std::string& name) { return e.name < name; };
  for (const LocalFile& file : local) {
    if (file.key.size() <= dir_prefix.size() ||
        file.key.compare(0, dir_prefix.size(), dir_prefix) != 0) {
      continue;
    }
    const std::string rest = file.key.substr(dir_prefix.size());
    const size_t slash = rest.find('/');
    const std::string name = rest.substr(0, slash);
    if (!IsValidSegment(name)) continue;
    const bool is_file = slash == std::string::npos;
    auto it = std::lower_bound(entries.begin(), entries.end(), name, by_name);
    if (it != entries.end() && it->name == name) {
      // A directory always wins over a file of the same name (as in listings).
      if (is_file && it->attr.type == NodeType::kFile) it->attr = LocalAttr(file);
      if (!is_file) it->attr = NodeAttr{NodeType::kDirectory, 0, it->attr.mtime, "", {}};
      continue;
    }
    NodeAttr attr = is_file ? LocalAttr(file) : NodeAttr{NodeType::kDirectory, 0, 0, "", {}};
    entries.insert(it, DirEntry{name, attr});
  }
}

}  // namespace s3cachefs::cache
