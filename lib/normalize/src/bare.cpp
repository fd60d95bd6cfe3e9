// A resource of a type we do not normalize, read for a materialized view:
// only the header (id, meta, patient).
#include "common.hpp"

namespace headachemd::normalize::detail {

bool read_bare(od::object& obj, resource_ctx& ctx, bare_record& out) {
    bool from_patient = false;
    return for_each_field(obj, ctx, path{}, [&](od::raw_json_string key, od::value& v) {
        if (key == "id") return read_id(v, ctx, out.h);
        if (key == "meta") return read_meta(v, ctx, out.h);
        // The patient compartment (FHIR R4 CompartmentDefinition/patient)
        // links most types by `patient` (AllergyIntolerance, Immunization)
        // or `subject` (QuestionnaireResponse, CarePlan, DiagnosticReport).
        // Other links (Appointment's participants, Claim's beneficiary)
        // leave patient_ref empty. Should both be present, `patient` wins:
        // `subject` may name a Group.
        const bool is_patient = key == "patient";
        if (is_patient || key == "subject") {
            if (!is_patient && from_patient) return true;
            reference_view ref;
            if (!read_reference(v, ctx, path{is_patient ? "patient" : "subject"}, ref)) return false;
            if (is_patient) {
                out.h.patient_ref.clear();
                out.h.patient_ref_base.clear();
                ctx.patient_pending = false;
                from_patient = true;
            }
            set_patient_from_subject(ref, out.h, ctx);
        }
        return true;
    });
}

}  // namespace headachemd::normalize::detail
