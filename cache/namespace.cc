#include "cache/namespace.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <optional>
#include <utility>

#include "cache/namespace_listing.h"
#include "s3/log.h"

namespace s3cachefs::cache {

using listing::BaseName;
using listing::IsAtOrBelow;
using listing::JoinPath;
using listing::ParentPath;

// A cached directory listing. Immutable while any reader outside mu_ holds it.
struct Namespace::Listing {
  listing::DirListing dir;
  Clock::time_point expires;
};

// A local change (Note*, Invalidate), kept so it can be replayed on a LIST result that was in
// flight when the change happened and may predate it.
struct Namespace::Change {
  enum Kind { kUpsert, kRemove, kDrop };
  Kind kind = kUpsert;
  std::string dir;       // kUpsert, kRemove: the directory holding name; kDrop: the one dropped
  std::string name;      // kUpsert, kRemove
  NodeAttr attr;         // kUpsert
  bool subtree = false;  // kDrop: every directory below dir too
};

// A LIST in progress: one directory (single-flight, waiters block on flight_done_) or a
// Prefetch over the subtree at dir.
struct Namespace::Flight {
  std::string dir;
  bool subtree = false;
  std::vector<Change> changes;  // made while in flight, in order
  uint64_t changes_seen = 0;    // Namespace::changes_ when the flight started
  bool background = false;      // sent by Warm: waiters retry rather than share its error
  bool done = false;            // the fields below are set
  Status status;
  ListingPtr listing;
};

namespace {

Status NotFound(const std::string& path) {
  return Status::Error(ENOENT, "no such file or directory: /" + path);
}

Status NotDirectory(const std::string& path) {
  return Status::Error(ENOTDIR, "not a directory: /" + path);
}

// Paths come from the kernel, so a bad one is a bug above us, not a user's typo.
Status CheckPath(const std::string& path) {
  if (path.empty()) {
    return Status::Ok();
  }
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = std::min(path.find('/', pos), path.size());
    std::string_view segment = std::string_view(path).substr(pos, slash - pos);
    if (const char* problem = listing::SegmentProblem(segment); problem[0] != '\0') {
      return Status::Error(segment.size() > 255 ? ENAMETOOLONG : EINVAL,
                           "invalid path '" + path + "': " + problem);
    }
    pos = slash + 1;
  }
  return Status::Ok();
}

// The entry for path (whose parent's listing is given), or ENOENT.
Result<NodeAttr> FindEntry(const listing::DirListing& parent, const std::string& path) {
  auto it = parent.entries.find(BaseName(path));
  if (it == parent.entries.end()) {
    return NotFound(path);
  }
  return it->second;
}

// OK if the parent's listing shows dir_path as a directory.
Status ExpectDirectory(const listing::DirListing& parent, const std::string& dir_path) {
  Result<NodeAttr> attr = FindEntry(parent, dir_path);
  if (!attr.ok()) {
    return attr.status();
  }
  if (attr->type != NodeType::kDirectory) {
    return NotDirectory(dir_path);
  }
  return Status::Ok();
}

void ApplyToEntries(listing::EntryMap& entries, const std::string& name, const NodeAttr* attr) {
  if (attr != nullptr) {
    entries.insert_or_assign(name, *attr);
  } else if (auto it = entries.find(name); it != entries.end()) {
    entries.erase(it);
  }
}

void DefaultLog(const std::string& line) {
  std::fprintf(stderr, "s3cachefs: %s\n", line.c_str());
}

}  // namespace

Namespace::Namespace(s3::Client& client, NamespaceConfig config, NamespaceLogger log)
    : client_(client), config_(std::move(config)), log_(log ? std::move(log) : DefaultLog) {}

std::string Namespace::FileKey(const std::string& path) const {
  return config_.prefix + path;
}

std::string Namespace::DirPrefix(const std::string& path) const {
  return path.empty() ? config_.prefix : config_.prefix + path + "/";
}

