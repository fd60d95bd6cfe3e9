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

enum class node_kind {
    string_literal,   // 'text'
    integer_literal,  // 42
    decimal_literal,  // 4.5
    boolean_literal,  // true / false
    date_literal,     // @2020-01-01, @2020-01-01T10:00:00Z, @T10:00 (text kept verbatim, without '@')
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
    std::string text;  // ISO 8601 text as written after '@'
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

// Evaluates `ast` with `focus` as the input collection (usually the one
// resource). The DOM the elements point into must outlive the result.
eval_result evaluate(const node& ast, const collection& focus, const constant_map& constants = {});

}  // namespace headachemd::views
