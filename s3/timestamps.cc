#include "s3/timestamps.h"

#include <cstdio>
#include <cstring>

namespace s3cachefs::s3 {

namespace {

std::optional<time_t> FromFields(int year, int month, int day, int hour, int min, int sec) {
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return std::nullopt;
  }
  struct tm tm {};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  return timegm(&tm);
}

}  // namespace

std::optional<time_t> ParseIso8601(const std::string& s) {
  int year = 0, month = 0, day = 0, hour = 0, min = 0, sec = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &year, &month, &day, &hour, &min, &sec) !=
      6) {
    return std::nullopt;
  }
  return FromFields(year, month, day, hour, min, sec);
}

std::optional<time_t> ParseHttpDate(const std::string& s) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  int day = 0, year = 0, hour = 0, min = 0, sec = 0;
  char month_name[4] = {};
  char weekday[4] = {};
  if (std::sscanf(s.c_str(), "%3s, %2d %3s %4d %2d:%2d:%2d", weekday, &day, month_name, &year,
                  &hour, &min, &sec) != 7) {
    return std::nullopt;
  }
  for (int m = 0; m < 12; ++m) {
    if (std::strcmp(month_name, kMonths[m]) == 0) {
      return FromFields(year, m + 1, day, hour, min, sec);
    }
  }
  return std::nullopt;
}

}  // namespace s3cachefs::s3
