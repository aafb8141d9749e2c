#include "fs/filesystem.h"

#include <fcntl.h>
#include <sys/statvfs.h>

#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "s3/log.h"

namespace s3cachefs::fs {
namespace {

FileSystem* Self(fuse_req_t req) { return static_cast<FileSystem*>(fuse_req_userdata(req)); }

void ReplyStatus(fuse_req_t req, const Status& status) {
  fuse_reply_err(req, status.ok() ? 0 : status.code());
}

// The snapshot of a directory taken at opendir, so that offsets stay stable while the kernel
// reads it in several calls.
struct DirHandle {
  std::string path;
  std::vector<cache::DirEntry> entries;
};

// One open file.
struct FileHandle {
  std::shared_ptr<cache::ObjectHandle> object;
};

constexpr uint64_t kMaxIo = 1 << 20;  // largest FUSE read/write request we negotiate

}  // namespace

FileSystem::FileSystem(const MountOptions& options, cache::Namespace& names,
                       cache::ObjectCache& objects)
    : options_(options),
      names_(names),
      objects_(objects),
      mount_time_(time(nullptr)),
      attr_timeout_(std::chrono::duration<double>(options.stat_ttl).count()) {}

std::string FileSystem::ChildPath(const std::string& parent, const char* name) {
  return parent.empty() ? std::string(name) : parent + "/" + name;
}

struct stat FileSystem::ToStat(Ino ino, const cache::NodeAttr& attr) const {
  struct stat st {};
  st.st_ino = ino;
  st.st_uid = options_.uid;
  st.st_gid = options_.gid;
  if (attr.type == cache::NodeType::kDirectory) {
    st.st_mode = S_IFDIR | (0777 & ~options_.umask);
    st.st_nlink = 2;
  } else {
    st.st_mode = S_IFREG | (0666 & ~options_.umask);
    st.st_nlink = 1;
    st.st_size = static_cast<off_t>(attr.size);
    st.st_blocks = static_cast<blkcnt_t>((attr.size + 511) / 512);
  }
  st.st_blksize = 128 * 1024;
  const time_t t = attr.mtime != 0 ? attr.mtime : mount_time_;
  st.st_mtim.tv_sec = t;
  st.st_atim.tv_sec = t;
  st.st_ctim.tv_sec = t;
  return st;
}

fuse_entry_param FileSystem::ToEntry(const InodeInfo& inode) const {
  fuse_entry_param e{};
  e.ino = inode.ino;
  e.generation = 1;
  e.attr = ToStat(inode.ino, inode.attr);
  e.attr_timeout = attr_timeout_;
  e.entry_timeout = attr_timeout_;
  return e;
}

void FileSystem::Init(fuse_conn_info* conn) {
  // Large requests: fewer round trips through the kernel for sequential I/O.
  conn->max_write = kMaxIo;
  conn->max_readahead = kMaxIo;
  auto want = [conn](unsigned cap) {
    if ((conn->capable & cap) != 0) conn->want |= cap;
  };
  // Replies to reads are spliced from the cache file instead of copied through user space.
  want(FUSE_CAP_SPLICE_WRITE);
  want(FUSE_CAP_SPLICE_MOVE);
  // Lookups and readdirs of one directory may run at once; they only read shared state.
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_ASYNC_READ);
  want(FUSE_CAP_READDIRPLUS);
  // The kernel drops cached pages when it sees a file's size or mtime change.
  want(FUSE_CAP_AUTO_INVAL_DATA);
  LOG_INFO("FUSE protocol %u.%u, max_write %u, max_readahead %u", conn->proto_major,
           conn->proto_minor, conn->max_write, conn->max_readahead);
}

void FileSystem::Lookup(fuse_req_t req, Ino parent, const char* name) {
  std::optional<InodeInfo> dir = inodes_.Get(parent);
  if (!dir) return (void)fuse_reply_err(req, ESTALE);
  if (!cache::IsValidSegment(name)) {
    return (void)fuse_reply_err(req, strlen(name) > 255 ? ENAMETOOLONG : ENOENT);
  }
  const std::string path = ChildPath(dir->path, name);
  Result<cache::NodeAttr> attr = names_.Lookup(path);
  if (!attr.ok()) {
    if (attr.status().code() == ENOENT) {
      // A negative entry the kernel may cache for as long as our own negative cache.
      fuse_entry_param e{};
      e.entry_timeout = std::chrono::duration<double>(options_.negative_ttl).count();
      return (void)fuse_reply_entry(req, &e);
    }
    LOG_WARN("lookup %s: %s", path.c_str(), attr.status().ToString().c_str());
    return ReplyStatus(req, attr.status());
  }
  fuse_entry_param e = ToEntry(inodes_.Acquire(path, *attr));
  if (fuse_reply_entry(req, &e) != 0) inodes_.Forget(e.ino, 1);
}

