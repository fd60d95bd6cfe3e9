#include "headachemd/ingest/fhir_files.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <system_error>

#include <fmt/format.h>

namespace headachemd::ingest {

namespace fs = std::filesystem;

file_kind kind_of(const fs::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ext == ".json") return file_kind::json;
    if (ext == ".ndjson" || ext == ".jsonl") return file_kind::ndjson;
    return file_kind::other;
}

walked_input walk_input(const fs::path& input) {
    walked_input out;
    std::error_code ec;
    const auto st = fs::status(input, ec);
    if (ec || !fs::exists(st)) {
        out.missing = true;
        return out;
    }
    if (!fs::is_directory(st)) {
        out.files.push_back({input, kind_of(input), fs::file_size(input, ec), false});
        return out;
    }
    for (auto it = fs::recursive_directory_iterator(input, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const fs::path& p = it->path();
        if (p.filename().string().starts_with(".")) {
            if (it->is_directory()) it.disable_recursion_pending();
            continue;  // .DS_Store, .git and the like are not data
        }
        if (!it->is_regular_file()) continue;
        std::error_code size_ec;
        out.files.push_back({p, kind_of(p), it->file_size(size_ec), true});
    }
    if (ec) out.directory_error = ec.message();
    std::sort(out.files.begin(), out.files.end(),
              [](const found_file& a, const found_file& b) { return a.path < b.path; });
    return out;
}

namespace {

void read_ndjson(const fs::path& p, simdjson::dom::parser& parser, const document_fn& on_document,
                 const problem_fn& on_problem) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return on_problem(p.string(), "cannot be read");
    std::string line;
    for (std::size_t n = 1; std::getline(in, line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = fmt::format("{}:{}", p.string(), n);
        simdjson::dom::element root;
        if (auto err = parser.parse(line).get(root)) {
            on_problem(where, simdjson::error_message(err));
            continue;
        }
        on_document(root, line, where);
    }
}

}  // namespace

void read_documents(const found_file& file, simdjson::dom::parser& parser, const document_fn& on_document,
                    const problem_fn& on_problem) {
    const fs::path& p = file.path;
    if (file.kind == file_kind::ndjson) return read_ndjson(p, parser, on_document, on_problem);
    simdjson::padded_string text;
    if (auto err = simdjson::padded_string::load(p.string()).get(text))
        return on_problem(p.string(), simdjson::error_message(err));
    simdjson::dom::element root;
    if (auto err = parser.parse(text).get(root)) return on_problem(p.string(), simdjson::error_message(err));
    on_document(root, std::string_view(text.data(), text.size()), p.string());
}

}  // namespace headachemd::ingest
