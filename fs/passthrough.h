// Passthrough: FUSE passthrough (Linux 6.9 and later) for read-only opens of objects whose
// complete copy is in the cache. The kernel then serves their reads, mmap included, straight
// from the cache file, as it would a local file: no request reaches the daemon and the page
// cache is the cache file's own.
//
// libfuse 3.14 (Debian 12) predates passthrough, so the two protocol additions it needs are made
// here, under libfuse, in its custom I/O hooks (fuse_session_custom_io): the INIT reply also
// announces FUSE_PASSTHROUGH with a stack depth of 1, and an OPEN reply made while Open() has
// chosen passthrough carries FOPEN_PASSTHROUGH and the id of the cache file registered with
// FUSE_DEV_IOC_BACKING_OPEN (which needs CAP_SYS_ADMIN). Everything else passes through
// unchanged; when the kernel does not offer passthrough, or registering fails, opens stay
// ordinary ones.
//
// The kernel puts each inode in one I/O mode at a time and fails (EIO) an open that does not
// fit it: while an inode has passthrough opens, every new open of it must be a passthrough one
// on the same backing file, and while it has page-cache opens, none may be a passthrough one.
// Begin() therefore picks the mode from the handles still open on the inode, counted here from open
// to release (the kernel ends a file's mode before it sends RELEASE, so these counts are never
// below its own):
//   - passthrough: a complete cached copy, no other kind of open, and the same cache file as
//     the passthrough handles already open, if any;
//   - a writer of the same cache file while passthrough handles are open joins them: its
//     writes go to the file without the daemon seeing them, so the entry is kept DIRTY from
//     its open to its release (cache::WritableFile::BeginUnseenWrites) and uploaded at each
//     close as usual, and once more at its release. A truncating writer joins too, and then
//     truncates the shared file in place;
//   - conflict: any other open while passthrough handles are open: an open of a newer version
//     of the object (its cache file differs), or a reader of a download. The caller detaches
//     the inode from its path and answers ESTALE, so the kernel looks the name up again and
//     opens the new inode the lookup gives, while the open files keep the old one (as after a
//     rename over an open file);
//   - direct: a reader of an object not wholly cached yet, when passthrough is in use (and
//     -o cold_direct=1, the default), is served by the daemon without the kernel's page cache
//     (FOPEN_DIRECT_IO): its bytes are then cached once, in the cache file, not also in the
//     kernel's pages of the FUSE file (which a passthrough open would first have to drop, and
//     which under memory pressure push the cache file's pages out), and the next open is a
//     passthrough one. The kernel takes no direct open while passthrough opens are there (so
//     a download's reader next to them is a conflict, as before), but lets a passthrough open
//     start next to direct ones, unless one of those is mmapped (FUSE_DIRECT_IO_ALLOW_MMAP,
//     asked for in INIT: the mapping is cached) — so none starts while one is counted;
//   - cached: the ordinary open otherwise.
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <cstdint>

#include "fs/inode_table.h"
#include "fs/open_modes.h"
#include "s3/status.h"

namespace s3cachefs::fs {

class Passthrough {
 public:
  Passthrough() = default;
  Passthrough(const Passthrough&) = delete;
  Passthrough& operator=(const Passthrough&) = delete;
  ~Passthrough();

  // Takes over the session's I/O (its /dev/fuse descriptor stays libfuse's). Call once, after
  // fuse_session_mount() and before the loop runs. Not enabled: does nothing. direct: readers
  // that cannot be passthrough ones may be direct ones (see above).
  Status Install(fuse_session* session, bool enabled, bool direct = true);

  // True once the kernel accepted passthrough in INIT.
  bool negotiated() const;
  // Opens given to the kernel in passthrough and in direct mode so far.
  uint64_t opens() const { return opens_.load(); }
  uint64_t direct_opens() const { return direct_opens_.load(); }

  // Chooses the mode of a new open of ino and counts it (not a kConflict). backing_fd: the
  // complete cached file that may serve it, or -1 when it must go through the daemon (writers,
  // downloads). reader_fd: for a read-only open, its cache file (complete or not), which makes
  // it one that may be a direct open; -1 for writers. For kPassthrough, *backing_id is the id
  // to put in the reply (see ReplyOpen).
  OpenMode Begin(Ino ino, int backing_fd, int32_t* backing_id, bool join_only = false,
                 int reader_fd = -1);
  // Uncounts an open made with Begin (at release, or when its reply failed).
  void End(Ino ino, OpenMode mode);
  // Whether ino has passthrough opens now (they may close at any time).
  bool HasPassthroughOpens(Ino ino) { return modes_.HasPassthrough(ino); }

  // fuse_reply_open() with FOPEN_PASSTHROUGH and backing_id in the reply.
  static int ReplyOpen(fuse_req_t req, const fuse_file_info* fi, int32_t backing_id);

 private:
  static ssize_t Read(int fd, void* buf, size_t len, void* userdata);
  static ssize_t Writev(int fd, struct iovec* iov, int count, void* userdata);
  static ssize_t SpliceSend(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                            unsigned int flags, void* userdata);
  // Registers fd with the kernel: the id, or 0 when it cannot be used.
  int32_t Register(int fd);
  // True when files of the cache's filesystem can be passthrough backing files (probed once,
  // with fd).
  bool Usable(int fd);
  void Unregister(int32_t id);

  int dev_fd_ = -1;  // the session's /dev/fuse descriptor

  // Atomics, not a lock: Writev looks at init_pending_ for every reply of every thread.
  std::atomic<bool> init_pending_{false};  // the kernel offered passthrough; INIT not answered
  std::atomic<uint64_t> init_unique_{0};   // that INIT request, whose reply is amended
  std::atomic<bool> negotiated_{false};
  std::atomic<bool> register_failed_{false};  // logged once, then opens stay ordinary
  std::atomic<bool> register_worked_{false};
  bool direct_ = true;                    // Install's direct
  std::atomic<bool> direct_mmap_{false};  // INIT has FUSE_DIRECT_IO_ALLOW_MMAP
  // A conflicting open waits up to a second for the passthrough opens to go (their RELEASE may
  // be on its way); one that could be passthrough waits 5 ms for page-cache opens to go.
  OpenModes modes_{std::chrono::milliseconds(5)};
  std::atomic<uint64_t> opens_{0};
  std::atomic<uint64_t> direct_opens_{0};
};

}  // namespace s3cachefs::fs
