#include "cache/evictor.h"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>

#include "s3/log.h"

namespace s3cachefs::cache {
namespace {

constexpr size_t kBatch = 256;  // rows listed per index query
// Least time between two "cache full" lines; the refusals in between are counted in the next.
constexpr std::chrono::seconds kFullLogInterval{10};

int64_t ToMs(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

Result<DiskSpace> StatDiskSpace(const std::string& path) {
  struct statvfs st;
  if (::statvfs(path.c_str(), &st) != 0) {
    return Status::Error(errno, "cannot get free space of " + path + ": " + strerror(errno));
  }
  DiskSpace out;
  out.total = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
  out.available = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  return out;
}

Result<uint64_t> FixLocalSizes(Index& index, const std::string& cache_dir) {
  struct Fix {
    IndexEntry entry;
    uint64_t file_size;
  };
  std::vector<Fix> fixes;
  Status s = index.ForEach([&](const IndexEntry& e) {
    if (e.state == EntryState::kClean) return;
    std::string path = cache_dir + "/objects/" + e.file_name.substr(0, 2) + "/" + e.file_name;
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) != e.size) {
      fixes.push_back(Fix{e, static_cast<uint64_t>(st.st_size)});
    }
  });
  if (!s.ok()) return s;
  uint64_t fixed = 0;
  for (const Fix& f : fixes) {
    Result<bool> r = index.SetLocalSize(f.entry.bucket, f.entry.key, f.file_size);
    if (!r.ok()) return r.status();
    if (*r) {
      LOG_INFO(
          "cache entry %s has local changes in a file of %llu bytes, recorded as %llu; "
          "using the file's size",
          f.entry.key.c_str(), static_cast<unsigned long long>(f.file_size),
          static_cast<unsigned long long>(f.entry.size));
      ++fixed;
    }
  }
  return fixed;
}

std::string FormatBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  snprintf(buf, sizeof(buf), "%.1f %s", value, kUnits[unit]);
  return buf;
}

Evictor::Evictor(Index* index, const std::string& cache_dir, CacheBudget budget, EvictorHooks hooks)
    : index_(index),
      objects_dir_(cache_dir + "/objects"),
      budget_(budget),
      hooks_(std::move(hooks)) {
  if (!hooks_.is_pinned) {
    hooks_.is_pinned = [](const std::string&, const std::string&) { return false; };
  }
  if (!hooks_.flush_times) hooks_.flush_times = [] {};
  if (!hooks_.disk_space) hooks_.disk_space = [cache_dir] { return StatDiskSpace(cache_dir); };
  if (!hooks_.clock) hooks_.clock = [] { return std::chrono::system_clock::now(); };
}

Evictor::~Evictor() {
  Stop();
}

std::string Evictor::OverBudget(uint64_t incoming, uint64_t limit) {
  if (limit == 0) limit = budget_.max_bytes;
  if (limit > 0 && index_->bytes() + in_flight_.load() + incoming > limit) {
    return "cache full (cache_size " + FormatBytes(limit) + ")";
  }
  if (budget_.min_free_percent > 0) {
    Result<DiskSpace> space = hooks_.disk_space();
    if (!space.ok()) {
      // Without the numbers only the size limit can be enforced; say so once.
      if (!disk_space_warned_.exchange(true)) {
        LOG_WARN("%s; not enforcing cache_min_free", space.status().ToString().c_str());
      }
      return "";
    }
    uint64_t want = space->total / 100 * budget_.min_free_percent;
    if (space->available < want + incoming) {
      unsigned percent =
          space->total > 0 ? static_cast<unsigned>(space->available * 100 / space->total) : 0;
      return "cache disk full (" + std::to_string(percent) + "% free, cache_min_free " +
             std::to_string(budget_.min_free_percent) + "%)";
    }
  }
  return "";
}

