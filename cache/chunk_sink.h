// Writes a ranged GET's body into the cache file at its place, in aligned units that grow
// with the offset, and refuses more than was asked for.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "s3/client.h"

namespace s3cachefs::cache {

// The sizes of the writes into the cache file. curl hands a body over in 16-64 KiB pieces at
// any offset; the page cache keeps each write's bytes in folios no larger than the write, and
// every later read of the file (a hot read through passthrough above all) pays per folio. So
// the body is buffered and written in units that end on multiples of their own size: min at
// the start of the file, doubling with the offset (the unit at offset p is the largest power
// of two <= p, within [min, max]) up to max. The first bytes of a file, which a new reader
// waits for, come out in small units; the rest in larger ones.
//
// The defaults, measured on this VM (a cold 1 GiB read, then a hot read through passthrough
// against a local file's page-cache read). Before the requests of a download wrote one at a
// time (SerialSink, below), larger units cost the daemon more: 128 KiB gave 70 % of the local
// read at 1.24 daemon CPU-s per cold GiB, 256 KiB 78 % at 1.25 s, 512 KiB 86 % at 1.40 s, 1 MiB
// 91 % at 1.54 s (medians of 4-19 rounds), as the parallel requests' longer writes spun on the
// file's inode lock. Since, on an own s3rver (7 alternating rounds): 256 KiB 85 % at 1.08 s,
// 512 KiB 93 % at 1.08 s, 1 MiB 98 % at 1.84 s. But in bench/run.sh, where each cold read
// follows other filesystems' runs and deleted caches, 512 KiB units cost 1.3-4.5 CPU-s per
// cold GiB (median 3.9 over 6 runs) against 1.2-3.5 (2.3) for 256 KiB, and the cold read fell
// with it: large new folios are slow to fill the first time here
// (copy_folio_from_iter_atomic). Cold reads are server-bound and lose what the daemon takes.
// So 256 KiB at most.
struct WriteUnits {
  uint64_t min = 128ull << 10;
  uint64_t max = 256ull << 10;

  // Where the unit that starts at (or contains) pos ends: the next multiple, above pos, of the
  // unit size at pos. A write from pos never crosses it, so every write but a request's first
  // and last is a whole unit at a multiple of its size.
  uint64_t EndAfter(uint64_t pos) const;
};

class ChunkSink : public s3::Sink {
 public:
  // Bytes go to out (which writes them in order from offset, as s3::FdSink does); at most
  // limit bytes (more is an EIO: a server that ignores the Range header must not write over
  // other blocks). progress, if set, hears the bytes written so far after each write.
  ChunkSink(s3::Sink& out, uint64_t offset, uint64_t limit, WriteUnits units,
            const std::atomic<bool>* cancelled, std::atomic<uint64_t>* counter,
            std::function<void(uint64_t)> progress = nullptr);

  Status Write(const char* data, size_t size) override;
  // Writes what is still buffered: call once the request has answered.
  Status Finish();
  Status Reset() override;

  uint64_t written() const { return written_; }

 private:
  Status Put(const char* data, size_t size);

  s3::Sink& out_;
  uint64_t offset_;
  uint64_t limit_;
  WriteUnits units_;
  const std::atomic<bool>* cancelled_;
  std::atomic<uint64_t>* counter_;
  std::function<void(uint64_t)> progress_;
  uint64_t written_ = 0;
  std::unique_ptr<char[]> buf_;  // the unit being filled, made (larger) as needed
  size_t capacity_ = 0;
  size_t fill_ = 0;
};

// Forwards writes to out one at a time, under mu: the parallel requests of one download share
// it. The kernel serializes buffered writes into one file anyway (the inode lock), but a writer
// that finds the lock taken spins while the holder runs, and the holder of a 256 KiB write may
// run a while: copying into new page-cache folios was the daemon's largest cost in slow cold
// reads here, and the spinning next to it (rwsem_spin_on_owner) its second, a core the server
// needed. Waiting on mu sleeps instead.
class SerialSink : public s3::Sink {
 public:
  SerialSink(s3::Sink& out, std::mutex& mu) : out_(out), mu_(mu) {}
  Status Write(const char* data, size_t size) override {
    std::lock_guard<std::mutex> lock(mu_);
    return out_.Write(data, size);
  }
  Status Reset() override { return out_.Reset(); }

 private:
  s3::Sink& out_;
  std::mutex& mu_;
};

}  // namespace s3cachefs::cache
