#include "fs/daemon.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "s3/log.h"

namespace s3cachefs::fs {

Daemon::Daemon(bool detach, bool log_to_syslog) : detach_(detach), log_to_syslog_(log_to_syslog) {
  if (!detach_) return;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    fprintf(stderr, "s3cachefs: pipe: %s; staying in the foreground\n", strerror(errno));
    detach_ = false;
    return;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "s3cachefs: fork: %s; staying in the foreground\n", strerror(errno));
    close(fds[0]);
    close(fds[1]);
    detach_ = false;
    return;
  }
  if (pid > 0) {
    is_parent_ = true;
    child_pid_ = pid;
    close(fds[1]);
    pipe_fd_ = fds[0];
  } else {
    close(fds[0]);
    pipe_fd_ = fds[1];
    setsid();
  }
}

Daemon::~Daemon() {
  if (pipe_fd_ >= 0) close(pipe_fd_);
}

int Daemon::WaitForChild() {
  char byte = 0;
  ssize_t n;
  do {
    n = read(pipe_fd_, &byte, 1);
  } while (n < 0 && errno == EINTR);
  if (n == 1) return 0;  // mounted; the child runs on
  int status = 0;
  while (waitpid(child_pid_, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1;
  fprintf(stderr, "s3cachefs: the daemon died during start-up (signal %d)\n",
          WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return 1;
}

void Daemon::Ready() {
  if (!detach_ || pipe_fd_ < 0) return;
  if (log_to_syslog_) LogToSyslog();
  if (chdir("/") != 0) LOG_WARN("chdir /: %s", strerror(errno));
  const int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd >= 0) {
    dup2(null_fd, STDIN_FILENO);
    dup2(null_fd, STDOUT_FILENO);
    dup2(null_fd, STDERR_FILENO);
    close(null_fd);
  }
  const char byte = 1;
  if (write(pipe_fd_, &byte, 1) != 1) LOG_WARN("cannot tell the parent: %s", strerror(errno));
  close(pipe_fd_);
  pipe_fd_ = -1;
}

}  // namespace s3cachefs::fs
