// Logging for every layer: one line per event, to stderr (foreground) or syslog (daemon), or a
// file given with -o log_file=. Lives in the base library because every layer depends on it.
#pragma once

#include <string>

namespace s3cachefs {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

// Where lines go. Thread-safe; the default is stderr at kInfo.
void LogToStderr();
void LogToSyslog();
// Appends to path; false (and logging unchanged) if it cannot be opened.
bool LogToFile(const std::string& path);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
// True while lines go to stderr (the default, and with -f without a log file).
bool LogsToStderr();

// printf-style; a newline is added.
void Log(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

#define S3C_LOG(level, ...)                                                   \
  do {                                                                        \
    if (::s3cachefs::LogEnabled(level)) ::s3cachefs::Log(level, __VA_ARGS__); \
  } while (0)
#define LOG_ERROR(...) S3C_LOG(::s3cachefs::LogLevel::kError, __VA_ARGS__)
#define LOG_WARN(...) S3C_LOG(::s3cachefs::LogLevel::kWarning, __VA_ARGS__)
#define LOG_INFO(...) S3C_LOG(::s3cachefs::LogLevel::kInfo, __VA_ARGS__)
#define LOG_DEBUG(...) S3C_LOG(::s3cachefs::LogLevel::kDebug, __VA_ARGS__)

}  // namespace s3cachefs
