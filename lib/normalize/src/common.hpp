// Private to lib/normalize: the pieces every resource reader shares.
//
// Reading model. A resource is one simdjson On-Demand object. Each reader
// walks its fields once, in document order, matches the few keys it needs and
// lets everything else be skipped by simdjson without being looked at (FHIR
// resources carry many fields we do not want, names and addresses among
// them). Strings come back as views into the parser's string buffer; they
// stay valid until that parser's next iterate(), so readers copy what goes
// into a record and keep views only for classification within the resource.
//
// Error model. Helpers return false after recording the first failure in the
// resource_ctx (field path + message); the caller turns it into a `problem`.
// Nothing here throws except std::bad_alloc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "headachemd/normalize/normalize.hpp"
#include "headachemd/normalize/records.hpp"
#include "headachemd/terminology/terminology.hpp"

namespace headachemd::normalize::detail {

namespace od = simdjson::ondemand;
namespace term = headachemd::terminology;

// --- resource types ---------------------------------------------------------

enum class resource_kind {
    other,  // a valid R4 type we count and skip
    patient,
    condition,
    medication_request,
    appointment,
    encounter,
    observation,
    procedure,
    medication,  // feeds the Medication index; produces no record
    bare,        // an `other` type a view reads (options::raw_for_types): a bare_record
};

resource_kind kind_of(std::string_view resource_type);

// "an object", "a number", … for messages.
std::string_view json_type_name(od::json_type t);

// --- scratch ---------------------------------------------------------------

// A contained Medication seen inside a MedicationRequest (R4 Resource
// "contained": resolved by a "#id" reference from the same resource).
struct contained_medication {
    std::string_view id;
    std::size_t first = 0, count = 0;  // its code codings in scratch::contained_codings
    std::string_view text;
};

// Buffers reused for every resource so a steady stream of resources costs
// no allocations beyond the records' own strings.
struct scratch {
    std::vector<term::coding_view> codings;  // the resource's main code
    std::vector<term::coding_view> related;  // other concepts that feed a classifier
    std::vector<term::coding_view> tmp;      // one concept read for its first code
    std::vector<std::string_view> texts;     // free text that feeds a classifier
    std::vector<contained_medication> contained;
    std::vector<term::coding_view> contained_codings;
    std::string json;     // reason_codes under construction
    term::memo classify;  // remembered classifier answers; kept across resources (not cleared)

    void clear() {
        codings.clear();
        related.clear();
        tmp.clear();
        texts.clear();
        contained.clear();
        contained_codings.clear();
        json.clear();
    }
};

// An Appointment participant that may be the patient, kept until urn:uuid
// references can be resolved at the end of the document.
struct actor_candidate {
    std::string reference;
    bool typed_patient = false;  // Reference.type says Patient
};

// --- field paths ------------------------------------------------------------

// A FHIR path such as "dosageInstruction.doseAndRate.doseQuantity.value",
// built as a chain on the stack and turned into text only on failure.
struct path {
    std::string_view name;
    const path* parent = nullptr;

    path child(std::string_view n) const { return path{n, this}; }
    std::string str() const;
};

// --- per-resource context ----------------------------------------------------

class resource_ctx {
public:
    explicit resource_ctx(scratch& buffers) : s(buffers) {}

    // Record the first failure; always returns false so readers can
    // `return ctx.fail(...)`.
    bool fail(const path& at, std::string_view message);
    // A simdjson error on `v`: INCORRECT_TYPE names what was expected and
    // what was found, NUMBER_ERROR quotes the number.
    bool fail(const path& at, simdjson::error_code e, od::value* v = nullptr, std::string_view expected = {});

    bool failed() const { return failed_; }
    const std::string& failure() const { return failure_; }

    scratch& s;

    // Left behind by the readers for the document layer:
    // header.patient_ref holds an unresolved "urn:uuid:…" (or "urn:oid:…")
    // subject reference to look up among the Bundle's fullUrls.
    bool patient_pending = false;
    // Appointment: participants to search for the patient once urn:uuid
    // references can be resolved (non-empty only when that is needed).
    std::vector<actor_candidate> actors;
    // MedicationRequest: medicationReference names a resource outside this
    // one (not "#id"); medication_* and the classes are filled by the
    // document layer from the Medication index.
    bool medication_pending = false;