uint64_t Namespace::list_requests() const {
  return list_requests_.load();
}

Result<NodeAttr> Namespace::Lookup(const std::string& path) {
  if (Status s = CheckPath(path); !s.ok()) {
    return s;
  }
  const std::string parent(ParentPath(path));
  uint64_t changes_seen = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (path.empty()) {
      NodeAttr root;
      root.type = NodeType::kDirectory;
      if (auto it = dir_mtime_.find(""); it != dir_mtime_.end()) {
        root.mtime = it->second;
      }
      return root;
    }
    const auto now = Clock::now();
    if (ListingPtr fresh = FreshListingLocked(parent, now)) {
      return FindEntry(fresh->dir, path);
    }
    if (FreshNegativeLocked(path, now)) {
      return NotFound(path);
    }
    changes_seen = changes_;
  }
  Result<ListingPtr> parent_listing = GetListing(parent);
  Result<NodeAttr> attr = parent_listing.ok() ? FindEntry((*parent_listing)->dir, path)
                                              : Result<NodeAttr>(parent_listing.status());
  if (!attr.ok() && attr.status().code() == ENOENT) {
    std::lock_guard<std::mutex> lock(mu_);
    // A create noted while we listed may postdate the listing: do not let it be hidden.
    if (changes_ == changes_seen) {
      negative_[path] = Clock::now() + config_.negative_ttl;
      SweepLocked(Clock::now());
    }
  }
  return attr;
}

Result<std::vector<DirEntry>> Namespace::List(const std::string& path) {
  if (Status s = CheckPath(path); !s.ok()) {
    return s;
  }
  Result<ListingPtr> listing = GetListing(path);
  if (!listing.ok()) {
    return listing.status();
  }
  // Copied outside mu_: the listing is not modified while we hold it (copy-on-write).
  const listing::EntryMap& entries = (*listing)->dir.entries;
  std::vector<DirEntry> result;
  result.reserve(entries.size());
  for (const auto& [name, attr] : entries) {
    result.push_back(DirEntry{name, attr});
  }
  return result;
}

// How long an expired listing is kept for answering while S3 is unreachable.
constexpr std::chrono::minutes kKeepStale{10};

// Errors that say S3 could not be asked, as opposed to an answer (ENOENT, EACCES, ...).
bool Namespace::IsUnreachable(int code) {
  return code == EHOSTUNREACH || code == ETIMEDOUT || code == ECONNREFUSED || code == EAGAIN ||
         code == EIO || code == ENETUNREACH;
}

Status Namespace::Warm(const std::string& dir_path) {
  if (Status s = CheckPath(dir_path); !s.ok()) {
    return s;
  }
  return GetListing(dir_path, /*background=*/true).status();
}

