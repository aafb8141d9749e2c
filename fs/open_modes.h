// OpenModes: which I/O mode each new open of an inode gets, from the opens still counted on it
// (see fs/passthrough.h for the kernel's rules). Pure bookkeeping: registering a backing file
// with the kernel is the caller's, through the functions it passes in, so that this is
// testable without a mount.
//
// The counts lag the kernel's a little: a close() returns before its RELEASE reaches us, so
// `cat f; cat f` can bring the second OPEN while the first is still counted. Begin therefore
// waits up to upgrade_wait for page-cache and direct opens to go before it gives up
// passthrough. A conflict is answered at once: its caller gives the open a new inode, which
// does not depend on the others closing (fs/passthrough.h).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "fs/inode_table.h"

namespace s3cachefs::fs {

// kCached: through the kernel's page cache; kPassthrough: the kernel reads the cache file
// itself; kDirect: through the daemon, without the page cache (FOPEN_DIRECT_IO), which lets a
// passthrough open start next to it (unless it is mmapped, which is cached: so none starts
// while one is counted); kConflict: none of them fits, the open fails.
enum class OpenMode : uint8_t { kCached, kPassthrough, kDirect, kConflict };

// The identity of a cache file: passthrough opens of an inode must all share one.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId&) const = default;
};

class OpenModes {
 public:
  explicit OpenModes(std::chrono::milliseconds upgrade_wait) : upgrade_wait_(upgrade_wait) {}

  // Registers the backing file of a first passthrough open: its id (> 0), or 0 when it cannot
  // be used (the open is then a cached one).
  using RegisterFn = std::function<int32_t()>;
  using UnregisterFn = std::function<void(int32_t id)>;

  // Chooses and counts the mode of a new open of ino (a kConflict is not counted). backing:
  // the complete cached file that may serve it, or nullopt when the daemon must (truncating
  // writers, downloads). join_only: passthrough only by joining the passthrough opens of the
  // same file already there (a writer, whose writes the daemon would then not see).
  // direct_ok: a reader that may be a kDirect open, which it is when there is no complete
  // copy yet (backing is nullopt) and no passthrough open (the kernel wants every open of an
  // inode in passthrough mode to be a passthrough one).
  // For kPassthrough, *backing_id is the id for the reply.
  OpenMode Begin(Ino ino, std::optional<FileId> backing, const RegisterFn& register_backing,
                 int32_t* backing_id, bool join_only = false, bool direct_ok = false);
  // Uncounts an open made by Begin; the backing id of the inode's last passthrough open is
  // given to unregister.
  void End(Ino ino, OpenMode mode, const UnregisterFn& unregister);
  // Whether ino has passthrough opens counted now.
  bool HasPassthrough(Ino ino);

 private:
  struct Counts {
    int cached = 0;       // page-cache opens
    int passthrough = 0;  // passthrough opens, all on `file`
    int direct = 0;       // direct-I/O opens
    int32_t backing_id = 0;
    FileId file;
  };
  const std::chrono::milliseconds upgrade_wait_;
  std::mutex mu_;
  std::condition_variable released_;  // an open was uncounted
  std::unordered_map<Ino, Counts> inodes_;
};

}  // namespace s3cachefs::fs
