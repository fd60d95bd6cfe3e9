// Patient → patient_record.
//
// Privacy ([privacy] identifiers = "none", DESIGN.md): only the birth year,
// sex and death are read. name, telecom, address, identifier, contact and
// photo are never looked at: simdjson skips them unread and no copy of them
// exists anywhere but in the caller's input buffer (and in header::raw when
// the operator turned store_raw on).
#include "common.hpp"

namespace headachemd::normalize::detail {

bool read_patient(od::object& obj, resource_ctx& ctx, patient_record& out) {
    return for_each_field(obj, ctx, path{}, [&](od::raw_json_string key, od::value& v) {
        if (key == "id") return read_id(v, ctx, out.h);
        if (key == "meta") return read_meta(v, ctx, out.h);
        if (key == "gender") return read_text(v, ctx, path{"gender"}, out.sex);
        if (key == "birthDate") {
            std::string_view date;
            if (!read_view(v, ctx, path{"birthDate"}, date)) return false;
            // R4 date: YYYY, YYYY-MM or YYYY-MM-DD; only the year is kept.
            out.birth_year = year_of(date);
            return true;
        }
        if (key == "deceasedBoolean") return read_bool(v, ctx, path{"deceasedBoolean"}, out.deceased);
        if (key == "deceasedDateTime") {
            if (!read_text(v, ctx, path{"deceasedDateTime"}, out.deceased_at)) return false;
            if (out.deceased_at) out.deceased = true;  // R4 Patient.deceased[x]: a date means deceased
            return true;
        }
        return true;
    });
}

}  // namespace headachemd::normalize::detail
