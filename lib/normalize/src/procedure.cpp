// Procedure → procedure_record, with its procedure kind.
#include "common.hpp"

namespace headachemd::normalize::detail {

bool read_procedure(od::object& obj, resource_ctx& ctx, procedure_record& out) {
    auto& codings = ctx.s.codings;
    std::string_view text;
    const bool ok = for_each_field(obj, ctx, path{}, [&](od::raw_json_string key, od::value& v) {
        if (key == "id") return read_id(v, ctx, out.h);
        if (key == "meta") return read_meta(v, ctx, out.h);
        if (key == "status") return read_text(v, ctx, path{"status"}, out.status);
        if (key == "code") return read_concept(v, ctx, path{"code"}, codings, text);
        if (key == "subject") {
            reference_view ref;
            if (!read_reference(v, ctx, path{"subject"}, ref)) return false;
            set_patient_from_subject(ref, out.h, ctx);
            return true;
        }
        // performed[x]: dateTime or Period. String, Age and Range name no
        // usable date and leave the columns NULL.
        if (key == "performedDateTime")
            return read_text(v, ctx, path{"performedDateTime"}, out.performed_start);
        if (key == "performedPeriod")
            return read_period(v, ctx, path{"performedPeriod"}, out.performed_start, out.performed_end);
        return true;
    });
    if (!ok) return false;

    // Billing codes (CPT, HCPCS) are what identify an injection procedure.
    set_code(prefer_system(codings, {term::code_system::cpt, term::code_system::hcpcs}), out.code_system,
             out.code, out.code_display);
    out.procedure_kind = std::string(term::to_string(ctx.s.classify.procedure(codings, text)));
    return true;
}

}  // namespace headachemd::normalize::detail
