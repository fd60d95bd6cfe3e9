// What sync-once prints after its pass, byte for byte: each kind of
// patient line, and the count line (needs_reauth counts as failed, a skip
// as neither).
#include <gtest/gtest.h>

#include "headachemd/sync/pass_report.hpp"

namespace {

namespace sy = headachemd::sync;

sy::patient_result patient(std::string key, std::string ehr) {
    sy::patient_result p;
    p.patient_key = std::move(key);
    p.ehr = std::move(ehr);
    return p;
}

TEST(PassReport, EachKindOfPatientLineThenTheCount) {
    sy::pass_result pass;
    auto reauth = patient("hmd-1", "ecw");
    reauth.needs_reauth = true;
    reauth.needs_reauth_reason = "invalid_grant";
    auto interrupted = patient("hmd-2", "ecw");
    interrupted.needs_reauth = true;
    interrupted.needs_reauth_reason = "interrupted_refresh";
    auto skipped = patient("hmd-3", "epic");
    skipped.skipped = true;
    skipped.failure = headachemd::error{headachemd::errc::timeout, "not enrolled"};
    auto skipped_bare = patient("hmd-4", "epic");
    skipped_bare.skipped = true;
    auto ok = patient("hmd-5", "epic");
    ok.ok = true;
    sy::type_result obs;
    obs.type = "Observation";
    obs.inserted = 3;
    obs.updated = 2;
    obs.unchanged = 40;
    obs.deleted = 1;
    sy::type_result cond;
    cond.type = "Condition";
    cond.inserted = 4;
    ok.types = {obs, cond};
    auto failed = patient("hmd-6", "ecw");
    failed.failure = headachemd::error{headachemd::errc::timeout, "token endpoint timed out"};
    auto failed_bare = patient("hmd-7", "ecw");
    pass.patients = {reauth, interrupted, skipped, skipped_bare, ok, failed, failed_bare};
    EXPECT_EQ(
        sy::render_pass(pass),
        "hmd-1                    ecw            NEEDS RE-ENROLLMENT\n"
        "hmd-2                    ecw            NEEDS RE-ENROLLMENT (interrupted refresh: the EHR refused "
        "the token after a refresh that never finished here)\n"
        "hmd-3                    epic           skipped: not enrolled\n"
        "hmd-4                    epic           skipped: \n"
        "hmd-5                    epic           ok, 10 rows changed\n"
        "hmd-6                    ecw            FAILED: token endpoint timed out\n"
        "hmd-7                    ecw            FAILED: unknown\n"
        "7 patients: 1 ok, 4 failed\n");
}

TEST(PassReport, AReauthWithoutAReasonIsThePlainLine) {
    sy::pass_result pass;
    auto p = patient("hmd-1", "ecw");
    p.needs_reauth = true;
    pass.patients = {p};
    EXPECT_EQ(sy::render_pass(pass),
              "hmd-1                    ecw            NEEDS RE-ENROLLMENT\n"
              "1 patients: 0 ok, 1 failed\n");
}

TEST(PassReport, ALongKeyOrEhrPushesTheColumnsRatherThanBeingCut) {
    sy::pass_result pass;
    auto p = patient("hmd-0123456789abcdefghijklmn", "an-ehr-name-longer");
    p.ok = true;
    pass.patients = {p};
    EXPECT_EQ(sy::render_pass(pass),
              "hmd-0123456789abcdefghijklmn an-ehr-name-longer ok, 0 rows changed\n"
              "1 patients: 1 ok, 0 failed\n");
}

TEST(PassReport, NoPatientsIsTheCountAlone) {
    EXPECT_EQ(sy::render_pass({}), "0 patients: 0 ok, 0 failed\n");
}

}  // namespace
