// libFuzzer target: NDJSON (bulk export, `ingest`), one normalize_line call
// per line with one normalizer, the way lib/ingest feeds it: the line is a
// view into a larger buffer whose padding lies beyond the line's end (so the
// bytes after a line are the next line's, not zeros), a trailing '\r' is
// dropped and blank lines are skipped. Each resource type is reached through
// the seed corpus (one seed per type) and the dictionary.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include <simdjson.h>

#include "headachemd/normalize/normalize.hpp"
#include "normalize_checks.hpp"

namespace nz = headachemd::normalize;
namespace hf = headachemd::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    // One buffer with simdjson's padding after the last byte, as ingest's.
    simdjson::padded_string buffer(input);
    const char* base = buffer.data();

    nz::normalizer normalizer(nz::options{.keep_raw = size % 2 == 0});
    nz::result out;
    std::size_t start = 0, line_no = 0, lines = 0;
    while (start < size) {
        const void* nl = std::memchr(base + start, '\n', size - start);
        const std::size_t end = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - base) : size;
        ++line_no;
        std::string_view line(base + start, end - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.find_first_not_of(" \t") != std::string_view::npos) {
            const std::size_t capacity = buffer.size() + simdjson::SIMDJSON_PADDING - start;
            normalizer.normalize_line(simdjson::padded_string_view(line.data(), line.size(), capacity),
                                      line_no, out);
            ++lines;
        }
        start = end + 1;
    }
    hf::check_result(out, input, size % 2 == 0);
    // One line is one resource: at most one record from it.
    FUZZ_CHECK(out.records.size() <= lines, "more records than lines");
    for (const auto& p : out.problems)
        FUZZ_CHECK(p.where.rfind("line ", 0) == 0, "an NDJSON problem not located by line");
    return 0;
}
