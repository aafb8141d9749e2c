// Helpers shared by the two halves of the Index implementation (cache/index.cc: schema, read
// path; cache/index_write.cc: write-back). Not for use outside them.
#pragma once

#include <sqlite3.h>

#include <string>

#include "cache/index.h"

namespace s3cachefs::cache {

// The columns ReadIndexRow expects, in order.
extern const char* const kIndexColumns;

IndexEntry ReadIndexRow(sqlite3_stmt* stmt);
void BindText(sqlite3_stmt* stmt, int col, const std::string& value);
// Binds meta's mode, uid, gid, mtime to columns first_col .. first_col + 3 (NULL when unset).
void BindMeta(sqlite3_stmt* stmt, int first_col, const FileMeta& meta);

}  // namespace s3cachefs::cache
