// InodeTable: the FUSE inode numbers handed to the kernel, with lookup counts honouring forget.
//
// An inode stands for a path while the kernel holds a reference to it: the same path keeps its
// number until its lookup count drops to zero, and numbers are never reused within one mount,
// so a stale number can never reach another file. The root (FUSE_ROOT_ID = 1, path "") is
// never forgotten. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "cache/namespace.h"

namespace s3cachefs::fs {

using Ino = uint64_t;
constexpr Ino kRootIno = 1;

struct InodeInfo {
  Ino ino = 0;
  std::string path;
  cache::NodeAttr attr;
  // ETag of the content last opened through this inode: while a new open sees the same ETag
  // the kernel may keep its page cache (FOPEN_KEEP_CACHE).
  std::string opened_etag;
  // No longer the inode of its path (replaced by a rename, or by a newer version of the
  // object while this one was open): it lives on for the kernel's references, with attr.
  bool detached = false;
};

class InodeTable {
 public:
  InodeTable();
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  // Finds or creates the inode for path, stores attr and adds one lookup reference.
  InodeInfo Acquire(const std::string& path, const cache::NodeAttr& attr);

  // Drops n lookup references; the inode is forgotten when none remain (never the root).
  void Forget(Ino ino, uint64_t n);

  // A copy of the inode's state, or nullopt for an unknown (forgotten) number.
  std::optional<InodeInfo> Get(Ino ino) const;

  // Updates the attributes of ino (no-op for an unknown number).
  void SetAttr(Ino ino, const cache::NodeAttr& attr);

  // Records the ETag an open served; returns the one recorded before.
  std::string SwapOpenedEtag(Ino ino, const std::string& etag);

  // A rename: the inode of from (and of everything below it) now stands for the path under to.
  // An inode that stood for to is detached from its path (the kernel drops it in time).
  void Rename(const std::string& from, const std::string& to);

  // Detaches ino from its path: the next lookup of the path makes a new inode, while this one
  // stays valid for the kernel's references (its open files) until it is forgotten. No-op for
  // the root, an unknown number or one already detached.
  void Detach(Ino ino);

  size_t size() const;

 private:
  struct Inode {
    std::string path;
    cache::NodeAttr attr;
    std::string opened_etag;
    uint64_t lookups = 0;
  };

  void DetachLocked(const std::string& path);

  mutable std::mutex mu_;  // guards every field below
  Ino next_ino_ = kRootIno + 1;
  std::unordered_map<Ino, Inode> inodes_;
  std::unordered_map<std::string, Ino> by_path_;
};

}  // namespace s3cachefs::fs
