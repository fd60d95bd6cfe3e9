// The audit log in vault.db (schema/vault/0005_audit_log.sql): one event
// per request to an EHR and per change of an enrollment.
//
// Contract
// - An event holds no secret and no identifier beyond the patient key: never
//   a token, code, URL, FHIR id, name or payload. Callers fill the fields
//   below and nothing else reaches the table.
// - append_audit writes a batch in one transaction. With audit_sync::full
//   (the default) it is on disk when the call returns (vault.db is
//   synchronous=FULL). With audit_sync::deferred the transaction commits to
//   the WAL without an fsync: it survives a crash of the process at once,
//   and a power loss from the next fsync of the vault on (the next full
//   append, token write, or checkpoint; WAL frames are made durable in
//   order). Callers batch: the sync engine appends deferred at each page
//   commit and full at the end of each job, not per request.
// - The table is append-only in normal operation: SQLite triggers refuse an
//   UPDATE, and a DELETE of an event younger than the retention. Only
//   purge_audit deletes, and only what the retention lets it.
// - Every function throws store_error on a database failure, with a message
//   that names the file and never a row's values.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <SQLiteCpp/Database.h>

#include "headachemd/store/vault.hpp"

namespace headachemd::store {

// The actions an event can record (docs/admin/monitoring.md "Audit log" explains each).
namespace audit_action {
inline constexpr std::string_view discovery = "discovery";            // .well-known/smart-configuration
inline constexpr std::string_view metadata = "metadata";              // the CapabilityStatement
inline constexpr std::string_view token_refresh = "token.refresh";    // refresh_token grant
inline constexpr std::string_view token_exchange = "token.exchange";  // authorization code grant
inline constexpr std::string_view fhir_read = "fhir.read";            // Patient/{id}
inline constexpr std::string_view fhir_search = "fhir.search";        // first page of a search
inline constexpr std::string_view fhir_page = "fhir.page";            // a following page
inline constexpr std::string_view fhir_count = "fhir.count";          // _summary=count check
inline constexpr std::string_view job_failed = "job.failed";          // a job ended by an exception
inline constexpr std::string_view enroll = "enroll";
inline constexpr std::string_view enroll_refused = "enroll.refused";
inline constexpr std::string_view needs_reauth = "needs_reauth";
inline constexpr std::string_view unenroll = "unenroll";
inline constexpr std::string_view revoke = "revoke";
inline constexpr std::string_view rekey = "rekey";
}  // namespace audit_action

struct audit_event {
    std::int64_t id = 0;        // set when read; ignored by append
    std::string time;           // UTC "YYYY-MM-DDThh:mm:ssZ" (store::utc_timestamp)
    std::string patient_key;    // empty: none (stored as NULL)
    std::string ehr;            // empty: none
    std::string action;         // one of audit_action
    std::string resource_type;  // empty: none
    std::optional<int> page;
    std::optional<int> http_status;  // nullopt: no HTTP answer
    std::optional<int> count;
    std::string outcome = "ok";  // "ok" or an error kind

    bool operator==(const audit_event&) const = default;
};

// An enrollment change (enroll, unenroll, revoke, rekey, …) as an event;
// `count` is what the change touched (rows purged, secrets re-sealed), when
// that means something. For example, after `unenroll KEY --purge`:
//   append_audit(vault, enrollment_event(utc_timestamp(now), key, ehr,
//                                        audit_action::unenroll, "ok", rows_purged));
inline audit_event enrollment_event(std::string time, std::string patient_key, std::string ehr,
                                    std::string_view action, std::string outcome = "ok",
                                    std::optional<int> count = std::nullopt) {
    audit_event e;
    e.time = std::move(time);
    e.patient_key = std::move(patient_key);
    e.ehr = std::move(ehr);
    e.action = std::string(action);
    e.count = count;
    e.outcome = std::move(outcome);
    return e;
}

struct audit_query {
    std::optional<std::string> since = {};  // UTC text; events at or after it
    std::optional<std::string> patient_key = {};
    std::optional<std::string> ehr = {};
    std::size_t limit = 0;  // 0: all; otherwise the newest `limit`, still printed oldest first
};

inline constexpr int default_audit_retention_days = 2190;

// An error code from outside (an OAuth `error` from a token endpoint or a
// redirect) as an outcome: kept when it is a short word of [A-Za-z0-9_.-],
// else "other", so an EHR cannot write arbitrary text into the log.
std::string audit_outcome_code(std::string_view code);

enum class audit_sync { full, deferred };

// Over an open vault connection (vault::sql()). Oldest first.
void append_audit(SQLite::Database& db, std::span<const audit_event> events,
                  audit_sync sync = audit_sync::full);
// The same inside a transaction the caller holds: the event then commits
// (or rolls back) with the change it records, as rekey's does.
void insert_audit(SQLite::Database& db, std::span<const audit_event> events);
std::vector<audit_event> query_audit(SQLite::Database& db, const audit_query& q);
// Makes deferred appends durable without writing an event: a passive WAL
// checkpoint, which fsyncs the WAL before it copies frames into the main
// file (https://sqlite.org/wal.html#ckpt). A reader that pins every frame
// can keep it from doing so; the next full append syncs them anyway.
void sync_audit(SQLite::Database& db);
// Sets the retention to `days` and deletes every event older than that by
// SQLite's clock, in one transaction. Returns the events deleted.
std::size_t purge_audit(SQLite::Database& db, int days);

// The same on a vault: what the daemon and the commands call.
inline void append_audit(vault& v, std::span<const audit_event> events, audit_sync sync = audit_sync::full) {
    append_audit(v.sql(), events, sync);
}
inline void append_audit(vault& v, const audit_event& event, audit_sync sync = audit_sync::full) {
    append_audit(v.sql(), {&event, 1}, sync);
}
inline std::vector<audit_event> query_audit(vault& v, const audit_query& q) {
    return query_audit(v.sql(), q);
}
inline std::size_t purge_audit(vault& v, int days) { return purge_audit(v.sql(), days); }

// For `headachemd-sync audit`: opens an existing vault.db read-only (no
// token key needed: the audit rows are not sealed and hold no secret),
// checks it is a HeadacheMD vault with an audit log, and queries it. Never
// creates or writes the file. Throws store_error naming the file when it
// does not exist, is not a vault, or predates the audit log.
std::vector<audit_event> read_audit_log(const std::filesystem::path& vault_path, const audit_query& q);

}  // namespace headachemd::store
