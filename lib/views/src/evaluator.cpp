// Evaluates the FHIRPath subset over simdjson DOM elements, with the
// FHIRPath rules on empty collections: an operator with an empty operand
// yields empty, and `and`/`or`/`xor`/`implies` use three-valued logic
// (FHIRPath N1, §"Boolean logic").
#include <cctype>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "headachemd/views/fhirpath.hpp"

namespace headachemd::views {
namespace {

using simdjson::dom::element;

// Thrown inside the evaluator only; evaluate() turns it into eval_error.
struct failure {
    std::size_t offset;
    std::string message;
};

// A JSON scalar as a FHIRPath value; objects and arrays stay elements.
item from_json(element e) {
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
    out.push_back(from_json(e));
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

std::string type_name(const node& arg) {
    // ofType(FHIR.string) and ofType(string) name the same type.
    if (arg.kind == node_kind::member) {
        if (arg.children[0] && arg.children[0]->kind == node_kind::member && !arg.children[0]->children[0] &&
            (arg.children[0]->text == "FHIR" || arg.children[0]->text == "System")) {
            return arg.text;
        }
        if (!arg.children[0]) return arg.text;
    }
    throw failure{arg.offset, "ofType() needs a type name"};
}

// The key of a Reference.reference, in getResourceKey()'s form "Type/id".
// The key is opaque in SQL on FHIR v2 (§"getResourceKey"); "Type/id" keeps
// Patient/1 and Observation/1 apart. Relative ("Patient/1"), absolute
// ("https://ehr/fhir/Patient/1") and versioned (".../_history/2") literal
// references resolve; contained ("#x"), urn:uuid: and logical (identifier)
// references have no key here. Privacy (patient_key) comes with issue 16 item 4.
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

// Equality of two items (FHIRPath `=`), or nullopt when the types cannot
// be compared (which yields empty) .
std::optional<bool> items_equal(const item& a, const item& b) {
    if (is_number(a) && is_number(b)) return number_of(a) == number_of(b);
    if (a.index() != b.index()) {
        // A date literal against the string of a FHIR date/dateTime element.
        const auto* d = std::get_if<date_value>(&a);
        const auto* s = std::get_if<std::string>(&b);
        if (!d) {
            d = std::get_if<date_value>(&b);
            s = std::get_if<std::string>(&a);
        }
        if (d && s) return d->text == *s;
        return false;
    }
    if (const auto* s = std::get_if<std::string>(&a)) return *s == std::get<std::string>(b);
    if (const auto* x = std::get_if<bool>(&a)) return *x == std::get<bool>(b);
    if (const auto* d = std::get_if<date_value>(&a)) return d->text == std::get<date_value>(b).text;
    // Two JSON objects: equal when their minified text is (FHIRPath compares
    // complex types member by member; key order in FHIR JSON is fixed).
    return simdjson::minify(std::get<element>(a)) == simdjson::minify(std::get<element>(b));
}

std::string_view text_of(const item& i) {
    if (const auto* s = std::get_if<std::string>(&i)) return *s;
    if (const auto* d = std::get_if<date_value>(&i)) return d->text;
    return {};
}

// <, <=, >, >=: numbers with numbers, strings and dates lexically. Lexical
// order of ISO 8601 text is only right for equal precision; mixed precision
// is a TODO (views.md).
std::optional<int> items_order(const item& a, const item& b, std::size_t offset) {
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

class evaluator {
public:
    explicit evaluator(const constant_map& constants) : constants_(constants) {}

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
                return {item{date_value{n.text}}};
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
        collection l = eval(*n.children[0], focus);
        collection r = eval(*n.children[1], focus);
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
            return of_type(n, focus);
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
                if (!std::holds_alternative<std::string>(in[i]))
                    throw failure{n.offset, "join() needs strings"};
                out += std::get<std::string>(in[i]);
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
                auto key = reference_key(*ref);
                if (key && (want.empty() || key->substr(0, key->find('/')) == want))
                    out.push_back(item{*key});
            }
            return out;
        }
        // lowBoundary, highBoundary: not yet (views.md); refused so a view
        // never runs with a wrong answer.
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
    collection of_type(const node& n, const collection& focus) {
        std::string type = type_name(*n.children[1]);
        const node* target = n.children[0].get();
        if (target && target->kind == node_kind::member) {
            collection base = target->children[0] ? eval(*target->children[0], focus) : focus;
            std::string name = target->text;
            std::string choice = name + type;
            choice[name.size()] =
                static_cast<char>(std::toupper(static_cast<unsigned char>(choice[name.size()])));
            collection out;
            member(base, choice, out);
            if (!out.empty()) return out;
        }
        collection in = target ? eval(*target, focus) : focus;
        collection out;
        for (const auto& i : in) {
            if (is_object(i)) {
                // An object's type is not in the JSON (except resources).
                if (string_field(*as_element(i), "resourceType") == type) out.push_back(i);
                continue;
            }
            if (scalar_is(i, type)) out.push_back(i);
        }
        return out;
    }

    const constant_map& constants_;
};

}  // namespace

eval_result evaluate(const node& ast, const collection& focus, const constant_map& constants) {
    eval_result r;
    try {
        r.value = evaluator(constants).eval(ast, focus);
    } catch (const failure& f) {
        r.error = eval_error{f.offset, f.message};
    }
    return r;
}

}  // namespace headachemd::views
