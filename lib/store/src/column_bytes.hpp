// Private to lib/store: a BLOB (or TEXT) column's bytes as SQLite holds them.
#pragma once

#include <cstddef>
#include <string_view>

#include <SQLiteCpp/Column.h>

namespace headachemd::store::detail {

// Valid until the statement steps or resets. getBlob() before getBytes():
// SQLite may convert the value on the first access, and the byte count must
// describe the same form (https://sqlite.org/c3ref/column_blob.html).
inline std::string_view column_bytes(const SQLite::Column& c) {
    const auto* bytes = static_cast<const char*>(c.getBlob());
    return std::string_view(bytes ? bytes : "", static_cast<std::size_t>(c.getBytes()));
}

}  // namespace headachemd::store::detail
