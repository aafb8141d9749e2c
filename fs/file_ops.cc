// FileSystem: opening, reading, writing and closing files.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "fs/descriptors.h"
#include "fs/filesystem.h"
#include "fs/handles.h"
#include "s3/log.h"

namespace s3cachefs::fs {

bool FileSystem::BeginOpen(fuse_req_t req, FileHandle& handle, const std::string& path,
                           int backing_fd, int32_t* backing_id, bool join_only, int reader_fd) {
  handle.mode = passthrough_.Begin(handle.ino, backing_fd, backing_id, join_only, reader_fd);
  if (handle.mode != OpenMode::kConflict) return true;
  // Passthrough opens of this inode have another file (an older version), and the kernel
  // takes no other open of it. The path gets a new inode: ESTALE makes the kernel look the
  // name up again (LOOKUP_REVAL) and open that one, while the open files keep the old one, as
  // after a rename over a file that is open.
  inodes_.Detach(handle.ino);
  LOG_INFO("open %s: its older version is open through passthrough: a new inode for this one",
           path.c_str());
  fuse_reply_err(req, ESTALE);
  return false;
}

void FileSystem::Open(fuse_req_t req, Ino ino, fuse_file_info* fi) {
  std::optional<InodeInfo> inode = inodes_.Get(ino);
  // A detached inode's path stands for another file now: the kernel looks it up again.
  if (!inode || inode->detached) return (void)fuse_reply_err(req, ESTALE);
  if (inode->attr.type == cache::NodeType::kDirectory) return (void)fuse_reply_err(req, EISDIR);
  const std::string key = names_.FileKey(inode->path);
  const bool writing = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC) != 0;
  auto handle = std::make_unique<FileHandle>();
  handle->ino = ino;

