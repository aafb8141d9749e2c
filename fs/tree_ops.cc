// FileSystem: changes to the tree — mkdir, rmdir, unlink, rename.
//
// S3 has no directories and no rename: mkdir puts a "dir/" marker object, rmdir deletes it,
// renaming a file is a server-side copy and a delete, and renaming a directory does that for
// every key under it. None of this is atomic; the README says what a crash in the middle leaves.
#include <cstdio>
#include <cstring>
#include <set>

#include "cache/local_overlay.h"
#include "fs/filesystem.h"
#include "fs/handles.h"
#include "s3/log.h"

namespace s3cachefs::fs {

void FileSystem::MkDir(fuse_req_t req, Ino parent, const char* name, mode_t mode) {
  if (Status s = CheckWritable(); !s.ok()) return ReplyStatus(req, s);
  Result<std::string> path = ChildPath(parent, name);
  if (!path.ok()) return ReplyStatus(req, path.status());
  const cache::FileMeta meta = NewMeta(req, S_IFDIR, mode);
  if (Status s = names_.MakeDirectory(*path, meta.ToMetadata()); !s.ok()) {
    LOG_WARN("%s", s.ToString().c_str());
    return ReplyStatus(req, s);
  }
  cache::NodeAttr attr;
  attr.type = cache::NodeType::kDirectory;
  attr.mtime = *meta.mtime;
  fuse_entry_param e = ToEntry(inodes_.Acquire(*path, attr));
  if (fuse_reply_entry(req, &e) != 0) inodes_.Forget(e.ino, 1);
}

void FileSystem::RmDir(fuse_req_t req, Ino parent, const char* name) {
  if (Status s = CheckWritable(); !s.ok()) return ReplyStatus(req, s);
  Result<std::string> path = ChildPath(parent, name);
  if (!path.ok()) return ReplyStatus(req, path.status());
  // Emptiness is decided on a fresh listing: a stale one could hide a child.
  names_.Invalidate(*path);
  Result<std::vector<cache::DirEntry>> entries = names_.List(*path);
  if (!entries.ok()) return ReplyStatus(req, entries.status());
  const std::string prefix = names_.DirPrefix(*path);
  if (!entries->empty() || !objects_.LocalUnder(prefix).empty()) {
    return (void)fuse_reply_err(req, ENOTEMPTY);
  }
  if (Status s = names_.RemoveDirectoryMarker(*path); !s.ok()) {
    LOG_WARN("%s", s.ToString().c_str());
    return ReplyStatus(req, s);
  }
  fuse_reply_err(req, 0);
}

void FileSystem::Unlink(fuse_req_t req, Ino parent, const char* name) {
  if (Status s = CheckWritable(); !s.ok()) return ReplyStatus(req, s);
  Result<std::string> path = ChildPath(parent, name);
  if (!path.ok()) return ReplyStatus(req, path.status());
  Result<cache::NodeAttr> attr = CurrentAttr(*path);
  if (!attr.ok()) return ReplyStatus(req, attr.status());
  if (attr->type == cache::NodeType::kDirectory) return (void)fuse_reply_err(req, EISDIR);
  if (Status s = objects_.Remove(names_.FileKey(*path)); !s.ok()) {
    LOG_WARN("unlink %s: %s", path->c_str(), s.ToString().c_str());
    return ReplyStatus(req, s);
  }
  names_.NoteRemoved(*path);
  fuse_reply_err(req, 0);
}

void FileSystem::Rename(fuse_req_t req, Ino parent, const char* name, Ino new_parent,
                        const char* new_name, unsigned flags) {
  if (Status s = CheckWritable(); !s.ok()) return ReplyStatus(req, s);
  if ((flags & ~RENAME_NOREPLACE) != 0) return (void)fuse_reply_err(req, EINVAL);  // EXCHANGE
  Result<std::string> from = ChildPath(parent, name);
  if (!from.ok()) return ReplyStatus(req, from.status());
  Result<std::string> to = ChildPath(new_parent, new_name);
  if (!to.ok()) return ReplyStatus(req, to.status());
  if (*from == *to) return (void)fuse_reply_err(req, 0);
  if (to->rfind(*from + "/", 0) == 0) return (void)fuse_reply_err(req, EINVAL);  // into itself

  Result<cache::NodeAttr> source = CurrentAttr(*from);
  if (!source.ok()) return ReplyStatus(req, source.status());
  Result<cache::NodeAttr> target = CurrentAttr(*to);
  const bool target_exists = target.ok();
  if (!target_exists && target.status().code() != ENOENT) return ReplyStatus(req, target.status());
  if (target_exists && (flags & RENAME_NOREPLACE) != 0) return (void)fuse_reply_err(req, EEXIST);

  Status s;
  if (source->type == cache::NodeType::kFile) {
    if (target_exists && target->type == cache::NodeType::kDirectory) {
      return (void)fuse_reply_err(req, EISDIR);
    }
    s = objects_.Rename(names_.FileKey(*from), names_.FileKey(*to));
    if (s.ok()) {
      names_.NoteRemoved(*from);
      cache::NodeAttr attr = *source;
      attr.listed_at = {};
      if (std::optional<cache::LocalFile> local = objects_.Local(names_.FileKey(*to))) {
        attr = cache::LocalAttr(*local);
      }
      names_.NoteFile(*to, attr);
    }
  } else {
    if (target_exists) {
      if (target->type != cache::NodeType::kDirectory) return (void)fuse_reply_err(req, ENOTDIR);
      names_.Invalidate(*to);
      Result<std::vector<cache::DirEntry>> entries = names_.List(*to);
      if (!entries.ok()) return ReplyStatus(req, entries.status());
      if (!entries->empty()) return (void)fuse_reply_err(req, ENOTEMPTY);
    }
    s = RenameDirectory(*from, *to);
  }
  if (!s.ok()) {
    LOG_WARN("rename %s -> %s: %s", from->c_str(), to->c_str(), s.ToString().c_str());
    return ReplyStatus(req, s);
  }
  inodes_.Rename(*from, *to);
  fuse_reply_err(req, 0);
}

Status FileSystem::RenameDirectory(const std::string& from, const std::string& to) {
  const std::string from_prefix = names_.DirPrefix(from);
  const std::string to_prefix = names_.DirPrefix(to);
  Result<std::vector<s3::ObjectInfo>> listed = names_.ListKeysUnder(from);
  if (!listed.ok()) return listed.status();
  std::set<std::string> keys;
  for (const s3::ObjectInfo& object : *listed) keys.insert(object.key);
  for (const cache::LocalFile& local : objects_.LocalUnder(from_prefix)) keys.insert(local.key);

  // The marker last: if this stops half-way, the source directory still exists and holds what
  // was not moved yet, and running the rename again finishes it.
  const bool has_marker = keys.erase(from_prefix) > 0;
  size_t moved = 0;
  for (const std::string& key : keys) {
    const std::string dest = to_prefix + key.substr(from_prefix.size());
    if (Status s = objects_.Rename(key, dest); !s.ok()) {
      return s.WithContext("after moving " + std::to_string(moved) + " of " +
                           std::to_string(keys.size()) + " keys");
    }
    ++moved;
  }
  Status s = has_marker ? objects_.Rename(from_prefix, to_prefix)
                        : names_.MakeDirectory(to, s3::Metadata{});
  names_.NoteRemoved(from);
  names_.Invalidate(to);
  const size_t slash = to.rfind('/');
  names_.Invalidate(slash == std::string::npos ? "" : to.substr(0, slash));
  if (s.ok()) LOG_INFO("renamed directory %s -> %s (%zu keys)", from.c_str(), to.c_str(), moved);
  return s;
}

}  // namespace s3cachefs::fs
