// FileSystem: the low-level FUSE operations, a thin adapter over cache::Namespace (names and
// attributes) and cache::ObjectCache (file bodies). It owns the inode table and the open
// handles, turns Status codes into FUSE replies, and negotiates the connection in Init.
//
// Every operation may run on any FUSE worker thread at once; the state here is the inode table
// (its own lock) and per-handle objects owned by the kernel's file handles.
#pragma once

#include <fuse_lowlevel.h>

#include <chrono>
#include <ctime>
#include <string>

#include "cache/namespace.h"
#include "cache/object_cache.h"
#include "fs/inode_table.h"
#include "fs/options.h"

namespace s3cachefs::fs {

class FileSystem {
 public:
  FileSystem(const MountOptions& options, cache::Namespace& names, cache::ObjectCache& objects);
  FileSystem(const FileSystem&) = delete;
  FileSystem& operator=(const FileSystem&) = delete;

  // The operation table to pass to fuse_session_new() with this object as userdata.
  static const fuse_lowlevel_ops& Operations();

  // Must be called once the session exists, before the loop runs (used for notifications).
  void SetSession(fuse_session* session) { session_ = session; }

  // Operation handlers (public for the static trampolines).
  void Init(fuse_conn_info* conn);
  void Lookup(fuse_req_t req, Ino parent, const char* name);
  void Forget(Ino ino, uint64_t nlookup);
  void GetAttr(fuse_req_t req, Ino ino);
  void OpenDir(fuse_req_t req, Ino ino, fuse_file_info* fi);
  void ReadDir(fuse_req_t req, Ino ino, size_t size, off_t offset, fuse_file_info* fi, bool plus);
  void ReleaseDir(fuse_req_t req, fuse_file_info* fi);
  void Open(fuse_req_t req, Ino ino, fuse_file_info* fi);
  void Read(fuse_req_t req, size_t size, off_t offset, fuse_file_info* fi);
  void Release(fuse_req_t req, fuse_file_info* fi);
  void StatFs(fuse_req_t req);

 private:
  struct stat ToStat(Ino ino, const cache::NodeAttr& attr) const;
  fuse_entry_param ToEntry(const InodeInfo& inode) const;
  static std::string ChildPath(const std::string& parent, const char* name);

  const MountOptions& options_;
  cache::Namespace& names_;
  cache::ObjectCache& objects_;
  InodeTable inodes_;
  fuse_session* session_ = nullptr;
  const time_t mount_time_;
  const double attr_timeout_;  // seconds, for attributes and entries
};

}  // namespace s3cachefs::fs
