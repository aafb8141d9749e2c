// Status and Result<T>: the error values every layer of s3cachefs passes around.
//
// An error carries an errno-compatible code (so the FUSE layer can reply with it unchanged) and a
// message a person can act on. No exceptions cross layer boundaries; callers check ok().
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <utility>

namespace s3cachefs {

class Status {
 public:
  Status() = default;  // OK
  static Status Ok() { return Status(); }
  // code must be a positive errno value (EIO, ENOENT, ...).
  static Status Error(int code, std::string message) { return Status(code, std::move(message)); }

  bool ok() const { return code_ == 0; }
  int code() const { return code_; }
  const std::string& message() const { return message_; }
  // "message (errno name)" for logs.
  std::string ToString() const;

  // Prepends context: "while X: <message>". No-op on OK.
  Status WithContext(const std::string& context) const;

 private:
  Status(int code, std::string message) : code_(code), message_(std::move(message)) {}
  int code_ = 0;
  std::string message_;
};

// A value or an error. Access value() only when ok().
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (status_.ok()) status_ = Status::Error(EIO, "internal error: Result built from OK status");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace s3cachefs
