// One Bulk Data export of one [[ehr]] with an [ehr.bulk] section, set up
// from the config (issue 15, item 7): the glue between the config and
// run_bulk_export (bulk_runner.hpp) that the `export` command and the
// daemon's schedule share. It reads the backend key, finds the token
// endpoint (the config, else SMART discovery), builds the kick-off from the
// section (level, Group, _type, _since) and the applier from [privacy] and
// the [[view]]s, and runs the job under the EHR's request budget.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/logger.h>
#include <boost/asio/awaitable.hpp>

#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/core/result.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/bulk_runner.hpp"
#include "headachemd/sync/policy.hpp"

namespace headachemd::sync {

enum class export_mode {
    start_or_resume,  // resume the unfinished job, else kick off a new one
    resume_only,      // resume the unfinished job; none is an error
    cancel,           // cancel the unfinished job (DELETE at the server); none is an error
};

struct export_request {
    std::string ehr;  // empty: the only [[ehr]] with [ehr.bulk]
    // _since of a new job, a FHIR instant. nullopt: the stored cursor (the
    // last complete export's transactionTime) minus [ehr.bulk]
    // since_overlap, or a full export when there is none.
    std::optional<std::string> since;
    export_mode mode = export_mode::start_or_resume;
};

// The [[ehr]] the request names, which must have [ehr.bulk]; errors
// (errc::unknown_ehr) name the EHRs that do.
result<const config::ehr_settings*> bulk_ehr_of(const config::config& cfg, std::string_view name);

// The _since a new job of `ehr` asks for (see export_request::since).
// An explicit value that is not a FHIR instant is errc::bad_export_request.
result<std::optional<std::string>> next_since(store::vault& vault, const config::ehr_settings& ehr,
                                              const std::optional<std::string>& since);

// When an EHR's next export is due (the daemon's schedule; pure), from its
// last job's phase and when its row was last written:
// - no job ever, or one left unfinished: now (a first full export, or the
//   job resumes);
// - the last one done or cancelled at T: T + interval ([ehr.bulk]
//   interval counts between the ends of two exports);
// - the last one failed at T: T + min(interval, 1 h): a server's outage or
//   a job deadline is tried again the same day, but never in a loop.
sys_time next_export_due(std::optional<bulk_phase> last, std::optional<sys_time> last_written,
                         std::chrono::seconds interval, sys_time now);

// Where files wait between download and apply: "bulk-spool" beside the
// vault (the daemon's private state directory, not headache.db's
// analyst-readable one).
std::filesystem::path bulk_spool_dir(const config::config& cfg);

struct export_context {
    http::transport& http;
    const config::config& cfg;
    store::analytics_db& db;
    store::vault& vault;
    const clock& clk;
    std::shared_ptr<spdlog::logger> log;
    // The EHR's request budget, shared with its per-patient passes when the
    // daemon runs both. nullptr: one of [[ehr]] requests_per_minute.
    rate_limiter* limiter = nullptr;
    std::function<void(std::chrono::nanoseconds)> on_wait;  // tests: no sleeping
    std::function<bool()> stopping;
    std::function<void(const bulk_job_record&)> on_progress;
};

// Runs the export. Errors before any request (no such EHR, an unreadable
// key, no token endpoint, nothing to resume or cancel) come back as
// error; a job that ran and failed is a bulk_run_result whose end is
// `failed`. Throws store_error when the vault or headache.db fails.
boost::asio::awaitable<result<bulk_run_result>> run_configured_export(export_context ctx, export_request req);

// What `export` prints: the job's end, its files and rows, the calls made.
// No URL (status and file URLs can be capability URLs).
std::string render_export(std::string_view ehr, const bulk_run_result& r);

}  // namespace headachemd::sync
