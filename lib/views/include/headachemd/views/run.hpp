// One ViewDefinition over a stream of resources, as `view run` reads them
// (files, Bundles, NDJSON lines or the JSON headache.db keeps): rows and
// per-resource errors go to callbacks. Pure: no I/O, no vault.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "headachemd/views/view.hpp"

namespace headachemd::views {

class view_runner {
public:
    using row_fn = std::function<void(const row&)>;
    // `where` names the input (file, line, Bundle entry or stored row);
    // `message` the definition's JSON path and what failed, never resource
    // data.
    using problem_fn = std::function<void(const std::string& where, std::string_view message)>;

    // `plan` must outlive the runner.
    view_runner(const view& plan, eval_options options, row_fn on_row, problem_fn on_problem);

    // The rows of one parsed document whose text is `json`: the resource
    // itself and, for a Bundle, each Bundle.entry.resource (FHIR R4), so
    // that a view over Observation finds the Observations of a patient
    // Bundle. A resource that fails gives no rows and one problem.
    void document(simdjson::dom::element root, std::string_view json, const std::string& where);

    // Resources that failed so far (problems reported).
    int problems() const { return problems_; }

    // For problems found outside the runner (a file that cannot be read),
    // so that one count decides the exit status.
    void problem(const std::string& where, std::string_view message);

private:
    void rows(simdjson::dom::element r, const std::string& where, const source_text& source);

    const view& plan_;
    eval_options options_;
    row_fn on_row_;
    problem_fn on_problem_;
    int problems_ = 0;
};

}  // namespace headachemd::views
