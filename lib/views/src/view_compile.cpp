// compile(): checks a ViewDefinition against the SQL on FHIR v2 rules and
// parses every FHIRPath expression once. The first fault found is returned
// with its JSON path, so an analyst can find it in the file.
#include <algorithm>
#include <array>
#include <cctype>
#include <set>
#include <string>
#include <utility>

#include "view_plan.hpp"

namespace headachemd::views {

view::view() = default;
view::~view() = default;
view::view(view&&) noexcept = default;
view& view::operator=(view&&) noexcept = default;

namespace {

using detail::column_plan;
using detail::expression;
using detail::iteration;
using detail::select_plan;
using simdjson::dom::element;

// Thrown inside the compiler only; compile() returns it as compile_error.
struct refusal {
    view_error error;
};

[[noreturn]] void refuse(std::string path, std::string message) {
    throw refusal{view_error{std::move(path), std::nullopt, std::move(message)}};
}

std::string at(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
}
std::string at(const std::string& path, std::size_t index) {
    return path + "[" + std::to_string(index) + "]";
}

// ViewDefinition invariant "sql-name": names (the view's, its columns' and
// its constants') are ^[A-Za-z][A-Za-z0-9_]*$, so they are usable as SQL
// identifiers in every database without quoting.
bool sql_name(std::string_view s) {
    if (s.empty() || std::isalpha(static_cast<unsigned char>(s[0])) == 0) return false;
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; });
}

// The members each part of a definition may have (the ViewDefinition
// StructureDefinition). A misspelt member ("colum") would otherwise be
// silently ignored and give a different table than the analyst meant.
constexpr std::array select_members{"id",      "extension", "modifierExtension", "column",
                                    "select",  "forEach",   "forEachOrNull",     "repeat",
                                    "unionAll"};
constexpr std::array column_members{"id",   "extension",   "modifierExtension", "name", "path",
                                    "type", "description", "collection",        "tag"};
constexpr std::array where_members{"id", "extension", "modifierExtension", "path", "description"};

template <std::size_t N>
void only_members(element obj, const std::array<const char*, N>& allowed, const std::string& path) {
    for (auto field : simdjson::dom::object(obj)) {
        bool known = std::any_of(allowed.begin(), allowed.end(),
                                 [&](const char* a) { return field.key == std::string_view(a); });
        if (!known) refuse(at(path, field.key), "unknown member '" + std::string(field.key) + "'");
    }
}

simdjson::dom::object object_at(element e, const std::string& path) {
    simdjson::dom::object o;
    if (e.get(o) != simdjson::SUCCESS) refuse(path, "must be an object");
    return o;
}

// An optional member that must be a non-empty array when present (FHIR JSON
// has no empty arrays).
std::optional<simdjson::dom::array> array_member(simdjson::dom::object o, std::string_view key,
                                                 const std::string& path) {
    element e;
    if (o[key].get(e) != simdjson::SUCCESS) return std::nullopt;
    simdjson::dom::array a;
    if (e.get(a) != simdjson::SUCCESS) refuse(at(path, key), "must be an array");
    if (a.size() == 0) refuse(at(path, key), "must not be empty");
    return a;
}

std::optional<std::string> string_member(simdjson::dom::object o, std::string_view key,
                                         const std::string& path) {
    element e;
    if (o[key].get(e) != simdjson::SUCCESS) return std::nullopt;
    std::string_view s;
    if (e.get(s) != simdjson::SUCCESS) refuse(at(path, key), "must be a string");
    return std::string(s);
}

// The FHIR primitive types a constant's value[x] may have
// (ViewDefinition.constant.value[x]), and how the JSON carries each.
constexpr std::array constant_types{"Base64Binary", "Boolean", "Canonical", "Code",        "Date",
                                    "DateTime",     "Decimal", "Id",        "Instant",     "Integer",
                                    "Integer64",    "Oid",     "String",    "PositiveInt", "Time",
                                    "UnsignedInt",  "Uri",     "Url",       "Uuid"};