Result<EvictionStats> Evictor::EvictLocked(uint64_t incoming, uint64_t limit, bool expire) {
  EvictionStats stats;
  int64_t expire_before = std::numeric_limits<int64_t>::min();
  if (expire && budget_.max_age.has_value()) {
    expire_before = ToMs(hooks_.clock() - *budget_.max_age);
  } else if (OverBudget(incoming, limit).empty()) {
    return stats;  // the common case of a background pass: nothing to list
  }
  bool flushed = false;
  size_t offset = 0;  // CLEAN rows, from the least recently used, that stay in this pass
  for (;;) {
    Result<std::vector<IndexEntry>> batch = index_->OldestClean(kBatch, offset);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) break;
    bool done = false;
    bool relist = false;
    for (const IndexEntry& e : *batch) {
      bool expired = e.accessed_at < expire_before;
      if (!expired && OverBudget(incoming, limit).empty()) {
        done = true;
        break;
      }
      if (!flushed) {
        // The first drop decides on the order: make it current first, then list again.
        hooks_.flush_times();
        flushed = true;
        relist = true;
        break;
      }
      if (hooks_.is_pinned(e.bucket, e.key)) {
        ++offset;
        ++stats.pinned;
        continue;
      }
      std::string path = objects_dir_ + "/" + e.file_name.substr(0, 2) + "/" + e.file_name;
      Result<bool> dropped = index_->DeleteCleanIfUnchanged(
          e, [&] { ::unlink(path.c_str()); },
          [&] { return hooks_.keep_locked && hooks_.keep_locked(e.bucket, e.key); });
      if (!dropped.ok()) return dropped.status();
      if (!*dropped) {
        ++offset;  // read, replaced or changed meanwhile: no longer a candidate at this place
        continue;
      }
      ++stats.entries;
      stats.bytes += e.size;
      if (expired) ++stats.expired;
    }
    if (done) break;
    if (relist) offset = 0;
  }
  stats.within_budget = OverBudget(incoming, limit).empty();
  std::lock_guard<std::mutex> lock(mu_);
  counters_.evictions += stats.entries;
  counters_.evicted_bytes += stats.bytes;
  return stats;
}

Result<EvictionStats> Evictor::RunPass() {
  if (!budget_.enabled()) return EvictionStats{};
  std::lock_guard<std::mutex> lock(pass_mu_);
  return EvictLocked(0, 0, true);
}

Result<EvictionStats> Evictor::EvictTo(uint64_t max_bytes) {
  std::lock_guard<std::mutex> lock(pass_mu_);
  if (max_bytes == 0) {
    // "Evict everything evictable": a limit of 0 would mean no limit below.
    max_bytes = 1;
  }
  return EvictLocked(0, max_bytes, false);
}

bool Evictor::MakeRoom(const std::string& key, uint64_t size) {
  if (budget_.max_bytes == 0 && budget_.min_free_percent == 0) {
    in_flight_.fetch_add(size);
    return true;
  }
  std::string why;
  {
    std::lock_guard<std::mutex> pass(pass_mu_);
    auto admit = [&] {
      in_flight_.fetch_add(size);
      return true;
    };
    if (OverBudget(size, 0).empty()) return admit();
    if (budget_.max_bytes > 0 && size > budget_.max_bytes) {
      why = key + " (" + FormatBytes(size) + ") is larger than the whole cache (cache_size " +
            FormatBytes(budget_.max_bytes) + "); streaming it without caching";
    } else {
      Result<EvictionStats> stats = EvictLocked(size, 0, false);
      if (!stats.ok()) {
        LOG_WARN("cannot make room in the cache for %s: %s", key.c_str(),
                 stats.status().ToString().c_str());
      } else if (stats->within_budget) {
        return admit();
      }
      // What is left could not be dropped: it is open, dirty or just read.
      std::string reason = OverBudget(size, 0);
      if (reason.empty()) return admit();  // room appeared meanwhile (a download failed, ...)
      why = reason + ": " + FormatBytes(index_->bytes()) + " in open or dirty files; streaming " +
            key + " (" + FormatBytes(size) + ") without caching";
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++counters_.not_kept;
  auto now = std::chrono::steady_clock::now();
  if (last_full_log_ != std::chrono::steady_clock::time_point() &&
      now - last_full_log_ < kFullLogInterval) {
    ++unlogged_not_kept_;
    return false;
  }
  if (unlogged_not_kept_ > 0) {
    why += " (and " + std::to_string(unlogged_not_kept_) + " more objects since the last line)";
  }
  unlogged_not_kept_ = 0;
  last_full_log_ = now;
  LOG_WARN("%s", why.c_str());
  return false;
}

void Evictor::Start(std::chrono::milliseconds interval) {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || !budget_.enabled()) return;
  stop_ = false;
  thread_ = std::thread([this, interval] { Loop(interval); });
}

void Evictor::Signal() {
  std::lock_guard<std::mutex> lock(mu_);
  signalled_ = true;
  cv_.notify_all();
}

void Evictor::Stop() {
  std::thread thread;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    thread.swap(thread_);
    cv_.notify_all();
  }
  if (thread.joinable()) thread.join();
}

EvictorCounters Evictor::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

void Evictor::Loop(std::chrono::milliseconds interval) {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, interval, [this] { return stop_ || signalled_; });
    if (stop_) break;
    signalled_ = false;
    lock.unlock();
    Result<EvictionStats> stats = RunPass();
    if (!stats.ok()) {
      LOG_WARN("cache eviction failed: %s", stats.status().ToString().c_str());
    } else if (stats->entries > 0) {
      LOG_DEBUG("evicted %" PRIu64 " cache entries (%s, %" PRIu64 " expired)", stats->entries,
                FormatBytes(stats->bytes).c_str(), stats->expired);
    }
    lock.lock();
  }
}

}  // namespace s3cachefs::cache
