// MedicationRequest → medication_request_record, and Medication → the index
// entry that resolves medicationReference.
#include "common.hpp"

namespace headachemd::normalize::detail {
namespace {

// Administrations per day for the v3 GTSAbbreviation timing codes
// (http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation), used when
// Timing.repeat does not say.
std::optional<double> per_day_of_timing_code(std::string_view code) {
    struct entry {
        std::string_view code;
        double per_day;
    };
    static constexpr entry table[] = {
        {"QD", 1},    {"BID", 2}, {"TID", 3}, {"QID", 4}, {"AM", 1},       {"PM", 1},
        {"QOD", 0.5}, {"Q4H", 6}, {"Q6H", 4}, {"Q8H", 3}, {"WK", 1.0 / 7}, {"MO", 1.0 / 30},
    };
    for (const auto& e : table)
        if (e.code == code) return e.per_day;
    return std::nullopt;
}

struct timing_facts {
    opt_real frequency, frequency_max, period;
    std::string_view period_unit;
    opt_text code;
};

bool read_timing(od::value& v, resource_ctx& ctx, const path& at, timing_facts& t) {
    return for_each_member(v, ctx, at, [&](od::raw_json_string key, od::value& f) {
        if (key == "repeat") {
            const path rp = at.child("repeat");
            return for_each_member(f, ctx, rp, [&](od::raw_json_string k, od::value& r) {
                // frequency is a positiveInt; read as a number so 2.0 passes.
                if (k == "frequency") return read_number(r, ctx, rp.child("frequency"), t.frequency);
                if (k == "frequencyMax")
                    return read_number(r, ctx, rp.child("frequencyMax"), t.frequency_max);
                if (k == "period") return read_number(r, ctx, rp.child("period"), t.period);
                if (k == "periodUnit") return read_view(r, ctx, rp.child("periodUnit"), t.period_unit);
                return true;
            });
        }
        if (key == "code") return read_first_code(f, ctx, at.child("code"), t.code);
        return true;
    });
}

// R4 Timing.repeat: `frequency` events per `period` `periodUnit`. An absent
// frequency with a period given means once (the element's meaning when
// unstated). Counts administrations only; dose amounts stay separate.
opt_real doses_per_day(const timing_facts& t) {
    if (t.period && *t.period > 0 && !t.period_unit.empty()) {
        const auto days = days_per_unit(t.period_unit);
        if (!days) return std::nullopt;
        return t.frequency.value_or(1.0) / (*t.period * *days);
    }
    if (t.code) return per_day_of_timing_code(*t.code);
    return std::nullopt;
}

// The most administrations a day the timing allows: frequencyMax (else
// frequency, else once) per `period` (R4 Timing.repeat; periodMax is the
// longest interval, so the shortest is `period`): "every 2 hours" is 12 a
// day. Else the timing code (Q4H is 6).
opt_real max_doses_per_day(const timing_facts& t) {
    if (t.period && *t.period > 0 && !t.period_unit.empty()) {
        const auto days = days_per_unit(t.period_unit);
        if (!days) return std::nullopt;
        return t.frequency_max.value_or(t.frequency.value_or(1.0)) / (*t.period * *days);
    }
    if (t.code) return per_day_of_timing_code(*t.code);
    return std::nullopt;
}

// R4 Ratio maxDosePerPeriod: the numerator as value and unit, the
// denominator as a number of days.
bool read_max_dose(od::value& v, resource_ctx& ctx, const path& at,
                   medication_request_record::dosage_facts& d) {
    return for_each_member(v, ctx, at, [&](od::raw_json_string key, od::value& f) {
        if (key == "numerator") {
            quantity_view q;
            if (!read_quantity(f, ctx, at.child("numerator"), q)) return false;
            d.max_value = q.value;
            d.max_unit.assign(q.code.empty() ? q.unit : q.code);
            return true;
        }
        if (key == "denominator") {
            quantity_view q;
            if (!read_quantity(f, ctx, at.child("denominator"), q)) return false;
            auto days = days_per_unit(q.code);
            if (!days) days = days_per_unit(q.unit);
            // A denominator without a value is one of its unit (R4 Quantity).
            if (days) d.max_per_days = q.value.value_or(1.0) * *days;
            return true;
        }
        return true;
    });
}

// dosageInstruction[0]: text, asNeeded[x], route, timing, doseAndRate[0],
// maxDosePerPeriod.
bool read_dosage(od::value& v, resource_ctx& ctx, const path& at, medication_request_record& out) {
    timing_facts timing;
    auto& facts = out.dosage;
    const bool ok = for_each_member(v, ctx, at, [&](od::raw_json_string key, od::value& f) {
        if (key == "text") return read_text(f, ctx, at.child("text"), out.dose_text);
        if (key == "route") {
            std::vector<term::coding_view>& codings = ctx.s.related;
            codings.clear();
            std::string_view text;
            if (!read_concept(f, ctx, at.child("route"), codings, text)) return false;
            facts.route = text_or_null(term::to_string(term::classify_route(codings, text)));
            return true;
        }
        if (key == "maxDosePerPeriod") return read_max_dose(f, ctx, at.child("maxDosePerPeriod"), facts);
        if (key == "timing") return read_timing(f, ctx, at.child("timing"), timing);
        if (key == "asNeededBoolean") return read_bool(f, ctx, at.child("asNeededBoolean"), out.as_needed);
        if (key == "asNeededCodeableConcept") {
            // R4 Dosage.asNeeded[x]: a CodeableConcept is the PRN reason,
            // which implies "as needed".
            out.as_needed = true;
            return true;
        }
        if (key == "doseAndRate") {
            const path dr = at.child("doseAndRate");
            return for_each_element(f, ctx, dr, [&](std::size_t i, od::value& e) {
                if (i != 0) return true;
                return for_each_member(e, ctx, dr, [&](od::raw_json_string k, od::value& d) {
                    if (k == "doseQuantity") {
                        quantity_view q;
                        if (!read_quantity(d, ctx, dr.child("doseQuantity"), q)) return false;
                        if (q.value) {
                            facts.dose_value = q.value;
                            facts.dose_unit.assign(q.code.empty() ? q.unit : q.code);
                        }
                        return true;
                    }
                    if (k == "doseRange") {
                        // The most that may be taken at once: Range.high.
                        const path rg = dr.child("doseRange");
                        return for_each_member(d, ctx, rg, [&](od::raw_json_string rk, od::value& rv) {
                            if (rk != "high") return true;
                            quantity_view q;
                            if (!read_quantity(rv, ctx, rg.child("high"), q)) return false;
                            if (q.value) {
                                facts.dose_value = q.value;
                                facts.dose_unit.assign(q.code.empty() ? q.unit : q.code);
                            }
                            return true;
                        });
                    }
                    return true;
                });
            });
        }
        return true;
    });
    if (!ok) return false;
    out.doses_per_day = doses_per_day(timing);
    facts.max_doses_per_day = max_doses_per_day(timing);
    return true;
}

bool read_dispense(od::value& v, resource_ctx& ctx, const path& at, medication_request_record& out) {
    return for_each_member(v, ctx, at, [&](od::raw_json_string key, od::value& f) {
        if (key == "numberOfRepeatsAllowed")
            return read_integer(f, ctx, at.child("numberOfRepeatsAllowed"), out.refills);
        if (key == "quantity") {
            quantity_view q;
            if (!read_quantity(f, ctx, at.child("quantity"), q)) return false;
            out.quantity = q.value;
            out.quantity_unit = text_or_null(q.unit.empty() ? q.code : q.unit);
            return true;
        }
        if (key == "expectedSupplyDuration") {
            // R4 Duration: prefer the UCUM code, else the unit text.
            quantity_view q;
            if (!read_quantity(f, ctx, at.child("expectedSupplyDuration"), q)) return false;
            auto days = days_per_unit(q.code);
            if (!days) days = days_per_unit(q.unit);
            if (q.value && days) out.days_supply = *q.value * *days;
            return true;
        }
        return true;
    });
}

// R4 Resource.contained: only Medication matters here ("#id" targets).
bool read_contained(od::value& v, resource_ctx& ctx, const path& at) {
    return for_each_element(v, ctx, at, [&](std::size_t, od::value& e) {
        std::string_view type, id, text;
        const std::size_t first = ctx.s.contained_codings.size();
        const bool ok = for_each_member(e, ctx, at, [&](od::raw_json_string key, od::value& f) {
            if (key == "resourceType") return read_view(f, ctx, at.child("resourceType"), type);
            if (key == "id") return read_view(f, ctx, at.child("id"), id);
            if (key == "code") return read_concept(f, ctx, at.child("code"), ctx.s.contained_codings, text);
            return true;
        });
        if (!ok) return false;
        if (type == "Medication" && !id.empty()) {
            ctx.s.contained.push_back({id, first, ctx.s.contained_codings.size() - first, text});
        } else {
            ctx.s.contained_codings.resize(first);  // a Medication.code-like field of another type
        }
        return true;
    });
}

}  // namespace

bool read_medication_request(od::object& obj, resource_ctx& ctx, medication_request_record& out) {
    auto& codings = ctx.s.codings;
    std::string_view text;
    bool has_concept = false;
    reference_view med_ref;
    std::vector<term::coding_view> reason_codings;
    std::string_view reason_text;
    const bool ok = for_each_field(obj, ctx, path{}, [&](od::raw_json_string key, od::value& v) {
        if (key == "id") return read_id(v, ctx, out.h);
        if (key == "meta") return read_meta(v, ctx, out.h);
        if (key == "contained") return read_contained(v, ctx, path{"contained"});
        if (key == "status") return read_text(v, ctx, path{"status"}, out.status);
        if (key == "statusReason")
            return read_concept(v, ctx, path{"statusReason"}, reason_codings, reason_text);
        if (key == "intent") return read_text(v, ctx, path{"intent"}, out.intent);
        if (key == "medicationCodeableConcept") {
            has_concept = true;
            return read_concept(v, ctx, path{"medicationCodeableConcept"}, codings, text);
        }
        if (key == "medicationReference") return read_reference(v, ctx, path{"medicationReference"}, med_ref);
        if (key == "subject") {
            reference_view ref;
            if (!read_reference(v, ctx, path{"subject"}, ref)) return false;
            set_patient_from_subject(ref, out.h, ctx);
            return true;
        }
        if (key == "authoredOn") return read_text(v, ctx, path{"authoredOn"}, out.authored_on);
        if (key == "dosageInstruction") {
            const path at{"dosageInstruction"};
            return for_each_element(v, ctx, at, [&](std::size_t i, od::value& d) {
                return i != 0 || read_dosage(d, ctx, at, out);
            });
        }
        if (key == "dispenseRequest") return read_dispense(v, ctx, path{"dispenseRequest"}, out);
        return true;
    });
    if (!ok) return false;

    // R4 MedicationRequest.statusReason (why it was stopped): HL7's
    // medicationrequest-status-reason codes (sintol = suspected intolerance)
    // or local text. The views read it as documented intolerance.
    for (const auto& c : reason_codings) {
        if (c.code.empty()) continue;
        out.status_reason_code = std::string(c.code);
        if (reason_text.empty()) reason_text = c.display;
        break;
    }
    if (reason_text.empty() && !reason_codings.empty()) reason_text = reason_codings.front().display;
    out.status_reason = text_or_null(reason_text);

    if (has_concept) {
        apply_medication(ctx.s.classify, out, codings, text);
    } else if (!med_ref.reference.empty()) {
        out.medication_reference = std::string(med_ref.reference);
        const parsed_reference p = parse_reference(med_ref.reference);
        const contained_medication* hit = nullptr;
        if (p.kind == parsed_reference::form::contained) {
            for (const auto& c : ctx.s.contained)
                if (c.id == p.id) hit = &c;
        }
        if (hit) {
            apply_medication(ctx.s.classify, out,
                             std::span(ctx.s.contained_codings).subspan(hit->first, hit->count), hit->text);
        } else {
            // Resolved by the document layer from the Medication index; until
            // then (or if it never resolves) the reference's display is the
            // only name there is.
            if (p.kind != parsed_reference::form::contained) ctx.medication_pending = true;
            apply_medication(ctx.s.classify, out, {}, med_ref.display);
        }
    } else {
        // A reference with only a display (R4 Reference allows it), or no
        // medication at all: the dosage columns are still derived.
        apply_medication(ctx.s.classify, out, {}, med_ref.display);
    }
    return true;
}

bool read_medication(od::object& obj, resource_ctx& ctx, medication_info& out) {
    auto& codings = ctx.s.codings;
    std::string_view text;
    const bool ok = for_each_field(obj, ctx, path{}, [&](od::raw_json_string key, od::value& v) {
        if (key == "id") {
            std::string_view id;
            if (!read_view(v, ctx, path{"id"}, id)) return false;
            out.id.assign(id);
            return true;
        }
        if (key == "code") return read_concept(v, ctx, path{"code"}, codings, text);
        return true;
    });
    if (!ok) return false;
    out.codings.reserve(codings.size());
    for (const auto& c : codings)
        out.codings.push_back({std::string(c.system), std::string(c.code), std::string(c.display)});
    out.text.assign(text);
    return true;
}

}  // namespace headachemd::normalize::detail
