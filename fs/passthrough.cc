// Passthrough: see passthrough.h.
#include "fs/passthrough.h"

#include <linux/fuse.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "s3/log.h"

namespace s3cachefs::fs {
namespace {

// What Linux 6.9 added to the protocol (Debian 12's <linux/fuse.h> is 6.1's).
constexpr uint32_t kPassthroughFlag2 = 1U << (37 - 32);  // FUSE_PASSTHROUGH, in flags2
constexpr uint32_t kOpenPassthrough = 1U << 7;           // FOPEN_PASSTHROUGH
// And what 6.6 added: MAP_SHARED of a FOPEN_DIRECT_IO open (through the page cache).
constexpr uint32_t kDirectIoAllowMmapFlag2 = 1U << (36 - 32);  // FUSE_DIRECT_IO_ALLOW_MMAP
// fuse_init_out::max_stack_depth, right after flags2.
constexpr size_t kInitOutStackDepthOffset = offsetof(fuse_init_out, flags2) + sizeof(uint32_t);
struct BackingMap {  // struct fuse_backing_map
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kBackingOpen = _IOW(FUSE_DEV_IOC_MAGIC, 1, BackingMap);
constexpr unsigned long kBackingClose = _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t);

static_assert(sizeof(fuse_open_out) == 16, "fh, open_flags, then the backing id");

// The session's hooks are plain functions: they find the one Passthrough of the process here.
std::atomic<Passthrough*> g_instance{nullptr};

// Set by ReplyOpen for the reply that fuse_reply_open() sends on the same thread.
thread_local int32_t t_open_backing_id = 0;

}  // namespace

Passthrough::~Passthrough() {
  // Backing ids still registered go with the connection: the session's descriptor is closed.
  Passthrough* self = this;
  g_instance.compare_exchange_strong(self, nullptr);
}

Status Passthrough::Install(fuse_session* session, bool enabled, bool direct) {
  if (!enabled) return Status::Ok();  // libfuse's own I/O, untouched
  direct_ = direct;
  dev_fd_ = fuse_session_fd(session);
  Passthrough* expected = nullptr;
  if (!g_instance.compare_exchange_strong(expected, this)) {
    return Status::Error(EBUSY, "passthrough is already installed in this process");
  }
  fuse_custom_io io{};
  io.read = &Passthrough::Read;
  io.writev = &Passthrough::Writev;
  io.splice_send = &Passthrough::SpliceSend;
  if (int rc = fuse_session_custom_io(session, &io, dev_fd_); rc != 0) {
    g_instance.store(nullptr);
    return Status::Error(-rc, "cannot install the FUSE I/O hooks");
  }
  return Status::Ok();
}

bool Passthrough::negotiated() const {
  return negotiated_.load();
}

ssize_t Passthrough::Read(int fd, void* buf, size_t len, void* /*userdata*/) {
  const ssize_t n = ::read(fd, buf, len);
  Passthrough* self = g_instance.load();
  if (n < static_cast<ssize_t>(sizeof(fuse_in_header)) || self == nullptr) {
    return n;
  }
  fuse_in_header in;
  std::memcpy(&in, buf, sizeof(in));
  if (in.opcode != FUSE_INIT) return n;
  // flags2 is there when the kernel's init_in is the extended one (FUSE_INIT_EXT).
  fuse_init_in init{};
  const size_t arg = static_cast<size_t>(n) - sizeof(in);
  std::memcpy(&init, static_cast<const char*>(buf) + sizeof(in), std::min(arg, sizeof(init)));
  const bool offered = arg >= offsetof(fuse_init_in, flags2) + sizeof(init.flags2) &&
                       (init.flags & FUSE_INIT_EXT) != 0 && (init.flags2 & kPassthroughFlag2) != 0;
  if (!offered) {
    LOG_INFO("FUSE passthrough off: this kernel does not offer it");
    return n;
  }
  // Without it an mmap(MAP_SHARED) of a direct open would fail (ENODEV): no direct opens.
  self->direct_mmap_.store(self->direct_ && (init.flags2 & kDirectIoAllowMmapFlag2) != 0);
  self->init_unique_.store(in.unique);
  self->init_pending_.store(true);  // after the unique, which Writev reads once it sees this
  return n;
}

ssize_t Passthrough::Writev(int fd, struct iovec* iov, int count, void* /*userdata*/) {
  Passthrough* self = g_instance.load();
  if (self != nullptr && count >= 2 && iov[0].iov_len == sizeof(fuse_out_header)) {
    fuse_out_header out;
    std::memcpy(&out, iov[0].iov_base, sizeof(out));
    if (t_open_backing_id > 0 && out.error == 0 && iov[1].iov_len == sizeof(fuse_open_out)) {
      // The OPEN reply that ReplyOpen is making (libfuse's own buffer, amended in place).
      auto* open_out = static_cast<fuse_open_out*>(iov[1].iov_base);
      open_out->open_flags |= kOpenPassthrough;
      std::memcpy(&open_out->padding, &t_open_backing_id, sizeof(open_out->padding));
      t_open_backing_id = 0;
    } else if (self->init_pending_.load() && out.unique == self->init_unique_.load()) {
      // The INIT reply (libfuse answers INIT on one thread, before any other request).
      self->init_pending_.store(false);
      auto* init_out = static_cast<fuse_init_out*>(iov[1].iov_base);
      if (out.error == 0 && iov[1].iov_len >= kInitOutStackDepthOffset + sizeof(uint32_t) &&
          (init_out->flags & FUSE_INIT_EXT) != 0) {
        init_out->flags2 |= kPassthroughFlag2;
        if (self->direct_mmap_.load()) init_out->flags2 |= kDirectIoAllowMmapFlag2;
        const uint32_t depth = 1;  // the cache directory is on a plain local filesystem
        std::memcpy(static_cast<char*>(iov[1].iov_base) + kInitOutStackDepthOffset, &depth,
                    sizeof(depth));
        self->negotiated_.store(true);
        LOG_INFO("FUSE passthrough on: fully cached files are read by the kernel directly");
      }
    }
  }
  return ::writev(fd, iov, count);
}

ssize_t Passthrough::SpliceSend(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                                unsigned int flags, void* /*userdata*/) {
  return ::splice(fdin, offin, fdout, offout, len, flags);
}

int32_t Passthrough::Register(int fd) {
  if (register_failed_.load()) return 0;
  BackingMap map{};
  map.fd = fd;
  const int id = ::ioctl(dev_fd_, kBackingOpen, &map);
  if (id > 0) {
    register_worked_.store(true);
    return id;
  }
  const int err = errno;
  if (!register_failed_.exchange(true)) {
    LOG_INFO("passthrough not used: cannot register a cache file with the kernel: %s",
             strerror(err));
  }
  return 0;
}

void Passthrough::Unregister(int32_t id) {
  uint32_t arg = static_cast<uint32_t>(id);
  if (::ioctl(dev_fd_, kBackingClose, &arg) != 0) {
    LOG_WARN("cannot release passthrough backing file %d: %s", id, strerror(errno));
  }
}

bool Passthrough::Usable(int fd) {
  if (register_worked_.load()) return true;
  const int32_t id = Register(fd);
  if (id > 0) Unregister(id);
  return id > 0;
}

OpenMode Passthrough::Begin(Ino ino, int backing_fd, int32_t* backing_id, bool join_only,
                            int reader_fd) {
  std::optional<FileId> backing;
  struct stat st {};
  if (backing_fd >= 0 && negotiated() && ::fstat(backing_fd, &st) == 0) {
    backing = FileId{st.st_dev, st.st_ino};
  }
  // Direct opens only help passthrough ones: none where those cannot be had.
  const bool direct_ok = reader_fd >= 0 && direct_mmap_.load() && negotiated() && Usable(reader_fd);
  const OpenMode mode = modes_.Begin(
      ino, backing, [&] { return Register(backing_fd); }, backing_id, join_only, direct_ok);
  if (mode == OpenMode::kPassthrough) opens_.fetch_add(1);
  if (mode == OpenMode::kDirect) direct_opens_.fetch_add(1);
  return mode;
}

void Passthrough::End(Ino ino, OpenMode mode) {
  modes_.End(ino, mode, [this](int32_t id) { Unregister(id); });
}

int Passthrough::ReplyOpen(fuse_req_t req, const fuse_file_info* fi, int32_t backing_id) {
  t_open_backing_id = backing_id;
  const int rc = fuse_reply_open(req, fi);
  t_open_backing_id = 0;
  return rc;
}

}  // namespace s3cachefs::fs