// A column's declared type (ViewDefinition.select.column.type): a FHIR
// primitive type, whose SQL type a table can be given, or a complex type
// name (upper-case first). A misspelt primitive ("strng", "int") is refused
// rather than turned into an untyped column.
bool fhir_type(std::string_view t) {
    constexpr std::array primitives{"base64Binary", "boolean",     "canonical", "code",        "date",
                                    "dateTime",     "decimal",     "id",        "instant",     "integer",
                                    "integer64",    "markdown",    "oid",       "positiveInt", "string",
                                    "time",         "unsignedInt", "uri",       "url",         "uuid"};
    if (t.empty()) return false;
    if (std::any_of(primitives.begin(), primitives.end(),
                    [&](const char* p) { return t == std::string_view(p); }))
        return true;
    return std::isupper(static_cast<unsigned char>(t[0])) != 0 && std::all_of(t.begin(), t.end(), [](char c) {
               return std::isalnum(static_cast<unsigned char>(c)) != 0;
           });
}

// Variables the engine defines itself (SQL on FHIR v2 "%resource",
// "%rootResource", "%rowIndex"); a constant may not shadow them.
constexpr std::array reserved_variables{"resource", "rootResource", "rowIndex"};

class compiler {
public:
    view run(std::string_view text) {
        simdjson::dom::parser parser;
        element root;
        if (auto err = parser.parse(simdjson::padded_string(text)).get(root); err != simdjson::SUCCESS) {
            refuse("", std::string("not JSON: ") + simdjson::error_message(err));
        }
        auto top = object_at(root, "");
        view v;
        header(top, v);
        constants(top, v);
        where(top, v);
        auto selects = array_member(top, "select", "");
        if (!selects) refuse("select", "a view needs at least one select");
        auto plan = std::make_unique<select_plan>();
        std::vector<std::pair<column_info, std::string>> cols;
        std::size_t i = 0;
        for (element s : *selects) {
            plan->selects.push_back(select(s, at("select", i++), cols));
        }
        for (const auto& sp : plan->selects) plan->width += sp.width;
        std::set<std::string, std::less<>> seen;
        for (const auto& [info, path] : cols) {
            // Column names are unique within a view (ViewDefinition
            // "column.name"): they become the table's columns.
            if (!seen.insert(info.name).second) refuse(path, "column name '" + info.name + "' is used twice");
            view_access::columns(v).push_back(info);
        }
        view_access::root(v) = std::move(plan);
        return v;
    }

private:
    void header(simdjson::dom::object top, view& v) {
        auto resource = string_member(top, "resource", "");
        if (!resource) refuse("resource", "a view names the resource type it reads");
        // A FHIR resource type name: an upper-case letter, then letters.
        bool ok = !resource->empty() && std::isupper(static_cast<unsigned char>((*resource)[0])) != 0 &&
                  std::all_of(resource->begin(), resource->end(),
                              [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; });
        if (!ok) refuse("resource", "'" + *resource + "' is not a FHIR resource type name");
        view_access::resource(v) = *resource;
        // status is 1..1 in the specification, but the official suite's
        // shareable cases omit it, so only a wrong value is refused.
        if (auto status = string_member(top, "status", "")) {
            // PublicationStatus (http://hl7.org/fhir/publication-status).
            if (*status != "draft" && *status != "active" && *status != "retired" && *status != "unknown")
                refuse("status", "'" + *status + "' is not one of draft, active, retired, unknown");
        }
        if (auto name = string_member(top, "name", "")) {
            if (!sql_name(*name)) refuse("name", "'" + *name + "' is not a name of letters, digits and _");
            view_access::name(v) = *name;
        }
    }

