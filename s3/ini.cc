#include "s3/ini.h"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace s3cachefs::s3 {

namespace {

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

Result<IniFile> ParseIni(const std::string& text, const std::string& path) {
  IniFile ini;
  std::istringstream in(text);
  std::string line;
  std::string section;
  std::string nested_parent;  // key whose indented sub-keys follow
  bool have_section = false;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string t = Trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    const bool indented = line[0] == ' ' || line[0] == '\t';
    auto error = [&](const std::string& why) {
      std::string where = path;
      where.append(":").append(std::to_string(line_no)).append(": ").append(why);
      return Status::Error(EINVAL, where);
    };
    if (t[0] == '[') {
      if (t.back() != ']') return error("unterminated section header");
      section = Trim(t.substr(1, t.size() - 2));
      ini[section];
      have_section = true;
      nested_parent.clear();
      continue;
    }
    const size_t eq = t.find('=');
    if (eq == std::string::npos) return error("expected \"key = value\"");
    if (!have_section) return error("setting outside a [section]");
    const std::string key = Lower(Trim(t.substr(0, eq)));
    const std::string value = Trim(t.substr(eq + 1));
    if (key.empty()) return error("empty key");
    if (indented && !nested_parent.empty()) {
      std::string nested_key = nested_parent;
      nested_key.append(".").append(key);
      ini[section][nested_key] = value;
      continue;
    }
    ini[section][key] = value;
    nested_parent = value.empty() ? key : "";
  }
  return ini;
}

Result<IniFile> ReadIniFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return IniFile{};
    const int err = errno;
    return Status::Error(err, "cannot read " + path + ": " + strerror(err));
  }
  std::ifstream f(path);
  if (!f) return Status::Error(EACCES, "cannot read " + path);
  std::stringstream buf;
  buf << f.rdbuf();
  return ParseIni(buf.str(), path);
}

}  // namespace s3cachefs::s3
