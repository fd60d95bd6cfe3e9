// libFuzzer target: one FHIR JSON document (a Bundle page or a single
// resource), handled as the sync engine handles a page: fhir::read_page_meta
// first, then normalize_document on the same padded buffer. Each input is
// normalized twice by one normalizer, because production keeps one
// normalizer (its scratch buffers, classifier memo and Medication index)
// for every page of a run; the second pass must agree with the first.
//
// Even-sized inputs use the defaults with keep_raw; odd-sized ones use
// small limits so the size and depth checks are reached too.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <simdjson.h>

#include "headachemd/fhir/fhir.hpp"
#include "headachemd/normalize/normalize.hpp"
#include "normalize_checks.hpp"

namespace nz = headachemd::normalize;
namespace hf = headachemd::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    simdjson::padded_string body(input);

    auto meta = headachemd::fhir::read_page_meta(body);
    if (meta) {
        FUZZ_CHECK(!meta->resource_type.empty(), "page meta without a resourceType");
        if (meta->next) FUZZ_CHECK(!meta->next->empty(), "an empty next link");
    } else {
        FUZZ_CHECK(!meta.err().message.empty(), "page meta error without a message");
    }

    nz::options opts;
    if (size % 2 == 0) {
        opts.keep_raw = true;
    } else {
        opts.max_resource_bytes = 2048;
        opts.max_depth = 12;
    }
    nz::normalizer normalizer(opts);
    const nz::result first = normalizer.normalize_document(body);
    hf::check_result(first, input, opts.keep_raw);
    // A page the normalizer accepts whole is one whose metadata the engine
    // could read (it reads the metadata first and stops when it cannot).
    if (first.ok() && !first.records.empty())
        FUZZ_CHECK(static_cast<bool>(meta), "normalized a page without meta");

    const nz::result second = normalizer.normalize_document(body);
    hf::check_result(second, input, opts.keep_raw);
    FUZZ_CHECK(
        second.records.size() == first.records.size() && second.problems.size() == first.problems.size(),
        "a second pass over the same page disagrees with the first");
    return 0;
}