void FileSystem::Forget(Ino ino, uint64_t nlookup) { inodes_.Forget(ino, nlookup); }

void FileSystem::GetAttr(fuse_req_t req, Ino ino) {
  std::optional<InodeInfo> inode = inodes_.Get(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  cache::NodeAttr attr = inode->attr;
  if (ino != kRootIno) {
    Result<cache::NodeAttr> fresh = names_.Lookup(inode->path);
    if (!fresh.ok()) return ReplyStatus(req, fresh.status());
    attr = *fresh;
    inodes_.SetAttr(ino, attr);
  }
  struct stat st = ToStat(ino, attr);
  fuse_reply_attr(req, &st, attr_timeout_);
}

void FileSystem::OpenDir(fuse_req_t req, Ino ino, fuse_file_info* fi) {
  std::optional<InodeInfo> inode = inodes_.Get(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  Result<std::vector<cache::DirEntry>> entries = names_.List(inode->path);
  if (!entries.ok()) return ReplyStatus(req, entries.status());
  auto handle = std::make_unique<DirHandle>();
  handle->path = inode->path;
  handle->entries = std::move(*entries);
  fi->fh = reinterpret_cast<uint64_t>(handle.get());
  fi->cache_readdir = 0;
  if (fuse_reply_open(req, fi) == 0) handle.release();
}

void FileSystem::ReadDir(fuse_req_t req, Ino ino, size_t size, off_t offset, fuse_file_info* fi,
                         bool plus) {
  auto* handle = reinterpret_cast<DirHandle*>(fi->fh);
  std::vector<char> buf(size);
  size_t used = 0;
  // Offsets: 1 and 2 are "." and "..", 3 + i is entries[i].
  for (off_t next = offset; next < static_cast<off_t>(handle->entries.size()) + 2; ++next) {
    const char* name;
    fuse_entry_param e{};
    if (next < 2) {
      name = next == 0 ? "." : "..";
      e.attr.st_ino = next == 0 ? ino : FUSE_ROOT_ID;
      e.attr.st_mode = S_IFDIR;
    } else {
      const cache::DirEntry& entry = handle->entries[next - 2];
      name = entry.name.c_str();
      if (plus) {
        e = ToEntry(inodes_.Acquire(ChildPath(handle->path, name), entry.attr));
      } else {
        e.attr = ToStat(std::hash<std::string>{}(ChildPath(handle->path, name)) | (1ull << 63),
                        entry.attr);
      }
    }
    char* out = buf.data() + used;
    const size_t room = size - used;
    size_t need = plus ? fuse_add_direntry_plus(req, out, room, name, &e, next + 1)
                       : fuse_add_direntry(req, out, room, name, &e.attr, next + 1);
    if (need > room) {
      if (plus && e.ino != 0) inodes_.Forget(e.ino, 1);  // not handed to the kernel
      break;
    }
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void FileSystem::ReleaseDir(fuse_req_t req, fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

void FileSystem::Open(fuse_req_t req, Ino ino, fuse_file_info* fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC) != 0) {
    return (void)fuse_reply_err(req, EROFS);
  }
  std::optional<InodeInfo> inode = inodes_.Get(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  if (inode->attr.type == cache::NodeType::kDirectory) return (void)fuse_reply_err(req, EISDIR);

  std::optional<cache::ListingHint> hint;
  if (inode->attr.listed_at.time_since_epoch().count() != 0) {
    hint = cache::ListingHint{inode->attr.etag, inode->attr.size, inode->attr.listed_at};
  }
  Result<std::shared_ptr<cache::ObjectHandle>> object =
      objects_.OpenRead(names_.FileKey(inode->path), hint);
  if (!object.ok()) {
    if (object.status().code() == ENOENT) {
      names_.NoteRemoved(inode->path);
    } else {
      LOG_WARN("open %s: %s", inode->path.c_str(), object.status().ToString().c_str());
    }
    return ReplyStatus(req, object.status());
  }
  const std::shared_ptr<cache::ObjectHandle>& h = *object;
  const bool same_content = inodes_.SwapOpenedEtag(ino, h->etag()) == h->etag();
  if (h->etag() != inode->attr.etag || h->size() != inode->attr.size) {
    // The object changed since it was listed: publish the new size and drop what the kernel
    // cached about it, so that reads see the whole new content.
    cache::NodeAttr attr = inode->attr;
    attr.etag = h->etag();
    attr.size = h->size();
    attr.mtime = h->mtime();
    inodes_.SetAttr(ino, attr);
    names_.NoteFile(inode->path, attr);
    if (session_ != nullptr) fuse_lowlevel_notify_inval_inode(session_, ino, -1, 0);
  }
  auto handle = std::make_unique<FileHandle>();
  handle->object = h;
  fi->fh = reinterpret_cast<uint64_t>(handle.get());
  fi->keep_cache = same_content ? 1 : 0;
  if (fuse_reply_open(req, fi) == 0) handle.release();
}

void FileSystem::Read(fuse_req_t req, size_t size, off_t offset, fuse_file_info* fi) {
  auto* handle = reinterpret_cast<FileHandle*>(fi->fh);
  cache::ObjectHandle& object = *handle->object;
  const uint64_t file_size = object.size();
  if (offset < 0 || static_cast<uint64_t>(offset) >= file_size) {
    return (void)fuse_reply_buf(req, nullptr, 0);
  }
  const uint64_t length = std::min<uint64_t>(size, file_size - static_cast<uint64_t>(offset));
  if (Status s = object.WaitReadable(static_cast<uint64_t>(offset), length); !s.ok()) {
    LOG_WARN("read: %s", s.ToString().c_str());
    return ReplyStatus(req, s);
  }
  fuse_bufvec buf = FUSE_BUFVEC_INIT(length);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = object.fd();
  buf.buf[0].pos = offset;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void FileSystem::Release(fuse_req_t req, fuse_file_info* fi) {
  delete reinterpret_cast<FileHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

void FileSystem::StatFs(fuse_req_t req) {
  // Sizes are those of the cache disk: that is where reads and writes land first.
  struct statvfs st {};
  if (statvfs(options_.cache_dir.c_str(), &st) != 0) {
    st = {};
    st.f_bsize = st.f_frsize = 4096;
  }
  st.f_namemax = 255;
  st.f_files = 1ull << 32;
  st.f_ffree = 1ull << 31;
  st.f_favail = st.f_ffree;
  fuse_reply_statfs(req, &st);
}

const fuse_lowlevel_ops& FileSystem::Operations() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    o.init = [](void* userdata, fuse_conn_info* conn) {
      static_cast<FileSystem*>(userdata)->Init(conn);
    };
    o.lookup = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
      Self(req)->Lookup(req, parent, name);
    };
    o.forget = [](fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
      Self(req)->Forget(ino, nlookup);
      fuse_reply_none(req);
    };
    o.forget_multi = [](fuse_req_t req, size_t count, fuse_forget_data* forgets) {
      for (size_t i = 0; i < count; ++i) Self(req)->Forget(forgets[i].ino, forgets[i].nlookup);
      fuse_reply_none(req);
    };
    o.getattr = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info*) { Self(req)->GetAttr(req, ino); };
    o.opendir = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
      Self(req)->OpenDir(req, ino, fi);
    };
    o.readdir = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
      Self(req)->ReadDir(req, ino, size, off, fi, false);
    };
    o.readdirplus = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       fuse_file_info* fi) { Self(req)->ReadDir(req, ino, size, off, fi, true); };
    o.releasedir = [](fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
      Self(req)->ReleaseDir(req, fi);
    };
    o.open = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) { Self(req)->Open(req, ino, fi); };
    o.read = [](fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
      Self(req)->Read(req, size, off, fi);
    };
    o.release = [](fuse_req_t req, fuse_ino_t, fuse_file_info* fi) { Self(req)->Release(req, fi); };
    o.statfs = [](fuse_req_t req, fuse_ino_t) { Self(req)->StatFs(req); };
    return o;
  }();
  return ops;
}

}  // namespace s3cachefs::fs
