// Reader for the AWS shared config and credentials files: INI with "[section]" headers,
// "key = value" lines, full-line '#'/';' comments, and one level of nesting where a key with an
// empty value is followed by indented "sub = value" lines ("s3 =\n  addressing_style = path").
#pragma once

#include <map>
#include <string>

#include "s3/status.h"

namespace s3cachefs::s3 {

// section name (as written, e.g. "profile dev") -> key -> value. Nested keys are stored as
// "parent.sub" ("s3.addressing_style"). Keys are lower-cased, as botocore does; values trimmed.
using IniFile = std::map<std::string, std::map<std::string, std::string>>;

// Parses text; path is only used in error messages.
Result<IniFile> ParseIni(const std::string& text, const std::string& path);

// Reads and parses a file. A missing file is an empty IniFile, not an error.
Result<IniFile> ReadIniFile(const std::string& path);

}  // namespace s3cachefs::s3