    void reset() {
        failed_ = false;
        failure_.clear();
        patient_pending = false;
        actors.clear();
        medication_pending = false;
        s.clear();
    }

private:
    bool failed_ = false;
    std::string failure_;
};

// --- field iteration ---------------------------------------------------------

// Calls f(key, value) for each field of `obj` in document order; stops and
// returns false at the first failure. Keys are compared raw (unescaped),
// which is right for FHIR: its element names are plain ASCII.
template <class F>
bool for_each_field(od::object& obj, resource_ctx& ctx, const path& at, F&& f) {
    for (auto res : obj) {
        if (res.error()) return ctx.fail(at, res.error());
        od::field& fld = res.value_unsafe();
        if (!f(fld.key(), fld.value())) return false;
    }
    return true;
}

// Opens `v` as an object. `present` is false for JSON null (FHIR forbids
// null, but some servers send it; it means absent).
bool open_object(od::value& v, resource_ctx& ctx, const path& at, od::object& out, bool& present);
bool open_array(od::value& v, resource_ctx& ctx, const path& at, od::array& out, bool& present);

// Calls f(index, value) for each element of the array `v` (null: none).
template <class F>
bool for_each_element(od::value& v, resource_ctx& ctx, const path& at, F&& f) {
    od::array arr;
    bool present = false;
    if (!open_array(v, ctx, at, arr, present)) return false;
    if (!present) return true;
    std::size_t i = 0;
    for (auto res : arr) {
        if (res.error()) return ctx.fail(at, res.error());
        if (!f(i, res.value_unsafe())) return false;
        ++i;
    }
    return true;
}

// Calls f(key, value) for each field of the object `v` (null: none).
template <class F>
bool for_each_member(od::value& v, resource_ctx& ctx, const path& at, F&& f) {
    od::object obj;
    bool present = false;
    if (!open_object(v, ctx, at, obj, present)) return false;
    if (!present) return true;
    return for_each_field(obj, ctx, at, f);
}

// --- primitives ------------------------------------------------------------
// FHIR forbids empty strings and null; both read as absent.

// A view valid until the parser's next iterate(); empty when absent.
bool read_view(od::value& v, resource_ctx& ctx, const path& at, std::string_view& out);
bool read_text(od::value& v, resource_ctx& ctx, const path& at, opt_text& out);
bool read_number(od::value& v, resource_ctx& ctx, const path& at, opt_real& out);
bool read_integer(od::value& v, resource_ctx& ctx, const path& at, opt_int& out);
bool read_bool(od::value& v, resource_ctx& ctx, const path& at, opt_bool& out);

// --- FHIR datatypes -----------------------------------------------------------

// Coding: system, code, display (views).
bool read_coding(od::value& v, resource_ctx& ctx, const path& at, term::coding_view& out);
// CodeableConcept: appends its codings to `codings` and sets `text`.
bool read_concept(od::value& v, resource_ctx& ctx, const path& at, std::vector<term::coding_view>& codings,
                  std::string_view& text);
// The code of a CodeableConcept's first coding that has one.
bool read_first_code(od::value& v, resource_ctx& ctx, const path& at, opt_text& out);
// Reference: reference, type and display (views).
struct reference_view {
    std::string_view reference, type, display;
};
bool read_reference(od::value& v, resource_ctx& ctx, const path& at, reference_view& out);
// Period: start and end.
bool read_period(od::value& v, resource_ctx& ctx, const path& at, opt_text& start, opt_text& end);
// Quantity (also Duration, SimpleQuantity): value, unit, code.
struct quantity_view {
    opt_real value;
    std::string_view unit, code;
};
bool read_quantity(od::value& v, resource_ctx& ctx, const path& at, quantity_view& out);
// The header elements every resource has.
bool read_id(od::value& v, resource_ctx& ctx, header& h);
bool read_meta(od::value& v, resource_ctx& ctx, header& h);
// The exact JSON text of an object value (for value[x] types kept as text).
bool read_raw_object(od::value& v, resource_ctx& ctx, const path& at, opt_text& out);

// --- codings ---------------------------------------------------------------

// The first coding whose system is `want`, else the first coding; nullptr
// when there is none.
const term::coding_view* prefer_system(std::span<const term::coding_view> codings,
                                       std::initializer_list<term::code_system> want);
void set_code(const term::coding_view* c, opt_text& system, opt_text& code, opt_text& display);
opt_text text_or_null(std::string_view s);

// Adds a CodeableConcept.text to the texts a classifier reads, unless it
// repeats one of the concept's coding displays (the classifiers read
// displays already; EHRs often copy the display into text).
void add_text(std::vector<std::string_view>& texts, std::string_view text,
              std::span<const term::coding_view> concept_codings);

// Appends codings as the JSON array stored in reason_codes:
// [{"system":…,"code":…,"display":…}], absent members as null.
void append_codings_json(std::string& out, std::span<const term::coding_view> codings);

// --- references ---------------------------------------------------------------

// A parsed Reference.reference (R4 §2.3.0 "Resource References").
struct parsed_reference {
    enum class form { none, contained, urn, literal } kind = form::none;
    std::string_view type;  // literal only: the resource type segment
    std::string_view id;    // literal: the logical id; urn: the uuid/oid; contained: after '#'
    std::string_view base;  // literal only: what precedes type/id ("https://x/fhir"); empty when relative
};
// "Patient/1", "https://x/fhir/Patient/1", ".../Patient/1/_history/2",
// "urn:uuid:X", "urn:oid:X", "#x". A literal whose type segment is not an R4
// resource type (a query, a malformed URL) parses as none.
parsed_reference parse_reference(std::string_view ref);

// Sets h.patient_ref from a `subject`/`patient` reference (Patient or another
// type allowed there: Group, Device, Location). A urn: reference is left in
// h.patient_ref whole and marked pending for the document layer.
void set_patient_from_subject(const reference_view& ref, header& h, resource_ctx& ctx);

// --- values ---------------------------------------------------------------

// Days in one `unit` of a UCUM/plain-text time unit (s, min, h, d, wk, mo,
// a and their English names); nullopt when unknown. A month is 30 days and
// a year 365 (R4 Timing and the brief: a dispense supply is counted in days).
std::optional<double> days_per_unit(std::string_view unit);
// "YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm]" → seconds since the epoch (UTC
// when the offset is absent); nullopt for anything less than a full time.
std::optional<std::int64_t> parse_date_time(std::string_view s);
// The year of a FHIR date/dateTime ("1974", "1974-12", "1974-12-25…").
opt_int year_of(std::string_view date);

// `s` without trailing JSON whitespace.
std::string_view trim_json_space(std::string_view s);

// Input text quoted in a problem: at most `max` bytes, cut at a UTF-8
// character boundary, with "…" when cut. Problems reach the logs, which must
// never carry a payload, and stay valid UTF-8 for the JSON log format.
std::string shown_in_message(std::string_view s, std::size_t max = 64);

// --- the readers, one per resource type --------------------------------------
// Each fills its record from the resource object; false on failure (ctx).

bool read_patient(od::object& obj, resource_ctx& ctx, patient_record& out);
bool read_condition(od::object& obj, resource_ctx& ctx, condition_record& out);
bool read_medication_request(od::object& obj, resource_ctx& ctx, medication_request_record& out);
bool read_appointment(od::object& obj, resource_ctx& ctx, appointment_record& out);
bool read_encounter(od::object& obj, resource_ctx& ctx, encounter_record& out);
bool read_observation(od::object& obj, resource_ctx& ctx, observation_record& out);
bool read_procedure(od::object& obj, resource_ctx& ctx, procedure_record& out);
// A type some view reads but we do not normalize: id, meta and patient only.
bool read_bare(od::object& obj, resource_ctx& ctx, bare_record& out);

// A Medication's code, owned, for the index that resolves medicationReference.
struct owned_coding {
    std::string system, code, display;
};
struct medication_info {
    std::string id;
    std::vector<owned_coding> codings;
    std::string text;
};
bool read_medication(od::object& obj, resource_ctx& ctx, medication_info& out);

// Fills medication_system/code/display and the classes from a medication
// code (RxNorm preferred for the columns; every coding and the text feed the
// classifier).
void apply_medication(term::memo& classify, medication_request_record& r,
                      std::span<const term::coding_view> codings, std::string_view text);

// --- JSON structure ----------------------------------------------------------

// What the structural pass found over a whole document (see structure.cpp
// for why it exists).
struct structure_report {
    enum class fault { none, unbalanced_close, mismatched, truncated, trailing } kind = fault::none;
    std::size_t offset = 0;             // of the fault, from the start of the padded input
    std::vector<std::size_t> too_deep;  // first bracket past max_depth, per excursion (capped)
};
// Walks the structural tokens simdjson's stage 1 found for `doc`, which must
// be freshly iterated. `base` is the start of the input buffer (offsets are
// counted from it); `stack` is scratch for the precise walk.
void check_structure(od::document& doc, const char* base, std::size_t max_depth, std::vector<char>& stack,
                     structure_report& out);

// Error paths only (slow, byte by byte): where exactly the input is bad.
// The offset of the first invalid UTF-8 byte; npos when valid.
std::size_t find_invalid_utf8(std::string_view s);
// The offset of the first byte that makes a string unterminated or holds an
// unescaped control character; npos when none.
std::size_t find_bad_string(std::string_view s);
// The offset of the first backslash that does not start an RFC 8259 §7
// escape (\" \\ \/ \b \f \n \r \t \uXXXX); npos when none. Fast (memchr):
// it runs on every input, because simdjson checks escapes only in the
// strings we unescape, and most of every resource is skipped unread.
std::size_t find_bad_escape(std::string_view s);
// Which Bundle.entry (0-based) contains byte `offset` of `json`, if the
// document is an object with an "entry" array and the offset is inside it.
std::optional<std::size_t> locate_entry(std::string_view json, std::size_t offset);

}  // namespace headachemd::normalize::detail