Result<Namespace::ListingPtr> Namespace::GetListing(const std::string& dir_path, bool background) {
  std::shared_ptr<Flight> flight;
  bool exists_known = dir_path.empty();
  {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      const auto now = Clock::now();
      exists_known = dir_path.empty();
      if (ListingPtr fresh = FreshListingLocked(dir_path, now)) {
        return fresh;
      }
      if (!dir_path.empty()) {
        if (ListingPtr parent = FreshListingLocked(std::string(ParentPath(dir_path)), now)) {
          if (Status s = ExpectDirectory(parent->dir, dir_path); !s.ok()) {
            return s;
          }
          exists_known = true;
        } else if (FreshNegativeLocked(dir_path, now)) {
          return NotFound(dir_path);
        }
      }
      auto [it, leader] = flights_.try_emplace(dir_path);
      if (leader) {
        it->second = std::make_shared<Flight>();
        it->second->dir = dir_path;
        it->second->changes_seen = changes_;
        it->second->background = background;
        flight = it->second;
        break;
      }
      if (background) {
        return ListingPtr();  // being listed already; nothing to warm
      }
      std::shared_ptr<Flight> other = it->second;
      flight_done_.wait(lock, [&] { return other->done; });
      if (other->status.ok()) {
        return other->listing;
      }
      // A background LIST's error is not this call's: look again (a cached "absent" answers)
      // and list the directory itself if need be.
      if (!other->background) {
        return other->status;
      }
    }
  }

  const auto start = Clock::now();
  Result<std::shared_ptr<Listing>> fetched = FetchListing(dir_path, exists_known);

  std::lock_guard<std::mutex> lock(mu_);
  flights_.erase(dir_path);
  flight->done = true;
  if (fetched.ok()) {
    std::shared_ptr<Listing> listing = std::move(fetched).value();
    listing->expires = start + config_.dir_ttl;
    bool dropped = false;
    for (const Change& change : flight->changes) {
      if (change.kind == Change::kDrop) {
        dropped = true;  // invalidated or removed meanwhile: answer, but do not cache
      } else {
        ApplyToEntries(listing->dir.entries, change.name,
                       change.kind == Change::kUpsert ? &change.attr : nullptr);
      }
    }
    if (!dropped) {
      InstallLocked(dir_path, listing);
    }
    flight->listing = listing;
  } else {
    flight->status = fetched.status();
    if (flight->status.code() == ENOENT && flight->changes_seen == changes_) {
      negative_[dir_path] = Clock::now() + config_.negative_ttl;
    }
    // S3 out of reach: an expired listing is better than no directory at all (files being
    // written there stay reachable, reads of cached files go on). It stays expired, so the next
    // request tries S3 again.
    auto stale = listings_.find(dir_path);
    if (IsUnreachable(flight->status.code()) && stale != listings_.end()) {
      stale_served_ += 1;
      if (stale_served_ == 1 || stale_served_ % 1000 == 0) {
        LOG_WARN("%s; serving the last listing of '%s' (%llu stale answers so far)",
                 flight->status.message().c_str(), dir_path.c_str(),
                 static_cast<unsigned long long>(stale_served_));
      }
      flight->listing = stale->second;
      flight->status = Status::Ok();
    }
  }
  flight_done_.notify_all();
  if (!flight->status.ok()) {
    return flight->status;
  }
  return flight->listing;
}

Result<std::shared_ptr<Namespace::Listing>> Namespace::FetchListing(const std::string& dir_path,
                                                                    bool exists_known) {
  bool saw_anything = false;
  Result<std::shared_ptr<Listing>> listing = ListDirectory(dir_path, &saw_anything);
  if (!listing.ok() || exists_known || saw_anything) {
    return listing;
  }
  // Nothing under the prefix, not even a marker: an empty directory (a marker deleted since the
  // parent was listed, or a listing that omits it) or no directory at all. Only the parent can
  // tell. Listing the directory first costs one LIST for a deep path whose ancestors' listings
  // expired, instead of one per level, in the common case that it has content.
  Result<ListingPtr> parent = GetListing(std::string(ParentPath(dir_path)));
  if (!parent.ok()) {
    return parent.status();
  }
  if (Status s = ExpectDirectory((*parent)->dir, dir_path); !s.ok()) {
    return s;
  }
  return listing;
}

Result<std::shared_ptr<Namespace::Listing>> Namespace::ListDirectory(const std::string& dir_path,
                                                                     bool* saw_anything) {
  s3::ListRequest request;
  request.prefix = DirPrefix(dir_path);
  request.delimiter = "/";
  listing::DirectoryBuilder builder(
      request.prefix,
      [this](const std::string& item, const std::string& why) { ReportOnce(item, why); });
  while (true) {
    list_requests_.fetch_add(1);
    Result<s3::ListPage> page = client_.ListObjectsV2(request);
    if (!page.ok()) {
      return page.status().WithContext("listing /" + dir_path);
    }
    builder.AddPage(*page);
    if (!page->truncated) {
      break;
    }
    if (page->next_token.empty()) {
      return Status::Error(EIO, "listing /" + dir_path + ": truncated page without a token");
    }
    request.continuation_token = page->next_token;
  }
  *saw_anything = builder.saw_anything();
  auto listing = std::make_shared<Listing>();
  listing->dir = std::move(builder).Finish();
  return listing;
}

