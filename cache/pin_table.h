// PinTable: how many handles are open on each key, so that the evictor never drops an entry
// somebody is reading (or writing). Pins are RAII values; a handle keeps its pin for as long as
// any copy of its shared_ptr lives, and may outlive the cache (the table is shared-owned).
// Thread-safe; mu_ is a leaf lock.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

namespace s3cachefs::cache {

class PinTable : public std::enable_shared_from_this<PinTable> {
 public:
  // Holds one count on key until destroyed. Move-only.
  class Pin {
   public:
    Pin() = default;
    Pin(Pin&& other) noexcept = default;
    Pin& operator=(Pin&& other) noexcept {
      Release();
      table_ = std::move(other.table_);
      key_ = std::move(other.key_);
      return *this;
    }
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;
    ~Pin() { Release(); }

   private:
    friend class PinTable;
    Pin(std::shared_ptr<PinTable> table, std::string key)
        : table_(std::move(table)), key_(std::move(key)) {}
    void Release() {
      if (table_ != nullptr) table_->Unpin(key_);
      table_.reset();
    }
    std::shared_ptr<PinTable> table_;
    std::string key_;
  };

  // Counts one more user of key. The table must be owned by a shared_ptr.
  Pin Acquire(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    ++counts_[key];
    return Pin(shared_from_this(), key);
  }

  // True while at least one Pin on key exists.
  bool IsPinned(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    return counts_.count(key) > 0;
  }

  // handle, sharing ownership with a new pin on key: the pin goes when the last copy of the
  // returned pointer does. The object pointed to is handle's own (aliasing constructor), so
  // callers see no wrapper.
  template <typename T>
  std::shared_ptr<T> Attach(const std::string& key, std::shared_ptr<T> handle) {
    if (handle == nullptr) return handle;
    auto holder = std::make_shared<std::pair<Pin, std::shared_ptr<T>>>(Acquire(key), handle);
    return std::shared_ptr<T>(holder, handle.get());
  }

 private:
  void Unpin(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = counts_.find(key);
    if (it != counts_.end() && --it->second == 0) counts_.erase(it);
  }

  mutable std::mutex mu_;                        // guards counts_
  std::unordered_map<std::string, int> counts_;  // key -> pins; absent when 0
};

}  // namespace s3cachefs::cache
