// Encounter → encounter_record.
#include "common.hpp"

namespace headachemd::normalize::detail {

bool read_encounter(od::object& obj, resource_ctx& ctx, encounter_record& out) {
    auto& related = ctx.s.related;  // type and reasonCode codings
    auto& reasons = ctx.s.codings;  // reasonCode codings only, for reason_codes
    auto& texts = ctx.s.texts;
    const bool ok = for_each_field(obj, ctx, path{}, [&](od::raw_json_string key, od::value& v) {
        if (key == "id") return read_id(v, ctx, out.h);
        if (key == "meta") return read_meta(v, ctx, out.h);
        if (key == "status") return read_text(v, ctx, path{"status"}, out.status);
        if (key == "class") {
            // R4 Encounter.class is a Coding (v3 ActEncounterCode: AMB, IMP, …).
            term::coding_view c;
            if (!read_coding(v, ctx, path{"class"}, c)) return false;
            out.class_code = text_or_null(c.code);
            return true;
        }
        if (key == "type") {
            const path at{"type"};
            return for_each_element(v, ctx, at, [&](std::size_t i, od::value& c) {
                const std::size_t first = related.size();
                std::string_view text;
                if (!read_concept(c, ctx, at, related, text)) return false;
                if (i == 0 && related.size() > first) {
                    out.type_code = text_or_null(related[first].code);
                    out.type_display = text_or_null(related[first].display);
                }
                if (i == 0 && !out.type_display) out.type_display = text_or_null(text);
                add_text(texts, text, std::span(related).subspan(first));
                return true;
            });
        }
        if (key == "subject") {
            reference_view ref;
            if (!read_reference(v, ctx, path{"subject"}, ref)) return false;
            set_patient_from_subject(ref, out.h, ctx);
            return true;
        }
        if (key == "period") return read_period(v, ctx, path{"period"}, out.period_start, out.period_end);
        if (key == "reasonCode") {
            const path at{"reasonCode"};
            return for_each_element(v, ctx, at, [&](std::size_t, od::value& c) {
                const std::size_t first = reasons.size();
                std::string_view text;
                if (!read_concept(c, ctx, at, reasons, text)) return false;
                add_text(texts, text, std::span(reasons).subspan(first));
                return true;
            });
        }
        return true;
    });
    if (!ok) return false;

    if (!reasons.empty()) {
        append_codings_json(ctx.s.json, reasons);
        out.reason_codes = ctx.s.json;
    }
    related.insert(related.end(), reasons.begin(), reasons.end());
    bool headache = ctx.s.classify.headache_related(related, {});
    for (std::size_t i = 0; !headache && i < texts.size(); ++i)
        headache = ctx.s.classify.headache_related({}, texts[i]);
    out.is_headache_related = headache;
    return true;
}

}  // namespace headachemd::normalize::detail
