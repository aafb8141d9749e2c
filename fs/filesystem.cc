#include "fs/filesystem.h"

#include <fcntl.h>
#include <sys/statvfs.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "cache/local_overlay.h"
#include "fs/cache_config.h"
#include "fs/handles.h"
#include "s3/log.h"

namespace s3cachefs::fs {
namespace {

FileSystem* Self(fuse_req_t req) {
  return static_cast<FileSystem*>(fuse_req_userdata(req));
}

constexpr uint64_t kMaxIo = 1 << 20;  // largest FUSE read/write request we negotiate

std::string CanonicalPath(const std::string& path) {
  char real[PATH_MAX];
  return realpath(path.c_str(), real) != nullptr ? std::string(real) : std::string();
}

}  // namespace

FileSystem::FileSystem(const MountOptions& options, cache::Namespace& names,
                       cache::ObjectCache& objects)
    : options_(options),
      names_(names),
      objects_(objects),
      prefetcher_(names, DirPrefetchConfigFor(options)),
      file_prefetcher_(names, objects, FilePrefetchConfigFor(options)),
      mount_time_(time(nullptr)),
      attr_timeout_(std::chrono::duration<double>(options.stat_ttl).count()),
      mount_root_(CanonicalPath(options.mountpoint)) {}

Result<std::string> FileSystem::ChildPath(Ino parent, const char* name) const {
  std::optional<InodeInfo> dir = inodes_.Get(parent);
  if (!dir) return Status::Error(ESTALE, "unknown inode");
  if (strlen(name) > 255) return Status::Error(ENAMETOOLONG, "name too long");
  if (!cache::IsValidSegment(name)) return Status::Error(EINVAL, "invalid name");
  return dir->path.empty() ? std::string(name) : dir->path + "/" + name;
}

std::optional<cache::ListingHint> FileSystem::HintFor(const cache::NodeAttr& attr) {
  if (attr.listed_at.time_since_epoch().count() == 0 || attr.etag.empty()) return std::nullopt;
  return cache::ListingHint{attr.etag, attr.size, attr.listed_at};
}

Status FileSystem::CheckWritable() const {
  return options_.read_only ? Status::Error(EROFS, "read-only mount") : Status::Ok();
}

cache::FileMeta FileSystem::NewMeta(fuse_req_t req, mode_t type_bits, mode_t mode) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  cache::FileMeta meta;
  meta.mode = type_bits | (mode & 07777 & ~ctx->umask);
  meta.uid = ctx->uid;
  meta.gid = ctx->gid;
  meta.mtime = time(nullptr);
  return meta;
}

Result<cache::NodeAttr> FileSystem::CurrentAttr(const std::string& path) {
  if (path.empty()) {
    cache::NodeAttr root;
    root.type = cache::NodeType::kDirectory;
    return root;
  }
  std::optional<cache::LocalFile> local = objects_.Local(names_.FileKey(path));
  Result<cache::NodeAttr> listed = names_.Lookup(path);
  if (local && !(listed.ok() && listed->type == cache::NodeType::kDirectory)) {
    return cache::LocalAttr(*local);
  }
  return listed;
}

struct stat FileSystem::ToStat(Ino ino, const std::string& path,
                               const cache::NodeAttr& attr) const {
  struct stat st {};
  st.st_ino = ino;
  st.st_uid = options_.uid;
  st.st_gid = options_.gid;
  time_t mtime = attr.mtime != 0 ? attr.mtime : mount_time_;
  if (attr.type == cache::NodeType::kDirectory) {
    st.st_mode = S_IFDIR | (0777 & ~options_.umask);
    st.st_nlink = 2;
  } else {
    st.st_mode = S_IFREG | (0666 & ~options_.umask);
    st.st_nlink = 1;
    st.st_size = static_cast<off_t>(attr.size);
    st.st_blocks = static_cast<blkcnt_t>((attr.size + 511) / 512);
    // Attributes kept in x-amz-meta-* (written by us or by s3fs-fuse) win over the defaults.
    if (std::optional<cache::FileMeta> meta = objects_.Meta(names_.FileKey(path))) {
      if (meta->mode) st.st_mode = S_IFREG | (*meta->mode & 07777);
      if (meta->uid) st.st_uid = *meta->uid;
      if (meta->gid) st.st_gid = *meta->gid;
      if (meta->mtime) mtime = static_cast<time_t>(*meta->mtime);
    }
  }
  st.st_blksize = 128 * 1024;
  st.st_mtim.tv_sec = mtime;
  st.st_atim.tv_sec = mtime;
  st.st_ctim.tv_sec = mtime;
  return st;
}

