// Which descriptors a process holds, read from /proc: used by flush to tell the close of one of
// several descriptors of a file from the close of the last one.
//
// A shell's `cmd > file` opens the file, dup2()s it onto stdout and closes the original
// descriptor before cmd writes anything; the kernel sends a FLUSH for that first close. Writing
// the (still empty) file back to S3 there costs a PUT that the next close repeats. A flush from
// a process that still holds another descriptor open for writing on the same file can be left
// to that descriptor's close: every descriptor's close sends its own FLUSH (process exit
// included), and the release of the file flushes once more.
//
// The kernel removes a descriptor from the table before it calls flush, so the descriptor being
// closed is never counted. Anything unreadable (another user's process without privilege, a
// caller in another PID namespace, a /proc that is not ours) answers false, and the caller
// flushes as it always would.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace s3cachefs::fs {

// Whether process pid holds a descriptor open for writing on the file with inode number ino
// whose path lies under root (an absolute, canonical directory path, e.g. a mountpoint).
// Processes holding more than max_fds descriptors are not searched (answers false).
bool HoldsWriter(pid_t pid, const std::string& root, uint64_t ino, int max_fds = 1024);

}  // namespace s3cachefs::fs