  int32_t backing_id = 0;
  if (writing) {
    if (Status s = CheckWritable(); !s.ok()) return ReplyStatus(req, s);
    // A truncating writer is counted before anything changes: one that cannot be opened must
    // not truncate. Others once open, so that they can join passthrough readers of their file.
    // Next to passthrough readers, whose cache file is complete, a truncating writer opens that
    // file like the others, joins them and then truncates it in place, as O_TRUNC does to a
    // local file that others are reading: they see it cut.
    const bool truncating = (fi->flags & O_TRUNC) != 0;
    const bool truncate_in_place = truncating && passthrough_.HasPassthroughOpens(ino);
    const bool counted_first = truncating && !truncate_in_place;
    if (counted_first && !BeginOpen(req, *handle, inode->path, -1, &backing_id)) return;
    // O_TRUNC never downloads the old body; other writes start from the whole current one.
    Result<std::shared_ptr<cache::WritableFile>> writer =
        objects_.OpenWrite(key, counted_first, false, HintFor(inode->attr));
    if (!writer.ok()) {
      if (counted_first) passthrough_.End(ino, handle->mode);
      LOG_WARN("open %s for writing: %s", inode->path.c_str(), writer.status().ToString().c_str());
      return ReplyStatus(req, writer.status());
    }
    if (!counted_first &&
        !BeginOpen(req, *handle, inode->path, (*writer)->fd(), &backing_id, /*join_only=*/true)) {
      return;
    }
    if (handle->mode == OpenMode::kPassthrough) {
      // The kernel writes the file itself from now on (fs/passthrough.h).
      if (Status s = (*writer)->BeginUnseenWrites(); !s.ok()) {
        passthrough_.End(ino, handle->mode);
        return ReplyStatus(req, s);
      }
    }
    if (truncate_in_place) {
      Status s = (*writer)->MarkDirty();
      if (s.ok() && ftruncate((*writer)->fd(), 0) != 0) {
        s = Status::Error(errno, std::string("truncate: ") + strerror(errno));
      }
      if (!s.ok()) {
        if (handle->mode == OpenMode::kPassthrough) (*writer)->EndUnseenWrites();
        passthrough_.End(ino, handle->mode);
        LOG_WARN("open %s for writing: %s", inode->path.c_str(), s.ToString().c_str());
        return ReplyStatus(req, s);
      }
    }
    handle->writer = *writer;
    inodes_.SwapOpenedEtag(ino, "");  // the content is ours now; the kernel's copy may be old
    fi->keep_cache = 0;
    if ((fi->flags & O_TRUNC) != 0) NoteFileChanged(ino, inode->path);
  } else {
    Result<std::shared_ptr<cache::ObjectHandle>> object =
        objects_.OpenRead(key, HintFor(inode->attr));
    if (!object.ok()) {
      if (object.status().code() == ENOENT) {
        names_.NoteRemoved(inode->path);
      } else {
        LOG_WARN("open %s: %s", inode->path.c_str(), object.status().ToString().c_str());
      }
      return ReplyStatus(req, object.status());
    }
    const std::shared_ptr<cache::ObjectHandle>& h = *object;
    // A complete cached copy can be read by the kernel itself (fs/passthrough.h). Counted
    // before the inode's attributes change: on a conflict they stay the old version's.
    if (!BeginOpen(req, *handle, inode->path, h->complete() ? h->fd() : -1, &backing_id,
                   /*join_only=*/false, h->fd())) {
      return;
    }
    // While the ETag is the one the kernel's pages came from, they may be kept across opens.
    fi->keep_cache = inodes_.SwapOpenedEtag(ino, h->etag()) == h->etag() ? 1 : 0;
    if (h->etag() != inode->attr.etag || h->size() != inode->attr.size) {
      // The object changed since it was listed: publish the new size and drop what the kernel
      // cached about it, so that reads see the whole new content.
      cache::NodeAttr attr = inode->attr;
      attr.etag = h->etag();
      attr.size = h->size();
      attr.mtime = h->mtime();
      attr.listed_at = {};
      inodes_.SetAttr(ino, attr);
      names_.NoteFile(inode->path, attr);
      if (session_ != nullptr) fuse_lowlevel_notify_inval_inode(session_, ino, -1, 0);
    }
    handle->reader = h;
    file_prefetcher_.Opened(inode->path);
  }
  // The kernel takes no other open flag with passthrough: its page cache is not used anyway.
  if (handle->mode == OpenMode::kPassthrough) fi->keep_cache = 0;
  if (handle->mode == OpenMode::kDirect) {
    fi->direct_io = 1;
    fi->keep_cache = 0;
  }
  fi->fh = reinterpret_cast<uint64_t>(handle.get());
  const int rc = handle->mode == OpenMode::kPassthrough
                     ? Passthrough::ReplyOpen(req, fi, backing_id)
                     : fuse_reply_open(req, fi);
  if (rc == 0) {
    static_cast<void>(handle.release());  // the kernel holds it until release
  } else {
    passthrough_.End(ino, handle->mode);
  }
}

void FileSystem::Create(fuse_req_t req, Ino parent, const char* name, mode_t mode,
                        fuse_file_info* fi) {
  if (Status s = CheckWritable(); !s.ok()) return ReplyStatus(req, s);
  Result<std::string> path = ChildPath(parent, name);
  if (!path.ok()) return ReplyStatus(req, path.status());
  const std::string key = names_.FileKey(*path);
  const cache::FileMeta meta = NewMeta(req, S_IFREG, mode);
  Result<std::shared_ptr<cache::WritableFile>> writer = objects_.Create(key, meta);
  if (!writer.ok()) {
    LOG_WARN("create %s: %s", path->c_str(), writer.status().ToString().c_str());
    return ReplyStatus(req, writer.status());
  }

  cache::NodeAttr attr;
  attr.type = cache::NodeType::kFile;
  attr.mtime = *meta.mtime;
  names_.NoteFile(*path, attr);
  fuse_entry_param e = ToEntry(inodes_.Acquire(*path, attr));
  auto handle = std::make_unique<FileHandle>();
  handle->ino = e.ino;
  handle->writer = *writer;
  int32_t unused_id = 0;
  if (!BeginOpen(req, *handle, *path, -1, &unused_id)) return inodes_.Forget(e.ino, 1);
  fi->fh = reinterpret_cast<uint64_t>(handle.get());
  if (fuse_reply_create(req, &e, fi) == 0) {
    static_cast<void>(handle.release());  // the kernel holds it until release
  } else {
    passthrough_.End(e.ino, handle->mode);
    inodes_.Forget(e.ino, 1);
  }
}

