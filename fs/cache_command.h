// `s3cachefs cache ...`: the operator's view of a cache directory without mounting it.
//
//   s3cachefs cache stats  --cache-dir DIR
//   s3cachefs cache evict  --cache-dir DIR --size SIZE
//   s3cachefs cache verify --cache-dir DIR [--repair]
//
// Argument parsing and printing only; the work is cache/cache_admin.h.
#pragma once

namespace s3cachefs::fs {

// Runs the command in argv (argv[0] is "cache"), printing to stdout (results) and stderr
// (errors). Returns the exit code: 0 ok, 1 problems found (bad entries, or the command could
// not do its work: missing directory, directory in use, ...), 2 usage error.
int RunCacheCommand(int argc, char** argv);

}  // namespace s3cachefs::fs
