// Condition → condition_record, with its headache type.
#include "common.hpp"

namespace headachemd::normalize::detail {

bool read_condition(od::object& obj, resource_ctx& ctx, condition_record& out) {
    auto& codings = ctx.s.codings;
    std::string_view text;
    const bool ok = for_each_field(obj, ctx, path{}, [&](od::raw_json_string key, od::value& v) {
        if (key == "id") return read_id(v, ctx, out.h);
        if (key == "meta") return read_meta(v, ctx, out.h);
        if (key == "clinicalStatus")
            return read_first_code(v, ctx, path{"clinicalStatus"}, out.clinical_status);
        if (key == "verificationStatus")
            return read_first_code(v, ctx, path{"verificationStatus"}, out.verification_status);
        if (key == "category") {
            // The first category that carries a code (problem-list-item,
            // encounter-diagnosis, health-concern in the R4 value set).
            const path at{"category"};
            return for_each_element(v, ctx, at, [&](std::size_t, od::value& c) {
                if (out.category) return true;  // simdjson skips the rest unread
                return read_first_code(c, ctx, at, out.category);
            });
        }
        if (key == "code") return read_concept(v, ctx, path{"code"}, codings, text);
        if (key == "subject") {
            reference_view ref;
            if (!read_reference(v, ctx, path{"subject"}, ref)) return false;
            set_patient_from_subject(ref, out.h, ctx);
            return true;
        }
        // onset[x] and abatement[x]: dateTime, Period.start or string. Age
        // and Range carry no date, so they leave the column NULL.
        if (key == "onsetDateTime") return read_text(v, ctx, path{"onsetDateTime"}, out.onset);
        if (key == "onsetPeriod") {
            opt_text end;
            return read_period(v, ctx, path{"onsetPeriod"}, out.onset, end);
        }
        if (key == "onsetString") return read_text(v, ctx, path{"onsetString"}, out.onset);
        if (key == "abatementDateTime") return read_text(v, ctx, path{"abatementDateTime"}, out.abatement);
        if (key == "abatementPeriod") {
            opt_text end;
            return read_period(v, ctx, path{"abatementPeriod"}, out.abatement, end);
        }
        if (key == "abatementString") return read_text(v, ctx, path{"abatementString"}, out.abatement);
        if (key == "recordedDate") return read_text(v, ctx, path{"recordedDate"}, out.recorded_date);
        return true;
    });
    if (!ok) return false;

    out.code_text = text_or_null(text);
    const term::headache_type type = ctx.s.classify.condition(codings, text);
    const term::coding_view* shown = codings.empty() ? nullptr : &codings.front();
    if (type != term::headache_type::none) {
        out.headache_type = std::string(term::to_string(type));
        // The columns show the coding that produced the type (the most
        // specific one when several classify), so an analyst can see why.
        for (const auto& c : codings) {
            if (ctx.s.classify.condition(std::span(&c, 1), {}) == type) {
                shown = &c;
                break;
            }
        }
    }
    set_code(shown, out.code_system, out.code, out.code_display);
    return true;
}

}  // namespace headachemd::normalize::detail
