// Local overlay: lays files that exist only locally (being written, or waiting for upload) over
// a directory listing from S3, so that a file is visible with its local size and time from the
// moment it is created until long after S3 has it.
#pragma once

#include <string>
#include <vector>

#include "cache/namespace.h"
#include "cache/write_types.h"

namespace s3cachefs::cache {

// Adds or replaces, in entries (sorted by name, as Namespace::List returns them), the
// immediate children of the directory whose key prefix is dir_prefix among local (keys under
// dir_prefix). Deeper local keys add their first segment as a directory if it is missing.
// Keys whose segment is not a valid name are ignored. Keeps entries sorted.
void OverlayLocalFiles(const std::string& dir_prefix, const std::vector<LocalFile>& local,
                       std::vector<DirEntry>& entries);

// The attributes of a local file.
NodeAttr LocalAttr(const LocalFile& file);

}  // namespace s3cachefs::cache
