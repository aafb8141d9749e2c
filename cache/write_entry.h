// WriteEntry: the in-memory state of one key that is open for writing or has local changes
// (a DIRTY row), shared by its writers, the uploader and the cache. Internal to the cache.
//
// Invariant kept by ObjectCacheImpl: every DIRTY row has a WriteEntry in the cache's map, and
// every ready entry in the map has a row. The entry leaves the map when it is clean, has no
// writer and no upload in flight or queued (or when its key is removed).
//
// Changes and uploads meet here. Each upload takes a snapshot of gen and sets needs_mark, so
// the first MarkDirty after the snapshot bumps gen durably; at its end the upload may mark the
// row CLEAN only if gen did not move. A writer calls MarkDirty *before* its pwrite(), so a write
// that was announced before the snapshot may still land after the upload read that region.
// "brackets" closes that gap: a handle that called MarkDirty is counted until its next Flush
// (or close), and an upload that ends while any handle is counted, or that began while one was
// (its handle may have flushed before the upload ended), keeps the row DIRTY. The one gap left
// is a write racing a Flush of the same handle (close() racing write() on one file
// description), which POSIX leaves unordered anyway.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

#include "cache/file_util.h"
#include "cache/write_types.h"
#include "s3/status.h"

namespace s3cachefs::cache {

struct WriteEntry {
  enum class Phase { kOpening, kReady, kFailed };

  // Lock order: ObjectCacheImpl::wmu_ (the map), then mu, then the Index. Never held across a
  // request to S3 or while waiting for a download.
  std::mutex mu;
  std::condition_variable cv;  // phase, uploading or holds changed

  // All below guarded by mu.
  Phase phase = Phase::kOpening;  // kOpening: being prepared by its creator; others wait
  Status open_error;              // why it failed (kFailed)
  std::string key;                // changes on Rename
  std::string file_name;          // objects/ name, follows key
  UniqueFd fd;         // O_RDWR on the local file; opened lazily for entries resumed at start-up.
                       // Once open it stays open for the entry's lifetime (writers use it).
  int writers = 0;     // open WritableFiles
  int brackets = 0;    // writers that called MarkDirty since their last Flush
  bool dirty = false;  // the row is DIRTY: S3 lacks changes
  bool needs_mark = true;  // the next MarkDirty must write the row (after open or a snapshot)
  // The last DIRTY mark was committed without a sync (cache/write_back.cc, "Durability"): the
  // first Flush that must promise durability syncs the index too.
  bool lazy_sync = false;
  bool name_synced = false;      // the file's directory was fsynced since it got its name
  int64_t gen = 0;               // the row's dirty_gen
  std::string etag;              // the S3 version the file equals while clean
  std::string base_etag;         // the S3 version the changes started from ("" = new here)
  int64_t base_uploaded_ms = 0;  // when our own upload made base_etag S3's version (0: not ours)
  FileMeta meta;                 // goes with the next upload
  bool uploading = false;        // an upload of this entry is running (one at a time)
  int holds = 0;                 // Remove/Rename in progress: no upload may start
  bool removed = false;          // Remove (or Rename over it) took it: Flush and uploads do nothing
  int failures = 0;              // failed uploads in a row, for the backoff
};

}  // namespace s3cachefs::cache
