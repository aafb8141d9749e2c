// Types of the write path of the object cache: how changes are written back, the POSIX
// metadata S3 cannot hold natively, and the handle of a file open for writing.
//
// Writes land in the cached file. A file with changes S3 does not have yet is DIRTY in the index
// (durably, before the first change is made), is never evicted and never replaced by a
// revalidation, and is written back on close: in sync mode close waits until S3 accepted it;
// in async mode close returns once the data and its dirty record are durable locally and a
// background uploader writes it back. Dirty entries found at start-up (after a crash) are
// uploaded before anything else.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

#include "s3/client.h"
#include "s3/status.h"

namespace s3cachefs::cache {

enum class WriteBackMode { kSync, kAsync };

// POSIX attributes kept in x-amz-meta-* headers under s3fs-fuse's names (mode, uid, gid, mtime:
// decimal strings; mode includes the file type bits), so that the two interoperate.
struct FileMeta {
  std::optional<uint32_t> mode;
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<int64_t> mtime;  // seconds since the epoch

  bool empty() const { return !mode && !uid && !gid && !mtime; }
  // Fields set in other override ours.
  void Merge(const FileMeta& other);
  // To and from S3 user metadata ("mode", "uid", "gid", "mtime"; others ignored).
  s3::Metadata ToMetadata() const;
  static FileMeta FromMetadata(const s3::Metadata& metadata);
};

// What the cache knows locally about a key that S3 may not show yet: a file being written or
// waiting for upload. Listings and attributes show these instead of what S3 says.
struct LocalFile {
  std::string key;
  uint64_t size = 0;
  time_t mtime = 0;
  FileMeta meta;
};

// One open-for-write of one key. Thread-safe; the fd is shared by all writers of the key.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // O_RDWR descriptor of the local file: pread/pwrite/ftruncate on it directly.
  virtual int fd() const = 0;
  // Must be called before each change (write, truncate): makes the entry DIRTY durably the
  // first time after an upload; cheap otherwise. ENOSPC/EIO if the record cannot be written.
  virtual Status MarkDirty() = 0;
  // Writes the content back if it changed: sync mode uploads now (EIO with the reason when S3
  // did not accept it; the data stays DIRTY and is retried later); async mode makes the data
  // durable locally (fdatasync) and queues the upload. A no-op when nothing changed, or when
  // the key was removed or renamed away meanwhile.
  virtual Status Flush() = 0;
  // For a writer whose writes reach fd() without MarkDirty (the kernel writes the file itself:
  // FUSE passthrough). Marks the entry DIRTY now and keeps it DIRTY until EndUnseenWrites:
  // Flush still uploads, but no upload marks it clean meanwhile (the handle's bracket is kept,
  // see cache/write_entry.h), so a write after one can never be left behind a CLEAN row. The
  // Flush after EndUnseenWrites is the one that may.
  virtual Status BeginUnseenWrites() = 0;
  virtual void EndUnseenWrites() = 0;
  virtual const std::string& key() const = 0;
};

}  // namespace s3cachefs::cache
