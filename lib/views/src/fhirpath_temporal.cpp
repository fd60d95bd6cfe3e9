// FHIR R4 §2.24.0.1 (date, dateTime, time, instant) and FHIRPath N1
// §"Date/Time" values: strict parsing, precision-aware comparison and the
// boundary functions. Every field is range-checked, so nothing downstream
// sees day 45 or hour 25, and all arithmetic stays in small ints.
#include "fhirpath_temporal.hpp"

#include <array>
#include <cstdio>

namespace headachemd::views::detail {
namespace {

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) {
    static constexpr std::array<int, 12> days = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[static_cast<std::size_t>(m - 1)];
}

// A reader over the text that takes fixed-width digit groups.
struct reader {
    std::string_view s;
    std::size_t i = 0;

    bool done() const { return i == s.size(); }
    bool at(char c) const { return i < s.size() && s[i] == c; }
    bool eat(char c) {
        if (!at(c)) return false;
        ++i;
        return true;
    }
    bool digits(int n, int& out) {
        if (s.size() - i < static_cast<std::size_t>(n)) return false;
        int v = 0;
        for (int k = 0; k < n; ++k) {
            char c = s[i + static_cast<std::size_t>(k)];
            if (c < '0' || c > '9') return false;
            v = v * 10 + (c - '0');
        }
        i += static_cast<std::size_t>(n);
        out = v;
        return true;
    }
};

// YYYY, YYYY-MM or YYYY-MM-DD. FHIR's year is 0001-9999.
bool read_date(reader& r, temporal& t) {
    if (!r.digits(4, t.year) || t.year == 0) return false;
    t.prec = precision::year;
    if (!r.eat('-')) return true;
    if (!r.digits(2, t.month) || t.month < 1 || t.month > 12) return false;
    t.prec = precision::month;
    if (!r.eat('-')) return true;
    if (!r.digits(2, t.day) || t.day < 1 || t.day > days_in_month(t.year, t.month)) return false;
    t.prec = precision::day;
    return true;
}

// hh, hh:mm, hh:mm:ss or hh:mm:ss.f+ (any number of fraction digits; the
// value keeps milliseconds, FHIRPath's finest precision).
bool read_time(reader& r, temporal& t) {
    if (!r.digits(2, t.hour) || t.hour > 23) return false;
    t.prec = precision::hour;
    if (!r.eat(':')) return true;
    if (!r.digits(2, t.minute) || t.minute > 59) return false;
    t.prec = precision::minute;
    if (!r.eat(':')) return true;
    if (!r.digits(2, t.second) || t.second > 59) return false;
    t.prec = precision::second;
    if (!r.eat('.')) return true;
    std::size_t first = r.i;
    int scale = 100;
    while (!r.done() && r.s[r.i] >= '0' && r.s[r.i] <= '9') {
        t.millis += (r.s[r.i] - '0') * scale;
        scale /= 10;
        ++r.i;
    }
    t.has_fraction = true;
    return r.i > first;
}

// Z or +hh:mm / -hh:mm, at most 14:00 either way (ISO 8601 as FHIR uses it).
bool read_zone(reader& r, temporal& t) {
    if (r.eat('Z')) {
        t.tz_minutes = 0;
        return true;
    }
    int sign = r.at('+') ? 1 : (r.at('-') ? -1 : 0);
    if (sign == 0) return true;
    ++r.i;
    int h = 0, m = 0;
    if (!r.digits(2, h) || !r.eat(':') || !r.digits(2, m) || m > 59 || h * 60 + m > 14 * 60) return false;
    t.tz_minutes = sign * (h * 60 + m);
    return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic:
// 400-year cycles of 146097 days, with March as the first month so the
// leap day ends the year).
long long days_from_civil(int y, int m, int d) {
    y -= m <= 2 ? 1 : 0;
    const long long era = (y >= 0 ? y : y - 399) / 400;
    const long long yoe = y - era * 400;
    const long long doy = (153LL * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void civil_from_days(long long z, int& y, int& m, int& d) {
    z += 719468;
    const long long era = (z >= 0 ? z : z - 146096) / 146097;
    const long long doe = z - era * 146097;
    const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const long long mp = (5 * doy + 2) / 153;
    d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    y = static_cast<int>(yoe + era * 400 + (m <= 2 ? 1 : 0));
}

// Shifts a value with a zone to UTC. Only called with hour precision or
// finer, so every field it touches is present.
temporal to_utc(temporal t) {
    long long minutes =
        days_from_civil(t.year, t.month, t.day) * 1440 + t.hour * 60 + t.minute - *t.tz_minutes;
    long long days = minutes >= 0 ? minutes / 1440 : (minutes - 1439) / 1440;
    long long rest = minutes - days * 1440;
    civil_from_days(days, t.year, t.month, t.day);
    t.hour = static_cast<int>(rest / 60);
    t.minute = static_cast<int>(rest % 60);
    t.tz_minutes = 0;
    return t;
}

std::array<int, 6> fields(const temporal& t) {
    return {t.year, t.month, t.day, t.hour, t.minute, t.second * 1000 + t.millis};
}

void append(std::string& out, const char* fmt, int v) {
    std::array<char, 16> buf{};
    int n = std::snprintf(buf.data(), buf.size(), fmt, v);
    if (n > 0) out.append(buf.data(), static_cast<std::size_t>(n));
}

void append_zone(std::string& out, int tz) {
    if (tz == 0) {
        out += 'Z';
        return;
    }
    out += tz > 0 ? '+' : '-';
    int a = tz > 0 ? tz : -tz;
    append(out, "%02d", a / 60);
    out += ':';
    append(out, "%02d", a % 60);
}

}  // namespace

temporal_kind infer_kind(std::string_view text) {
    if (text.find('T') != std::string_view::npos) return temporal_kind::date_time;
    if (text.find(':') != std::string_view::npos && text.find('-') == std::string_view::npos)
        return temporal_kind::time;
    return temporal_kind::date;
}

std::optional<temporal> parse_temporal(std::string_view text, temporal_kind kind) {
    if (kind == temporal_kind::infer) kind = infer_kind(text);
    temporal t;
    t.kind = kind;
    reader r{text};
    if (kind == temporal_kind::time) {
        if (!read_time(r, t)) return std::nullopt;
    } else {
        if (!read_date(r, t)) return std::nullopt;
        if (kind == temporal_kind::date_time && r.eat('T') && !r.done()) {
            // FHIRPath allows @2020-01-01T (a dateTime at day precision).
            if (t.prec != precision::day || !read_time(r, t) || !read_zone(r, t)) return std::nullopt;
        }
    }
    if (!r.done()) return std::nullopt;
    return t;
}

std::optional<int> compare(const temporal& a, const temporal& b) {
    if ((a.kind == temporal_kind::time) != (b.kind == temporal_kind::time)) return std::nullopt;
    temporal x = a, y = b;
    bool timed = x.prec >= precision::hour && y.prec >= precision::hour;
    if (timed && x.tz_minutes.has_value() != y.tz_minutes.has_value()) return std::nullopt;
    if (timed && x.tz_minutes && y.tz_minutes && *x.tz_minutes != *y.tz_minutes) {
        // An hour-precision value in a +05:30 zone has no UTC hour.
        if ((x.prec == precision::hour && *x.tz_minutes % 60 != 0) ||
            (y.prec == precision::hour && *y.tz_minutes % 60 != 0)) {
            return std::nullopt;
        }
        x = to_utc(x);
        y = to_utc(y);
    }
    auto fx = fields(x), fy = fields(y);
    auto common = static_cast<std::size_t>(x.prec < y.prec ? x.prec : y.prec);
    for (std::size_t k = 0; k <= common; ++k) {
        if (fx[k] != fy[k]) return fx[k] < fy[k] ? -1 : 1;
    }
    if (x.prec != y.prec) return std::nullopt;
    return 0;
}

std::optional<date_value> boundary(const temporal& t, bool high, std::optional<long long> digits) {
    temporal v = t;
    if (v.prec < precision::month) v.month = high ? 12 : 1;
    if (v.prec < precision::day) v.day = high ? days_in_month(v.year, v.month) : 1;
    if (v.prec < precision::hour) v.hour = high ? 23 : 0;
    if (v.prec < precision::minute) v.minute = high ? 59 : 0;
    if (v.prec < precision::second) v.second = high ? 59 : 0;
    if (!v.has_fraction) v.millis = high ? 999 : 0;

    std::string out;
    if (v.kind == temporal_kind::time) {
        long long d = digits.value_or(9);
        if (d != 2 && d != 4 && d != 6 && d != 9) return std::nullopt;
        append(out, "%02d", v.hour);
        if (d >= 4) append(out, ":%02d", v.minute);
        if (d >= 6) append(out, ":%02d", v.second);
        if (d >= 9) append(out, ".%03d", v.millis);
        return date_value{out, temporal_kind::time};
    }
    bool date_time = v.kind == temporal_kind::date_time;
    long long d = digits.value_or(date_time ? 17 : 8);
    bool ok = d == 4 || d == 6 || d == 8 || (date_time && (d == 10 || d == 12 || d == 14 || d == 17));
    if (!ok) return std::nullopt;
    append(out, "%04d", v.year);
    if (d >= 6) append(out, "-%02d", v.month);
    if (d >= 8) append(out, "-%02d", v.day);
    if (d >= 10) {
        append(out, "T%02d", v.hour);
        if (d >= 12) append(out, ":%02d", v.minute);
        if (d >= 14) append(out, ":%02d", v.second);
        if (d >= 17) append(out, ".%03d", v.millis);
        // The latest zone is +14:00 and the earliest -12:00, so an instant
        // written without a zone starts no earlier than the +14:00 reading
        // and ends no later than the -12:00 one.
        append_zone(out, v.tz_minutes.value_or(high ? -12 * 60 : 14 * 60));
    }
    return date_value{out, date_time ? temporal_kind::date_time : temporal_kind::date};
}

}  // namespace headachemd::views::detail