Status Namespace::Prefetch(const std::string& path) {
  if (Status s = CheckPath(path); !s.ok()) {
    return s;
  }
  auto flight = std::make_shared<Flight>();
  flight->dir = path;
  flight->subtree = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    prefetches_.push_back(flight);
  }
  const auto start = Clock::now();
  Result<std::optional<Tree>> tree = ListTree(path);
  // An empty flat listing proves nothing: ask the parent whether path is an (empty) directory.
  Status status = tree.ok() ? Status::Ok() : tree.status();
  if (tree.ok() && tree->has_value() && (*tree)->at(path).entries.empty() &&
      !(*tree)->at(path).has_marker && !path.empty()) {
    Result<NodeAttr> attr = Lookup(path);
    if (!attr.ok()) {
      status = attr.status();
    } else if (attr->type != NodeType::kDirectory) {
      status = NotDirectory(path);
    }
  }

  std::lock_guard<std::mutex> lock(mu_);
  prefetches_.erase(std::find(prefetches_.begin(), prefetches_.end(), flight));
  // Too many keys (nullopt) is not an error: per-directory listing serves the walk instead.
  if (!status.ok() || !tree->has_value()) {
    return status;
  }
  Tree& dirs = **tree;
  for (const Change& change : flight->changes) {
    if (change.kind == Change::kDrop) {
      std::erase_if(dirs, [&](const auto& dir) {
        return change.subtree ? IsAtOrBelow(dir.first, change.dir) : dir.first == change.dir;
      });
    } else if (auto it = dirs.find(change.dir); it != dirs.end()) {
      ApplyToEntries(it->second.entries, change.name,
                     change.kind == Change::kUpsert ? &change.attr : nullptr);
    }
  }
  // Markers first, so that each parent's entries pick up their children's marker times.
  for (const auto& [dir_path, dir] : dirs) {
    LearnMarkerLocked(dir_path, dir.has_marker, dir.marker_mtime);
  }
  for (auto& [dir_path, dir] : dirs) {
    auto listing = std::make_shared<Listing>();
    listing->dir = std::move(dir);
    listing->expires = start + config_.dir_ttl;
    InstallLocked(dir_path, std::move(listing));
  }
  return Status::Ok();
}

Result<std::optional<Namespace::Tree>> Namespace::ListTree(const std::string& path) {
  s3::ListRequest request;
  request.prefix = DirPrefix(path);
  listing::TreeBuilder builder(
      path, request.prefix,
      [this](const std::string& item, const std::string& why) { ReportOnce(item, why); });
  size_t keys = 0;
  while (true) {
    list_requests_.fetch_add(1);
    Result<s3::ListPage> page = client_.ListObjectsV2(request);
    if (!page.ok()) {
      return page.status().WithContext("listing /" + path + " recursively");
    }
    keys += page->objects.size();
    if (keys > config_.prefetch_max_keys) {
      return std::optional<Tree>();
    }
    for (const s3::ObjectInfo& object : page->objects) {
      builder.AddObject(object);
    }
    if (!page->truncated) {
      break;
    }
    if (page->next_token.empty()) {
      return Status::Error(EIO, "listing /" + path + ": truncated page without a token");
    }
    request.continuation_token = page->next_token;
  }
  return std::optional<Tree>(std::move(builder).Finish());
}

void Namespace::NoteFile(const std::string& path, const NodeAttr& attr) {
  if (path.empty() || !CheckPath(path).ok()) {
    return;
  }
  Change change;
  change.dir = ParentPath(path);
  change.name = BaseName(path);
  change.attr = attr;
  std::lock_guard<std::mutex> lock(mu_);
  ApplyLocked(change);
  RecordLocked(change);
  // The path and its ancestors exist now.
  for (std::string_view p = path; !p.empty(); p = ParentPath(p)) {
    negative_.erase(std::string(p));
  }
}

