#include "headachemd/sync/pass_report.hpp"

#include <fmt/format.h>

namespace headachemd::sync {

std::string render_pass(const pass_result& pass) {
    std::string out;
    for (const auto& p : pass.patients) {
        out += fmt::format("{:<24} {:<14} ", p.patient_key, p.ehr);
        // An interrupted refresh needs the same re-enrollment, but the admin
        // should know the EHR refused a token this host never finished
        // rotating (docs/admin), not that the patient revoked access.
        if (p.needs_reauth)
            out +=
                p.needs_reauth_reason == "interrupted_refresh"
                    ? "NEEDS RE-ENROLLMENT (interrupted refresh: the EHR refused the token after a refresh "
                      "that never finished here)"
                    : "NEEDS RE-ENROLLMENT";
        else if (p.skipped)
            out += "skipped: " + (p.failure ? p.failure->message : std::string());
        else if (p.ok)
            out += fmt::format("ok, {} rows changed", p.rows_changed());
        else
            out += "FAILED: " + (p.failure ? p.failure->message : std::string("unknown"));
        out += '\n';
    }
    out +=
        fmt::format("{} patients: {} ok, {} failed\n", pass.patients.size(), pass.succeeded(), pass.failed());
    return out;
}

}  // namespace headachemd::sync
