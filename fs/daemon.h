// Daemon: detaches the process from the terminal without losing start-up errors.
//
// The process forks before any thread exists. The parent waits; the child sets up and mounts,
// printing any error to the terminal itself, and calls Ready() once the mount is up, which lets
// the parent exit 0 and detaches the child (new session, stdio to /dev/null, logs to syslog
// unless a log file was given). If the child exits before Ready(), the parent exits with its
// status.
#pragma once

namespace s3cachefs::fs {

class Daemon {
 public:
  // detach=false (foreground): no fork; Ready() does nothing.
  Daemon(bool detach, bool log_to_syslog);
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon();

  bool IsParent() const { return is_parent_; }
  // Parent only: blocks until the child is ready (0) or has exited (its status, at least 1).
  int WaitForChild();
  // Child only: the mount is up; detach.
  void Ready();

 private:
  bool detach_;
  bool log_to_syslog_;
  bool is_parent_ = false;
  int child_pid_ = -1;
  int pipe_fd_ = -1;  // parent: read end; child: write end until Ready()
};

}  // namespace s3cachefs::fs
