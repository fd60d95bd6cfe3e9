#include "headachemd/sync/enroll_report.hpp"

#include <fmt/format.h>

namespace headachemd::sync {

enroll_report describe_outcome(const enrollment_outcome& o) {
    enroll_report r;
    auto& m = r.messages;
    if (!o.audit_error.empty()) m.push_back({message_target::log_error, "audit log: " + o.audit_error});
    if (o.ok) {
        r.end = enroll_end::ok;
        m.push_back(
            {message_target::log_info,
             fmt::format("patient {} enrolled at {} by browser authorization", o.patient_key, o.ehr)});
        m.push_back({message_target::out,
                     fmt::format("Enrolled {} at {}. The next sync pulls their data (a running daemon within "
                                 "15 minutes, or at once after `systemctl reload headachemd-sync`).\n",
                                 o.patient_key, o.ehr)});
        if (!o.not_granted.empty()) {
            std::string list;
            for (const auto& s : o.not_granted) list += (list.empty() ? "" : " ") + s;
            m.push_back({message_target::log_warn,
                         fmt::format("patient {}: the EHR did not grant: {}", o.patient_key, list)});
            m.push_back({message_target::out, "Not granted (these types will not sync): " + list + "\n"});
        }
        return r;
    }
    r.end = enroll_end::data_error;
    m.push_back({message_target::log_error,
                 fmt::format("enrollment{}{} failed: {}", o.patient_key.empty() ? "" : " of ", o.patient_key,
                             o.headline)});
    std::string err = o.headline + "\n" + o.explanation + "\n";
    if (!o.raw_error.empty()) err += "EHR said: " + o.raw_error + "\n";
    m.push_back({message_target::err, std::move(err)});
    return r;
}

enroll_report describe_import(const import_outcome& imported, std::string_view token_file,
                              const config::patient_settings& patient) {
    const auto fail = [](enroll_end end, std::string text) {
        return enroll_report{end, {{message_target::log_error, std::move(text)}}};
    };
    switch (imported.status) {
        case import_status::imported:
            break;
        case import_status::not_a_token:
            return fail(enroll_end::data_error,
                        fmt::format("{} does not hold a single refresh token", token_file));
        case import_status::no_patient_id:
            return fail(enroll_end::usage,
                        fmt::format("the FHIR patient id of {} is unknown: set fhir_patient_id "
                                    "in the config or pass --fhir-patient-id",
                                    patient.key));
        case import_status::store_failed:
            return fail(enroll_end::io_error, imported.error);
        case import_status::audit_failed:
            return fail(enroll_end::io_error,
                        fmt::format("patient {} is enrolled at {}, but the audit log could not record it: {}",
                                    patient.key, patient.ehr, imported.error));
    }
    return {
        enroll_end::ok,
        {{message_target::log_info, fmt::format("patient {} enrolled at {}; the next sync pulls their data",
                                                patient.key, patient.ehr)}}};
}

}  // namespace headachemd::sync
