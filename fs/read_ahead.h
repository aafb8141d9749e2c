// The kernel's read-ahead for a FUSE mount. The kernel caps a FUSE mount's read-ahead at its
// backing device's read_ahead_kb (/sys/class/bdi/MAJ:MIN/read_ahead_kb), 128 KiB by default,
// whatever the filesystem asks for in INIT; so a sequential reader's requests stay at 128 KiB,
// each a round trip through the daemon. Root can raise it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "s3/status.h"

namespace s3cachefs::fs {

// The "MAJ:MIN" device of the mount on mountpoint (absolute, canonical) according to the
// mountinfo text (the last mount there wins, as it hides the ones below), or nullopt.
std::optional<std::string> MountDevice(const std::string& mountinfo, const std::string& mountpoint);

// Sets the read-ahead of the mount on mountpoint to bytes (rounded down to KiB).
Status SetReadAhead(const std::string& mountpoint, uint64_t bytes);

}  // namespace s3cachefs::fs
