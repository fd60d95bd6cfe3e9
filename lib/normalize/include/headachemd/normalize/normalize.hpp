// FHIR R4 JSON bytes → records. Pure: no I/O, no clock, no logging.
//
// The normalizer does not know whether the bytes came from a file, an
// NDJSON line or an HTTP response page. It is the one place where FHIR JSON
// is interpreted, for `ingest` and for the network sync alike.
//
// Contract:
// - Input must be padded (simdjson::padded_string_view: at least
//   SIMDJSON_PADDING readable bytes after the end). The input must outlive
//   the call only; records own all their strings.
// - Expected problems with the input (malformed JSON, invalid UTF-8, a
//   resource without id, an unknown resourceType, …) are returned as
//   `problem` values, never thrown. std::bad_alloc may be thrown.
// - A normalizer object keeps two parsers and an index of the Medication
//   resources it has seen; use one per thread.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "headachemd/normalize/records.hpp"

namespace headachemd::normalize {

struct options {
    bool keep_raw = false;  // fill header::raw (the `store_raw` setting)
    // Fill header::raw for these FHIR types too: the materialized views
    // (store::view_tables) evaluate on the resource's JSON in the page's
    // transaction. Kept in memory only; the store writes raw rows only
    // with store_raw.
    std::vector<std::string> raw_for_types{};
    // A single resource larger than this is rejected rather than parsed; it
    // bounds the memory one hostile entry can make us spend.
    std::size_t max_resource_bytes = 64u << 20;
    // JSON nesting deeper than this is rejected (FHIR resources nest < 20 deep).
    std::size_t max_depth = 256;
};

// One thing wrong with the input, located precisely enough for a person to
// open the file and find it.
struct problem {
    std::string where;    // "entry 12 (Observation/abc)", "line 7", "offset 1031"
    std::string message;  // what is wrong and, where it helps, what would be valid
};

// A Bundle entry as a reference to its fullUrl reaches it: the resource's
// type and id as stored (a transaction's id-less resource has its urn:uuid).
struct bundle_entry {
    std::string type;
    std::string id;
};

struct result {
    std::vector<record> records;  // in input order
    // A Bundle's entries by fullUrl (R4 Bundle §"Resolving references in
    // Bundles"); the first entry wins a repeated fullUrl. The normalizer
    // resolves urn:uuid subjects through it, and ingest hands the same map
    // to the views' getReferenceKey(). Empty for a single resource or NDJSON.
    std::map<std::string, bundle_entry, std::less<>> full_urls;
    // Per resourceType: how many resources were read (normalized or not).
    std::map<std::string, std::size_t, std::less<>> read;
    // Per resourceType: valid FHIR R4 resources of a type we do not normalize.
    std::map<std::string, std::size_t, std::less<>> skipped;
    std::vector<problem> problems;

    // True when nothing was wrong; a Bundle with any problem must be
    // rejected whole by the caller (a Bundle is atomic).
    bool ok() const { return problems.empty(); }
};

class normalizer {
public:
    explicit normalizer(options opts = {});
    ~normalizer();
    normalizer(const normalizer&) = delete;
    normalizer& operator=(const normalizer&) = delete;

    // A whole JSON document: a Bundle of any type (searchset, transaction,
    // collection, batch-response, …) or a single resource. Problems are
    // located by Bundle entry index ("entry 3"), counting from 0 as FHIRPath
    // does. `urn:uuid:` references between entries resolve to the target
    // entry's resource id; contained and in-document Medication resources
    // resolve medicationReference.
    result normalize_document(simdjson::padded_string_view json);

    // One NDJSON line (a single resource). `line_no` counts from 1 and is
    // used only to locate problems. Appends to `out`. A blank line adds
    // nothing; a Bundle on a line is counted as a skipped "Bundle".
    void normalize_line(simdjson::padded_string_view line, std::size_t line_no, result& out);

    // Forgets the Medication index (between unrelated inputs).
    void reset_medication_index();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// True when `type` is one of the 146 concrete resource types of FHIR R4
// (4.0.1); the abstract Resource and DomainResource are not.
bool is_r4_resource_type(std::string_view type);

}  // namespace headachemd::normalize
