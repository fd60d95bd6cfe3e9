// evaluate(): one resource through a compiled view, following the SQL on
// FHIR v2 processing model ("Processing Algorithm"): a select's rows are the
// cross product of its own columns and the rows of each nested select (and
// of its unionAll, whose branches are stacked); forEach/forEachOrNull/repeat
// run that once per focus.
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "view_plan.hpp"

namespace headachemd::views {
namespace {

using detail::expression;
using detail::iteration;
using detail::select_plan;
using simdjson::dom::element;

// Thrown inside the evaluator only; evaluate() returns it as view_error.
struct stop {
    view_error error;
};

template <class>
inline constexpr bool unhandled_item = false;

// A FHIRPath item as a cell value. Written as a visit so that a new kind
// of item in the FHIRPath layer fails to compile here until it is given a
// cell form, instead of throwing bad_variant_access at run time.
scalar to_scalar(const item& i) {
    return std::visit(
        [](const auto& x) -> scalar {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::int64_t> ||
                          std::is_same_v<T, double> || std::is_same_v<T, std::string>) {
                return x;
            } else if constexpr (std::is_same_v<T, date_value>) {
                return x.text;
            } else if constexpr (std::is_same_v<T, element>) {
                return json_text{std::string(simdjson::minify(x))};
            } else {
                static_assert(unhandled_item<T>, "a FHIRPath item kind without a cell form");
            }
        },
        i);
}

cell to_cell(const scalar& s) {
    return std::visit([](const auto& v) -> cell { return v; }, s);
}

class runner {
public:
    runner(const view& plan, element resource, const eval_options& options)
        : constants_(view_access::constants(plan)), options_(options) {
        // SQL on FHIR v2: %resource and %rootResource are the resource the
        // row comes from (they differ only for contained resources, which
        // a view never starts from).
        constants_["resource"] = collection{item{resource}};
        constants_["rootResource"] = collection{item{resource}};
    }

    // `focus` is absent for forEachOrNull's row when there was nothing to
    // iterate: expressions then see the empty collection.
    collection eval(const expression& e, const std::optional<item>& focus, std::int64_t row_index) {
        // %rowIndex: the 0-based position of the focus in its forEach,
        // forEachOrNull or repeat; 0 outside any (row_index.json).
        constants_["rowIndex"] = collection{item{row_index}};
        auto r = evaluate(*e.ast, focus ? collection{*focus} : collection{}, constants_, options_.source,
                          &options_.resolve_reference);
        if (r.error) throw stop{view_error{e.json_path, r.error->offset, r.error->message}};
        return std::move(r.value);
    }

    std::vector<row> rows(const select_plan& s, const std::optional<item>& node, std::int64_t index) {
        std::vector<std::pair<std::optional<item>, std::int64_t>> foci;
        switch (s.kind) {
            case iteration::none:
                foci.emplace_back(node, index);
                break;
            case iteration::for_each:
            case iteration::for_each_or_null: {
                collection c = eval(s.iterate, node, index);
                for (std::size_t i = 0; i < c.size(); ++i)
                    foci.emplace_back(c[i], static_cast<std::int64_t>(i));
                // forEachOrNull: nothing to iterate still gives one row
                // (like an outer join). Its paths see the empty collection,
                // so `family` is null while %rowIndex is still 0
                // (row_index.json "%rowIndex with forEachOrNull").
                if (c.empty() && s.kind == iteration::for_each_or_null) foci.emplace_back(std::nullopt, 0);
                break;
            }
            case iteration::repeat: {
                collection c;
                descend(s, node, index, 1, c);
                for (std::size_t i = 0; i < c.size(); ++i)
                    foci.emplace_back(c[i], static_cast<std::int64_t>(i));
                break;
            }
        }
        std::vector<row> out;
        for (const auto& [focus, i] : foci) {
            auto mine = rows_for_focus(s, focus, i);
            add(out, mine.size());
            for (auto& r : mine) out.push_back(std::move(r));
        }
        return out;
    }

    bool keep(const view& plan, element resource) {
        for (const auto& [path, ast] : view_access::where(plan)) {
            constants_["rowIndex"] = collection{item{std::int64_t{0}}};
            auto r = evaluate(*ast, collection{item{resource}}, constants_, options_.source,
                              &options_.resolve_reference);
            if (r.error) throw stop{view_error{path, r.error->offset, r.error->message}};
            // ViewDefinition.where: "the FHIRPath expression must evaluate
            // to a boolean"; empty counts as false. Anything else is an
            // error, not a silent "true" (validate.json).
            if (r.value.empty()) return false;
            const bool* b = r.value.size() == 1 ? std::get_if<bool>(&r.value[0]) : nullptr;
            if (!b) throw stop{view_error{path, std::nullopt, "a where path must give a boolean"}};
            if (!*b) return false;
        }
        return true;
    }

private:
    // repeat: the foci are every node the paths reach, applied again to
    // each result, depth first. Bounded, so a deeply nested (or hostile)
    // resource cannot exhaust the stack.
    // `depth` is the level the children found here sit at (1: the node's
    // own children), so exactly max_repeat_depth levels are allowed.
    void descend(const select_plan& s, const std::optional<item>& node, std::int64_t index, std::size_t depth,
                 collection& out) {
        for (const auto& e : s.repeat) {
            for (const auto& child : eval(e, node, index)) {
                if (depth > max_repeat_depth) {
                    throw stop{view_error{
                        e.json_path, std::nullopt,
                        "repeat goes deeper than " + std::to_string(max_repeat_depth) + " levels"}};
                }
                add(out, 1);
                out.push_back(child);
                descend(s, child, index, depth + 1, out);
            }
        }
    }