fuse_entry_param FileSystem::ToEntry(const InodeInfo& inode) const {
  fuse_entry_param e{};
  e.ino = inode.ino;
  e.generation = 1;
  e.attr = ToStat(inode.ino, inode.path, inode.attr);
  e.attr_timeout = attr_timeout_;
  e.entry_timeout = attr_timeout_;
  return e;
}

void FileSystem::Init(fuse_conn_info* conn) {
  // Large requests: fewer round trips through the kernel for sequential I/O.
  conn->max_write = kMaxIo;
  conn->max_readahead = kMaxIo;
  conn->max_read = options_.max_read;  // libfuse insists it equals the max_read mount option
  auto want = [conn](unsigned cap) {
    if ((conn->capable & cap) != 0) conn->want |= cap;
  };
  // Replies to reads are spliced from the cache file instead of copied through user space.
  want(FUSE_CAP_SPLICE_WRITE);
  want(FUSE_CAP_SPLICE_MOVE);
  // Lookups and readdirs of one directory may run at once; they only read shared state.
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_ASYNC_READ);
  // The pieces of one large direct-I/O read (cold_direct) are sent at once, not one by one.
  want(FUSE_CAP_ASYNC_DIO);
  want(FUSE_CAP_READDIRPLUS);
  // The kernel drops cached pages when it sees a file's size or mtime change.
  want(FUSE_CAP_AUTO_INVAL_DATA);
  LOG_INFO("FUSE protocol %u.%u, max_write %u, max_read %u, max_readahead %u", conn->proto_major,
           conn->proto_minor, conn->max_write, conn->max_read, conn->max_readahead);
}

void FileSystem::Lookup(fuse_req_t req, Ino parent, const char* name) {
  Result<std::string> path = ChildPath(parent, name);
  if (!path.ok()) {
    const int code = path.status().code();
    return (void)fuse_reply_err(req, code == EINVAL ? ENOENT : code);
  }
  Result<cache::NodeAttr> attr = CurrentAttr(*path);
  if (!attr.ok()) {
    if (attr.status().code() == ENOENT) {
      // A negative entry the kernel may cache for as long as our own negative cache.
      fuse_entry_param e{};
      e.entry_timeout = std::chrono::duration<double>(options_.negative_ttl).count();
      return (void)fuse_reply_entry(req, &e);
    }
    LOG_WARN("lookup %s: %s", path->c_str(), attr.status().ToString().c_str());
    return ReplyStatus(req, attr.status());
  }
  fuse_entry_param e = ToEntry(inodes_.Acquire(*path, *attr));
  if (fuse_reply_entry(req, &e) != 0) inodes_.Forget(e.ino, 1);
}

void FileSystem::Forget(Ino ino, uint64_t nlookup) {
  inodes_.Forget(ino, nlookup);
}

