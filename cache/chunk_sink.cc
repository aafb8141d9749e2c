#include "cache/chunk_sink.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>
#include <utility>

namespace s3cachefs::cache {

uint64_t WriteUnits::EndAfter(uint64_t pos) const {
  const uint64_t unit = std::clamp<uint64_t>(std::bit_floor(pos), min, max);
  return (pos / unit + 1) * unit;
}

ChunkSink::ChunkSink(s3::Sink& out, uint64_t offset, uint64_t limit, WriteUnits units,
                     const std::atomic<bool>* cancelled, std::atomic<uint64_t>* counter,
                     std::function<void(uint64_t)> progress)
    : out_(out),
      offset_(offset),
      limit_(limit),
      units_(units),
      cancelled_(cancelled),
      counter_(counter),
      progress_(std::move(progress)) {}

Status ChunkSink::Write(const char* data, size_t size) {
  if (cancelled_ != nullptr && cancelled_->load()) {
    return Status::Error(ECANCELED, "download cancelled");
  }
  if (written_ + fill_ + size > limit_) {
    return Status::Error(
        EIO, "server sent more than the " + std::to_string(limit_) + " bytes requested");
  }
  if (counter_ != nullptr) counter_->fetch_add(size);
  while (size > 0) {
    const uint64_t start = offset_ + written_;  // where the unit being filled begins
    const size_t unit = units_.EndAfter(start) - start;
    if (fill_ == 0 && size >= unit) {
      // A whole unit straight from curl's buffer.
      if (Status s = Put(data, unit); !s.ok()) return s;
      data += unit;
      size -= unit;
      continue;
    }
    if (fill_ == 0 && capacity_ < unit) {
      buf_ = std::make_unique_for_overwrite<char[]>(unit);
      capacity_ = unit;
    }
    const size_t n = std::min(unit - fill_, size);
    std::memcpy(buf_.get() + fill_, data, n);
    fill_ += n;
    data += n;
    size -= n;
    if (fill_ == unit) {
      if (Status s = Finish(); !s.ok()) return s;
    }
  }
  return Status::Ok();
}

Status ChunkSink::Finish() {
  if (fill_ == 0) return Status::Ok();
  const size_t n = fill_;
  fill_ = 0;
  return Put(buf_.get(), n);
}

Status ChunkSink::Reset() {
  fill_ = 0;
  written_ = 0;
  return out_.Reset();
}

Status ChunkSink::Put(const char* data, size_t size) {
  Status s = out_.Write(data, size);
  if (!s.ok()) return s;
  written_ += size;
  if (progress_) progress_(written_);
  return s;
}

}  // namespace s3cachefs::cache
