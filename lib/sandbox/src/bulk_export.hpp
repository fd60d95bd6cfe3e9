// The sandbox's FHIR Bulk Data export (Bulk Data Access IG v2.0.0, issue 15),
// the parts with no state and no sockets: which kick-off a path names, the
// checks on a kick-off's headers and parameters, the scope check of a
// system token, the NDJSON lines and the completion manifest. app.cpp keeps
// the jobs and answers the requests; these are tested on their own.
//
// The eClinicalWorks form (Group only, v1.0.1, a
// `$export-poll-location?job_id=` status URL) differs in the manifest form
// here and in app.cpp's routing and app::export_status_url.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "codec.hpp"
#include "data.hpp"

namespace headachemd::sandbox::detail {

// IG v2.0.0 "Bulk Data Kick-off Request": the three endpoints.
enum class export_level { system, patient, group };

struct export_target {
    export_level level = export_level::system;
    std::string group_id;  // export_level::group only
};

// "/fhir/$export", "/fhir/Patient/$export", "/fhir/Group/{id}/$export" (no
// query); nullopt for any other path.
std::optional<export_target> parse_export_path(std::string_view path);

// A kick-off the server refuses: `status` with an OperationOutcome whose
// issue has this code (IG v2.0.0 "Response - Error": 4xx or 5xx with an
// OperationOutcome).
struct export_refusal {
    int status = 400;
    std::string code;  // OperationOutcome.issue.code
    std::string diagnostics;
};

// A kick-off's parameters once checked.
struct export_params {
    std::vector<rtype> types;         // from _type, in the order given; empty: not sent
    std::optional<time_point> since;  // _since
    bool lenient = false;             // Prefer: handling=lenient
};

// Checks the headers and the query of a kick-off (IG v2.0.0 "Headers" and
// "Query Parameters"). `served` lists the types the server serves.
// Refusals are 400: a missing Accept: application/fhir+json or Prefer:
// respond-async; a _type that repeats (sent once as a comma list, since
// some servers reject a repeated _type and the client must not rely on
// it), is empty or names a type not served; a _since that is not a FHIR
// instant; an _outputFormat other than NDJSON; and, unless
// Prefer: handling=lenient, any parameter the sandbox does not implement
// (_typeFilter, _elements, patient, includeAssociatedData, …), as the IG
// asks of a server that cannot honour one.
std::variant<export_params, export_refusal> check_kickoff(std::string_view accept, std::string_view prefer,
                                                          const params& query,
                                                          const std::vector<rtype>& served);

// A FHIR instant (R4 datatypes: YYYY-MM-DDThh:mm:ss[.s+](Z|±hh:mm), seconds
// and zone required); nullopt otherwise.
std::optional<time_point> parse_instant(std::string_view s);

// Whether a word `context`/T.access of `scope` (SMART scopes, space
// separated) lets its holder read type `t`: T is t or *, access is read or
// * (SMART v1) or a v2 permission string with r or s (SMART 2.0 §3.2).
// The patient-facing searches ask it for "patient" and "user", a bulk
// export for "system", so a patient/ scope never exports and a system/
// scope never reads a patient's compartment.
bool scope_reads(std::string_view scope, std::string_view context, rtype t);

// One resource's JSON as an NDJSON line (IG v2.0.0 "Bulk Data Output File
// Request": one resource per line, each line ended by \n). The sandbox
// renders compact JSON, which has no raw newline.
void append_ndjson_line(std::string& out, std::string_view resource_json);

// Benchmarks (options::bulk_fill_bytes): appends copies of the NDJSON
// lines `originals` to `out`, the Nth copy of each under the id
// "{id}-c{N}" (still a FHIR id for the sandbox's short ids: [A-Za-z0-9\-.],
// at most 64), until `out` holds at least `min_bytes`; adds the lines
// appended to `count`. Each line's id is its first "id" member, which the
// sandbox renders right after resourceType. Lines without one, or whose id
// would pass 64 characters, are not copied; with no line to copy, nothing
// is appended.
void append_copies(std::string& out, std::size_t& count, std::string_view originals, std::size_t min_bytes);

// One OperationOutcome with one issue, compact JSON (a line of an error[]
// file).
std::string operation_outcome_json(std::string_view severity, std::string_view code,
                                   std::string_view diagnostics);

// IG v2.0.0 deleted[]: a Bundle of type transaction whose entries are
// requests {method DELETE, url "{type}/{id}"}, one per id, compact JSON.
std::string delete_bundle(std::string_view type, const std::vector<std::string>& ids);

// One output[] (or error[], deleted[]) entry of the manifest.
struct manifest_file {
    std::string type;
    std::string url;
    std::size_t count = 0;
};

// Which version of the IG the manifest follows.
enum class manifest_form {
    v2,      // Bulk Data Access IG v2.0.0: error[] and deleted[]
    v1_0_1,  // v1.0.1 (eClinicalWorks): error[] only; deleted[] came with v2
};

// The completion manifest (IG v2.0.0 "Response - Complete Status"):
// transactionTime, request, requiresAccessToken true (the files need the
// bearer), output[] as given, and error[] and deleted[] (v2 only) as given,
// empty arrays included.
struct manifest {
    time_point transaction_time{};
    std::string request;
    std::vector<manifest_file> output;
    std::vector<manifest_file> error;
    std::vector<manifest_file> deleted;
    manifest_form form = manifest_form::v2;
};
std::string render_manifest(const manifest& m);

}  // namespace headachemd::sandbox::detail