void FileSystem::GetAttr(fuse_req_t req, Ino ino) {
  std::optional<InodeInfo> inode = inodes_.Get(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  if (inode->detached) {  // what its open files have: its path stands for another file now
    struct stat st = ToStat(ino, inode->path, inode->attr);
    return (void)fuse_reply_attr(req, &st, attr_timeout_);
  }
  Result<cache::NodeAttr> attr = CurrentAttr(inode->path);
  if (!attr.ok()) return ReplyStatus(req, attr.status());
  inodes_.SetAttr(ino, *attr);
  struct stat st = ToStat(ino, inode->path, *attr);
  fuse_reply_attr(req, &st, attr_timeout_);
}

void FileSystem::SetAttr(fuse_req_t req, Ino ino, struct stat* attr, int to_set,
                         fuse_file_info* fi) {
  std::optional<InodeInfo> inode = inodes_.Get(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  const bool is_dir = inode->attr.type == cache::NodeType::kDirectory;
  const std::string key = names_.FileKey(inode->path);
  const int meta_bits = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
                        FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW;
  if ((to_set & (FUSE_SET_ATTR_SIZE | meta_bits)) != 0) {
    if (Status s = CheckWritable(); !s.ok()) return ReplyStatus(req, s);
  }

  if ((to_set & FUSE_SET_ATTR_SIZE) != 0) {
    if (is_dir) return (void)fuse_reply_err(req, EISDIR);
    FileHandle* handle = fi != nullptr ? GetFileHandle(fi) : nullptr;
    std::shared_ptr<cache::WritableFile> writer = handle != nullptr ? handle->writer : nullptr;
    const bool own_writer = writer == nullptr;
    // A detached inode's path stands for another file: only its own writers may change it.
    if (own_writer && inode->detached) return (void)fuse_reply_err(req, ESTALE);
    if (own_writer) {  // truncate(2) on a path: open, cut, write back
      Result<std::shared_ptr<cache::WritableFile>> opened =
          objects_.OpenWrite(key, attr->st_size == 0, false, HintFor(inode->attr));
      if (!opened.ok()) return ReplyStatus(req, opened.status());
      writer = *opened;
    }
    Status s = writer->MarkDirty();
    if (s.ok() && ftruncate(writer->fd(), attr->st_size) != 0) {
      s = Status::Error(errno, std::string("truncate: ") + strerror(errno));
    }
    if (s.ok() && own_writer) s = writer->Flush();
    if (!s.ok()) {
      LOG_WARN("truncate %s: %s", inode->path.c_str(), s.ToString().c_str());
      return ReplyStatus(req, s);
    }
  }

  if (!is_dir && (to_set & meta_bits) != 0) {
    if (inode->detached) return (void)fuse_reply_err(req, ESTALE);
    cache::FileMeta meta;
    if ((to_set & FUSE_SET_ATTR_MODE) != 0) meta.mode = S_IFREG | (attr->st_mode & 07777);
    if ((to_set & FUSE_SET_ATTR_UID) != 0) meta.uid = attr->st_uid;
    if ((to_set & FUSE_SET_ATTR_GID) != 0) meta.gid = attr->st_gid;
    if ((to_set & FUSE_SET_ATTR_MTIME_NOW) != 0) {
      meta.mtime = time(nullptr);
    } else if ((to_set & FUSE_SET_ATTR_MTIME) != 0) {
      meta.mtime = attr->st_mtim.tv_sec;
    }
    if (Status s = objects_.SetMeta(key, meta); !s.ok()) {
      LOG_WARN("setattr %s: %s", inode->path.c_str(), s.ToString().c_str());
      return ReplyStatus(req, s);
    }
  }
  // Directories have no stored attributes of their own (a marker may not even exist): mode,
  // owner and time changes on them are accepted and not kept, as with s3fs-fuse's implicit dirs.
  if ((to_set & FUSE_SET_ATTR_SIZE) != 0) NoteFileChanged(ino, inode->path);
  GetAttr(req, ino);
}

void FileSystem::NoteFileChanged(Ino ino, const std::string& path) {
  Result<cache::NodeAttr> attr = CurrentAttr(path);
  if (!attr.ok()) return;
  inodes_.SetAttr(ino, *attr);
  if (attr->type == cache::NodeType::kFile) names_.NoteFile(path, *attr);
}

void FileSystem::OpenDir(fuse_req_t req, Ino ino, fuse_file_info* fi) {
  std::optional<InodeInfo> inode = inodes_.Get(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  // Before our own LIST, so that the next directories' LISTs are on their way meanwhile.
  prefetcher_.Entering(inode->path);
  Result<std::vector<cache::DirEntry>> entries = names_.List(inode->path);
  if (!entries.ok()) return ReplyStatus(req, entries.status());
  prefetcher_.Read(inode->path, *entries);
  const std::string prefix = names_.DirPrefix(inode->path);
  cache::OverlayLocalFiles(prefix, objects_.LocalUnder(prefix), *entries);
  auto handle = std::make_unique<DirHandle>();
  handle->path = inode->path;
  handle->entries = std::move(*entries);
  fi->fh = reinterpret_cast<uint64_t>(handle.get());
  if (fuse_reply_open(req, fi) == 0) {
    static_cast<void>(handle.release());  // the kernel holds it until release
  }
}

void FileSystem::ReadDir(fuse_req_t req, Ino ino, size_t size, off_t offset, fuse_file_info* fi,
                         bool plus) {
  DirHandle* handle = GetDirHandle(fi);
  std::vector<char> buf(size);
  size_t used = 0;
  // Offsets: entry i (0 ".", 1 "..", 2 + n the n-th child) ends at offset i + 1.
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
      const std::string path = handle->path.empty() ? entry.name : handle->path + "/" + entry.name;
      if (plus) {
        e = ToEntry(inodes_.Acquire(path, entry.attr));
      } else {
        e.attr = ToStat(std::hash<std::string>{}(path) | (1ull << 63), path, entry.attr);
      }
    }
    char* out = buf.data() + used;
    const size_t room = size - used;
    const size_t need = plus ? fuse_add_direntry_plus(req, out, room, name, &e, next + 1)
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
  delete GetDirHandle(fi);
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
    o.getattr = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
      Self(req)->GetAttr(req, ino);
    };
    o.setattr = [](fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                   fuse_file_info* fi) { Self(req)->SetAttr(req, ino, attr, to_set, fi); };
    o.opendir = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
      Self(req)->OpenDir(req, ino, fi);
    };
    o.readdir = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
      Self(req)->ReadDir(req, ino, size, off, fi, false);
    };
    o.readdirplus = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
      Self(req)->ReadDir(req, ino, size, off, fi, true);
    };
    o.releasedir = [](fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
      Self(req)->ReleaseDir(req, fi);
    };
    o.statfs = [](fuse_req_t req, fuse_ino_t) { Self(req)->StatFs(req); };
    o.open = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
      Self(req)->Open(req, ino, fi);
    };
    o.create = [](fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                  fuse_file_info* fi) { Self(req)->Create(req, parent, name, mode, fi); };
    o.read = [](fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
      Self(req)->Read(req, size, off, fi);
    };
    o.write = [](fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off,
                 fuse_file_info* fi) { Self(req)->Write(req, buf, size, off, fi); };
    o.flush = [](fuse_req_t req, fuse_ino_t, fuse_file_info* fi) { Self(req)->Flush(req, fi); };
    o.fsync = [](fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
      Self(req)->Fsync(req, fi);
    };
    o.release = [](fuse_req_t req, fuse_ino_t, fuse_file_info* fi) { Self(req)->Release(req, fi); };
    o.mkdir = [](fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
      Self(req)->MkDir(req, parent, name, mode);
    };
    o.rmdir = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
      Self(req)->RmDir(req, parent, name);
    };
    o.unlink = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
      Self(req)->Unlink(req, parent, name);
    };
    o.rename = [](fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
                  const char* new_name, unsigned flags) {
      Self(req)->Rename(req, parent, name, new_parent, new_name, flags);
    };
    // S3 has no hard links.
    o.link = [](fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) {
      fuse_reply_err(req, EPERM);
    };
    return o;
  }();
  return ops;
}

}  // namespace s3cachefs::fs
