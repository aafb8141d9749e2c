#include "s3/log.h"

#include <syslog.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace s3cachefs {
namespace {

enum class Target { kStderr, kSyslog, kFile };

std::mutex g_mu;  // guards g_target and g_file
Target g_target = Target::kStderr;
FILE* g_file = nullptr;
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "?";
}

int SyslogPriority(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return LOG_ERR;
    case LogLevel::kWarning:
      return LOG_WARNING;
    case LogLevel::kInfo:
      return LOG_INFO;
    case LogLevel::kDebug:
      return LOG_DEBUG;
  }
  return LOG_INFO;
}

void CloseFileLocked() {
  if (g_file != nullptr) fclose(g_file);
  g_file = nullptr;
}

}  // namespace

void LogToStderr() {
  std::lock_guard<std::mutex> lock(g_mu);
  CloseFileLocked();
  g_target = Target::kStderr;
}

void LogToSyslog() {
  std::lock_guard<std::mutex> lock(g_mu);
  CloseFileLocked();
  openlog("s3cachefs", LOG_PID, LOG_DAEMON);
  g_target = Target::kSyslog;
}

bool LogToFile(const std::string& path) {
  FILE* f = fopen(path.c_str(), "ae");
  if (f == nullptr) return false;
  setvbuf(f, nullptr, _IOLBF, 0);
  std::lock_guard<std::mutex> lock(g_mu);
  CloseFileLocked();
  g_file = f;
  g_target = Target::kFile;
  return true;
}

void SetLogLevel(LogLevel level) {
  g_level = static_cast<int>(level);
}

bool LogsToStderr() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_target == Target::kStderr;
}

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) <= g_level.load();
}

void Log(LogLevel level, const char* format, ...) {
  char message[2048];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof(message), format, args);
  va_end(args);

  std::lock_guard<std::mutex> lock(g_mu);
  if (g_target == Target::kSyslog) {
    syslog(SyslogPriority(level), "%s", message);
    return;
  }
  FILE* out = g_target == Target::kFile ? g_file : stderr;
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm local{};
  localtime_r(&now.tv_sec, &local);
  char stamp[32];
  strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &local);
  fprintf(out, "%s.%03ld s3cachefs %s: %s\n", stamp, now.tv_nsec / 1000000, LevelName(level),
          message);
}

}  // namespace s3cachefs
