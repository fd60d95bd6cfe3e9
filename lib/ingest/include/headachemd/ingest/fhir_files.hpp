// The FHIR files on disk that `ingest` and `view run` read: one walker, so
// that both commands see the same files in the same order.
//
// - .json is one resource or a Bundle; .ndjson/.jsonl is Bulk Data (one
//   resource per line). The extension is matched case-insensitively.
// - A directory is walked recursively, in path order; hidden files and
//   directories (.DS_Store, .git) are not data and are left out.
// - Each caller decides what a file of another kind means: `ingest`
//   reports one found in a directory and reads one named on the command
//   line as JSON; `view run` skips the first and refuses the second.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

namespace headachemd::ingest {

enum class file_kind { json, ndjson, other };

file_kind kind_of(const std::filesystem::path& p);

struct found_file {
    std::filesystem::path path;
    file_kind kind = file_kind::other;
    std::uint64_t size = 0;
    bool in_directory = false;  // found by walking a directory, not named
};

struct walked_input {
    std::vector<found_file> files;  // in path order
    bool missing = false;           // the input does not exist
    std::string directory_error;    // a directory that could not be read to the end
};

// The files one command-line input names: itself, or the files under it.
walked_input walk_input(const std::filesystem::path& input);

// Reads a .json file (one document) or an NDJSON file (a document per
// non-blank line) with `parser`, calling on_document for each with the
// DOM, its text and where it came from ("file" or "file:line"), and
// on_problem for a file that cannot be read or a document that does not
// parse. The DOM and text live only for the call. Used by `view run`;
// ingest reads through the normalizer, which bounds memory for huge files.
using document_fn =
    std::function<void(simdjson::dom::element root, std::string_view text, const std::string& where)>;
using problem_fn = std::function<void(const std::string& where, std::string_view message)>;
void read_documents(const found_file& file, simdjson::dom::parser& parser, const document_fn& on_document,
                    const problem_fn& on_problem);

}  // namespace headachemd::ingest
