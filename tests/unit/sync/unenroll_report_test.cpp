// describe_unenroll: what `unenroll` logs, prints and exits with for each
// outcome of unenroll_patient. The texts are the command's interface (the
// admin reads them, scripts grep them), so they are pinned byte for byte.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "headachemd/sync/unenroll_report.hpp"

namespace {

namespace cfg = headachemd::config;
namespace sy = headachemd::sync;
using level = sy::unenroll_message::level;
using msgs = std::vector<sy::unenroll_message>;

cfg::patient_settings patient(std::string key, std::string ehr) {
    cfg::patient_settings p;
    p.key = std::move(key);
    p.ehr = std::move(ehr);
    return p;
}

cfg::config listed_config() {
    cfg::config c;
    c.file = "/etc/hmd/sync.toml";
    c.daemon.database = "/data/headache.db";
    c.daemon.vault = "/data/vault.db";
    c.patients.push_back(patient("hmd-1", "other"));
    c.patients.push_back(patient("hmd-7", "clinic"));
    return c;
}

sy::unenroll_request request(bool purge = false, bool force = false) {
    return {.key = "hmd-7", .ehr = "", .purge = purge, .force = force};
}

sy::revocation_outcome revoked() {
    return {.status = sy::revocation_status::revoked, .endpoint = "https://ehr.test/revoke", .failure = {}};
}

sy::revocation_outcome failed() {
    return {.status = sy::revocation_status::failed,
            .endpoint = "https://ehr.test/revoke",
            .failure = headachemd::error{headachemd::error_code::http(503), "HTTP 503 from the EHR"}};
}

sy::unenroll_result done_with(std::optional<sy::revocation_outcome> rev) {
    sy::unenroll_result r;
    r.status = sy::unenroll_status::done;
    r.ehr = "clinic";
    r.had_enrollment = true;
    r.revocation = std::move(rev);
    return r;
}

const std::string removed_line = "Removed the enrollment of hmd-7 at clinic from /data/vault.db.\n";
const std::string remove_entry_line =
    "Now remove the [[patient]] entry with key = \"hmd-7\" from /etc/hmd/sync.toml (and reload the daemon): "
    "until then `status` shows it as not enrolled.\n";
const std::string rows_stay_line =
    "Its rows stay in /data/headache.db; `unenroll hmd-7 --ehr clinic --purge` deletes them.\n";
const std::string grant_lives_line =
    "The grant at the EHR may still be valid until it expires: revoke HeadacheMD's access there to end it "
    "now.\n";
const sy::unenroll_message unenrolled{level::info, "unenrolled patient hmd-7 at clinic"};

TEST(DescribeUnenroll, UnknownPatientLogsTheProblemAndIsAUsageError) {
    sy::unenroll_result r;
    r.status = sy::unenroll_status::unknown_patient;
    r.problem = "no enrollment of patient hmd-7 in the vault: nothing was changed";
    const auto rep = sy::describe_unenroll(request(true), listed_config(), r);
    EXPECT_EQ(rep.exit, sy::unenroll_exit::usage);
    EXPECT_EQ(rep.log,
              (msgs{{level::error, "no enrollment of patient hmd-7 in the vault: nothing was changed"}}));
    EXPECT_EQ(rep.out, "");
}

TEST(DescribeUnenroll, EhrNoLongerConfiguredWithoutForceIsAConfigError) {
    sy::unenroll_result r;
    r.status = sy::unenroll_status::ehr_not_configured;
    r.ehr = "gone";
    r.had_enrollment = true;
    r.ehr_missing = true;
    const auto rep = sy::describe_unenroll(request(), listed_config(), r);
    EXPECT_EQ(rep.exit, sy::unenroll_exit::config);
    EXPECT_EQ(rep.log,
              (msgs{{level::error,
                     "patient hmd-7 is enrolled at gone, which /etc/hmd/sync.toml no longer lists, so its "
                     "refresh token cannot be revoked; add the [[ehr]] back, or pass --force to remove "
                     "the enrollment here anyway"}}));
    EXPECT_EQ(rep.out, "");
}

TEST(DescribeUnenroll, EhrNoLongerConfiguredWithForceStillSaysSoThenUnenrolls) {
    sy::unenroll_result r = done_with(std::nullopt);
    r.ehr = "gone";
    r.ehr_missing = true;
    r.server_grant_may_live = true;
    const auto rep = sy::describe_unenroll(request(false, true), listed_config(), r);
    EXPECT_EQ(rep.exit, sy::unenroll_exit::ok);
    ASSERT_EQ(rep.log.size(), 2u);
    EXPECT_EQ(rep.log[0].lvl, level::error);
    EXPECT_EQ(rep.log[1], (sy::unenroll_message{level::info, "unenrolled patient hmd-7 at gone"}));
    // hmd-7 is listed at clinic, not at gone: no [[patient]] line.
    EXPECT_EQ(rep.out,
              "Removed the enrollment of hmd-7 at gone from /data/vault.db.\n" + grant_lives_line +
                  "Its rows stay in /data/headache.db; `unenroll hmd-7 --ehr gone --purge` deletes them.\n");
}

TEST(DescribeUnenroll, RevokedPrintsTheEndpointAndTheGuidance) {
    const auto rep = sy::describe_unenroll(request(), listed_config(), done_with(revoked()));
    EXPECT_EQ(rep.exit, sy::unenroll_exit::ok);
    EXPECT_EQ(rep.log,
              (msgs{{level::info, "revoked the refresh token of patient hmd-7 at clinic"}, unenrolled}));
    EXPECT_EQ(rep.out, "Revoked the refresh token of hmd-7 at clinic (https://ehr.test/revoke).\n" +
                           removed_line + remove_entry_line + rows_stay_line);
}

TEST(DescribeUnenroll, NoRevocationEndpointWarnsThatTheGrantLives) {
    auto r = done_with(
        sy::revocation_outcome{.status = sy::revocation_status::no_endpoint, .endpoint = "", .failure = {}});
    r.server_grant_may_live = true;
    const auto rep = sy::describe_unenroll(request(), listed_config(), r);
    EXPECT_EQ(rep.exit, sy::unenroll_exit::ok);
    EXPECT_EQ(
        rep.log,
        (msgs{{level::warn,
               "clinic advertises no revocation_endpoint: the refresh token of patient hmd-7 is deleted here "
               "but stays valid at the EHR until it expires; to end the grant now, revoke HeadacheMD's "
               "access in the EHR (patient portal or admin console)"},
              unenrolled}));
    EXPECT_EQ(rep.out, removed_line + grant_lives_line + remove_entry_line + rows_stay_line);
}

TEST(DescribeUnenroll, RevocationFailedWithoutForceChangesNothingAndIsUnavailable) {
    sy::unenroll_result r;
    r.status = sy::unenroll_status::revocation_failed;
    r.ehr = "clinic";
    r.had_enrollment = true;
    r.revocation = failed();
    const auto rep = sy::describe_unenroll(request(true), listed_config(), r);
    EXPECT_EQ(rep.exit, sy::unenroll_exit::unavailable);
    EXPECT_EQ(rep.log,
              (msgs{{level::error,
                     "could not revoke the refresh token of patient hmd-7 at clinic: HTTP 503 from the "
                     "EHR. Nothing was changed: the enrollment stays so that the revocation can be "
                     "retried (run unenroll again later), or pass --force to remove it here anyway (the "
                     "grant at the EHR then stays valid until it expires)"}}));
    EXPECT_EQ(rep.out, "");
}

TEST(DescribeUnenroll, RevocationFailedWithForceWarnsAndUnenrolls) {
    auto r = done_with(failed());
    r.purged_db = true;
    r.purged_rows = 42;
    r.server_grant_may_live = true;
    const auto rep = sy::describe_unenroll(request(true, true), listed_config(), r);
    EXPECT_EQ(rep.exit, sy::unenroll_exit::ok);
    EXPECT_EQ(rep.log,
              (msgs{{level::warn,
                     "could not revoke the refresh token of patient hmd-7 at clinic: HTTP 503 from the "
                     "EHR. --force: removing the enrollment anyway; the grant at the EHR stays valid until "
                     "it expires"},
                    {level::info, "purged patient hmd-7 at clinic from headache.db (42 rows)"},
                    unenrolled}));
    // --purge: no "Its rows stay" line.
    EXPECT_EQ(rep.out, "Deleted 42 row(s) of hmd-7 at clinic from /data/headache.db.\n" + removed_line +
                           grant_lives_line + remove_entry_line);
}

TEST(DescribeUnenroll, PurgeReportsTheRowsBetweenRevocationAndRemoval) {
    auto r = done_with(revoked());
    r.purged_db = true;
    r.purged_rows = 0;
    const auto rep = sy::describe_unenroll(request(true), listed_config(), r);
    EXPECT_EQ(rep.exit, sy::unenroll_exit::ok);
    EXPECT_EQ(rep.log, (msgs{{level::info, "revoked the refresh token of patient hmd-7 at clinic"},
                             {level::info, "purged patient hmd-7 at clinic from headache.db (0 rows)"},
                             unenrolled}));
    EXPECT_EQ(rep.out,
              "Revoked the refresh token of hmd-7 at clinic (https://ehr.test/revoke).\n"
              "Deleted 0 row(s) of hmd-7 at clinic from /data/headache.db.\n" +
                  removed_line + remove_entry_line);
}

TEST(DescribeUnenroll, PurgeWithoutADatabaseSaysNothingOfRowsButNoRowsStayLineEither) {
    // --purge with no headache.db: nothing deleted, nothing to keep.
    const auto rep = sy::describe_unenroll(request(true), listed_config(), done_with(revoked()));
    EXPECT_EQ(rep.out, "Revoked the refresh token of hmd-7 at clinic (https://ehr.test/revoke).\n" +
                           removed_line + remove_entry_line);
}

TEST(DescribeUnenroll, RemovedLineNamesEnrollmentAndPendingLinks) {
    auto both = done_with(revoked());
    both.pending_removed = 2;
    EXPECT_EQ(sy::describe_unenroll(request(true), listed_config(), both).out,
              "Revoked the refresh token of hmd-7 at clinic (https://ehr.test/revoke).\n"
              "Removed the enrollment and pending sign-in link(s) of hmd-7 at clinic from /data/vault.db.\n" +
                  remove_entry_line);

    // Only a pending browser enrollment: no token, so no revocation.
    auto pending_only = done_with(std::nullopt);
    pending_only.had_enrollment = false;
    pending_only.pending_removed = 1;
    const auto rep = sy::describe_unenroll(request(true), listed_config(), pending_only);
    EXPECT_EQ(rep.exit, sy::unenroll_exit::ok);
    EXPECT_EQ(rep.log, (msgs{unenrolled}));
    EXPECT_EQ(rep.out, "Removed the pending sign-in link(s) of hmd-7 at clinic from /data/vault.db.\n" +
                           remove_entry_line);

    // Neither (only rows were left): no Removed line, still unenrolled.
    auto neither = done_with(std::nullopt);
    neither.had_enrollment = false;
    neither.purged_db = true;
    neither.purged_rows = 3;
    EXPECT_EQ(sy::describe_unenroll(request(true), listed_config(), neither).out,
              "Deleted 3 row(s) of hmd-7 at clinic from /data/headache.db.\n" + remove_entry_line);
}

TEST(DescribeUnenroll, PatientEntryLineOnlyWhenTheConfigListsThePatientAtThatEhr) {
    cfg::config unlisted = listed_config();
    unlisted.patients.pop_back();  // hmd-1 at other stays
    EXPECT_EQ(sy::describe_unenroll(request(), unlisted, done_with(revoked())).out,
              "Revoked the refresh token of hmd-7 at clinic (https://ehr.test/revoke).\n" + removed_line +
                  rows_stay_line);

    cfg::config elsewhere = unlisted;
    elsewhere.patients.push_back(patient("hmd-7", "other"));
    EXPECT_EQ(sy::describe_unenroll(request(), elsewhere, done_with(revoked())).out,
              "Revoked the refresh token of hmd-7 at clinic (https://ehr.test/revoke).\n" + removed_line +
                  rows_stay_line);
}

TEST(DescribeUnenroll, AuditFailureOfTheRevocationIsAnErrorBeforeTheOutcome) {
    auto r = done_with(revoked());
    r.revoke_audit_error = "disk I/O error";
    const auto rep = sy::describe_unenroll(request(), listed_config(), r);
    EXPECT_EQ(rep.exit, sy::unenroll_exit::ok);
    EXPECT_EQ(rep.log,
              (msgs{{level::error, "the audit log could not record revoke of patient hmd-7: disk I/O error"},
                    {level::info, "revoked the refresh token of patient hmd-7 at clinic"},
                    unenrolled}));
}

}  // namespace