    void constants(simdjson::dom::object top, view& v) {
        auto list = array_member(top, "constant", "");
        if (!list) return;
        std::size_t i = 0;
        for (element c : *list) {
            std::string path = at("constant", i++);
            auto obj = object_at(c, path);
            auto name = string_member(obj, "name", path);
            if (!name) refuse(at(path, "name"), "a constant needs a name");
            if (!sql_name(*name))
                refuse(at(path, "name"), "'" + *name + "' is not a name of letters, digits and _");
            for (const char* r : reserved_variables) {
                if (*name == r) refuse(at(path, "name"), "%" + *name + " is defined by the engine");
            }
            std::optional<item> value;
            for (auto field : obj) {
                if (field.key == "name" || field.key == "id" || field.key == "extension") continue;
                std::string key(field.key);
                std::string_view type = field.key.substr(field.key.starts_with("value") ? 5 : 0);
                bool known = field.key.starts_with("value") &&
                             std::any_of(constant_types.begin(), constant_types.end(),
                                         [&](const char* t) { return type == std::string_view(t); });
                if (!known)
                    refuse(at(path, key), "unknown member '" + key + "' (value[x] of a primitive type)");
                if (value) refuse(at(path, key), "a constant has exactly one value[x]");
                value = constant_value(field.value, at(path, key));
            }
            if (!value) refuse(path, "constant '" + *name + "' has no value[x]");
            if (!declared_.insert(*name).second)
                refuse(at(path, "name"), "constant '" + *name + "' is defined twice");
            view_access::constants(v)[*name] = collection{*value};
        }
    }

    static item constant_value(element e, const std::string& path) {
        // The same conversion the FHIRPath layer applies to resource JSON,
        // so `%x = field` compares like with like.
        item v = item_of_json(e);
        if (std::holds_alternative<element>(v))
            refuse(path, "a constant's value must be a string, number or boolean");
        return v;
    }

    void where(simdjson::dom::object top, view& v) {
        auto list = array_member(top, "where", "");
        if (!list) return;
        std::size_t i = 0;
        for (element w : *list) {
            std::string path = at("where", i++);
            auto obj = object_at(w, path);
            only_members(w, where_members, path);
            auto expr = string_member(obj, "path", path);
            if (!expr) refuse(at(path, "path"), "a where needs a path");
            auto e = parse_expression(*expr, at(path, "path"));
            view_access::where(v).emplace_back(std::move(e.json_path), std::move(e.ast));
        }
    }

    expression parse_expression(const std::string& text, const std::string& path) {
        auto p = parse(text);
        if (p.error) throw refusal{view_error{path, p.error->offset, p.error->message}};
        check_constants(*p.ast, path);
        return expression{path, std::move(p.ast)};
    }

    // An undefined %name is refused here, before any resource is read
    // (the suite's constant.json "accessing an undefined constant").
    void check_constants(const node& n, const std::string& path) {
        if (n.kind == node_kind::constant_ref && !declared_.contains(n.text)) {
            bool reserved = std::any_of(reserved_variables.begin(), reserved_variables.end(),
                                        [&](const char* r) { return n.text == r; });
            if (!reserved) throw refusal{view_error{path, n.offset, "undefined constant %" + n.text}};
        }
        for (const auto& c : n.children) {
            if (c) check_constants(*c, path);
        }
    }

    select_plan select(element s, const std::string& path,
                       std::vector<std::pair<column_info, std::string>>& cols) {
        auto obj = object_at(s, path);
        only_members(s, select_members, path);
        // The compiler and the evaluator recurse once per nested select;
        // a bound keeps a hostile definition from exhausting the stack.
        if (++depth_ > max_select_depth)
            refuse(path, "selects nest deeper than " + std::to_string(max_select_depth) + " levels");
        select_plan plan;
        iteration_of(obj, path, plan);
        std::size_t before = cols.size();
        if (auto list = array_member(obj, "column", path)) {
            std::size_t i = 0;
            for (element c : *list) plan.columns.push_back(column(c, at(at(path, "column"), i++), cols));
        }
        if (auto list = array_member(obj, "select", path)) {
            std::size_t i = 0;
            for (element sub : *list) plan.selects.push_back(select(sub, at(at(path, "select"), i++), cols));
        }
        if (auto list = array_member(obj, "unionAll", path))
            union_all(*list, at(path, "unionAll"), plan, cols);
        plan.width = cols.size() - before;
        --depth_;
        return plan;
    }

