#include "headachemd/views/run.hpp"

#include <string>
#include <utility>

namespace headachemd::views {

view_runner::view_runner(const view& plan, eval_options options, row_fn on_row, problem_fn on_problem)
    : plan_(plan),
      options_(std::move(options)),
      on_row_(std::move(on_row)),
      on_problem_(std::move(on_problem)) {}

void view_runner::document(simdjson::dom::element root, std::string_view json, const std::string& where) {
    // The text beside the DOM: decimals keep their written precision for
    // lowBoundary()/highBoundary() (1.0 gives 0.95).
    const source_text source(root, json);
    rows(root, where, source);
    std::string_view type;
    simdjson::dom::array entries;
    if (root["resourceType"].get(type) || type != "Bundle" || root["entry"].get(entries)) return;
    // R4 Bundle "Resolving references in Bundles": an entry's reference to
    // another entry's fullUrl (a Synthea transaction's urn:uuid subject)
    // names that entry, for getReferenceKey(). Only while this Bundle's
    // entries are evaluated: nothing leaks into the next document.
    const bundle_index index = index_bundle(root);
    auto outside = std::exchange(options_.resolve_reference, resolver_of(index));
    std::size_t i = 0;
    for (auto e : entries) {
        simdjson::dom::element inner;
        if (!e["resource"].get(inner)) rows(inner, where + " entry[" + std::to_string(i) + "]", source);
        ++i;
    }
    options_.resolve_reference = std::move(outside);
}

void view_runner::problem(const std::string& where, std::string_view message) {
    ++problems_;
    on_problem_(where, message);
}

void view_runner::rows(simdjson::dom::element r, const std::string& where, const source_text& source) {
    options_.source = &source;
    auto out = evaluate(plan_, r, options_);
    options_.source = nullptr;
    // The message names the definition's path, never resource data.
    if (out.error) return problem(where, out.error->json_path + ": " + out.error->message);
    for (const auto& one : out.rows) on_row_(one);
}

}  // namespace headachemd::views
