#include "s3/status.h"

#include <cstring>

namespace s3cachefs {

std::string Status::ToString() const {
  if (ok()) return "OK";
  const char* name = strerrorname_np(code_);
  return message_ + " (" + (name != nullptr ? name : std::to_string(code_)) + ")";
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

}  // namespace s3cachefs
