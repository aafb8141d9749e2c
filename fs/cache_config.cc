#include "fs/cache_config.h"

#include <algorithm>

namespace s3cachefs::fs {

cache::ObjectCacheConfig CacheConfigFor(const MountOptions& opts) {
  cache::ObjectCacheConfig config;
  config.cache_dir = opts.cache_dir;
  config.bucket = opts.bucket;
  config.revalidate = opts.revalidate;
  config.verify_md5 = opts.verify_md5;
  config.cache_size = opts.cache_size;
  config.cache_min_free_percent = opts.cache_min_free_percent;
  if (opts.cache_max_age.count() > 0) config.cache_max_age = opts.cache_max_age;
  config.write_back =
      opts.write_back_async ? cache::WriteBackMode::kAsync : cache::WriteBackMode::kSync;
  if (opts.get_size) config.chunk_size = *opts.get_size;
  if (opts.parallel_gets) {
    config.parallel_per_object = static_cast<int>(*opts.parallel_gets);
    // One object may use all of them; several objects share the threads.
    config.download_threads = std::max(config.download_threads, config.parallel_per_object);
  }
  if (opts.multipart_threshold) config.transfer.multipart_threshold = *opts.multipart_threshold;
  if (opts.part_size) config.transfer.part_size = *opts.part_size;
  if (opts.parallel_parts) config.transfer.parallelism = static_cast<int>(*opts.parallel_parts);
  if (opts.parallel_uploads) config.upload_threads = static_cast<int>(*opts.parallel_uploads);
  return config;
}

cache::DirPrefetchConfig DirPrefetchConfigFor(const MountOptions& opts) {
  cache::DirPrefetchConfig config;
  if (opts.dir_prefetch) config.lookahead = *opts.dir_prefetch;
  return config;
}

cache::FilePrefetchConfig FilePrefetchConfigFor(const MountOptions& opts) {
  cache::FilePrefetchConfig config;
  if (opts.file_prefetch) config.lookahead = *opts.file_prefetch;
  return config;
}

int ConnectionsFor(const cache::ObjectCacheConfig& config, int floor) {
  constexpr int kForMetadata = 8;
  return std::max(floor, config.download_threads + config.transfer.parallelism + kForMetadata);
}

}  // namespace s3cachefs::fs
