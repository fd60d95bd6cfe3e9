// Invariants of a normalize::result that hold for any input, checked after
// every fuzz run of the normalizer: they are what the store and the logs
// rely on.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <iterator>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include <openssl/evp.h>

#include "fuzz_support.hpp"
#include "headachemd/normalize/normalize.hpp"

namespace headachemd::fuzz {

namespace nz = headachemd::normalize;

inline std::string sha256_hex(std::string_view bytes) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    FUZZ_CHECK(EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr) == 1,
               "SHA-256 failed");
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 0xf];
    }
    return out;
}

// Every text column is valid UTF-8: SQLite, the JSON log format and
// analysts' tools all assume it, and a byte-wise truncation could break it.
inline void check_text(const nz::opt_text& t) {
    if (t) FUZZ_CHECK(valid_utf8(*t), "a record's text is not valid UTF-8");
}

// reason_codes is JSON the normalizer writes by hand: it must parse as an
// array, or analysts' json_each() fails on the row.
inline void check_json_array(const nz::opt_text& t) {
    if (!t) return;
    check_text(t);
    simdjson::dom::parser parser;
    simdjson::dom::array arr;
    FUZZ_CHECK(!parser.parse(*t).get(arr), "reason_codes is not a JSON array");
}

inline void check_header(const nz::header& h, std::string_view input, bool keep_raw) {
    FUZZ_CHECK(!h.id.empty(), "a record without an id");
    FUZZ_CHECK(valid_utf8(h.id) && valid_utf8(h.patient_ref), "id or patient_ref is not UTF-8");
    check_text(h.version_id);
    check_text(h.last_updated);
    FUZZ_CHECK(
        h.raw_hash.size() == 64 && h.raw_hash.find_first_not_of("0123456789abcdef") == std::string::npos,
        "raw_hash is not 64 lower-case hex digits");
    if (keep_raw) {
        // raw is the resource's exact bytes, and raw_hash is their hash.
        FUZZ_CHECK(sha256_hex(h.raw) == h.raw_hash, "raw_hash is not SHA-256 of raw");
        FUZZ_CHECK(contains(input, h.raw), "raw is not a slice of the input");
    } else {
        FUZZ_CHECK(h.raw.empty(), "raw filled without keep_raw");
    }
}

inline void check_record(const nz::record& r, std::string_view input, bool keep_raw) {
    check_header(nz::header_of(r), input, keep_raw);
    std::visit(
        [](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, nz::patient_record>) {
                check_text(x.sex);
                check_text(x.deceased_at);
            } else if constexpr (std::is_same_v<T, nz::condition_record>) {
                for (const auto* t : {&x.code_system, &x.code, &x.code_display, &x.code_text,
                                      &x.clinical_status, &x.verification_status, &x.category, &x.onset,
                                      &x.abatement, &x.recorded_date, &x.headache_type})
                    check_text(*t);
            } else if constexpr (std::is_same_v<T, nz::medication_request_record>) {
                for (const auto* t : {&x.status, &x.intent, &x.authored_on, &x.medication_system,
                                      &x.medication_code, &x.medication_display, &x.medication_reference,
                                      &x.ingredient, &x.drug_class, &x.dose_text, &x.quantity_unit})
                    check_text(*t);
                FUZZ_CHECK(x.therapy_role == "acute" || x.therapy_role == "preventive" ||
                               x.therapy_role == "acute_and_preventive" || x.therapy_role == "other",
                           "therapy_role outside its documented values");
                // Schema 5: a documented route, and amounts that are positive and finite.
                check_text(x.route);
                if (x.route) {
                    static constexpr std::string_view routes[] = {
                        "oral",         "ophthalmic",    "otic",        "topical", "nasal",
                        "subcutaneous", "intramuscular", "intravenous", "rectal",  "transdermal"};
                    FUZZ_CHECK(std::find(std::begin(routes), std::end(routes), *x.route) != std::end(routes),
                               "route outside its documented values");
                }
                for (const auto* v : {&x.strength_mg, &x.max_units_per_day, &x.dose_quantity}) {
                    if (*v)
                        FUZZ_CHECK(std::isfinite(**v) && **v > 0,
                                   "a dose amount that is not positive and finite");
                }
            } else if constexpr (std::is_same_v<T, nz::appointment_record>) {
                for (const auto* t : {&x.status, &x.start, &x.end, &x.service_type, &x.appointment_type})
                    check_text(*t);
                check_json_array(x.reason_codes);
            } else if constexpr (std::is_same_v<T, nz::encounter_record>) {
                for (const auto* t : {&x.status, &x.class_code, &x.type_code, &x.type_display,
                                      &x.period_start, &x.period_end})
                    check_text(*t);
                check_json_array(x.reason_codes);
            } else if constexpr (std::is_same_v<T, nz::observation_record>) {
                for (const auto* t :
                     {&x.status, &x.category, &x.code_system, &x.code, &x.code_display, &x.value_type,
                      &x.value_unit, &x.value_string, &x.value_code_system, &x.value_code, &x.effective_at})
                    check_text(*t);
            } else if constexpr (std::is_same_v<T, nz::procedure_record>) {
                for (const auto* t : {&x.status, &x.code_system, &x.code, &x.code_display, &x.performed_start,
                                      &x.performed_end})
                    check_text(*t);
            }
        },
        r);
}

inline void check_result(const nz::result& res, std::string_view input, bool keep_raw) {
    for (const auto& r : res.records) check_record(r, input, keep_raw);
    for (const auto& p : res.problems) {
        FUZZ_CHECK(!p.where.empty() && !p.message.empty(), "a problem without a location or message");
        // Problems are logged: they must stay valid UTF-8 (log_format=json)
        // and short (a message quotes at most a token, never a payload).
        FUZZ_CHECK(valid_utf8(p.where) && valid_utf8(p.message), "a problem is not valid UTF-8");
        FUZZ_CHECK(p.message.size() < 1024, "a problem message longer than 1 KiB");
    }
    // Every record was counted as read.
    std::size_t read = 0;
    for (const auto& [type, n] : res.read) read += n;
    FUZZ_CHECK(read >= res.records.size(), "more records than resources read");
}

}  // namespace headachemd::fuzz
