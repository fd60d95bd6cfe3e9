// Evaluates the FHIRPath subset over simdjson DOM elements, with the
// FHIRPath rules on empty collections: an operator with an empty operand
// yields empty, and `and`/`or`/`xor`/`implies` use three-valued logic
// (FHIRPath N1, §"Boolean logic").
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "fhirpath_decimal.hpp"
#include "fhirpath_temporal.hpp"
#include "headachemd/views/fhirpath.hpp"

namespace headachemd::views {
namespace {

using simdjson::dom::element;

// Thrown inside the evaluator only; evaluate() turns it into eval_error.
struct failure {
    std::size_t offset;
    std::string message;
};

// The string member `key` of an object element, if it has one.
std::optional<std::string_view> string_field(element obj, std::string_view key) {
    element v;
    std::string_view s;
    if (obj[key].get(v) == simdjson::SUCCESS && v.get(s) == simdjson::SUCCESS) return s;
    return std::nullopt;
}

void append_json(element e, collection& out) {
    simdjson::dom::array arr;
    if (e.get(arr) == simdjson::SUCCESS) {
        // FHIR JSON repeats an element as an array; FHIRPath sees the items.
        for (element x : arr) append_json(x, out);
        return;
    }
    if (e.is_null()) return;
    out.push_back(item_of_json(e));
}

const element* as_element(const item& i) { return std::get_if<element>(&i); }

bool is_object(const item& i) {
    const element* e = as_element(i);
    return e != nullptr && e->is_object();
}

void member(const collection& in, std::string_view name, collection& out) {
    for (const auto& i : in) {
        if (!is_object(i)) continue;
        element obj = *as_element(i);
        // A resource type name at the start of a path (`Patient.name`)
        // selects the resource itself when it is of that type.
        if (string_field(obj, "resourceType") == name) {
            out.push_back(i);
            continue;
        }
        element v;
        if (obj[name].get(v) == simdjson::SUCCESS) append_json(v, out);
    }
}

// The values of a choice element `name`[x] (keys name + an upper-case type name).
void choice_values(const collection& in, std::string_view name, collection& out) {
    for (const auto& i : in) {
        if (!is_object(i)) continue;
        for (auto field : simdjson::dom::object(*as_element(i))) {
            if (field.key.size() > name.size() && field.key.starts_with(name) &&
                std::isupper(static_cast<unsigned char>(field.key[name.size()])) != 0) {
                append_json(field.value, out);
            }
        }
    }
}

// FHIR type names whose JSON form is each scalar kind, for ofType() on
// values that are not choice elements.
bool scalar_is(const item& i, std::string_view type) {
    if (std::holds_alternative<bool>(i)) return type == "boolean";
    if (std::holds_alternative<std::int64_t>(i)) {
        return type == "integer" || type == "decimal" || type == "positiveInt" || type == "unsignedInt" ||
               type == "integer64";
    }
    if (std::holds_alternative<double>(i)) return type == "decimal";
    if (std::holds_alternative<std::string>(i)) {
        return type == "string" || type == "code" || type == "id" || type == "uri" || type == "url" ||
               type == "canonical" || type == "oid" || type == "uuid" || type == "markdown" ||
               type == "base64Binary" || type == "date" || type == "dateTime" || type == "instant" ||
               type == "time";
    }
    return false;
}

// FHIRPath's System types, as the FHIR primitive each holds in FHIR JSON.
std::string fhir_type(const std::string& name) {
    static const std::map<std::string, std::string, std::less<>> system = {
        {"String", "string"}, {"Boolean", "boolean"},   {"Integer", "integer"}, {"Decimal", "decimal"},
        {"Date", "date"},     {"DateTime", "dateTime"}, {"Time", "time"}};
    auto it = system.find(name);
    return it == system.end() ? name : it->second;
}

std::string type_name(const node& arg) {
    // ofType(FHIR.string), ofType(string) and ofType(System.String) name the same type.
    if (arg.kind == node_kind::member) {
        if (arg.children[0] && arg.children[0]->kind == node_kind::member && !arg.children[0]->children[0] &&
            (arg.children[0]->text == "FHIR" || arg.children[0]->text == "System")) {
            return fhir_type(arg.text);
        }
        if (!arg.children[0]) return fhir_type(arg.text);
    }
    throw failure{arg.offset, "ofType() needs a type name"};
}

// The key of a Reference.reference, in getResourceKey()'s form "Type/id".
// The key is opaque in SQL on FHIR v2 (§"getResourceKey"); "Type/id" keeps
// Patient/1 and Observation/1 apart. Relative ("Patient/1"), absolute
// ("https://ehr/fhir/Patient/1") and versioned (".../_history/2") literal
// references resolve; contained ("#x") and logical (identifier) references
// have no key, nor has a urn:uuid: reference unless the caller resolves it
// through its Bundle (evaluator::key_of).
std::optional<std::string> reference_key(std::string_view ref) {
    if (auto h = ref.find("/_history/"); h != std::string_view::npos) ref = ref.substr(0, h);
    auto slash = ref.rfind('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == ref.size()) return std::nullopt;
    auto id = ref.substr(slash + 1);
    auto before = ref.substr(0, slash);
    auto type = before.substr(before.rfind('/') == std::string_view::npos ? 0 : before.rfind('/') + 1);
    // A FHIR resource type name starts with an upper-case letter.
    if (type.empty() || std::isupper(static_cast<unsigned char>(type[0])) == 0) return std::nullopt;
    return std::string(type) + "/" + std::string(id);
}

std::optional<bool> singleton_bool(const collection& c, std::size_t offset) {
    if (c.empty()) return std::nullopt;
    if (c.size() > 1)
        throw failure{offset, "expected a single value, got a collection of " + std::to_string(c.size())};
    if (const bool* b = std::get_if<bool>(&c[0])) return *b;
    // FHIRPath §"Singleton evaluation of collections": one item of another
    // type counts as true where a boolean is expected.
    return true;
}

collection boolean(std::optional<bool> b) {
    if (!b) return {};
    return {item{*b}};
}

bool is_number(const item& i) {
    return std::holds_alternative<std::int64_t>(i) || std::holds_alternative<double>(i);
}
double number_of(const item& i) {
    if (const auto* n = std::get_if<std::int64_t>(&i)) return static_cast<double>(*n);
    return std::get<double>(i);
}

std::optional<detail::temporal> temporal_of(const item& i) {
    if (const auto* d = std::get_if<date_value>(&i)) return detail::parse_temporal(d->text, d->kind);
    if (const auto* s = std::get_if<std::string>(&i)) return detail::parse_temporal(*s, temporal_kind::infer);
    return std::nullopt;
}

// When one side is a date/time value and the other a date/time or a string
// (a FHIR date element read from JSON is a string), both as temporals; an
// unparsable side is nullopt, and compares as empty: FHIRPath has no
// answer for a malformed date.
std::optional<std::pair<std::optional<detail::temporal>, std::optional<detail::temporal>>> temporal_pair(
    const item& a, const item& b) {
    bool da = std::holds_alternative<date_value>(a), db = std::holds_alternative<date_value>(b);
    bool sa = std::holds_alternative<std::string>(a), sb = std::holds_alternative<std::string>(b);
    if (!(da && (db || sb)) && !(db && sa)) return std::nullopt;
    return std::make_pair(temporal_of(a), temporal_of(b));
}

// Equality of two items (FHIRPath `=`), or nullopt when the types cannot
// be compared (which yields empty). Dates and times follow the precision
// rules (FHIRPath N1 §"Equals": @2012 = @2012-01 is empty).
std::optional<bool> items_equal(const item& a, const item& b) {
    if (is_number(a) && is_number(b)) return number_of(a) == number_of(b);
    if (auto t = temporal_pair(a, b)) {
        if (!t->first || !t->second) return std::nullopt;
        auto c = detail::compare(*t->first, *t->second);
        if (!c) return std::nullopt;
        return *c == 0;
    }
    if (a.index() != b.index()) return false;
    if (const auto* s = std::get_if<std::string>(&a)) return *s == std::get<std::string>(b);
    if (const auto* x = std::get_if<bool>(&a)) return *x == std::get<bool>(b);
    // Two JSON objects: equal when their minified text is (FHIRPath compares
    // complex types member by member; key order in FHIR JSON is fixed).
    return simdjson::minify(std::get<element>(a)) == simdjson::minify(std::get<element>(b));
}

std::string_view text_of(const item& i) {
    if (const auto* s = std::get_if<std::string>(&i)) return *s;
    if (const auto* d = std::get_if<date_value>(&i)) return d->text;
    return {};
}

// <, <=, >, >=: numbers with numbers, strings lexically, dates and times
// field by field with the precision rules (FHIRPath N1 §"Comparison":
// @2018-03 < @2018-03-01 is empty) and zones normalised to UTC.
std::optional<int> items_order(const item& a, const item& b, std::size_t offset) {
    if (auto t = temporal_pair(a, b)) {
        if (!t->first || !t->second) return std::nullopt;
        return detail::compare(*t->first, *t->second);
    }
    if (is_number(a) && is_number(b)) {
        double x = number_of(a), y = number_of(b);
        return x < y ? -1 : (x > y ? 1 : 0);
    }
    bool ta = std::holds_alternative<std::string>(a) || std::holds_alternative<date_value>(a);
    bool tb = std::holds_alternative<std::string>(b) || std::holds_alternative<date_value>(b);
    if (ta && tb) {
        int c = text_of(a).compare(text_of(b));
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    throw failure{offset, "cannot compare these values"};
}

const item& single(const collection& c, std::size_t offset) {
    if (c.size() != 1)
        throw failure{offset, "expected a single value, got a collection of " + std::to_string(c.size())};
    return c[0];
}

// The FHIR temporal type a type name denotes, for ofType()/as/is on the
// string a FHIR date element is in JSON. instant is a dateTime to the
// millisecond with a zone (FHIR R4 §2.24.0.1).
std::optional<temporal_kind> temporal_type(std::string_view type) {
    if (type == "date") return temporal_kind::date;
    if (type == "dateTime" || type == "instant") return temporal_kind::date_time;
    if (type == "time") return temporal_kind::time;
    return std::nullopt;
}

// Equivalence `~` of two items (FHIRPath N1 §"Equivalent"): strings ignore
// case and collapse whitespace, dates of different precision are simply not
// equivalent, and it is never empty.
std::string normalised(std::string_view s) {
    std::string out;
    bool space = false;
    for (char c : s) {
        if (std::isspace(static_cast<unsigned char>(c)) != 0) {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

bool items_equivalent(const item& a, const item& b) {
    if (std::holds_alternative<std::string>(a) && std::holds_alternative<std::string>(b))
        return normalised(std::get<std::string>(a)) == normalised(std::get<std::string>(b));
    return items_equal(a, b) == true;
}

bool collections_equivalent(const collection& l, const collection& r) {
    if (l.size() != r.size()) return false;
    std::vector<bool> used(r.size(), false);
    for (const auto& x : l) {
        bool found = false;
        for (std::size_t k = 0; k < r.size() && !found; ++k) {
            if (!used[k] && items_equivalent(x, r[k])) used[k] = found = true;
        }
        if (!found) return false;
    }
    return true;
}

class evaluator {
public:
    evaluator(const constant_map& constants, const source_text* source, const reference_resolver* references)
        : constants_(constants),
          source_(source),
          references_(references && *references ? references : nullptr) {}

    collection eval(const node& n, const collection& focus) {
        switch (n.kind) {
            case node_kind::string_literal:
                return {item{n.text}};
            case node_kind::integer_literal:
                return {item{n.integer}};
            case node_kind::decimal_literal:
                return {item{n.decimal}};
            case node_kind::boolean_literal:
                return {item{n.boolean}};
            case node_kind::date_literal:
                return {item{date_value{n.text, n.temporal}}};
            case node_kind::empty_literal:
                return {};
            case node_kind::this_ref:
                return focus;
            case node_kind::constant_ref: {
                auto it = constants_.find(n.text);
                if (it == constants_.end()) throw failure{n.offset, "unknown constant %" + n.text};
                return it->second;
            }
            case node_kind::member: {
                collection in = n.children[0] ? eval(*n.children[0], focus) : focus;
                collection out;
                member(in, n.text, out);
                return out;
            }
            case node_kind::indexer: {
                collection in = eval(*n.children[0], focus);
                collection idx = eval(*n.children[1], focus);
                if (idx.empty()) return {};
                const auto* k = std::get_if<std::int64_t>(&single(idx, n.children[1]->offset));
                if (!k) throw failure{n.children[1]->offset, "an index must be an integer"};
                if (*k < 0 || static_cast<std::size_t>(*k) >= in.size()) return {};
                return {in[static_cast<std::size_t>(*k)]};
            }
            case node_kind::unary_minus: {
                collection in = eval(*n.children[0], focus);
                if (in.empty()) return {};
                const item& v = single(in, n.offset);
                if (const auto* i = std::get_if<std::int64_t>(&v)) {
                    if (*i == std::numeric_limits<std::int64_t>::min())
                        throw failure{n.offset, "integer overflow"};
                    return {item{-*i}};
                }
                if (const auto* d = std::get_if<double>(&v)) return {item{-*d}};
                throw failure{n.offset, "unary minus needs a number"};
            }
            case node_kind::binary:
                return binary(n, focus);
            case node_kind::function:
                return function(n, focus);
        }
        throw failure{n.offset, "unknown node"};
    }

private:
    collection binary(const node& n, const collection& focus) {
        const std::string& op = n.text;
        if (op == "is" || op == "as")
            return type_test(op, n.children[0].get(), *n.children[1], n.offset, focus);
        collection l = eval(*n.children[0], focus);
        collection r = eval(*n.children[1], focus);
        if (op == "~" || op == "!~") return boolean(collections_equivalent(l, r) == (op == "~"));
        if (op == "in" || op == "contains") {
            // x in c / c contains x: empty x gives empty; x must be one item.
            const collection& one = op == "in" ? l : r;
            const collection& all = op == "in" ? r : l;
            if (one.empty()) return {};
            const item& x = single(one, (op == "in" ? n.children[0] : n.children[1])->offset);
            for (const auto& y : all) {
                if (items_equal(x, y) == true) return boolean(true);
            }
            return boolean(false);
        }
        if (op == "and" || op == "or" || op == "xor" || op == "implies") {
            auto a = singleton_bool(l, n.children[0]->offset);
            auto b = singleton_bool(r, n.children[1]->offset);
            if (op == "and") {
                if (a == false || b == false) return boolean(false);
                if (a && b) return boolean(true);
                return {};
            }
            if (op == "or") {
                if (a == true || b == true) return boolean(true);
                if (a && b) return boolean(false);
                return {};
            }
            if (op == "xor") {
                if (a && b) return boolean(*a != *b);
                return {};
            }
            // implies: false implies anything is true; anything implies true is true.
            if (a == false || b == true) return boolean(true);
            if (a == true && b == false) return boolean(false);
            return {};
        }
        if (op == "|") {
            collection out = l;
            for (const auto& x : r) {
                bool dup = false;
                for (const auto& y : out) {
                    if (items_equal(x, y) == true) dup = true;
                }
                if (!dup) out.push_back(x);
            }
            // FHIRPath union also removes duplicates within the left side.
            collection dedup;
            for (const auto& x : out) {
                bool dup = false;
                for (const auto& y : dedup) {
                    if (items_equal(x, y) == true) dup = true;
                }
                if (!dup) dedup.push_back(x);
            }
            return dedup;
        }
        if (op == "&") {
            // & treats an empty operand as the empty string (FHIRPath §"String concatenation").
            std::string out;
            if (!l.empty()) out += text_of(single(l, n.children[0]->offset));
            if (!r.empty()) out += text_of(single(r, n.children[1]->offset));
            return {item{out}};
        }
        if (l.empty() || r.empty()) return {};
        if (op == "=" || op == "!=") {
            if (l.size() != r.size()) return boolean(op == "!=");
            bool eq = true;
            for (std::size_t i = 0; i < l.size(); ++i) {
                auto e = items_equal(l[i], r[i]);
                if (!e) return {};
                eq = eq && *e;
            }
            return boolean(op == "=" ? eq : !eq);
        }
        const item& a = single(l, n.children[0]->offset);
        const item& b = single(r, n.children[1]->offset);
        if (op == "<" || op == "<=" || op == ">" || op == ">=") {
            auto c = items_order(a, b, n.offset);
            if (!c) return {};
            if (op == "<") return boolean(*c < 0);
            if (op == "<=") return boolean(*c <= 0);
            if (op == ">") return boolean(*c > 0);
            return boolean(*c >= 0);
        }
        return arithmetic(op, a, b, n.offset);
    }

    static collection arithmetic(const std::string& op, const item& a, const item& b, std::size_t offset) {
        if (op == "+" && std::holds_alternative<std::string>(a) && std::holds_alternative<std::string>(b)) {
            return {item{std::get<std::string>(a) + std::get<std::string>(b)}};
        }
        if (!is_number(a) || !is_number(b)) throw failure{offset, "'" + op + "' needs numbers"};
        const auto* ia = std::get_if<std::int64_t>(&a);
        const auto* ib = std::get_if<std::int64_t>(&b);
        if (op == "div" || op == "mod") {
            // Division by zero yields empty (FHIRPath §"div", §"mod").
            if (ia && ib) {
                if (*ib == 0) return {};
                if (*ia == std::numeric_limits<std::int64_t>::min() && *ib == -1) {
                    throw failure{offset, "integer overflow"};
                }
                return {item{op == "div" ? *ia / *ib : *ia % *ib}};
            }
            double x = number_of(a), y = number_of(b);
            if (y == 0) return {};
            return {item{op == "div" ? std::trunc(x / y) : std::fmod(x, y)}};
        }
        if (op == "/") {
            double y = number_of(b);
            if (y == 0) return {};
            return {item{number_of(a) / y}};
        }
        if (ia && ib) {
            // Signed overflow is undefined behaviour in C++; an expression
            // over patient data must fail, not wrap.
            std::int64_t r = 0;
            bool over = op == "+"   ? __builtin_add_overflow(*ia, *ib, &r)
                        : op == "-" ? __builtin_sub_overflow(*ia, *ib, &r)
                        : op == "*" ? __builtin_mul_overflow(*ia, *ib, &r)
                                    : false;
            if (over) throw failure{offset, "integer overflow"};
            if (op == "+" || op == "-" || op == "*") return {item{r}};
        }
        double x = number_of(a), y = number_of(b);
        if (op == "+") return {item{x + y}};
        if (op == "-") return {item{x - y}};
        if (op == "*") return {item{x * y}};
        throw failure{offset, "unknown operator " + op};
    }

    void arity(const node& n, std::size_t lo, std::size_t hi) {
        std::size_t args = n.children.size() - 1;
        if (args < lo || args > hi)
            throw failure{n.offset, n.text + "() takes a different number of arguments"};
    }

    collection function(const node& n, const collection& focus) {
        const std::string& f = n.text;
        if (f == "ofType") {
            arity(n, 1, 1);
            return of_type(n.children[0].get(), type_name(*n.children[1]), focus);
        }
        if (f == "is" || f == "as") {
            arity(n, 1, 1);
            return type_test(f, n.children[0].get(), *n.children[1], n.offset, focus);
        }
        if (f == "lowBoundary" || f == "highBoundary") {
            arity(n, 0, 1);
            return boundaries(n, focus, f == "highBoundary");
        }
        collection in = n.children[0] ? eval(*n.children[0], focus) : focus;
        if (f == "where") {
            arity(n, 1, 1);
            return where(in, *n.children[1]);
        }
        if (f == "exists") {
            arity(n, 0, 1);
            if (n.children.size() == 2) return boolean(!where(in, *n.children[1]).empty());
            return boolean(!in.empty());
        }
        if (f == "empty") {
            arity(n, 0, 0);
            return boolean(in.empty());
        }
        if (f == "first") {
            arity(n, 0, 0);
            if (in.empty()) return {};
            return {in.front()};
        }
        if (f == "not") {
            arity(n, 0, 0);
            auto b = singleton_bool(in, n.offset);
            if (!b) return {};
            return boolean(!*b);
        }
        if (f == "extension") {
            arity(n, 1, 1);
            collection url = eval(*n.children[1], focus);
            const auto* u = url.size() == 1 ? std::get_if<std::string>(&url[0]) : nullptr;
            if (!u) throw failure{n.children[1]->offset, "extension() needs one url string"};
            collection ext, out;
            member(in, "extension", ext);
            for (const auto& e : ext) {
                if (!is_object(e)) continue;
                if (string_field(*as_element(e), "url") == *u) out.push_back(e);
            }
            return out;
        }
        if (f == "join") {
            arity(n, 0, 1);
            std::string sep;
            if (n.children.size() == 2) {
                collection s = eval(*n.children[1], focus);
                if (!s.empty()) sep = std::string(text_of(single(s, n.children[1]->offset)));
            }
            // An empty input joins to the empty string, not to empty: the
            // official suite's fhirpath.json "string join" expects '' for
            // a patient without given names.
            std::string out;
            for (std::size_t i = 0; i < in.size(); ++i) {
                if (i) out += sep;
                if (!std::holds_alternative<std::string>(in[i]) && !std::holds_alternative<date_value>(in[i]))
                    throw failure{n.offset, "join() needs strings"};
                out += text_of(in[i]);
            }
            return {item{out}};
        }
        if (f == "getResourceKey") {
            arity(n, 0, 0);
            collection out;
            for (const auto& i : in) {
                if (!is_object(i)) continue;
                auto type = string_field(*as_element(i), "resourceType");
                auto id = string_field(*as_element(i), "id");
                if (type && id) out.push_back(item{std::string(*type) + "/" + std::string(*id)});
            }
            return out;
        }
        if (f == "getReferenceKey") {
            arity(n, 0, 1);
            std::string want = n.children.size() == 2 ? type_name(*n.children[1]) : std::string();
            collection out;
            for (const auto& i : in) {
                if (!is_object(i)) continue;
                auto ref = string_field(*as_element(i), "reference");
                if (!ref) continue;
                auto key = key_of(*ref);
                if (key && (want.empty() || key->substr(0, key->find('/')) == want))
                    out.push_back(item{*key});
            }
            return out;
        }
        throw failure{n.offset, "unsupported function " + f + "()"};
    }

    collection where(const collection& in, const node& criteria) {
        collection out;
        for (const auto& i : in) {
            collection one{i};
            auto b = singleton_bool(eval(criteria, one), criteria.offset);
            if (b == true) out.push_back(i);
        }
        return out;
    }

    // FHIR choice elements (value[x]) appear in JSON as value + TypeName
    // (FHIR R4 JSON §"Choice"), so `value.ofType(integer)` reads valueInteger.
    // A date, dateTime, instant or time comes back as a date_value of that
    // kind: its FHIR type decides its boundaries and comparisons. A string
    // that does not parse as that type stays a string, so a malformed value
    // still reaches the row instead of vanishing.
    collection of_type(const node* target, const std::string& type, const collection& focus) {
        collection out;
        bool found = false;
        if (target && target->kind == node_kind::member) {
            collection base = target->children[0] ? eval(*target->children[0], focus) : focus;
            std::string name = target->text;
            std::string choice = name + type;
            choice[name.size()] =
                static_cast<char>(std::toupper(static_cast<unsigned char>(choice[name.size()])));
            member(base, choice, out);
            found = !out.empty();
        }
        if (!found) {
            collection in = target ? eval(*target, focus) : focus;
            for (const auto& i : in) {
                if (is_object(i)) {
                    // An object's type is not in the JSON (except resources).
                    if (string_field(*as_element(i), "resourceType") == type) out.push_back(i);
                    continue;
                }
                if (!scalar_is(i, type)) continue;
                // Outside a choice element the JSON says only "string": a
                // text that is a valid date/time of another kind is not of
                // this type (a dateTime is not a date); text that is no
                // date at all is kept, as above.
                const auto* s = std::get_if<std::string>(&i);
                auto kind = temporal_type(type);
                if (s && kind && !detail::parse_temporal(*s, *kind) &&
                    detail::parse_temporal(*s, temporal_kind::infer))
                    continue;
                out.push_back(i);
            }
        }
        if (auto kind = temporal_type(type)) {
            for (auto& i : out) {
                const auto* s = std::get_if<std::string>(&i);
                if (s && detail::parse_temporal(*s, *kind)) i = date_value{*s, *kind};
            }
        }
        return out;
    }

    // `x is T` / `x.is(T)`: whether the one item is of type T; `x as T` /
    // `x.as(T)`: the item if so, else empty (FHIRPath N1 §"Types"). Both take
    // a single item; more is an error, as for any singleton operand.
    collection type_test(const std::string& op, const node* target, const node& type_node, std::size_t offset,
                         const collection& focus) {
        std::string type = type_name(type_node);
        collection in = target ? eval(*target, focus) : focus;
        if (in.empty() && target && target->kind == node_kind::member) {
            // `value is Quantity`: the choice element value[x] is in the
            // JSON as valueQuantity, valueInteger, ... (FHIR R4 JSON §"Choice").
            collection base = target->children[0] ? eval(*target->children[0], focus) : focus;
            choice_values(base, target->text, in);
        }
        if (in.empty()) return {};
        if (in.size() > 1)
            throw failure{offset, "'" + op + "' needs a single value, got a collection of " +
                                      std::to_string(in.size())};
        collection typed = of_type(target, type, focus);
        if (op == "is") return boolean(!typed.empty());
        return typed;
    }

    // lowBoundary()/highBoundary() (FHIRPath 3.0 STU; SQL on FHIR v2's
    // experimental fn_boundary.json). Decimals use their written digits,
    // dates and times their precision and FHIR type.
    collection boundaries(const node& n, const collection& focus, bool high) {
        std::optional<long long> digits;
        if (n.children.size() == 2) {
            collection d = eval(*n.children[1], focus);
            if (d.empty()) return {};
            const auto* k = std::get_if<std::int64_t>(&single(d, n.children[1]->offset));
            if (!k) throw failure{n.children[1]->offset, n.text + "() precision must be an integer"};
            digits = *k;
        }
        std::vector<std::optional<std::string>> texts;
        collection in = boundary_input(n.children[0].get(), focus, texts);
        temporal_kind named = date_named(n.children[0].get());
        collection out;
        for (std::size_t k = 0; k < in.size(); ++k) {
            const item& i = in[k];
            if (is_number(i)) {
                std::string text;
                if (texts[k]) {
                    text = *texts[k];
                } else if (const auto* v = std::get_if<std::int64_t>(&i)) {
                    text = std::to_string(*v);  // an integer's text is exact
                } else {
                    throw failure{n.offset, n.text +
                                                "() of a decimal needs its JSON text (its precision is its "
                                                "digits); evaluate with the source_text"};
                }
                auto r = detail::decimal_boundary(text, high, digits);
                if (!r.error.empty()) throw failure{n.offset, n.text + "(): " + r.error};
                if (!r.text) continue;
                double value = 0;
                auto [p, ec] = std::from_chars(r.text->data(), r.text->data() + r.text->size(), value);
                if (ec != std::errc{}) throw failure{n.offset, n.text + "(): result out of range"};
                out.push_back(item{value});
                continue;
            }
            std::optional<detail::temporal> t;
            if (const auto* d = std::get_if<date_value>(&i)) {
                t = detail::parse_temporal(d->text, d->kind);
            } else if (const auto* s = std::get_if<std::string>(&i)) {
                temporal_kind kind = named != temporal_kind::infer ? named : detail::infer_kind(*s);
                t = detail::parse_temporal(*s, kind);
                if (t && kind == temporal_kind::date && named == temporal_kind::infer) {
                    // "2010-10" is a FHIR date or a dateTime, and the two
                    // have different boundaries; the JSON does not say which.
                    throw failure{n.offset,
                                  n.text +
                                      "() cannot tell a date from a dateTime here; use ofType(date) or "
                                      "ofType(dateTime)"};
                }
            }
            // Anything else (not a date, or a malformed one) has no boundary: empty.
            if (!t) continue;
            if (auto b = detail::boundary(*t, high, digits)) out.push_back(item{*b});
        }
        return out;
    }

    // The elements FHIR R4 types as `date` whatever resource holds them:
    // birthDate (Patient, Practitioner, RelatedPerson, Person). A boundary
    // on one of them is a date's; other untyped dates need ofType().
    static temporal_kind date_named(const node* target) {
        if (target && target->kind == node_kind::member && target->text == "birthDate")
            return temporal_kind::date;
        return temporal_kind::infer;
    }

    // The boundary functions' input with, for each JSON number, its text.
    // A member step is read field by field so each number's key (its
    // identity in the DOM) is at hand; a literal keeps its own text.
    collection boundary_input(const node* target, const collection& focus,
                              std::vector<std::optional<std::string>>& texts) {
        collection out;
        auto literal = [](const node* x) {
            return x && (x->kind == node_kind::decimal_literal || x->kind == node_kind::integer_literal);
        };
        if (literal(target)) {
            out = eval(*target, focus);
            texts.assign(out.size(), target->text);
            return out;
        }
        if (target && target->kind == node_kind::unary_minus && literal(target->children[0].get())) {
            out = eval(*target, focus);
            texts.assign(out.size(), "-" + target->children[0]->text);
            return out;
        }
        if (target && target->kind == node_kind::function && target->children[0] &&
            (target->text == "first" || target->text == "where") && target->children.size() <= 2) {
            // `x.value.first().lowBoundary()`, `x.value.where(...)`: select
            // from the member's items with their texts still attached.
            std::vector<std::optional<std::string>> all;
            collection in = boundary_input(target->children[0].get(), focus, all);
            if (target->text == "first") {
                arity(*target, 0, 0);
                if (!in.empty()) {
                    out.push_back(in[0]);
                    texts.push_back(all[0]);
                }
                return out;
            }
            arity(*target, 1, 1);
            for (std::size_t k = 0; k < in.size(); ++k) {
                if (!where({in[k]}, *target->children[1]).empty()) {
                    out.push_back(in[k]);
                    texts.push_back(all[k]);
                }
            }
            return out;
        }
        if (!target || target->kind != node_kind::member) {
            out = target ? eval(*target, focus) : focus;
            texts.assign(out.size(), std::nullopt);
            return out;
        }
        collection base = target->children[0] ? eval(*target->children[0], focus) : focus;
        for (const auto& i : base) {
            if (!is_object(i)) continue;
            element obj = *as_element(i);
            if (string_field(obj, "resourceType") == target->text) {
                out.push_back(i);
                texts.emplace_back();
                continue;
            }
            for (auto field : simdjson::dom::object(obj)) {
                if (field.key != target->text) continue;
                simdjson::dom::array arr;
                if (field.value.get(arr) == simdjson::SUCCESS) {
                    std::size_t k = 0;
                    for (element x : arr) {
                        if (!x.is_null()) {
                            out.push_back(item_of_json(x));
                            texts.push_back(number_text(field.key.data(), k, x, target->offset));
                        }
                        ++k;
                    }
                } else if (!field.value.is_null()) {
                    out.push_back(item_of_json(field.value));
                    texts.push_back(number_text(field.key.data(), detail::number_texts::not_in_array,
                                                field.value, target->offset));
                }
            }
        }
        return out;
    }

    std::optional<std::string> number_text(const char* key, std::size_t index, element e,
                                           std::size_t offset) {
        if (!e.is_number() || !source_) return std::nullopt;
        const detail::number_texts* numbers = source_->numbers();
        if (!numbers) throw failure{offset, "the source_text given is not the JSON of the resource"};
        auto t = numbers->find(key, index);
        if (!t) return std::nullopt;
        return std::string(*t);
    }

    // getReferenceKey()'s key of one reference. Inside a Bundle (R4 Bundle
    // §"Resolving references in Bundles") a reference equal to another
    // entry's fullUrl names that entry's resource, whatever its URL looks
    // like; this is how a transaction's urn:uuid references work. Failing
    // that, a urn: names nothing we can know, so no key; any other
    // reference is read as [base/]Type/id.
    std::optional<std::string> key_of(std::string_view ref) const {
        if (references_) {
            if (auto r = (*references_)(ref)) {
                if (r->type.empty() || r->id.empty()) return std::nullopt;
                return r->type + "/" + r->id;
            }
        }
        if (ref.starts_with("urn:")) return std::nullopt;
        return reference_key(ref);
    }

    const constant_map& constants_;
    const source_text* source_;
    const reference_resolver* references_;
};

}  // namespace

item item_of_json(element e) {
    std::string_view s;
    std::int64_t i = 0;
    std::uint64_t u = 0;
    double d = 0;
    bool b = false;
    if (e.get(s) == simdjson::SUCCESS) return std::string(s);
    if (e.get(i) == simdjson::SUCCESS) return i;
    if (e.get(u) == simdjson::SUCCESS) return static_cast<double>(u);
    if (e.get(d) == simdjson::SUCCESS) return d;
    if (e.get(b) == simdjson::SUCCESS) return b;
    return e;
}

eval_result evaluate(const node& ast, const collection& focus, const constant_map& constants,
                     const source_text* source, const reference_resolver* references) {
    eval_result r;
    try {
        r.value = evaluator(constants, source, references).eval(ast, focus);
    } catch (const failure& f) {
        r.error = eval_error{f.offset, f.message};
    }
    return r;
}

}  // namespace headachemd::views