void Namespace::NoteDirectory(const std::string& path) {
  if (path.empty() || !CheckPath(path).ok()) {
    return;
  }
  // mkdir writes a marker now; its exact Last-Modified arrives with the next listing.
  const time_t now = std::time(nullptr);
  Change change;
  change.dir = ParentPath(path);
  change.name = BaseName(path);
  change.attr.type = NodeType::kDirectory;
  change.attr.mtime = now;
  std::lock_guard<std::mutex> lock(mu_);
  ApplyLocked(change);
  RecordLocked(change);
  for (std::string_view p = path; !p.empty(); p = ParentPath(p)) {
    negative_.erase(std::string(p));
  }
  dir_mtime_[path] = now;
  if (FreshListingLocked(path, Clock::now()) == nullptr) {
    auto listing = std::make_shared<Listing>();
    listing->dir.has_marker = true;
    listing->dir.marker_mtime = now;
    listing->expires = Clock::now() + config_.dir_ttl;
    InstallLocked(path, std::move(listing));
  }
}

void Namespace::NoteRemoved(const std::string& path) {
  if (path.empty() || !CheckPath(path).ok()) {
    return;
  }
  Change remove;
  remove.kind = Change::kRemove;
  remove.dir = ParentPath(path);
  remove.name = BaseName(path);
  Change drop;  // in case path was a directory
  drop.kind = Change::kDrop;
  drop.dir = path;
  drop.subtree = true;
  std::lock_guard<std::mutex> lock(mu_);
  for (const Change* change : {&remove, &drop}) {
    ApplyLocked(*change);
    RecordLocked(*change);
  }
  negative_[path] = Clock::now() + config_.negative_ttl;
  SweepLocked(Clock::now());
}

void Namespace::Invalidate(const std::string& path) {
  if (!CheckPath(path).ok()) {
    return;
  }
  Change drop;
  drop.kind = Change::kDrop;
  drop.dir = path;
  std::lock_guard<std::mutex> lock(mu_);
  ApplyLocked(drop);
  RecordLocked(drop);
  std::erase_if(negative_, [&](const auto& entry) {
    return entry.first != path && IsAtOrBelow(entry.first, path);
  });
}

Namespace::ListingPtr Namespace::FreshListingLocked(const std::string& dir_path,
                                                    Clock::time_point now) {
  auto it = listings_.find(dir_path);
  if (it == listings_.end()) {
    return nullptr;
  }
  // An expired listing stays (until swept) as the answer of last resort when S3 is unreachable.
  return it->second->expires <= now ? nullptr : it->second;
}

bool Namespace::FreshNegativeLocked(const std::string& path, Clock::time_point now) {
  auto it = negative_.find(path);
  if (it == negative_.end()) {
    return false;
  }
  if (it->second <= now) {
    negative_.erase(it);
    return false;
  }
  return true;
}

Namespace::Listing* Namespace::MutableListingLocked(const std::string& dir_path) {
  auto it = listings_.find(dir_path);
  if (it == listings_.end()) {
    return nullptr;
  }
  // Readers copy the pointer only under mu_, so a count of 1 seen under mu_ means nobody else
  // can be reading. The fence pairs with the release in a reader's shared_ptr destructor (the
  // count is read relaxed), so its reads happen before our writes.
  if (it->second.use_count() > 1) {
    it->second = std::make_shared<Listing>(*it->second);
  } else {
    std::atomic_thread_fence(std::memory_order_acquire);
  }
  return it->second.get();
}

