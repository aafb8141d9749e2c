// ObjectCacheImpl, the budget part: open handles pinned per key, the evictor (cache/evictor.h)
// wired to the cache's pins, times and clock, the start-up size fix and eviction pass, and the
// cumulative counters written to the index at flush time. Threads and locks are described in
// cache/object_cache_impl.h.
#include <sys/stat.h>

#include "cache/object_cache_impl.h"
#include "s3/log.h"

namespace s3cachefs::cache {

Result<std::shared_ptr<ObjectHandle>> ObjectCacheImpl::OpenRead(
    const std::string& key, const std::optional<ListingHint>& hint) {
  Result<std::shared_ptr<ObjectHandle>> r = OpenReadUnpinned(key, hint);
  if (!r.ok()) return r;
  return pins_->Attach(key, std::move(*r));
}

// What the evictor must leave alone although its row is CLEAN (it skips other rows itself): a
// key with a read handle open, one with a WriteEntry (open for writing, dirty or uploading), or
// one read since the last flush (its accessed_at in the index is stale).
bool ObjectCacheImpl::IsPinned(const std::string& bucket, const std::string& key) {
  if (bucket != config_.bucket) return false;  // no other process uses the directory (lock)
  if (pins_->IsPinned(key) || Pinned(key)) return true;
  std::lock_guard<std::mutex> lock(times_mu_);
  return pending_.count(key) > 0 || flushing_.count(key) > 0;
}

void ObjectCacheImpl::PersistCounters() {
  const CacheCounters c = ActivityCounters();
  Index::Counters now;
  now.hits = c.hits;
  now.revalidated = c.revalidated;
  now.misses = c.misses;
  now.downloads = c.downloads;
  now.bytes_downloaded = c.bytes_downloaded;
  now.evictions = c.evictions;
  now.evicted_bytes = c.evicted_bytes;
  now.not_kept = c.not_kept;
  Index::Counters delta;
  bool any = false;
  for (auto field :
       {&Index::Counters::hits, &Index::Counters::revalidated, &Index::Counters::misses,
        &Index::Counters::downloads, &Index::Counters::bytes_downloaded,
        &Index::Counters::evictions, &Index::Counters::evicted_bytes, &Index::Counters::not_kept}) {
    delta.*field = now.*field - persisted_.*field;
    any = any || delta.*field != 0;
  }
  if (!any) return;
  Status s = index_->AddCounters(delta);
  if (!s.ok()) {
    LOG_WARN("cannot record cache counters: %s", s.ToString().c_str());
    return;
  }
  persisted_ = now;
}

Status ObjectCacheImpl::StartBudget() {
  Result<uint64_t> fixed = FixLocalSizes(*index_, config_.cache_dir);
  if (!fixed.ok()) return fixed.status();
  if (*fixed > 0) {
    LOG_INFO("cache %s: took the size of %llu entries with local changes from their files",
             config_.cache_dir.c_str(), static_cast<unsigned long long>(*fixed));
  }
  CacheBudget budget{config_.cache_size, config_.cache_min_free_percent, config_.cache_max_age};
  EvictorHooks hooks;
  hooks.is_pinned = [this](const std::string& bucket, const std::string& key) {
    return IsPinned(bucket, key);
  };
  // Under the Index mutex, like the cache's own clean drops: pinned_mu_ comes after it.
  hooks.keep_locked = [this](const std::string& bucket, const std::string& key) {
    return bucket == config_.bucket && Pinned(key);
  };
  hooks.flush_times = [this] { FlushTimes(); };
  hooks.clock = config_.clock;
  evictor_ = std::make_unique<Evictor>(index_.get(), config_.cache_dir, budget, std::move(hooks));
  Result<EvictionStats> stats = evictor_->RunPass();
  if (!stats.ok()) return stats.status();
  if (stats->entries > 0) {
    LOG_INFO(
        "cache %s: evicted %llu entries (%s; %llu unread for longer than cache_max_age) "
        "to fit its budget",
        config_.cache_dir.c_str(), static_cast<unsigned long long>(stats->entries),
        FormatBytes(stats->bytes).c_str(), static_cast<unsigned long long>(stats->expired));
  }
  if (!stats->within_budget) {
    LOG_WARN("cache %s is over its budget with %s left, all of it open or with local changes",
             config_.cache_dir.c_str(), FormatBytes(index_->bytes()).c_str());
  }
  evictor_->Start(config_.eviction_interval);
  return Status::Ok();
}

void ObjectCacheImpl::MakeRoomFor(Download& d) {
  if (evictor_ == nullptr) return;
  if (!evictor_->MakeRoom(d.key(), d.size())) {
    d.SkipCommit();
    return;
  }
  std::lock_guard<std::mutex> lock(room_mu_);
  room_[&d] = d.size();
}

void ObjectCacheImpl::ReleaseRoom(const Download& d) {
  uint64_t size;
  {
    std::lock_guard<std::mutex> lock(room_mu_);
    auto it = room_.find(&d);
    if (it == room_.end()) return;
    size = it->second;
    room_.erase(it);
  }
  evictor_->Release(size);
}

}  // namespace s3cachefs::cache
