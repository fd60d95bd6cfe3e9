// The privacy check of compile() (issue 16 item 4; docs/admin/security.md
// "Privacy"): a definition is walked, expression by expression, over the
// parsed FHIRPath, tracking which elements each expression can reach from
// the resource root (through forEach, repeat, where, ofType, indexers,
// unions, %resource). Anything that could reach a patient's identity is
// refused at compile time, with the JSON path and the offset of the node.
//
// Why a walk over the AST and not a text match: `name` can be reached as
// `%resource.name`, `Patient.name`, `where(name.exists())`, a forEach over
// `name` then `$this`, `contained.ofType(Patient)`, `name[0]`, and a `where`
// that tests `name.family = 'Smith'` leaks as much as a column does.
//
// Identity resources (Patient, RelatedPerson, Person: each describes a
// patient or someone whose identity leads to the patient, HIPAA Safe Harbor
// §164.514(b)(2) "of the individual or of relatives ... or household
// members") get an ALLOW-list: only the elements listed below, by full path.
// Every other resource gets a DENY-list of the places a patient's identity
// is written (contained resources, narrative, references, free-text notes,
// identifiers, human names, addresses, telecoms). Functions the walk does not
// know are refused outright, so a FHIRPath function added later
// (descendants(), children(), repeat(), select()) is refused until this file
// says what it can reach.
#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "view_plan.hpp"

