// What enroll says at its end, byte for byte and in order: the log lines
// (level and text), the text on stdout or stderr, and the class of the end
// the daemon maps to its exit status; for a browser enrollment's outcome
// and for each import_status of --refresh-token-file.
#include <gtest/gtest.h>

#include "headachemd/sync/enroll_report.hpp"

namespace {

namespace cf = headachemd::config;
namespace sy = headachemd::sync;
using enum sy::message_target;

sy::enrollment_outcome enrolled() {
    sy::enrollment_outcome o;
    o.ok = true;
    o.patient_key = "hmd-000123";
    o.ehr = "ecw";
    return o;
}

const std::string enrolled_text =
    "Enrolled hmd-000123 at ecw. The next sync pulls their data (a running daemon within 15 minutes, or at "
    "once after `systemctl reload headachemd-sync`).\n";

TEST(DescribeOutcome, EnrolledIsAnInfoLineAndTheTextOnStdout) {
    const auto r = sy::describe_outcome(enrolled());
    EXPECT_EQ(r.end, sy::enroll_end::ok);
    EXPECT_EQ(r.messages, (std::vector<sy::report_message>{
                              {log_info, "patient hmd-000123 enrolled at ecw by browser authorization"},
                              {out, enrolled_text},
                          }));
}

TEST(DescribeOutcome, ScopesNotGrantedAreAWarningAndALineAfterTheText) {
    auto o = enrolled();
    o.not_granted = {"patient/Observation.rs", "patient/Condition.rs"};
    const auto r = sy::describe_outcome(o);
    EXPECT_EQ(r.end, sy::enroll_end::ok);
    EXPECT_EQ(
        r.messages,
        (std::vector<sy::report_message>{
            {log_info, "patient hmd-000123 enrolled at ecw by browser authorization"},
            {out, enrolled_text},
            {log_warn,
             "patient hmd-000123: the EHR did not grant: patient/Observation.rs patient/Condition.rs"},
            {out, "Not granted (these types will not sync): patient/Observation.rs patient/Condition.rs\n"},
        }));
}

TEST(DescribeOutcome, AFailedAuditWriteIsLoggedFirst) {
    auto o = enrolled();
    o.audit_error = "disk I/O error";
    const auto r = sy::describe_outcome(o);
    EXPECT_EQ(r.end, sy::enroll_end::ok);
    ASSERT_EQ(r.messages.size(), 3U);
    EXPECT_EQ(r.messages[0], (sy::report_message{log_error, "audit log: disk I/O error"}));
}

sy::enrollment_outcome refused() {
    sy::enrollment_outcome o;
    o.patient_key = "hmd-000123";
    o.ehr = "ecw";
    o.headline = "The patient declined the authorization.";
    o.explanation = "Nothing was stored. Run enroll again when the patient is ready.";
    return o;
}

TEST(DescribeOutcome, AFailureWithTheEhrsWordsIsAnErrorLineAndThreeLinesOnStderr) {
    auto o = refused();
    o.raw_error = "access_denied: user cancelled";
    const auto r = sy::describe_outcome(o);
    EXPECT_EQ(r.end, sy::enroll_end::data_error);
    EXPECT_EQ(r.messages,
              (std::vector<sy::report_message>{
                  {log_error, "enrollment of hmd-000123 failed: The patient declined the authorization."},
                  {err,
                   "The patient declined the authorization.\n"
                   "Nothing was stored. Run enroll again when the patient is ready.\n"
                   "EHR said: access_denied: user cancelled\n"},
              }));
}

TEST(DescribeOutcome, AFailureWithoutTheEhrsWordsOrAPatientSaysLess) {
    auto o = refused();
    o.patient_key.clear();
    o.audit_error = "locked";
    const auto r = sy::describe_outcome(o);
    EXPECT_EQ(r.end, sy::enroll_end::data_error);
    EXPECT_EQ(r.messages, (std::vector<sy::report_message>{
                              {log_error, "audit log: locked"},
                              {log_error, "enrollment failed: The patient declined the authorization."},
                              {err,
                               "The patient declined the authorization.\n"
                               "Nothing was stored. Run enroll again when the patient is ready.\n"},
                          }));
}

cf::patient_settings patient() {
    cf::patient_settings p;
    p.key = "hmd-000123";
    p.ehr = "ecw";
    return p;
}

sy::enroll_report import(sy::import_status status, std::string error = {}) {
    return sy::describe_import({status, std::move(error)}, "/run/hmd/rt.txt", patient());
}

TEST(DescribeImport, ImportedIsAnInfoLine) {
    const auto r = import(sy::import_status::imported);
    EXPECT_EQ(r.end, sy::enroll_end::ok);
    EXPECT_EQ(r.messages,
              (std::vector<sy::report_message>{
                  {log_info, "patient hmd-000123 enrolled at ecw; the next sync pulls their data"}}));
}

TEST(DescribeImport, NotATokenNamesTheFile) {
    const auto r = import(sy::import_status::not_a_token);
    EXPECT_EQ(r.end, sy::enroll_end::data_error);
    EXPECT_EQ(r.messages, (std::vector<sy::report_message>{
                              {log_error, "/run/hmd/rt.txt does not hold a single refresh token"}}));
}

TEST(DescribeImport, NoPatientIdIsAUsageErrorSayingWhatToSet) {
    const auto r = import(sy::import_status::no_patient_id);
    EXPECT_EQ(r.end, sy::enroll_end::usage);
    EXPECT_EQ(r.messages, (std::vector<sy::report_message>{
                              {log_error,
                               "the FHIR patient id of hmd-000123 is unknown: set fhir_patient_id in the "
                               "config or pass --fhir-patient-id"}}));
}

TEST(DescribeImport, AStoreFailureIsTheStoresMessage) {
    const auto r = import(sy::import_status::store_failed, "vault: database is locked");
    EXPECT_EQ(r.end, sy::enroll_end::io_error);
    EXPECT_EQ(r.messages, (std::vector<sy::report_message>{{log_error, "vault: database is locked"}}));
}

TEST(DescribeImport, AnAuditFailureSaysTheEnrollmentIsStored) {
    const auto r = import(sy::import_status::audit_failed, "disk full");
    EXPECT_EQ(r.end, sy::enroll_end::io_error);
    EXPECT_EQ(
        r.messages,
        (std::vector<sy::report_message>{
            {log_error,
             "patient hmd-000123 is enrolled at ecw, but the audit log could not record it: disk full"}}));
}

}  // namespace