    void iteration_of(simdjson::dom::object obj, const std::string& path, select_plan& plan) {
        int kinds = 0;
        for (auto [key, kind] : {std::pair{"forEach", iteration::for_each},
                                 std::pair{"forEachOrNull", iteration::for_each_or_null}}) {
            if (auto expr = string_member(obj, key, path)) {
                plan.kind = kind;
                plan.iterate = parse_expression(*expr, at(path, key));
                ++kinds;
            }
        }
        if (auto list = array_member(obj, "repeat", path)) {
            plan.kind = iteration::repeat;
            ++kinds;
            std::size_t i = 0;
            for (element e : *list) {
                std::string p = at(at(path, "repeat"), i++);
                std::string_view text;
                if (e.get(text) != simdjson::SUCCESS) refuse(p, "must be a string");
                plan.repeat.push_back(parse_expression(std::string(text), p));
            }
        }
        // One select iterates in one way; the specification defines no
        // meaning for two (ViewDefinition.select, invariant "sql-expressions").
        if (kinds > 1) refuse(path, "forEach, forEachOrNull and repeat exclude one another");
    }

    column_plan column(element c, const std::string& path,
                       std::vector<std::pair<column_info, std::string>>& cols) {
        auto obj = object_at(c, path);
        only_members(c, column_members, path);
        column_info info;
        auto name = string_member(obj, "name", path);
        if (!name) refuse(at(path, "name"), "a column needs a name");
        if (!sql_name(*name))
            refuse(at(path, "name"), "'" + *name + "' is not a name of letters, digits and _");
        info.name = *name;
        auto expr = string_member(obj, "path", path);
        if (!expr) refuse(at(path, "path"), "a column needs a path");
        if (auto type = string_member(obj, "type", path)) {
            if (!fhir_type(*type)) refuse(at(path, "type"), "'" + *type + "' is not a FHIR type");
            info.type = *type;
        }
        element flag;
        if (obj["collection"].get(flag) == simdjson::SUCCESS &&
            flag.get(info.collection) != simdjson::SUCCESS)
            refuse(at(path, "collection"), "must be true or false");
        column_plan plan{parse_expression(*expr, at(path, "path")), info.collection};
        cols.emplace_back(std::move(info), at(path, "name"));
        return plan;
    }

    // ViewDefinition.select.unionAll: "each select in unionAll must have the
    // same column names in the same order" — the branches stack as rows of
    // one table.
    void union_all(simdjson::dom::array list, const std::string& path, select_plan& plan,
                   std::vector<std::pair<column_info, std::string>>& cols) {
        std::vector<std::pair<column_info, std::string>> first;
        std::size_t i = 0;
        for (element b : list) {
            std::vector<std::pair<column_info, std::string>> mine;
            std::string bp = at(path, i);
            plan.union_all.push_back(select(b, bp, mine));
            if (i++ == 0) {
                first = mine;
                continue;
            }
            bool same = mine.size() == first.size() &&
                        std::equal(mine.begin(), mine.end(), first.begin(),
                                   [](const auto& x, const auto& y) { return x.first.name == y.first.name; });
            if (!same) refuse(bp, "unionAll branches must have the same column names in the same order");
        }
        cols.insert(cols.end(), first.begin(), first.end());
    }

    std::set<std::string, std::less<>> declared_;
    std::size_t depth_ = 0;
};

}  // namespace

compile_result compile(std::string_view view_definition_json) {
    return compile(view_definition_json, compile_options{});
}

compile_result compile(std::string_view view_definition_json, const compile_options& options) {
    view v;
    try {
        v = compiler().run(view_definition_json);
    } catch (const refusal& r) {
        return r.error;
    }
    // After the structural checks, so a malformed definition is reported
    // as such rather than as a privacy refusal.
    if (auto refused = detail::check_privacy(v.resource(), view_access::where(v), *view_access::root(v),
                                             options.identifiers)) {
        return *refused;
    }
    return v;
}

}  // namespace headachemd::views
