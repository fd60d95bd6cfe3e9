// Rows of a view as text, for `headachemd-sync view run` (issue 16 item 5).
// Pure: the caller writes the strings wherever it likes.
#pragma once

#include <string>
#include <vector>

#include "headachemd/views/view.hpp"

namespace headachemd::views {

// CSV (RFC 4180): fields separated by commas, records ended by CRLF; a
// field holding a comma, a double quote, CR or LF is enclosed in double
// quotes with its quotes doubled. The header record is the column names.
// A null cell is the empty field; a collection cell and a complex element
// are their JSON text; booleans are true/false; a number that is not
// finite is the empty field (it has no JSON or SQL form either).
std::string csv_header(const std::vector<column_info>& columns);
std::string csv_record(const row& r);

// NDJSON: one JSON object per row, members in column order, ended by "\n".
// A null cell is JSON null; a collection is a JSON array; a complex element
// is embedded as JSON.
std::string ndjson_record(const std::vector<column_info>& columns, const row& r);

}  // namespace headachemd::views
