// Shared readers for FHIR datatypes and the small value helpers.
#include <algorithm>
#include <array>
#include <cmath>

#include "common.hpp"
#include "headachemd/core/json.hpp"
#include "headachemd/core/text.hpp"

namespace headachemd::normalize::detail {

using simdjson::error_code;

// --- resource types ---------------------------------------------------------

resource_kind kind_of(std::string_view t) {
    if (t == "Observation") return resource_kind::observation;
    if (t == "Condition") return resource_kind::condition;
    if (t == "Encounter") return resource_kind::encounter;
    if (t == "Procedure") return resource_kind::procedure;
    if (t == "MedicationRequest") return resource_kind::medication_request;
    if (t == "Medication") return resource_kind::medication;
    if (t == "Patient") return resource_kind::patient;
    if (t == "Appointment") return resource_kind::appointment;
    return resource_kind::other;
}

std::string_view json_type_name(od::json_type t) {
    switch (t) {
        case od::json_type::array:
            return "an array";
        case od::json_type::object:
            return "an object";
        case od::json_type::number:
            return "a number";
        case od::json_type::string:
            return "a string";
        case od::json_type::boolean:
            return "a boolean";
        case od::json_type::null:
            return "null";
    }
    return "something else";
}

// --- paths and failures -----------------------------------------------------

std::string path::str() const {
    std::array<std::string_view, 16> parts;
    std::size_t n = 0;
    for (const path* p = this; p && n < parts.size(); p = p->parent)
        if (!p->name.empty()) parts[n++] = p->name;
    std::string out;
    for (std::size_t i = n; i-- > 0;) {
        out += parts[i];
        if (i) out += '.';
    }
    return out;
}

namespace {

// The token text of a scalar, trimmed and shortened for a message.
std::string token_text(od::value& v) { return shown_in_message(trim_json_space(v.raw_json_token()), 40); }

}  // namespace

bool resource_ctx::fail(const path& at, std::string_view message) {
    if (failed_) return false;
    failed_ = true;
    failure_ = at.str();
    if (!failure_.empty()) failure_ += ": ";  // no path: the resource as a whole
    failure_ += message;
    return false;
}

bool resource_ctx::fail(const path& at, error_code e, od::value* v, std::string_view expected) {
    if (failed_) return false;
    std::string msg;
    if (e == simdjson::INCORRECT_TYPE && v && !expected.empty()) {
        od::json_type t{};
        msg = "expected ";
        msg += expected;
        if (!v->type().get(t)) {
            msg += ", found ";
            msg += json_type_name(t);
            if (t == od::json_type::number) msg += " " + token_text(*v);
        }
    } else if (e == simdjson::NUMBER_ERROR && v) {
        // R4 decimal has no fixed range, but a double cannot hold e.g. 1e999;
        // storing a clamped or infinite value would invent data.
        msg = "number " + token_text(*v) + " is out of range or malformed";
    } else {
        msg = std::string("malformed JSON: ") + simdjson::error_message(e);
    }
    return fail(at, msg);
}

// --- containers -------------------------------------------------------------

bool open_object(od::value& v, resource_ctx& ctx, const path& at, od::object& out, bool& present) {
    present = false;
    const error_code e = v.get_object().get(out);
    if (!e) {
        present = true;
        return true;
    }
    if (e == simdjson::INCORRECT_TYPE) {
        bool null = false;
        if (!v.is_null().get(null) && null) return true;
        return ctx.fail(at, e, &v, "an object");
    }
    return ctx.fail(at, e);
}

bool open_array(od::value& v, resource_ctx& ctx, const path& at, od::array& out, bool& present) {
    present = false;
    const error_code e = v.get_array().get(out);
    if (!e) {
        present = true;
        return true;
    }
    if (e == simdjson::INCORRECT_TYPE) {
        bool null = false;
        if (!v.is_null().get(null) && null) return true;
        return ctx.fail(at, e, &v, "an array");
    }
    return ctx.fail(at, e);
}

// --- primitives ---------------------------------------------------------------

namespace {

// Shared tail of the scalar readers: null means absent, anything else is a
// failure naming the expected type.
bool absent_or_fail(od::value& v, resource_ctx& ctx, const path& at, error_code e,
                    std::string_view expected) {
    if (e == simdjson::INCORRECT_TYPE) {
        bool null = false;
        if (!v.is_null().get(null) && null) return true;
        return ctx.fail(at, e, &v, expected);
    }
    return ctx.fail(at, e, &v, expected);
}

}  // namespace

bool read_view(od::value& v, resource_ctx& ctx, const path& at, std::string_view& out) {
    const error_code e = v.get_string().get(out);
    if (!e) return true;
    out = {};
    return absent_or_fail(v, ctx, at, e, "a string");
}

bool read_text(od::value& v, resource_ctx& ctx, const path& at, opt_text& out) {
    std::string_view s;
    if (!read_view(v, ctx, at, s)) return false;
    out = text_or_null(s);
    return true;
}

bool read_number(od::value& v, resource_ctx& ctx, const path& at, opt_real& out) {
    double d = 0;
    const error_code e = v.get_double().get(d);
    if (!e) {
        out = d;
        return true;
    }
    return absent_or_fail(v, ctx, at, e, "a number");
}

bool read_integer(od::value& v, resource_ctx& ctx, const path& at, opt_int& out) {
    std::int64_t i = 0;
    error_code e = v.get_int64().get(i);
    if (!e) {
        out = i;
        return true;
    }
    if (e == simdjson::INCORRECT_TYPE) {
        // Some servers write integer elements as 2.0; accept an integral
        // decimal, refuse a fraction or a number beyond int64.
        double d = 0;
        if (!v.get_double().get(d) && std::trunc(d) == d && std::fabs(d) < 9.0e18) {
            out = static_cast<std::int64_t>(d);
            return true;
        }
        od::json_type t{};
        if (!v.type().get(t) && t == od::json_type::number)
            return ctx.fail(at, "expected an integer, found " + token_text(v));
    }
    return absent_or_fail(v, ctx, at, e, "an integer");
}

bool read_bool(od::value& v, resource_ctx& ctx, const path& at, opt_bool& out) {
    bool b = false;
    const error_code e = v.get_bool().get(b);
    if (!e) {
        out = b;
        return true;
    }
    return absent_or_fail(v, ctx, at, e, "true or false");
}

// --- datatypes ---------------------------------------------------------------

bool read_coding(od::value& v, resource_ctx& ctx, const path& at, term::coding_view& out) {
    return for_each_member(v, ctx, at, [&](od::raw_json_string key, od::value& f) {
        if (key == "system") return read_view(f, ctx, at.child("system"), out.system);
        if (key == "code") return read_view(f, ctx, at.child("code"), out.code);
        if (key == "display") return read_view(f, ctx, at.child("display"), out.display);
        return true;
    });
}

bool read_concept(od::value& v, resource_ctx& ctx, const path& at, std::vector<term::coding_view>& codings,
                  std::string_view& text) {
    return for_each_member(v, ctx, at, [&](od::raw_json_string key, od::value& f) {
        if (key == "coding") {
            const path p = at.child("coding");
            return for_each_element(f, ctx, p, [&](std::size_t, od::value& c) {
                term::coding_view cv;
                if (!read_coding(c, ctx, p, cv)) return false;
                codings.push_back(cv);
                return true;
            });
        }
        if (key == "text") return read_view(f, ctx, at.child("text"), text);
        return true;
    });
}

bool read_first_code(od::value& v, resource_ctx& ctx, const path& at, opt_text& out) {
    auto& tmp = ctx.s.tmp;
    tmp.clear();
    std::string_view text;
    if (!read_concept(v, ctx, at, tmp, text)) return false;
    for (const auto& c : tmp) {
        if (!c.code.empty()) {
            out = std::string(c.code);
            break;
        }
    }
    return true;
}

bool read_reference(od::value& v, resource_ctx& ctx, const path& at, reference_view& out) {
    return for_each_member(v, ctx, at, [&](od::raw_json_string key, od::value& f) {
        if (key == "reference") return read_view(f, ctx, at.child("reference"), out.reference);
        if (key == "type") return read_view(f, ctx, at.child("type"), out.type);
        if (key == "display") return read_view(f, ctx, at.child("display"), out.display);
        return true;
    });
}

bool read_period(od::value& v, resource_ctx& ctx, const path& at, opt_text& start, opt_text& end) {
    return for_each_member(v, ctx, at, [&](od::raw_json_string key, od::value& f) {
        if (key == "start") return read_text(f, ctx, at.child("start"), start);
        if (key == "end") return read_text(f, ctx, at.child("end"), end);
        return true;
    });
}

bool read_quantity(od::value& v, resource_ctx& ctx, const path& at, quantity_view& out) {
    return for_each_member(v, ctx, at, [&](od::raw_json_string key, od::value& f) {
        if (key == "value") return read_number(f, ctx, at.child("value"), out.value);
        if (key == "unit") return read_view(f, ctx, at.child("unit"), out.unit);
        if (key == "code") return read_view(f, ctx, at.child("code"), out.code);
        return true;
    });
}

bool read_id(od::value& v, resource_ctx& ctx, header& h) {
    std::string_view id;
    if (!read_view(v, ctx, path{"id"}, id)) return false;
    h.id.assign(id);
    return true;
}

bool read_meta(od::value& v, resource_ctx& ctx, header& h) {
    const path at{"meta"};
    return for_each_member(v, ctx, at, [&](od::raw_json_string key, od::value& f) {
        if (key == "versionId") return read_text(f, ctx, at.child("versionId"), h.version_id);
        if (key == "lastUpdated") return read_text(f, ctx, at.child("lastUpdated"), h.last_updated);
        return true;
    });
}

bool read_raw_object(od::value& v, resource_ctx& ctx, const path& at, opt_text& out) {
    od::object obj;
    bool present = false;
    if (!open_object(v, ctx, at, obj, present)) return false;
    if (!present) return true;
    std::string_view raw;
    if (const error_code e = obj.raw_json().get(raw)) return ctx.fail(at, e);
    out = std::string(trim_json_space(raw));
    return true;
}

// --- codings -----------------------------------------------------------------

const term::coding_view* prefer_system(std::span<const term::coding_view> codings,
                                       std::initializer_list<term::code_system> want) {
    if (codings.empty()) return nullptr;
    for (const auto& c : codings) {
        const term::code_system sys = term::system_from_uri(c.system);
        if (std::find(want.begin(), want.end(), sys) != want.end()) return &c;
    }
    return &codings.front();
}

opt_text text_or_null(std::string_view s) {
    if (s.empty()) return std::nullopt;
    return std::string(s);
}

void set_code(const term::coding_view* c, opt_text& system, opt_text& code, opt_text& display) {
    if (!c) return;
    system = text_or_null(c->system);
    code = text_or_null(c->code);
    display = text_or_null(c->display);
}

void add_text(std::vector<std::string_view>& texts, std::string_view text,
              std::span<const term::coding_view> concept_codings) {
    if (text.empty()) return;
    for (const auto& c : concept_codings)
        if (c.display == text) return;
    texts.push_back(text);
}

namespace {

void append_json_string(std::string& out, std::string_view s) {
    if (s.empty()) {
        out += "null";
        return;
    }
    headachemd::append_json_string(out, s);  // UTF-8 passes through: simdjson validated it
}

}  // namespace

void append_codings_json(std::string& out, std::span<const term::coding_view> codings) {
    out += '[';
    bool first = true;
    for (const auto& c : codings) {
        if (!first) out += ',';
        first = false;
        out += "{\"system\":";
        append_json_string(out, c.system);
        out += ",\"code\":";
        append_json_string(out, c.code);
        out += ",\"display\":";
        append_json_string(out, c.display);
        out += '}';
    }
    out += ']';
}

// --- references ---------------------------------------------------------------

parsed_reference parse_reference(std::string_view ref) {
    using form = parsed_reference::form;
    parsed_reference out;
    if (ref.empty()) return out;
    if (ref.front() == '#') {
        out.kind = form::contained;
        out.id = ref.substr(1);
        return out;
    }
    // R4 Bundle.entry.fullUrl: urn:uuid / urn:oid identify a resource that
    // has no server URL yet (a transaction); only the Bundle can resolve it.
    for (std::string_view prefix : {std::string_view("urn:uuid:"), std::string_view("urn:oid:")}) {
        if (ref.substr(0, prefix.size()) == prefix) {
            out.kind = form::urn;
            out.id = ref.substr(prefix.size());
            return out;
        }
    }
    // A conditional reference ("Patient?identifier=…") names no id.
    if (ref.find('?') != std::string_view::npos) return out;
    // R4 §2.3.0: a literal reference is [base/]Type/id[/_history/vid].
    if (const auto h = ref.find("/_history/"); h != std::string_view::npos) ref = ref.substr(0, h);
    while (!ref.empty() && ref.back() == '/') ref.remove_suffix(1);
    const auto slash = ref.rfind('/');
    if (slash == std::string_view::npos || slash + 1 == ref.size()) return out;
    const std::string_view before = ref.substr(0, slash);
    const auto slash2 = before.rfind('/');
    const std::string_view type = slash2 == std::string_view::npos ? before : before.substr(slash2 + 1);
    if (!is_r4_resource_type(type)) return out;
    out.kind = form::literal;
    out.type = type;
    out.id = ref.substr(slash + 1);
    if (slash2 != std::string_view::npos) out.base = before.substr(0, slash2);
    return out;
}

void set_patient_from_subject(const reference_view& ref, header& h, resource_ctx& ctx) {
    const parsed_reference p = parse_reference(ref.reference);
    switch (p.kind) {
        case parsed_reference::form::literal:
            // Group, Device, Location subjects have no patient.
            if (p.type == "Patient") {
                h.patient_ref.assign(p.id);
                h.patient_ref_base.assign(p.base);
            }
            break;
        case parsed_reference::form::urn:
            // Resolved against the Bundle's fullUrls once all are known;
            // Reference.type, when sent, already rules out non-patients.
            if (ref.type.empty() || ref.type == "Patient") {
                h.patient_ref.assign(ref.reference);
                ctx.patient_pending = true;
            }
            break;
        case parsed_reference::form::contained:
        case parsed_reference::form::none:
            break;
    }
}

// --- values ---------------------------------------------------------------------

namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar.
std::int64_t days_from_civil(std::int64_t y, int m, int d) {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const std::int64_t yoe = y - era * 400;
    const std::int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

}  // namespace

std::optional<double> days_per_unit(std::string_view unit) {
    struct entry {
        std::string_view name;
        double days;
    };
    // UCUM codes first, then the English names EHRs put in Quantity.unit.
    static constexpr entry table[] = {
        {"d", 1},
        {"day", 1},
        {"days", 1},
        {"wk", 7},
        {"week", 7},
        {"weeks", 7},
        {"mo", 30},
        {"month", 30},
        {"months", 30},
        {"h", 1.0 / 24},
        {"hr", 1.0 / 24},
        {"hour", 1.0 / 24},
        {"hours", 1.0 / 24},
        {"min", 1.0 / 1440},
        {"minute", 1.0 / 1440},
        {"minutes", 1.0 / 1440},
        {"s", 1.0 / 86400},
        {"second", 1.0 / 86400},
        {"seconds", 1.0 / 86400},
        {"a", 365},
        {"yr", 365},
        {"year", 365},
        {"years", 365},
    };
    for (const auto& e : table)
        if (iequals(unit, e.name)) return e.days;
    return std::nullopt;
}

std::optional<std::int64_t> parse_date_time(std::string_view s) {
    int y = 0, mo = 0, d = 0, hh = 0, mm = 0, ss = 0;
    if (!digits(s, 0, 4, y) || s.size() < 16 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
        !digits(s, 8, 2, d) || s[10] != 'T' || !digits(s, 11, 2, hh) || s[13] != ':' || !digits(s, 14, 2, mm))
        return std::nullopt;
    std::size_t pos = 16;
    if (pos < s.size() && s[pos] == ':') {
        if (!digits(s, pos + 1, 2, ss)) return std::nullopt;
        pos += 3;
        if (pos < s.size() && s[pos] == '.') {
            ++pos;
            while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
        }
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 24 || mm > 59 || ss > 60) return std::nullopt;
    std::int64_t offset = 0;
    if (pos < s.size()) {
        if (s[pos] == 'Z') {
            ++pos;
        } else if (s[pos] == '+' || s[pos] == '-') {
            int oh = 0, om = 0;
            if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
                !digits(s, pos + 4, 2, om))
                return std::nullopt;
            offset = (oh * 60 + om) * 60 * (s[pos] == '-' ? -1 : 1);
            pos += 6;
        }
        if (pos != s.size()) return std::nullopt;
    }
    return days_from_civil(y, mo, d) * 86400 + hh * 3600 + mm * 60 + ss - offset;
}

