#include "headachemd/ingest/fhir_files.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <system_error>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "headachemd/ndjson/line_splitter.hpp"
#include "headachemd/normalize/normalize.hpp"

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
    // The splitter `ingest` and the Bulk Data download use, under the
    // normalizer's limit for one resource: memory stays bounded by the
    // longest line allowed, whatever the file.
    ndjson::line_splitter lines(normalize::options{}.max_resource_bytes);
    auto take = [&](const ndjson::split_event& e) {
        if (const auto* too_long = std::get_if<ndjson::line_too_long>(&e))
            return on_problem(
                fmt::format("{}:{}", p.string(), too_long->number),
                fmt::format("line is longer than {} bytes; left out", too_long->max_line_bytes));
        const auto& l = std::get<ndjson::line>(e);
        const std::string where = fmt::format("{}:{}", p.string(), l.number);
        simdjson::dom::element root;
        if (auto err = parser.parse(l.text.data(), l.text.size()).get(root))
            return on_problem(where, simdjson::error_message(err));
        on_document(root, l.text, where);
    };
    std::vector<char> chunk(1 << 20);
    while (in) {
        in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        lines.feed(std::string_view(chunk.data(), static_cast<std::size_t>(in.gcount())));
        while (auto e = lines.next()) take(*e);
    }
    if (auto e = lines.finish()) take(*e);
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
