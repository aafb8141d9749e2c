// The objects behind FUSE file handles (fuse_file_info::fh), shared by the fs/*.cc files.
#pragma once

#include <fuse_lowlevel.h>

#include <memory>
#include <string>
#include <vector>

#include "cache/namespace.h"
#include "cache/object_cache.h"
#include "fs/inode_table.h"
#include "fs/open_modes.h"

namespace s3cachefs::fs {

// The snapshot of a directory taken at opendir, so that offsets stay stable while the kernel
// reads it in several calls.
struct DirHandle {
  std::string path;
  std::vector<cache::DirEntry> entries;
};

// One open file: a reader for read-only opens, a writer (whose fd also serves reads) otherwise.
struct FileHandle {
  Ino ino = 0;
  std::shared_ptr<cache::ObjectHandle> reader;
  std::shared_ptr<cache::WritableFile> writer;
  OpenMode mode = OpenMode::kCached;  // how the kernel serves it (fs/open_modes.h)
};

inline FileHandle* GetFileHandle(const fuse_file_info* fi) {
  return reinterpret_cast<FileHandle*>(fi->fh);  // NOLINT(performance-no-int-to-ptr): FUSE's fh
}
inline DirHandle* GetDirHandle(const fuse_file_info* fi) {
  return reinterpret_cast<DirHandle*>(fi->fh);  // NOLINT(performance-no-int-to-ptr): FUSE's fh
}

inline void ReplyStatus(fuse_req_t req, const Status& status) {
  fuse_reply_err(req, status.ok() ? 0 : status.code());
}

}  // namespace s3cachefs::fs
