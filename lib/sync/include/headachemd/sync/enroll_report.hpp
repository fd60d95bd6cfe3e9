// What `enroll` says at its end: the log lines, the text for the admin on
// stdout or stderr, and the class of the end, which the daemon maps to its
// exit status (lib/ does not know the exit codes). Pure: the daemon runs
// the enrollment and writes each message, in order, where it is addressed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "headachemd/config/config.hpp"
#include "headachemd/sync/enroll.hpp"

namespace headachemd::sync {

enum class enroll_end {
    ok,          // enrolled
    usage,       // the command line lacks what is needed (the FHIR patient id)
    data_error,  // refused or failed, or the input is not what it should be
    io_error,    // the vault or the audit log could not be written
};

enum class message_target { log_error, log_warn, log_info, out, err };

struct report_message {
    message_target to;
    std::string text;  // a log message, or text with its newline for out/err
    bool operator==(const report_message&) const = default;
};

struct enroll_report {
    enroll_end end = enroll_end::data_error;
    std::vector<report_message> messages;  // in the order they are to appear
};

// The end of a browser enrollment: on success the "Enrolled …" text and the
// scopes the EHR did not grant; on failure the headline, the explanation
// and the EHR's own words on stderr. A failed audit write is logged first.
enroll_report describe_outcome(const enrollment_outcome& o);

// The end of `enroll --refresh-token-file`: `token_file` is the file's
// path as given (named when it does not hold a token).
enroll_report describe_import(const import_outcome& imported, std::string_view token_file,
                              const config::patient_settings& patient);

}  // namespace headachemd::sync
