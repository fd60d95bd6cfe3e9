// Appointment → appointment_record.
#include "common.hpp"

namespace headachemd::normalize::detail {
namespace {

// "code (or text) of the first coding" for serviceType / appointmentType.
void first_code_or_text(std::span<const term::coding_view> codings, std::string_view text, opt_text& out) {
    if (out) return;
    for (const auto& c : codings) {
        if (!c.code.empty()) {
            out = std::string(c.code);
            return;
        }
    }
    out = text_or_null(text);
}

// R4 Appointment.participant.actor: Reference(Patient | Practitioner
// | … | Location); the patient is the first actor that is one.
bool read_participant_actors(od::value& v, resource_ctx& ctx) {
    const path at{"participant"};
    return for_each_element(v, ctx, at, [&](std::size_t, od::value& p) {
        return for_each_member(p, ctx, at, [&](od::raw_json_string k, od::value& a) {
            if (k != "actor") return true;
            reference_view ref;
            if (!read_reference(a, ctx, at.child("actor"), ref)) return false;
            const parsed_reference pr = parse_reference(ref.reference);
            const bool patient_literal = pr.kind == parsed_reference::form::literal && pr.type == "Patient";
            const bool urn =
                pr.kind == parsed_reference::form::urn && (ref.type.empty() || ref.type == "Patient");
            if (patient_literal || urn)
                ctx.actors.push_back({std::string(ref.reference), ref.type == "Patient"});
            return true;
        });
    });
}

// minutesDuration when given, else the whole minutes from start to end.
void set_minutes(const opt_int& minutes_duration, appointment_record& out) {
    if (minutes_duration) {
        out.minutes = minutes_duration;
    } else if (out.start && out.end) {
        const auto s = parse_date_time(*out.start);
        const auto e = parse_date_time(*out.end);
        if (s && e && *e >= *s) out.minutes = (*e - *s) / 60;
    }
}

// The first actor decides when it is a literal Patient reference;
// otherwise the candidates wait for the Bundle's fullUrls.
void resolve_patient_from_actors(resource_ctx& ctx, appointment_record& out) {
    if (!ctx.actors.empty()) {
        const parsed_reference first = parse_reference(ctx.actors.front().reference);
        if (first.kind == parsed_reference::form::literal) {
            out.h.patient_ref.assign(first.id);
            out.h.patient_ref_base.assign(first.base);
            ctx.actors.clear();
        } else {
            ctx.patient_pending = true;
        }
    }
}

}  // namespace

bool read_appointment(od::object& obj, resource_ctx& ctx, appointment_record& out) {
    auto& related = ctx.s.related;  // serviceType, appointmentType, reasonCode codings
    auto& reasons = ctx.s.codings;  // reasonCode codings only, for reason_codes
    auto& texts = ctx.s.texts;
    opt_int minutes_duration;
    const bool ok = for_each_field(obj, ctx, path{}, [&](od::raw_json_string key, od::value& v) {
        if (key == "id") return read_id(v, ctx, out.h);
        if (key == "meta") return read_meta(v, ctx, out.h);
        if (key == "status") return read_text(v, ctx, path{"status"}, out.status);
        if (key == "serviceType") {
            const path at{"serviceType"};
            return for_each_element(v, ctx, at, [&](std::size_t, od::value& c) {
                const std::size_t first = related.size();
                std::string_view text;
                if (!read_concept(c, ctx, at, related, text)) return false;
                first_code_or_text(std::span(related).subspan(first), text, out.service_type);
                add_text(texts, text, std::span(related).subspan(first));
                return true;
            });
        }
        if (key == "appointmentType") {
            const std::size_t first = related.size();
            std::string_view text;
            if (!read_concept(v, ctx, path{"appointmentType"}, related, text)) return false;
            first_code_or_text(std::span(related).subspan(first), text, out.appointment_type);
            add_text(texts, text, std::span(related).subspan(first));
            return true;
        }
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
        if (key == "description" || key == "comment") {
            std::string_view text;
            if (!read_view(v, ctx, path{key == "comment" ? "comment" : "description"}, text)) return false;
            if (!text.empty()) texts.push_back(text);
            return true;
        }
        if (key == "start") return read_text(v, ctx, path{"start"}, out.start);
        if (key == "end") return read_text(v, ctx, path{"end"}, out.end);
        if (key == "minutesDuration") return read_integer(v, ctx, path{"minutesDuration"}, minutes_duration);
        if (key == "participant") return read_participant_actors(v, ctx);
        return true;
    });
    if (!ok) return false;

    set_minutes(minutes_duration, out);

    if (!reasons.empty()) {
        append_codings_json(ctx.s.json, reasons);
        out.reason_codes = ctx.s.json;
    }

    related.insert(related.end(), reasons.begin(), reasons.end());
    bool headache = ctx.s.classify.headache_related(related, {});
    for (std::size_t i = 0; !headache && i < texts.size(); ++i)
        headache = ctx.s.classify.headache_related({}, texts[i]);
    out.is_headache_related = headache;

    resolve_patient_from_actors(ctx, out);
    return true;
}

}  // namespace headachemd::normalize::detail
