// Decimal text for lowBoundary()/highBoundary(): the exact boundary
// arithmetic on a number's written digits, and the map from a DOM number
// to the text it was parsed from. Internal to lib/views.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace headachemd::views::detail {

// The boundary of a decimal written as `text` (JSON number syntax, as FHIR
// writes decimals): half a unit of its last digit below or above
// (FHIRPath 3.0 STU §"lowBoundary": 1.0 gives 0.95 and 1.05), rounded
// down/up to `digits` decimal places when given (0..28). The result is
// the exact decimal text. Returns false with `error` set when the text
// has more digits than the exact arithmetic holds (36), and nullopt
// (empty) for a precision outside 0..28.
struct decimal_boundary_result {
    std::optional<std::string> text;
    std::string error;
};
decimal_boundary_result decimal_boundary(std::string_view text, bool high, std::optional<long long> digits);

// The JSON text of every number in a document, keyed by where the DOM holds
// it: the address of its member's key in the DOM's string buffer (unique
// per member and stable while the DOM lives) and its index when the member
// is an array (npos otherwise). Built by walking the DOM and an On-Demand
// parse of the same text in step, so the two can never disagree silently:
// a mismatch (text that is not the DOM's) fails the build.
class number_texts {
public:
    static constexpr std::size_t not_in_array = static_cast<std::size_t>(-1);

    // False when `json` cannot be parsed or does not match `root`.
    bool build(simdjson::dom::element root, std::string_view json);
    std::optional<std::string_view> find(const char* key, std::size_t index) const;

private:
    bool walk_object(simdjson::dom::element d, simdjson::ondemand::value o, int depth);
    bool visit(const char* key, std::size_t index, simdjson::dom::element d, simdjson::ondemand::value o,
               int depth);

    simdjson::padded_string copy_;
    simdjson::ondemand::parser parser_;
    std::map<std::pair<const char*, std::size_t>, std::string> texts_;
};

}  // namespace headachemd::views::detail
