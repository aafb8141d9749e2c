// FdSink and StringSink, the two Sink implementations declared in s3/client.h.
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "s3/client.h"

namespace s3cachefs::s3 {

Status FdSink::Write(const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = pwrite(fd_, data, size, pos_);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      return Status::Error(err, std::string("cannot write the downloaded data: ") + strerror(err));
    }
    data += n;
    size -= static_cast<size_t>(n);
    pos_ += n;
  }
  return Status::Ok();
}

Status FdSink::Reset() {
  pos_ = start_;
  return Status::Ok();
}

Status StringSink::Write(const char* data, size_t size) {
  data_.append(data, size);
  return Status::Ok();
}

Status StringSink::Reset() {
  data_.clear();
  return Status::Ok();
}

}  // namespace s3cachefs::s3