void FileSystem::Read(fuse_req_t req, size_t size, off_t offset, fuse_file_info* fi) {
  FileHandle* handle = GetFileHandle(fi);
  int fd;
  uint64_t file_size;
  if (handle->writer) {
    fd = handle->writer->fd();
    struct stat st {};
    if (fstat(fd, &st) != 0) return (void)fuse_reply_err(req, errno);
    file_size = static_cast<uint64_t>(st.st_size);
  } else {
    fd = handle->reader->fd();
    file_size = handle->reader->size();
  }
  if (offset < 0 || static_cast<uint64_t>(offset) >= file_size) {
    return (void)fuse_reply_buf(req, nullptr, 0);
  }
  const uint64_t length = std::min<uint64_t>(size, file_size - static_cast<uint64_t>(offset));
  if (!handle->writer) {
    // A download may still be under way: wait for just this range.
    if (Status s = handle->reader->WaitReadable(static_cast<uint64_t>(offset), length); !s.ok()) {
      LOG_WARN("read: %s", s.ToString().c_str());
      return ReplyStatus(req, s);
    }
  }
  fuse_bufvec buf = FUSE_BUFVEC_INIT(length);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = fd;
  buf.buf[0].pos = offset;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void FileSystem::Write(fuse_req_t req, const char* buf, size_t size, off_t offset,
                       fuse_file_info* fi) {
  FileHandle* handle = GetFileHandle(fi);
  if (!handle->writer) return (void)fuse_reply_err(req, EBADF);
  if (Status s = handle->writer->MarkDirty(); !s.ok()) return ReplyStatus(req, s);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pwrite(handle->writer->fd(), buf + done, size - done, offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      // ENOSPC included: what was written before stays intact in the cache file.
      if (err != ENOSPC) LOG_WARN("write %s: %s", handle->writer->key().c_str(), strerror(err));
      if (done > 0) break;
      return (void)fuse_reply_err(req, err);
    }
    done += static_cast<size_t>(n);
  }
  fuse_reply_write(req, done);
}

void FileSystem::Flush(fuse_req_t req, fuse_file_info* fi) {
  FileHandle* handle = GetFileHandle(fi);
  if (!handle->writer) return (void)fuse_reply_err(req, 0);
  // Not the caller's last descriptor of the file (a shell's `>` closes the one it dup2()ed
  // away before anything is written): the close of the last one writes the file back.
  Status s;
  if (!HoldsWriter(fuse_req_ctx(req)->pid, mount_root_, handle->ino)) {
    s = handle->writer->Flush();
    if (!s.ok()) LOG_ERROR("close: %s", s.ToString().c_str());
  }
  // Whatever happened, the name cache must show the local size now.
  if (std::optional<InodeInfo> inode = inodes_.Get(handle->ino)) {
    NoteFileChanged(handle->ino, inode->path);
  }
  ReplyStatus(req, s);
}

void FileSystem::Fsync(fuse_req_t req, fuse_file_info* fi) {
  FileHandle* handle = GetFileHandle(fi);
  if (!handle->writer) return (void)fuse_reply_err(req, 0);
  ReplyStatus(req, handle->writer->Flush());
}

void FileSystem::Release(fuse_req_t req, fuse_file_info* fi) {
  std::unique_ptr<FileHandle> handle(GetFileHandle(fi));
  passthrough_.End(handle->ino, handle->mode);
  if (handle->writer && handle->mode == OpenMode::kPassthrough) {
    // Its file description is gone: no more writes the daemon does not see.
    handle->writer->EndUnseenWrites();
  }
  if (handle->writer) {
    // Normally a no-op: the last close's flush wrote it back. Catches writes after that flush
    // (through a descriptor inherited past close, or mmap).
    if (Status s = handle->writer->Flush(); !s.ok()) LOG_ERROR("release: %s", s.ToString().c_str());
  }
  fuse_reply_err(req, 0);
}

}  // namespace s3cachefs::fs
