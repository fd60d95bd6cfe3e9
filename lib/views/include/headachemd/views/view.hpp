// SQL on FHIR v2 ViewDefinitions
// (https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html):
// compile() checks a definition and parses each of its FHIRPath expressions
// once into a plan; evaluate() turns one resource into rows with that plan.
// Pure: no I/O, no logging. Errors are values: a definition that is refused
// says where (a JSON path such as `select[0].column[1].path`, plus the byte
// offset in the expression when the fault is inside one).
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

#include "headachemd/views/fhirpath.hpp"

namespace headachemd::views {

// Where a definition or an evaluation went wrong.
struct view_error {
    std::string json_path;                   // e.g. "select[0].column[1].path"; "" is the whole definition
    std::optional<std::size_t> expr_offset;  // byte offset inside the FHIRPath expression at json_path
    std::string message;                     // what is wrong; never contains resource data
};
using compile_error = view_error;

// One output column, in the view's column order (ViewDefinition
// "Column ordering": a select's own columns, then its nested selects', then
// its unionAll's).
struct column_info {
    std::string name;
    std::string type;  // the declared FHIR type ("string", "integer", ...); "" when not declared
    bool collection = false;
};

// A complex FHIR element selected by a column (an object), as minified JSON.
struct json_text {
    std::string text;
    bool operator==(const json_text&) const = default;
};
using scalar = std::variant<std::monostate, bool, std::int64_t, double, std::string, json_text>;
// A cell: null (monostate), one value, or the list of a collection=true column.
using cell =
    std::variant<std::monostate, bool, std::int64_t, double, std::string, json_text, std::vector<scalar>>;
using row = std::vector<cell>;  // one cell per column_info, same order

namespace detail {
struct select_plan;
}

// A compiled ViewDefinition. Owns every string and parsed expression; it
// never points into the definition's JSON, which may be freed after compile().
class view {
public:
    view();
    ~view();
    view(view&&) noexcept;
    view& operator=(view&&) noexcept;

    const std::string& resource() const { return resource_; }
    const std::string& name() const { return name_; }  // the definition's `name`, "" when absent
    const std::vector<column_info>& columns() const { return columns_; }

private:
    friend struct view_access;
    std::string resource_;
    std::string name_;
    std::vector<column_info> columns_;
    constant_map constants_;
    std::vector<std::pair<std::string, std::unique_ptr<node>>> where_;  // json path, expression
    std::unique_ptr<detail::select_plan> root_;
};

using compile_result = std::variant<view, compile_error>;

// Parses and checks a ViewDefinition given as JSON text. Refuses (with the
// JSON path of the first fault): text that is not a JSON object; a missing
// or malformed `resource`; an unknown `status`; names that are not
// SQL-friendly (^[A-Za-z][A-Za-z0-9_]*$) or repeated; a constant without
// exactly one primitive value[x]; a reference to an undefined %constant;
// an expression that does not parse; forEach, forEachOrNull and repeat
// together; unionAll branches whose column names differ in name or order;
// a column type that is no FHIR type; selects nested deeper than
// max_select_depth; and members the specification does not define.
compile_result compile(std::string_view view_definition_json);

// The identifier rule a definition is checked against (issue 16 item 4; the
// config's `[privacy] identifiers`, docs/admin/security.md "Privacy").
// - off: no check (the official suite, which selects names, runs so).
// - minimal: nothing that names, locates or contacts a patient (name,
//   address, telecom, identifier, photo, contact, birthDate, free text);
//   the FHIR patient id (Patient.id, Reference.reference, the keys as
//   "Patient/<id>") is allowed, as the analytics tables allow it.
// - none: as minimal, and no FHIR patient id either: Patient.id and
//   Reference.reference are refused, and getResourceKey() /
//   getReferenceKey() may appear only as the whole of a column path, whose
//   "Patient/<id>" values evaluate() replaces with the patient_key.
// Identity resources (Patient, RelatedPerson, Person) are checked against an
// allow-list of elements; every other resource against a deny-list of the
// places where a patient's identity is written (lib/views/src/view_privacy.cpp).
enum class privacy { off, minimal, none };

struct compile_options {
    privacy identifiers = privacy::off;
};

// compile() with the privacy check: a definition that could reach a
// forbidden element is refused with the JSON path and the offset of the
// expression that reaches it.
compile_result compile(std::string_view view_definition_json, const compile_options& options);

// Limits that keep a hostile resource or definition from exhausting the stack or memory.
inline constexpr std::size_t max_select_depth = 32;  // levels of nested select/unionAll in a definition
inline constexpr std::size_t max_repeat_depth = 64;  // levels of `repeat` recursion
inline constexpr std::size_t max_rows_per_resource = 100'000;

struct eval_rows {
    std::vector<row> rows;
    std::optional<view_error> error;  // set on failure; rows is then empty
};

// The rows one resource gives. A resource of another type than
// view.resource() gives none. Fails (with the JSON path of the expression)
// when a `where` path yields something other than a boolean, when a column
// without collection=true yields more than one value, when an expression
// fails, or when a limit above is exceeded. The resource's DOM need only
// live for the call: cells own their values.

// FHIR Patient id -> patient_key (the caller's pseudonym: ingest uses
// store::patient_key_for(key, source, id)). Views stay free of the vault.
using key_mapper = std::function<std::string(std::string_view fhir_patient_id)>;

struct eval_options {
    // Required for a view compiled under privacy::none that has key
    // columns: each "Patient/<id>" key value is replaced by
    // map_patient_key(<id>). evaluate() fails (never leaks the id) when it
    // is needed and absent. Ignored for other views.
    key_mapper map_patient_key;
    // The text the resource's document was parsed from (see source_text).
    // Without it, lowBoundary()/highBoundary() refuse a non-integer
    // decimal, because the DOM's double has lost the precision its text
    // carries (1.0 gives 0.95, 1 gives 0.5).
    const source_text* source = nullptr;
    // For a resource read from a Bundle: resolves a reference that is
    // another entry's fullUrl (urn:uuid:…, urn:oid:…, absolute), so
    // getReferenceKey(Patient) of a transaction's `urn:uuid:` subject gives
    // the Patient's key (and, under privacy::none, its patient_key). Empty
    // outside a Bundle: then a urn: reference has no key.
    reference_resolver resolve_reference;
};

eval_rows evaluate(const view& plan, simdjson::dom::element resource, const eval_options& options = {});

// A Bundle's entries by fullUrl: fullUrl -> the resource's type and id.
// An entry without fullUrl, resource, resourceType or id is left out, except
// that in a transaction or batch Bundle a resource without id whose fullUrl
// is urn:uuid:X gets the id X (R4 Bundle.entry.fullUrl: the server has not
// named it yet), as the normalizer stores it. A fullUrl given twice keeps
// its first entry. Empty when `bundle` is not a Bundle.
using bundle_index = std::map<std::string, resolved_reference, std::less<>>;
bundle_index index_bundle(simdjson::dom::element bundle);

// A resolver reading `index`, which must outlive it.
reference_resolver resolver_of(const bundle_index& index);

}  // namespace headachemd::views