void Namespace::InstallLocked(const std::string& dir_path, std::shared_ptr<Listing> listing) {
  LearnMarkerLocked(dir_path, listing->dir.has_marker, listing->dir.marker_mtime);
  for (auto& [name, attr] : listing->dir.entries) {
    if (attr.type != NodeType::kDirectory) {
      continue;
    }
    if (attr.mtime != 0) {
      dir_mtime_[JoinPath(dir_path, name)] = attr.mtime;  // an "x/" object in the listing
    } else if (!dir_mtime_.empty()) {
      if (auto it = dir_mtime_.find(JoinPath(dir_path, name)); it != dir_mtime_.end()) {
        attr.mtime = it->second;
      }
    }
  }
  listings_.insert_or_assign(dir_path, std::move(listing));
  SweepLocked(Clock::now());
}

void Namespace::LearnMarkerLocked(const std::string& dir_path, bool has_marker, time_t mtime) {
  if (has_marker) {
    dir_mtime_[dir_path] = mtime;
  } else {
    dir_mtime_.erase(dir_path);
    mtime = 0;
  }
  if (dir_path.empty()) {
    return;
  }
  auto parent = listings_.find(std::string(ParentPath(dir_path)));
  if (parent == listings_.end()) {
    return;
  }
  auto entry = parent->second->dir.entries.find(BaseName(dir_path));
  if (entry == parent->second->dir.entries.end() || entry->second.type != NodeType::kDirectory ||
      entry->second.mtime == mtime) {
    return;
  }
  MutableListingLocked(parent->first)->dir.entries.find(BaseName(dir_path))->second.mtime = mtime;
}

void Namespace::ApplyLocked(const Change& change) {
  if (change.kind != Change::kDrop) {
    if (Listing* listing = MutableListingLocked(change.dir)) {
      ApplyToEntries(listing->dir.entries, change.name,
                     change.kind == Change::kUpsert ? &change.attr : nullptr);
    }
    return;
  }
  if (change.subtree) {
    dir_mtime_.erase(change.dir);
  }
  auto it = listings_.find(change.dir);
  if (it == listings_.end()) {
    return;
  }
  ListingPtr dropped = it->second;
  listings_.erase(it);
  if (!change.subtree) {
    return;
  }
  // Walk down through cached listings rather than scanning every cached directory: removing a
  // leaf (rmdir, rm -r) then costs O(1) however many listings are cached.
  for (const auto& [name, attr] : dropped->dir.entries) {
    if (attr.type != NodeType::kDirectory) {
      continue;
    }
    Change child = change;
    child.dir = JoinPath(change.dir, name);
    ApplyLocked(child);
  }
}

void Namespace::RecordLocked(const Change& change) {
  ++changes_;
  for (const std::shared_ptr<Flight>& prefetch : prefetches_) {
    if (IsAtOrBelow(change.dir, prefetch->dir) || (change.kind == Change::kDrop && change.subtree &&
                                                   IsAtOrBelow(prefetch->dir, change.dir))) {
      prefetch->changes.push_back(change);
    }
  }
  if (change.kind == Change::kDrop && change.subtree) {
    for (auto& [dir_path, flight] : flights_) {
      if (IsAtOrBelow(dir_path, change.dir)) {
        flight->changes.push_back(change);
      }
    }
  } else if (auto it = flights_.find(change.dir); it != flights_.end()) {
    it->second->changes.push_back(change);
  }
}

void Namespace::SweepLocked(Clock::time_point now) {
  if (listings_.size() + negative_.size() < sweep_at_) {
    return;
  }
  // Expired listings are kept a while longer for when S3 is unreachable (see GetListing).
  std::erase_if(listings_,
                [&](const auto& entry) { return entry.second->expires + kKeepStale <= now; });
  std::erase_if(negative_, [&](const auto& entry) { return entry.second <= now; });
  // Doubling keeps the cost amortised O(1) per insertion while everything is fresh.
  sweep_at_ = std::max<size_t>(1024, 2 * (listings_.size() + negative_.size()));
}

void Namespace::ReportOnce(const std::string& item, const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(log_mu_);
    if (!reported_.insert(item).second) {
      return;
    }
  }
  log_("skipping key '" + item + "' in the mounted tree: " + why);
}

}  // namespace s3cachefs::cache
