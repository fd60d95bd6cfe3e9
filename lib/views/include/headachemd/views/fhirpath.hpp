// The FHIRPath subset that SQL on FHIR v2 requires of a ViewDefinition
// (https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html,
// "FHIRPath expressions"): a parser into an AST and an evaluator over
// simdjson DOM elements. Expressions are compiled once per definition and
// evaluated per resource, so the AST owns its strings and never points into
// the expression text.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace headachemd::views {

// The FHIR/FHIRPath type of a date_value. The parser types a literal by
// its form; ofType(date|dateTime|instant|time) and the boundary functions
// set it from the FHIR type, because "2010-10" may be a date or a dateTime
// and their boundaries differ. `infer` (reading it from the text: 'T' makes
// a dateTime, "hh:mm" a time, else a date) is for values made elsewhere.
enum class temporal_kind { infer, date, date_time, time };

enum class node_kind {
    string_literal,   // 'text'
    integer_literal,  // 42
    decimal_literal,  // 4.5
    boolean_literal,  // true / false
    date_literal,     // @2020-01-01, @2020-01-01T10:00:00Z: text without the @; @T10:00: text "10:00"
    empty_literal,    // {}
    this_ref,         // $this
    constant_ref,     // %name
    member,           // children[0] (or the focus if none) . name
    function,         // children[0] (or the focus if none) . name(children[1..])
    indexer,          // children[0] [ children[1] ]
    unary_minus,      // - children[0]
    binary,           // children[0] op children[1]
};

struct node {
    node_kind kind{};
    std::size_t offset = 0;  // of the token that starts this node in the expression
    std::string text;        // literal text, member/function/constant name, or binary operator
    std::int64_t integer = 0;
    double decimal = 0;
    bool boolean = false;
    temporal_kind temporal = temporal_kind::infer;  // date_literal: date, date_time or time
    // For member and function: children[0] is the target, or null for an
    // invocation on the focus (`name` at the start of an expression).
    std::vector<std::unique_ptr<node>> children;
    std::size_t depth = 1;  // levels of the tree below and including this node (bounded by parse())
};

struct parse_error {
    std::size_t offset = 0;  // byte offset in the expression where parsing failed
    std::string message;
};

struct parse_result {
    std::unique_ptr<node> ast;         // set on success
    std::optional<parse_error> error;  // set on failure
};

parse_result parse(std::string_view expression);

// One item of a FHIRPath collection: a JSON node of the resource, or a value
// the expression made (a literal, a comparison's result, join()'s text).

struct date_value {
    std::string text;  // FHIR JSON form: "2020-01-05", "2020-01-05T10:00:00Z", "12:34:00" (a time has no 'T')
    temporal_kind kind = temporal_kind::infer;
};
using item = std::variant<simdjson::dom::element, std::string, std::int64_t, double, bool, date_value>;
using collection = std::vector<item>;

// %name references: the ViewDefinition's `constant` entries (and later the
// spec's %resource / %rootResource).
using constant_map = std::map<std::string, collection, std::less<>>;

struct eval_error {
    std::size_t offset = 0;  // of the node that failed
    std::string message;
};

struct eval_result {
    collection value;
    std::optional<eval_error> error;
};

namespace detail {
class number_texts;
}

// The JSON text a DOM was parsed from. simdjson's DOM keeps a JSON number as
// a double, so "1.0" and "1" look alike, but a FHIR decimal's precision is
// its text (FHIR R4 §2.6.1 "decimal") and lowBoundary()/highBoundary()
// depend on it. With this, the evaluator reads a number's exact text;
// without it, those functions refuse a non-integer JSON number with an error.
// `root` must be the element `parser.parse(json)` returned (a Bundle or an
// NDJSON line), and `json` must outlive this object. The map from numbers
// to their text is built on first use and then reused by every evaluate()
// call given this object, so one per parsed document is enough. Not for use
// by two threads at once.
class source_text {
public:
    source_text(simdjson::dom::element root, std::string_view json);
    ~source_text();
    source_text(const source_text&) = delete;
    source_text& operator=(const source_text&) = delete;

    // The numbers' texts, or null when `json` is not the text of `root`.
    const detail::number_texts* numbers() const;

private:
    simdjson::dom::element root_;
    std::string_view json_;
    mutable std::unique_ptr<detail::number_texts> numbers_;
    mutable bool built_ = false;
    mutable bool ok_ = false;
};

// What a Reference.reference names once resolved: the FHIR type and id of
// the resource.
struct resolved_reference {
    std::string type;
    std::string id;
};

// Resolves a Reference.reference against the resources it came with. FHIR
// R4 Bundle §"Resolving references in Bundles": a reference that equals an
// entry's fullUrl (urn:uuid:…, urn:oid:… or an absolute URL) names that
// entry's resource. Returns nothing when no entry has that fullUrl; the
// engine then never guesses a urn's target. The caller owns the index
// (ingest: the normalizer's fullUrl map; `view run`: index_bundle()).
using reference_resolver = std::function<std::optional<resolved_reference>(std::string_view reference)>;

// A JSON value as a FHIRPath item: a string, number or boolean becomes the
// primitive (integers that fit int64 stay integers, other numbers are
// decimals); an object, array or null stays an element. The engine reads a
// ViewDefinition constant with it too, so `%x = field` compares like with like.
item item_of_json(simdjson::dom::element e);

// Evaluates `ast` with `focus` as the input collection (usually the one
// resource). The DOM the elements point into must outlive the result.
// `references`, when given and not empty, resolves getReferenceKey()'s
// references to other entries of the resource's Bundle.
eval_result evaluate(const node& ast, const collection& focus, const constant_map& constants = {},
                     const source_text* source = nullptr, const reference_resolver* references = nullptr);

}  // namespace headachemd::views
