// The pure protocol pieces of FHIR Bulk Data Access (IG v2.0.0, compatible
// with v1.0.1 servers; issue 15): the kick-off request, the completion
// manifest, the OperationOutcome of a failed poll, and X-Progress. Functions
// over values and bytes: no I/O, no Asio, no clock. bulk_job (the export's
// state machine) calls them; the coroutine shell only moves bytes.
//
// Everything a server sends is data, never trusted: every list and number is
// bounded, and an error names the field that was wrong but never repeats the
// server's value (a file URL can be a capability URL, a diagnostics text can
// name a patient).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "headachemd/core/result.hpp"

namespace headachemd::sync {

// ---- kick-off -------------------------------------------------------------

// Bulk Data IG "Bulk Data Kick-off Request": the three export levels.
enum class export_level { system, patient, group };

struct kickoff_spec {
    std::string fhir_base;  // absolute https (http on loopback only); a trailing '/' is dropped
    export_level level = export_level::group;
    std::string group_id;                   // group level only: a FHIR id ([A-Za-z0-9-.]{1,64})
    std::vector<std::string> types;         // _type: resource type names; empty = the server's default
    std::optional<std::string> since;       // _since: a FHIR instant
    std::vector<std::string> type_filters;  // _typeFilter: "Type?query", one parameter each
};

struct http_request {
    std::string method;
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers;
};

// GET [base]/Group/[id]/$export, [base]/Patient/$export or [base]/$export
// with Accept: application/fhir+json and Prefer: respond-async (both
// required by the IG). _type goes as one comma list: some servers reject a
// repeated _type (issue 15). Returns errc::bad_export_request naming the
// field (never its value) for an unusable base, group id, type or instant.
result<http_request> build_kickoff(const kickoff_spec& spec);

// ---- the completion manifest ------------------------------------------------

enum class bulk_file_kind { output, deleted, error };
std::string_view to_string(bulk_file_kind k);

struct bulk_file {
    bulk_file_kind kind = bulk_file_kind::output;
    std::string type;                    // "Observation"; "Bundle" for deleted, "OperationOutcome" for error
    std::string url;                     // absolute; https, or http to a loopback host
    std::optional<std::uint64_t> count;  // the server's count of resources, when given
    bool operator==(const bulk_file&) const = default;
};

struct bulk_manifest {
    std::string transaction_time;  // a FHIR instant: the next job's _since
    bool requires_access_token = true;
    // output[], then deleted[], then error[]: the order the job applies them
    // (data before deletions, reports last).
    std::vector<bulk_file> files;
    bool operator==(const bulk_manifest&) const = default;
};

struct manifest_limits {
    std::size_t max_bytes = std::size_t{8} << 20;  // a manifest is an index, not data
    std::size_t max_files = 10000;                 // output + deleted + error entries
    std::uint64_t max_count = 1'000'000'000'000;   // resources in one file
    std::size_t max_url_length = 4096;
};

// Parses the manifest the status URL answers with 200 (IG "Response -
// Complete Status"). Required: transactionTime (an instant),
// requiresAccessToken (a boolean) and output (an array, possibly empty).
// error[] may be absent (v1 servers send an empty array, some send none);
// deleted[] is v2 and optional. Each entry needs a type (a resource type
// name) and a url (absolute, https or loopback http); count is optional but,
// when present, a non-negative integer up to max_count. Unknown fields
// (request, extension, outputOrganizedBy) are ignored. Errors are
// errc::bad_manifest with the field's path ("output[3].url").
result<bulk_manifest> parse_manifest(std::string_view body, const manifest_limits& limits = {});

// ---- OperationOutcome of a failed poll ----------------------------------------

// IG "Response - Error Status": a 4xx/5xx with an OperationOutcome whose
// issue code is from the `transient` branch of the FHIR R4 IssueType code
// system (transient, lock-error, no-store, exception, timeout, incomplete,
// throttled) means "retry later"; any other error means the job failed.
enum class outcome_class {
    transient,  // every error/fatal issue has a transient code
    fatal,      // at least one error/fatal issue has another code
    unknown,    // no OperationOutcome, or no error/fatal issue with a code
};

struct outcome_reading {
    outcome_class verdict = outcome_class::unknown;
    // "error transient; warning informational": severity and code of each
    // issue (at most 8), both coded values checked to be short lowercase
    // tokens. Never diagnostics or details.text, which may carry payload.
    std::string summary;
};

outcome_reading read_operation_outcome(std::string_view body);

bool is_transient_issue_code(std::string_view code);

// A short lowercase token (an IssueType or IssueSeverity code), else "?":
// what is kept of an OperationOutcome's issue for logs and reports, which
// must not carry the server's free text (diagnostics may echo a patient).
std::string coded(std::string_view s);

// ---- small checks ----------------------------------------------------------

// A FHIR id (R4 datatypes): [A-Za-z0-9\-\.]{1,64}.
bool is_fhir_id(std::string_view s);

// A FHIR instant (R4 datatypes): YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm).
bool is_fhir_instant(std::string_view s);

// X-Progress is the server's free text (IG: "e.g. a percentage"): kept for
// `status` and the logs as printable ASCII, at most 64 bytes, control and
// non-ASCII bytes replaced by '?', a longer text cut with "...".
std::string sanitize_progress(std::string_view value);

}  // namespace headachemd::sync
