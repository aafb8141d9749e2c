// What a mount's options make of the object cache's configuration, and how many S3 connections
// its transfers need.
#pragma once

#include "cache/dir_prefetcher.h"
#include "cache/file_prefetcher.h"
#include "cache/object_cache.h"
#include "fs/options.h"

namespace s3cachefs::fs {

// The cache configuration for opts: directory, validation, budget, write-back and transfers
// (options left unset keep cache::ObjectCacheConfig's and s3::TransferTuning's defaults).
cache::ObjectCacheConfig CacheConfigFor(const MountOptions& opts);

// The prefetchers' configurations for opts (unset options keep their defaults).
cache::DirPrefetchConfig DirPrefetchConfigFor(const MountOptions& opts);
cache::FilePrefetchConfig FilePrefetchConfigFor(const MountOptions& opts);

// Connections for the S3 client's pool: every download thread, one upload at full width and a
// few for listings, HEADs and small PUTs at the same time; never fewer than `floor` (the
// client's default). More transfers at once than that wait for a connection.
int ConnectionsFor(const cache::ObjectCacheConfig& config, int floor);

}  // namespace s3cachefs::fs