    std::vector<row> rows_for_focus(const select_plan& s, const std::optional<item>& focus,
                                    std::int64_t index) {
        row base;
        for (const auto& c : s.columns) base.push_back(value_of(c, focus, index));
        std::vector<row> acc{std::move(base)};
        auto cross = [&](std::vector<row> part, std::size_t width) {
            // Under forEachOrNull's null row, a nested select that yields
            // nothing still contributes nulls: the row has "null values
            // for all columns" rather than vanishing.
            if (!focus && part.empty()) part.emplace_back(width);
            std::vector<row> next;
            add(next, acc.size() * part.size());
            for (const auto& a : acc) {
                for (const auto& p : part) {
                    row r = a;
                    r.insert(r.end(), p.begin(), p.end());
                    next.push_back(std::move(r));
                }
            }
            acc = std::move(next);
        };
        for (const auto& sub : s.selects) cross(rows(sub, focus, index), sub.width);
        if (!s.union_all.empty()) {
            std::vector<row> stacked;
            for (const auto& branch : s.union_all) {
                auto part = rows(branch, focus, index);
                add(stacked, part.size());
                for (auto& r : part) stacked.push_back(std::move(r));
            }
            cross(std::move(stacked), s.union_all.front().width);
        }
        return acc;
    }

    cell value_of(const detail::column_plan& c, const std::optional<item>& focus, std::int64_t index) {
        collection v = eval(c.path, focus, index);
        if (c.patient_key) pseudonymize(c, v);
        if (c.primitives_only) {
            for (const auto& x : v) {
                const auto* e = std::get_if<element>(&x);
                if (e && (e->is_object() || e->is_array())) {
                    throw stop{view_error{c.path.json_path, std::nullopt,
                                          "a complex element cannot be a column under [privacy] identifiers; "
                                          "select its primitive parts"}};
                }
            }
        }
        if (c.collection) {
            std::vector<scalar> list;
            for (const auto& x : v) list.push_back(to_scalar(x));
            return list;
        }
        if (v.empty()) return std::monostate{};
        // ViewDefinition.select.column.collection: without it, a path that
        // yields more than one value is an error, never a silently kept first.
        if (v.size() > 1) {
            throw stop{view_error{c.path.json_path, std::nullopt,
                                  std::to_string(v.size()) + " values for a column without collection=true"}};
        }
        return to_cell(to_scalar(v[0]));
    }

    // Under privacy::none a key column's "Patient/<id>" becomes the
    // patient_key (issue 16 item 4), the same pseudonym the normalized
    // tables carry, so a view joins to them and never shows the FHIR id.
    void pseudonymize(const detail::column_plan& c, collection& v) {
        constexpr std::string_view prefix = "Patient/";
        for (auto& x : v) {
            auto* key = std::get_if<std::string>(&x);
            if (!key || !key->starts_with(prefix)) continue;
            if (!options_.map_patient_key) {
                throw stop{view_error{c.path.json_path, std::nullopt,
                                      "a Patient key under [privacy] identifiers = \"none\" needs the "
                                      "patient_key mapping, and none was given"}};
            }
            *key = options_.map_patient_key(std::string_view(*key).substr(prefix.size()));
        }
    }

    template <class T>
    void add(const std::vector<T>& v, std::size_t more) {
        if (v.size() + more > max_rows_per_resource) {
            throw stop{
                view_error{"", std::nullopt,
                           "more than " + std::to_string(max_rows_per_resource) + " rows from one resource"}};
        }
    }

    constant_map constants_;
    const eval_options& options_;
};

}  // namespace

eval_rows evaluate(const view& plan, element resource, const eval_options& options) {
    eval_rows out;
    std::string_view type;
    if (resource["resourceType"].get(type) != simdjson::SUCCESS || type != plan.resource()) return out;
    try {
        runner r(plan, resource, options);
        if (!r.keep(plan, resource)) return out;
        out.rows = r.rows(view_access::root(plan), item{resource}, 0);
    } catch (const stop& s) {
        out.rows.clear();
        out.error = s.error;
    }
    return out;
}

}  // namespace headachemd::views

namespace headachemd::views {

bundle_index index_bundle(element bundle) {
    bundle_index out;
    std::string_view type;
    simdjson::dom::array entries;
    if (bundle["resourceType"].get(type) != simdjson::SUCCESS || type != "Bundle" ||
        bundle["entry"].get(entries) != simdjson::SUCCESS)
        return out;
    std::string_view bundle_type;
    if (bundle["type"].get(bundle_type) != simdjson::SUCCESS) bundle_type = {};
    // R4 Bundle.entry.fullUrl: in a transaction or batch, urn:uuid names a
    // resource the server has not given an id yet.
    const bool urn_ids = bundle_type == "transaction" || bundle_type == "batch";
    for (element e : entries) {
        std::string_view full_url, rtype, id;
        element resource;
        if (e["fullUrl"].get(full_url) != simdjson::SUCCESS || full_url.empty() ||
            e["resource"].get(resource) != simdjson::SUCCESS ||
            resource["resourceType"].get(rtype) != simdjson::SUCCESS || rtype.empty())
            continue;
        if (resource["id"].get(id) != simdjson::SUCCESS || id.empty()) {
            if (!urn_ids || !full_url.starts_with("urn:uuid:")) continue;
            id = full_url.substr(9);
        }
        out.try_emplace(std::string(full_url), resolved_reference{std::string(rtype), std::string(id)});
    }
    return out;
}

reference_resolver resolver_of(const bundle_index& index) {
    return [&index](std::string_view reference) -> std::optional<resolved_reference> {
        auto it = index.find(reference);
        if (it == index.end()) return std::nullopt;
        return it->second;
    };
}

}  // namespace headachemd::views