opt_int year_of(std::string_view date) {
    int y = 0;
    if (!digits(date, 0, 4, y)) return std::nullopt;
    if (date.size() > 4 && date[4] != '-') return std::nullopt;
    return y;
}

std::string_view trim_json_space(std::string_view s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

std::string shown_in_message(std::string_view s, std::size_t max) {
    if (s.size() <= max) return std::string(s);
    std::size_t n = max;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // a continuation byte
    return std::string(s.substr(0, n)) + "…";
}

// --- medications ----------------------------------------------------------------

namespace {

// mg in one `unit` of a mass unit (UCUM mg, g, ug, mcg and their names);
// nullopt for anything else (tablets, sprays, mL).
std::optional<double> mg_per_unit(std::string_view unit) {
    struct entry {
        std::string_view unit;
        double mg;
    };
    static constexpr entry table[] = {
        {"mg", 1},       {"milligram", 1}, {"milligrams", 1}, {"g", 1000},          {"gram", 1000},
        {"grams", 1000}, {"ug", 0.001},    {"mcg", 0.001},    {"microgram", 0.001}, {"micrograms", 0.001},
    };
    for (const auto& e : table) {
        if (unit.size() != e.unit.size()) continue;
        bool same = true;
        for (std::size_t i = 0; i < unit.size() && same; ++i) {
            const char c =
                (unit[i] >= 'A' && unit[i] <= 'Z') ? static_cast<char>(unit[i] - 'A' + 'a') : unit[i];
            same = c == e.unit[i];
        }
        if (same) return e.mg;
    }
    return std::nullopt;
}

// An amount of the medication in units (tablets, sprays): as given, or
// from a mass through the strength; nullopt when a mass meets no strength.
opt_real as_units(opt_real value, std::string_view unit, opt_real strength_mg) {
    // A zero, negative or unbounded amount is not a dose: unknown.
    if (!value || !(*value > 0) || !std::isfinite(*value)) return std::nullopt;
    const auto mg = mg_per_unit(unit);
    if (!mg) return value;
    if (!strength_mg || *strength_mg <= 0) return std::nullopt;
    return *value * *mg / *strength_mg;
}

}  // namespace

void apply_medication(term::memo& classify, medication_request_record& r,
                      std::span<const term::coding_view> codings, std::string_view text) {
    set_code(prefer_system(codings, {term::code_system::rxnorm}), r.medication_system, r.medication_code,
             r.medication_display);
    // A code with no display (or no coding at all) still has a name in text.
    if (!r.medication_display) r.medication_display = text_or_null(text);
    term::medication_class mc = classify.medication(codings, text);

    // The dosage's route, else the one the dose form implies; then the
    // route exclusions (eye, ear and skin preparations, non-oral timolol).
    term::route route = mc.form_route;
    if (r.dosage.route) {
        for (const auto candidate :
             {term::route::oral, term::route::ophthalmic, term::route::otic, term::route::topical,
              term::route::nasal, term::route::subcutaneous, term::route::intramuscular,
              term::route::intravenous, term::route::rectal, term::route::transdermal}) {
            if (term::to_string(candidate) == *r.dosage.route) route = candidate;
        }
    }
    mc = term::for_route(mc, route);
    r.route = text_or_null(term::to_string(route));

    r.ingredient = text_or_null(mc.ingredient);
    r.drug_class = text_or_null(term::to_string(mc.cls));
    r.therapy_role = std::string(term::to_string(mc.role));
    r.contains_opioid = mc.contains_opioid;
    r.contains_butalbital = mc.contains_butalbital;
    r.strength_mg = mc.strength_mg;

    // Units per administration, and the most units a day the order allows:
    // maxDosePerPeriod (R4 Dosage, a Ratio) and, for an as-needed order, the
    // shortest interval of its timing times the units per dose (R4
    // Timing.repeat); both are limits the order sets, so the smaller holds.
    // Nothing is assumed: without a dose there is no timing maximum.
    const auto& d = r.dosage;
    r.dose_quantity = as_units(d.dose_value, d.dose_unit, r.strength_mg);
    r.max_units_per_day.reset();
    if (d.max_value && d.max_per_days && *d.max_per_days > 0) {
        if (const auto units = as_units(d.max_value, d.max_unit, r.strength_mg)) {
            r.max_units_per_day = *units / *d.max_per_days;
        }
    }
    if (r.as_needed.value_or(false) && d.max_doses_per_day && r.dose_quantity) {
        const double by_timing = *d.max_doses_per_day * *r.dose_quantity;
        if (!r.max_units_per_day || by_timing < *r.max_units_per_day) r.max_units_per_day = by_timing;
    }
    if (r.max_units_per_day && !(std::isfinite(*r.max_units_per_day) && *r.max_units_per_day > 0)) {
        r.max_units_per_day.reset();
    }
    if (r.dose_quantity && !std::isfinite(*r.dose_quantity)) r.dose_quantity.reset();
}

}  // namespace headachemd::normalize::detail
