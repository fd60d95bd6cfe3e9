// FHIRPath dates, dateTimes and times as values with a precision: parsing
// (strict: 2020-13-45 is not a date), comparison with the FHIRPath
// precision rules, and lowBoundary()/highBoundary(). Internal to lib/views.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "headachemd/views/fhirpath.hpp"

namespace headachemd::views::detail {

// Fields present, coarsest first. Seconds and their fraction are one
// precision (FHIRPath N1 §"Date/Time Equality": 10:30:00 = 10:30:00.000).
enum class precision { year, month, day, hour, minute, second };

struct temporal {
    temporal_kind kind = temporal_kind::date;  // never infer once parsed
    precision prec = precision::year;
    int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0;
    int millis = 0;  // fraction of the second, truncated to milliseconds
    bool has_fraction = false;
    std::optional<int> tz_minutes;  // offset east of UTC; "Z" is 0
};

// The kind a text has when nothing else is known: 'T' after a date part
// makes a dateTime, ':' without '-' a time, anything else a date.
temporal_kind infer_kind(std::string_view text);

// Parses FHIR/FHIRPath text of the given kind (infer: from the text). A
// dateTime kind also accepts a date-only text ("2010-10-10" is a valid
// FHIR dateTime). Returns nullopt for anything malformed or out of range.
std::optional<temporal> parse_temporal(std::string_view text, temporal_kind kind);

// <0, 0, >0, or nullopt when FHIRPath's answer is empty: the values have
// different precisions and agree on every field both have, or only one of
// them has a time zone. Both zones present: compared in UTC. A time
// against a date/dateTime is not comparable (nullopt).
std::optional<int> compare(const temporal& a, const temporal& b);

// lowBoundary()/highBoundary() (FHIRPath 3.0 STU §"lowBoundary"): the
// least/greatest value within the input's precision, written at
// `digits` of precision (date 4/6/8, dateTime 4/6/8/10/12/14/17, time
// 2/4/6/9; nullopt digits: the finest). A dateTime without a zone takes
// the extremes +14:00 (low) and -12:00 (high) because the instant it
// names could be in any zone. nullopt: a precision the kind does not have.
std::optional<date_value> boundary(const temporal& t, bool high, std::optional<long long> digits);

}  // namespace headachemd::views::detail