namespace headachemd::views::detail {
namespace {

using positions = std::set<std::string, std::less<>>;
// A value the expression computed (a literal, a comparison, join()'s text,
// a key): not a JSON node, so navigating from it reaches nothing.
constexpr std::string_view computed = "#";
// The resource itself.
constexpr std::string_view root = "";

// The allow-lists, as paths from the resource root. `deceased` is listed
// because ofType(boolean) on it is tried as `deceased` too; no FHIR JSON
// has that key, so it reaches nothing.
constexpr std::array patient_allowed{"gender", "active", "deceased", "deceasedBoolean"};
constexpr std::array related_person_allowed{
    "gender",
    "active",
    "patient",  // only as its getReferenceKey(): .reference is not listed
    "relationship",
    "relationship.coding",
    "relationship.coding.system",
    "relationship.coding.code",
    "relationship.coding.display",
    "relationship.text"};
constexpr std::array person_allowed{"gender", "active"};

// US Core demographic extensions on Patient (US Core 6.1 Patient profile):
// race, ethnicity and birth sex are not among the 18 identifiers of HIPAA
// Safe Harbor (45 CFR 164.514(b)(2)), so a view may read them. Every other
// extension stays refused: patient-mothersMaidenName names a relative,
// patient-birthPlace is an address, geolocation is a location, and an
// extension we do not know can hold anything. An extension is admitted only
// by its url, written as extension('<url>') or extension.where(url = '<url>').
constexpr std::array patient_allowed_extensions{
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"};
// Inside an admitted extension: its sub-extensions (ombCategory, detailed,
// text) and their values, which are codes, Codings and the race/ethnicity
// text. A value of any other type (valueHumanName, valueAddress, ...) is refused.
constexpr std::array allowed_extension_parts{"extension",   "url",    "value", "valueCode", "valueCoding",
                                             "valueString", "system", "code",  "display"};
// A position inside an admitted extension is "extension(<url>)" followed by
// the parts reached below it.
constexpr std::string_view extension_marker = "extension(";

// Element names refused on every resource type: they hold (or, for
// contained/resource, can hold a whole) patient identity. `identifier` is
// refused everywhere because a Reference.identifier is often the MRN.
// `note` is clinicians' free text, which names people.
// Attachments (attachment, presentedForm, data) embed whole documents;
// Coverage.subscriberId is a health plan member number (Safe Harbor (b)(2)(i)(I)).
constexpr std::array denied_everywhere{"contained",  "resource",      "identifier", "name",        "address",
                                       "telecom",    "photo",         "contact",    "birthDate",   "note",
                                       "attachment", "presentedForm", "data",       "subscriberId"};
// Coding-typed elements whose `display` is a code's text; every other
// `display` is taken to be Reference.display, which is often the patient's name.
constexpr std::array coding_parents{"coding", "valueCoding", "class"};

// Choice elements ([x]) of the data types that identify a person:
// `extension.value.ofType(HumanName)` reads valueHumanName.
constexpr std::array denied_type_suffixes{"HumanName", "Address", "ContactPoint", "Identifier"};

// The binary operators the parser makes (FHIRPath §"Operations").
constexpr std::array value_operators{"|", "and", "or", "xor", "implies", "=", "!=",  "<",   "<=",
                                     ">", ">=",  "+",  "-",   "*",       "/", "div", "mod", "&"};

template <std::size_t N>
bool listed(const std::array<const char*, N>& list, std::string_view s) {
    return std::any_of(list.begin(), list.end(), [&](const char* x) { return s == std::string_view(x); });
}

struct refusal {
    view_error error;
};

class walker {
public:
    walker(const std::string& resource, privacy rule) : resource_(resource), rule_(rule) {
        identity_ = resource == "Patient" || resource == "RelatedPerson" || resource == "Person";
    }

    // An expression in `json_path`, seen from `focus`. `key_allowed`: the
    // expression is a whole column path, where a key function may be the
    // outermost node. Returns what it can reach.
    positions expression(const node& n, const positions& focus, const std::string& json_path,
                         bool key_allowed) {
        path_ = &json_path;
        if (key_allowed && is_key_function(n)) {
            if (n.children[0]) walk(*n.children[0], focus);
            return {std::string(computed)};
        }
        return walk(n, focus);
    }

    [[noreturn]] void refuse_output(const node& n, const std::string& json_path) {
        path_ = &json_path;
        refuse(n, "a column may not output the whole resource");
    }

private:
    static bool is_key_function(const node& n) {
        return n.kind == node_kind::function && (n.text == "getResourceKey" || n.text == "getReferenceKey");
    }

    [[noreturn]] void refuse(const node& n, const std::string& why) const {
        const char* level = rule_ == privacy::none ? "none" : "minimal";
        throw refusal{
            view_error{*path_, n.offset, why + " (refused under [privacy] identifiers = \"" + level + "\")"}};
    }

    positions walk(const node& n, const positions& focus) {
        switch (n.kind) {
            case node_kind::this_ref:
                return focus;
            case node_kind::constant_ref:
                if (n.text == "resource" || n.text == "rootResource") return {std::string(root)};
                return {std::string(computed)};
            case node_kind::member:
                return member(n, n.children[0] ? walk(*n.children[0], focus) : focus, n.text);
            case node_kind::indexer:
                walk(*n.children[1], focus);
                return walk(*n.children[0], focus);
            case node_kind::unary_minus:
                walk(*n.children[0], focus);
                return {std::string(computed)};
            case node_kind::binary: {
                // Only operators whose result is a computed value (or, for
                // `|`, its operands). A type operator added later (`as`)
                // passes an element through and must be taught here first.
                if (!listed(value_operators, n.text))
                    refuse(n, "operator '" + n.text + "' is not known to the privacy check");
                auto l = walk(*n.children[0], focus);
                auto r = walk(*n.children[1], focus);
                if (n.text != "|") return {std::string(computed)};
                l.insert(r.begin(), r.end());
                return l;
            }
            case node_kind::function:
                return function(n, focus);
            case node_kind::string_literal:
            case node_kind::integer_literal:
            case node_kind::decimal_literal:
            case node_kind::boolean_literal:
            case node_kind::date_literal:
            case node_kind::empty_literal:
                return {std::string(computed)};
        }
        refuse(n, "an expression the privacy check does not know");
    }

    positions function(const node& n, const positions& focus) {
        const std::string& f = n.text;
        if (f == "ofType") {
            // value.ofType(T) reads the choice element valueT, and falls
            // back to `value` itself: both are checked.
            const node* target = n.children[0].get();
            if (target && target->kind == node_kind::member) {
                positions base = target->children[0] ? walk(*target->children[0], focus) : focus;
                positions out = member(*target, base, target->text);
                const node& type = *n.children[1];
                std::string choice = target->text + type.text;
                choice[target->text.size()] =
                    static_cast<char>(std::toupper(static_cast<unsigned char>(choice[target->text.size()])));
                auto more = member(type, base, choice);
                out.insert(more.begin(), more.end());
                return out;
            }
            return target ? walk(*target, focus) : focus;
        }
        if (f == "where" && identity_) {
            if (auto admitted = extension_by_url_filter(n, focus)) return *admitted;
        }
        positions in = n.children[0] ? walk(*n.children[0], focus) : focus;
        if (f == "where" || f == "exists") {
            // The criteria see each item of the input, and what they test
            // leaks even though it is not output.
            if (n.children.size() == 2) walk(*n.children[1], in);
            return f == "where" ? in : positions{std::string(computed)};
        }
        if (f == "first") return in;
        if (f == "empty" || f == "not") return {std::string(computed)};
        if (f == "join") {
            if (n.children.size() == 2) walk(*n.children[1], focus);
            return {std::string(computed)};
        }
        if (f == "extension") {
            walk(*n.children[1], focus);
            if (resource_ == "Patient" && n.children[1]->kind == node_kind::string_literal)
                return patient_extension(n, in, n.children[1]->text);
            return member(n, in, "extension");
        }
        if (f == "getResourceKey" || f == "getReferenceKey") {
            // Under none a key gives the FHIR id unless evaluate() maps it,
            // and it maps only a whole column's values: a key compared in
            // a where or fed to forEach would test or leak the raw id.
            if (rule_ == privacy::none)
                refuse(n, f + "() may only be a whole column path, where it gives the patient_key");
            return {std::string(computed)};
        }
        refuse(n, "function " + f + "() is not known to the privacy check, so what it reaches is unknown");
    }

    // Patient.extension('<url>') from the root: an admitted US Core
    // extension gives its marker; from inside one, a sub-extension
    // ('ombCategory') is one of its parts; anything else is refused as
    // member() refuses `extension`.
    positions patient_extension(const node& n, const positions& in, const std::string& url) {
        positions out;
        for (const auto& p : in) {
            if (p == computed) continue;
            if (p == root && listed(patient_allowed_extensions, url)) {
                out.insert(std::string(extension_marker) + url + ")");
                continue;
            }
            auto more = member(n, positions{p}, "extension");
            out.insert(more.begin(), more.end());
        }
        return out;
    }

    // `extension.where(url = '<url>')` on a Patient, with <url> admitted:
    // the filter is what makes the extension safe, so it is recognised
    // before `extension` alone (refused) is walked. nullopt: not this shape.
    std::optional<positions> extension_by_url_filter(const node& n, const positions& focus) {
        if (resource_ != "Patient" || n.children.size() != 2 || !n.children[0]) return std::nullopt;
        const node& target = *n.children[0];
        const node& criteria = *n.children[1];
        if (target.kind != node_kind::member || target.text != "extension") return std::nullopt;
        if (criteria.kind != node_kind::binary || criteria.text != "=") return std::nullopt;
        const node& lhs = *criteria.children[0];
        const node& rhs = *criteria.children[1];
        if (lhs.kind != node_kind::member || lhs.text != "url" || lhs.children[0]) return std::nullopt;
        if (rhs.kind != node_kind::string_literal) return std::nullopt;
        positions base = target.children[0] ? walk(*target.children[0], focus) : focus;
        return patient_extension(target, base, rhs.text);
    }

    positions member(const node& n, const positions& in, const std::string& raw) {
        // `_birthDate` holds the extensions of birthDate (FHIR JSON
        // "Primitive types"): it is governed by the same rule.
        std::string name = raw.starts_with('_') ? raw.substr(1) : raw;
        positions out;
        for (const auto& p : in) {
            if (p == computed) continue;  // not a JSON node: reaches nothing
            if (!name.empty() && std::isupper(static_cast<unsigned char>(name[0])) != 0) {
                // `Patient.gender`: the resource itself when it is of that
                // type. Any other type name can only reach a contained or
                // bundled resource, which can be a Patient.
                if (p == root && name == resource_) {
                    out.insert(std::string(root));
                    continue;
                }
                refuse(n, "'" + raw + "' can reach a resource inside the resource");
            }
            out.insert(identity_ ? allowed_child(n, p, name, raw) : denied_child(n, p, name, raw));
        }
        return out;
    }

    std::string allowed_child(const node& n, const std::string& parent, const std::string& name,
                              const std::string& raw) const {
        std::string path = parent.empty() ? name : parent + "." + name;
        bool ok = false;
        // A delimited identifier (`extension(...)` in backticks) could spell
        // the marker: only patient_extension() makes one.
        const bool spells_marker = name.find('(') != std::string::npos;
        if (resource_ == "Patient")
            ok = listed(patient_allowed, path) || (!spells_marker && in_admitted_extension(path));
        if (resource_ == "RelatedPerson") ok = listed(related_person_allowed, path);
        if (resource_ == "Person") ok = listed(person_allowed, path);
        // minimal keeps the FHIR ids (config.hpp identifier_policy).
        if (rule_ == privacy::minimal && (path == "id" || path == "patient.reference")) ok = true;
        if (!ok) {
            refuse(n, "'" + (parent.empty() ? raw : parent + "." + raw) + "' of a " + resource_ +
                          " is not on the list of elements that do not identify a patient");
        }
        return path;
    }

    // A path below an admitted extension's marker whose every part is
    // allowed_extension_parts (the url inside the marker has dots of its own).
    static bool in_admitted_extension(const std::string& path) {
        if (!path.starts_with(extension_marker)) return false;
        auto close = path.find(')');
        if (close == std::string::npos) return false;
        std::string_view rest = std::string_view(path).substr(close + 1);
        while (!rest.empty()) {
            if (rest[0] != '.') return false;
            rest.remove_prefix(1);
            auto dot = rest.find('.');
            if (!listed(allowed_extension_parts, rest.substr(0, dot))) return false;
            rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot);
        }
        return true;
    }

    std::string denied_child(const node& n, const std::string& parent, const std::string& name,
                             const std::string& raw) const {
        if (listed(denied_everywhere, name) ||
            std::any_of(denied_type_suffixes.begin(), denied_type_suffixes.end(),
                        [&](const char* t) { return name.ends_with(t); }))
            refuse(n, "'" + raw + "' can identify a patient");
        // Narrative (DomainResource.text, Composition.section.text) is
        // generated from the resource and names the patient.
        if (name == "text" && (parent == root || parent == "section"))
            refuse(n, "'" + raw + "' is the narrative, which names the patient");
        if (name == "display" && !listed(coding_parents, parent))
            refuse(n, "'" + raw + "' of a reference is often the patient's name");
        if (rule_ == privacy::none && name == "reference")
            refuse(n, "'" + raw + "' holds the FHIR patient id; getReferenceKey() gives the patient_key");
        return name;
    }

    const std::string& resource_;
    privacy rule_;
    bool identity_ = false;
    const std::string* path_ = nullptr;
};

// A select's columns and nested selects see the foci of its iteration.
void check_select(walker& w, select_plan& s, const positions& focus, privacy rule) {
    positions here = focus;
    switch (s.kind) {
        case iteration::none:
            break;
        case iteration::for_each:
        case iteration::for_each_or_null:
            here = w.expression(*s.iterate.ast, focus, s.iterate.json_path, false);
            break;
        case iteration::repeat: {
            // The foci are everything the paths reach, applied again and
            // again: iterate to a fixpoint (the set of positions is finite,
            // bounded by the names in the definition).
            positions reached;
            positions frontier = focus;
            while (!frontier.empty()) {
                positions next;
                for (const auto& e : s.repeat) {
                    for (const auto& p : w.expression(*e.ast, frontier, e.json_path, false)) {
                        if (reached.insert(p).second) next.insert(p);
                    }
                }
                frontier = std::move(next);
            }
            here = std::move(reached);
            break;
        }
    }
    for (auto& c : s.columns) {
        auto out = w.expression(*c.path.ast, here, c.path.json_path, rule == privacy::none);
        // `$this` or `%resource` as a column prints the whole resource,
        // names and all, without naming a single element.
        if (out.contains(root)) w.refuse_output(*c.path.ast, c.path.json_path);
        // Any other complex element may hold an identity too (a Reference
        // holds display and reference): evaluate() refuses a JSON object in
        // such a column, since the walk does not know the element's type.
        c.primitives_only = true;
        c.patient_key = rule == privacy::none && c.path.ast->kind == node_kind::function &&
                        (c.path.ast->text == "getResourceKey" || c.path.ast->text == "getReferenceKey");
    }
    for (auto& sub : s.selects) check_select(w, sub, here, rule);
    for (auto& sub : s.union_all) check_select(w, sub, here, rule);
}

}  // namespace

std::optional<view_error> check_privacy(
    const std::string& resource, const std::vector<std::pair<std::string, std::unique_ptr<node>>>& where,
    select_plan& root_plan, privacy rule) {
    if (rule == privacy::off) return std::nullopt;
    // A Bundle or Parameters wraps other resources, Patients included, and
    // its fullUrl and request.url name them by FHIR id.
    if (resource == "Bundle" || resource == "Parameters") {
        return view_error{"resource", std::nullopt,
                          "a view over " + resource +
                              " reaches the resources inside it; refused under a "
                              "[privacy] identifiers rule"};
    }
    try {
        walker w(resource, rule);
        const positions start{std::string(root)};
        for (const auto& [path, ast] : where) w.expression(*ast, start, path, false);
        check_select(w, root_plan, start, rule);
    } catch (const refusal& r) {
        return r.error;
    }
    return std::nullopt;
}

}  // namespace headachemd::views::detail
