#include "fs/inode_table.h"

#include <vector>

namespace s3cachefs::fs {
namespace {

// The path of a detached inode: one no name can have (names hold no NUL), so it matches nothing.
const std::string kDetachedPath("\0detached", 9);

}  // namespace

InodeTable::InodeTable() {
  Inode root;
  root.attr.type = cache::NodeType::kDirectory;
  root.lookups = 1;  // held by the kernel for the whole mount
  inodes_.emplace(kRootIno, std::move(root));
  by_path_.emplace("", kRootIno);
}

InodeInfo InodeTable::Acquire(const std::string& path, const cache::NodeAttr& attr) {
  std::lock_guard<std::mutex> lock(mu_);
  Ino ino;
  auto found = by_path_.find(path);
  if (found != by_path_.end()) {
    ino = found->second;
  } else {
    ino = next_ino_++;
    by_path_.emplace(path, ino);
    inodes_[ino].path = path;
  }
  Inode& inode = inodes_[ino];
  // A path that changed between file and directory is a new object: forget the old content.
  if (inode.attr.type != attr.type) inode.opened_etag.clear();
  inode.attr = attr;
  ++inode.lookups;
  return InodeInfo{ino, inode.path, inode.attr, inode.opened_etag, false};
}

void InodeTable::Forget(Ino ino, uint64_t n) {
  if (ino == kRootIno) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  Inode& inode = it->second;
  inode.lookups = n >= inode.lookups ? 0 : inode.lookups - n;
  if (inode.lookups > 0) return;
  auto by_path = by_path_.find(inode.path);
  if (by_path != by_path_.end() && by_path->second == ino) by_path_.erase(by_path);
  inodes_.erase(it);
}

std::optional<InodeInfo> InodeTable::Get(Ino ino) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return std::nullopt;
  return InodeInfo{ino, it->second.path, it->second.attr, it->second.opened_etag,
                   it->second.path == kDetachedPath};
}

void InodeTable::SetAttr(Ino ino, const cache::NodeAttr& attr) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = inodes_.find(ino);
  if (it != inodes_.end()) it->second.attr = attr;
}

std::string InodeTable::SwapOpenedEtag(Ino ino, const std::string& etag) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return "";
  std::string previous = std::move(it->second.opened_etag);
  it->second.opened_etag = etag;
  return previous;
}

void InodeTable::Rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  // Whatever stood at or below the target is replaced.
  std::vector<std::string> replaced;
  for (const auto& [path, ino] : by_path_) {
    if (path == to || path.rfind(to + "/", 0) == 0) replaced.push_back(path);
  }
  for (const std::string& path : replaced) DetachLocked(path);

  std::vector<std::pair<std::string, Ino>> moved;
  for (const auto& [path, ino] : by_path_) {
    if (path == from || path.rfind(from + "/", 0) == 0) moved.emplace_back(path, ino);
  }
  for (const auto& [path, ino] : moved) {
    const std::string new_path = to + path.substr(from.size());
    by_path_.erase(path);
    by_path_[new_path] = ino;
    inodes_[ino].path = new_path;
  }
}

void InodeTable::Detach(Ino ino) {
  if (ino == kRootIno) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  const std::string path = it->second.path;  // DetachLocked changes it
  auto by_path = by_path_.find(path);
  if (by_path != by_path_.end() && by_path->second == ino) DetachLocked(path);
}

void InodeTable::DetachLocked(const std::string& path) {
  auto it = by_path_.find(path);
  if (it == by_path_.end()) return;
  inodes_[it->second].path = kDetachedPath;
  by_path_.erase(it);
}

size_t InodeTable::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return inodes_.size();
}

}  // namespace s3cachefs::fs
