// FileSystem: the low-level FUSE operations, a thin adapter over cache::Namespace (names and
// attributes), cache::ObjectCache (file bodies, write-back) and the inode table. It turns
// Status codes into FUSE replies and negotiates the connection in Init.
//
//   fs/filesystem.cc  init, lookup/forget, getattr/setattr, directories, statfs, the op table
//   fs/file_ops.cc    open/create, read/write, flush/fsync/release
//   fs/tree_ops.cc    mkdir, rmdir, unlink, rename, link
//
// Every operation may run on any FUSE worker thread at once; the shared state is the inode
// table (its own lock), the caches (their own locks) and per-handle objects that the kernel
// serialises per file handle where it matters.
#pragma once

#include <fuse_lowlevel.h>

#include <chrono>
#include <ctime>
#include <optional>
#include <string>

#include "cache/dir_prefetcher.h"
#include "cache/file_prefetcher.h"
#include "cache/namespace.h"
#include "cache/object_cache.h"
#include "fs/inode_table.h"
#include "fs/options.h"
#include "fs/passthrough.h"

namespace s3cachefs::fs {

class FileSystem {
 public:
  FileSystem(const MountOptions& options, cache::Namespace& names, cache::ObjectCache& objects);
  FileSystem(const FileSystem&) = delete;
  FileSystem& operator=(const FileSystem&) = delete;

  // The operation table to pass to fuse_session_new() with this object as userdata.
  static const fuse_lowlevel_ops& Operations();

  // The mountpoint as an absolute, canonical path ("" if it could not be resolved).
  const std::string& mount_root() const { return mount_root_; }

  // Must be called once the session exists, before the loop runs (used for notifications).
  void SetSession(fuse_session* session) { session_ = session; }
  // Passthrough of complete cached files: Install() it on the mounted session.
  Passthrough& passthrough() { return passthrough_; }

  // Operation handlers (public for the static trampolines in Operations()).
  void Init(fuse_conn_info* conn);
  void Lookup(fuse_req_t req, Ino parent, const char* name);
  void Forget(Ino ino, uint64_t nlookup);
  void GetAttr(fuse_req_t req, Ino ino);
  void SetAttr(fuse_req_t req, Ino ino, struct stat* attr, int to_set, fuse_file_info* fi);
  void OpenDir(fuse_req_t req, Ino ino, fuse_file_info* fi);
  void ReadDir(fuse_req_t req, Ino ino, size_t size, off_t offset, fuse_file_info* fi, bool plus);
  void ReleaseDir(fuse_req_t req, fuse_file_info* fi);
  void StatFs(fuse_req_t req);

  void Open(fuse_req_t req, Ino ino, fuse_file_info* fi);
  void Create(fuse_req_t req, Ino parent, const char* name, mode_t mode, fuse_file_info* fi);
  void Read(fuse_req_t req, size_t size, off_t offset, fuse_file_info* fi);
  void Write(fuse_req_t req, const char* buf, size_t size, off_t offset, fuse_file_info* fi);
  void Flush(fuse_req_t req, fuse_file_info* fi);
  void Fsync(fuse_req_t req, fuse_file_info* fi);
  void Release(fuse_req_t req, fuse_file_info* fi);

  void MkDir(fuse_req_t req, Ino parent, const char* name, mode_t mode);
  void RmDir(fuse_req_t req, Ino parent, const char* name);
  void Unlink(fuse_req_t req, Ino parent, const char* name);
  void Rename(fuse_req_t req, Ino parent, const char* name, Ino new_parent, const char* new_name,
              unsigned flags);

 private:
  // The attributes of path as the mount shows them: S3's listing, overlaid with what exists
  // only locally (a file being written or waiting for upload).
  Result<cache::NodeAttr> CurrentAttr(const std::string& path);
  struct stat ToStat(Ino ino, const std::string& path, const cache::NodeAttr& attr) const;
  fuse_entry_param ToEntry(const InodeInfo& inode) const;
  // The child's path, or an error for a name no key can hold.
  Result<std::string> ChildPath(Ino parent, const char* name) const;
  static std::optional<cache::ListingHint> HintFor(const cache::NodeAttr& attr);
  Status CheckWritable() const;
  // The metadata of a new file or directory (type_bits S_IFREG or S_IFDIR) made by req.
  static cache::FileMeta NewMeta(fuse_req_t req, mode_t type_bits, mode_t mode);
  // Counts a new open of handle.ino in passthrough_ and sets handle.mode; on a conflict it
  // detaches the inode from its path, replies ESTALE (the kernel looks the name up again and
  // opens the new inode) and returns false (fs/passthrough.h). reader_fd: see
  // Passthrough::Begin.
  bool BeginOpen(fuse_req_t req, struct FileHandle& handle, const std::string& path, int backing_fd,
                 int32_t* backing_id, bool join_only = false, int reader_fd = -1);
  // Publishes a file's new local state to the name cache and the kernel.
  void NoteFileChanged(Ino ino, const std::string& path);
  Status RenameDirectory(const std::string& from, const std::string& to);

  const MountOptions& options_;
  cache::Namespace& names_;
  cache::ObjectCache& objects_;
  InodeTable inodes_;
  cache::DirPrefetcher prefetcher_;  // lists ahead of tree walks; joined when we are destroyed
  cache::FilePrefetcher file_prefetcher_;  // fetches ahead of directory scans; likewise
  Passthrough passthrough_;
  fuse_session* session_ = nullptr;
  const time_t mount_time_;
  const double attr_timeout_;  // seconds, for attributes and entries
  // The mountpoint as an absolute, canonical path ("" if it cannot be resolved): where the
  // files of this mount appear in other processes' /proc/PID/fd (fs/descriptors.h).
  const std::string mount_root_;
};

}  // namespace s3cachefs::fs
