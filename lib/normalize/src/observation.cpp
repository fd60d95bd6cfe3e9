// Observation → observation_record, with its instrument.
#include "common.hpp"

namespace headachemd::normalize::detail {

namespace {

// value[x] (R4 Observation.value[x]); value_type names the FHIR type
// in snake_case. A key that is not a value[x] is ignored.
bool read_observation_value(od::raw_json_string key, od::value& v, resource_ctx& ctx,
                            observation_record& out) {
    if (key == "valueQuantity") {
        quantity_view q;
        if (!read_quantity(v, ctx, path{"valueQuantity"}, q)) return false;
        out.value_type = "quantity";
        out.value_num = q.value;
        out.value_unit = text_or_null(q.unit.empty() ? q.code : q.unit);
        return true;
    }
    if (key == "valueCodeableConcept") {
        auto& vc = ctx.s.related;
        std::string_view vtext;
        if (!read_concept(v, ctx, path{"valueCodeableConcept"}, vc, vtext)) return false;
        out.value_type = "codeable";
        if (!vc.empty()) {
            out.value_code_system = text_or_null(vc.front().system);
            out.value_code = text_or_null(vc.front().code);
            out.value_string = text_or_null(vc.front().display);
        }
        if (!out.value_string) out.value_string = text_or_null(vtext);
        return true;
    }
    if (key == "valueString") {
        out.value_type = "string";
        return read_text(v, ctx, path{"valueString"}, out.value_string);
    }
    if (key == "valueBoolean") {
        opt_bool b;
        if (!read_bool(v, ctx, path{"valueBoolean"}, b)) return false;
        out.value_type = "boolean";
        if (b) out.value_num = *b ? 1.0 : 0.0;
        return true;
    }
    if (key == "valueInteger") {
        opt_int i;
        if (!read_integer(v, ctx, path{"valueInteger"}, i)) return false;
        out.value_type = "integer";
        if (i) out.value_num = static_cast<double>(*i);
        return true;
    }
    if (key == "valueDateTime") {
        out.value_type = "date_time";
        return read_text(v, ctx, path{"valueDateTime"}, out.value_string);
    }
    if (key == "valueTime") {
        out.value_type = "time";
        return read_text(v, ctx, path{"valueTime"}, out.value_string);
    }
    // Structured values with no single number: kept as their JSON text.
    if (key == "valuePeriod") {
        out.value_type = "period";
        return read_raw_object(v, ctx, path{"valuePeriod"}, out.value_string);
    }
    if (key == "valueRange") {
        out.value_type = "range";
        return read_raw_object(v, ctx, path{"valueRange"}, out.value_string);
    }
    if (key == "valueRatio") {
        out.value_type = "ratio";
        return read_raw_object(v, ctx, path{"valueRatio"}, out.value_string);
    }
    if (key == "valueSampledData") {
        out.value_type = "sampled_data";
        return read_raw_object(v, ctx, path{"valueSampledData"}, out.value_string);
    }
    return true;
}

}  // namespace

bool read_observation(od::object& obj, resource_ctx& ctx, observation_record& out) {
    auto& codings = ctx.s.codings;
    std::string_view text;
    const bool ok = for_each_field(obj, ctx, path{}, [&](od::raw_json_string key, od::value& v) {
        if (key == "id") return read_id(v, ctx, out.h);
        if (key == "meta") return read_meta(v, ctx, out.h);
        if (key == "status") return read_text(v, ctx, path{"status"}, out.status);
        if (key == "category") {
            const path at{"category"};
            return for_each_element(v, ctx, at, [&](std::size_t, od::value& c) {
                if (out.category) return true;
                return read_first_code(c, ctx, at, out.category);
            });
        }
        if (key == "code") return read_concept(v, ctx, path{"code"}, codings, text);
        if (key == "subject") {
            // R4 Observation.subject: Patient | Group | Device | Location;
            // only a Patient gives the row a patient.
            reference_view ref;
            if (!read_reference(v, ctx, path{"subject"}, ref)) return false;
            set_patient_from_subject(ref, out.h, ctx);
            return true;
        }
        // effective[x]: dateTime, Period (its start) or instant. Timing has
        // no single date and leaves the column NULL.
        if (key == "effectiveDateTime") return read_text(v, ctx, path{"effectiveDateTime"}, out.effective_at);
        if (key == "effectivePeriod") {
            opt_text end;
            return read_period(v, ctx, path{"effectivePeriod"}, out.effective_at, end);
        }
        if (key == "effectiveInstant") return read_text(v, ctx, path{"effectiveInstant"}, out.effective_at);

        return read_observation_value(key, v, ctx, out);
    });
    if (!ok) return false;

    set_code(prefer_system(codings, {term::code_system::loinc}), out.code_system, out.code, out.code_display);
    out.instrument = std::string(term::to_string(ctx.s.classify.observation(codings, text)));
    return true;
}

}  // namespace headachemd::normalize::detail
