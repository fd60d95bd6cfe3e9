// The daemon's schedule as a pure state machine (issue 14, item 1): which
// patients run next, how long the loop sleeps, when the audit log's
// retention runs and when pooled connections are closed before a sleep.
// No I/O and no clock of its own: every event carries `now`, so a test
// steps through a week of the daemon's life without an io_context. The
// daemon's coroutine shell (daemon/sync_commands.cpp, run_daemon) performs
// the actions: it runs a pass through the engine, purges the audit log,
// sleeps on a timer or a signal, and writes the published due times to
// sync_status so that `status` in another process shows the real schedule.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "headachemd/config/config.hpp"
#include "headachemd/sync/policy.hpp"

namespace headachemd::sync {

struct patient_result;

// One enrolled patient at one EHR.
struct patient_ref {
    std::string key, ehr;
    auto operator<=>(const patient_ref&) const = default;
};

class scheduler {
public:
    struct options {
        // The audit log's retention runs at start-up and then this often.
        std::chrono::hours audit_every{24};
        // With nothing scheduled the loop still wakes this often.
        std::chrono::hours longest_sleep{24};
        // A sleep at least this long closes the pooled connections first:
        // a connection idle for longer is thrown away at the next checkout
        // anyway, so it would only hold a socket (and the EHR's slot).
        std::chrono::nanoseconds idle_close_after{std::chrono::seconds(30)};
    };

    // What the loop does next.
    struct action {
        enum class kind { purge_audit, run_pass, sleep };
        kind what = kind::sleep;
        std::vector<patient_ref> patients;  // run_pass: the patients due, in config order
        std::chrono::nanoseconds sleep{};   // sleep: how long, unless an event comes first
        bool close_idle = false;            // sleep: close the pooled connections first
    };

    // A patient's new due time, for sync_status.next_run_at.
    struct change {
        patient_ref who;
        sys_time due;
    };

    // `random` gives the jitter of next_run (any uniform 64-bit value).
    scheduler(options o, std::function<std::uint64_t()> random);

    // Start-up and every reload: the config's patients. A patient already
    // scheduled keeps its due time; one no longer in the config is dropped.
    // A new one is due at `now`, or at its time in `stored` (the due times
    // an earlier process wrote to sync_status) when that is still ahead, so
    // that a restart does not start every patient at once (each start would
    // spend the EHR's call budget on patients synced minutes ago). A stored
    // time is never trusted beyond one interval plus jitter from now: the
    // interval may have been shortened, or the clock set back, since.
    void configure(const config::config& cfg, sys_time now,
                   const std::map<patient_ref, sys_time>& stored = {});

    // A patient enrolled while the daemon runs: its first sync starts now.
    void enrolled(const patient_ref& who, sys_time now);

    // A job ended. `lapse` is when the patient's refresh token lapses
    // (nullopt: unknown, or the patient needs re-enrollment). The regular
    // run follows the EHR's interval (sooner after a failure, at the end of
    // a rate-limit hold when there was one), or comes earlier to renew the
    // refresh token (keepalive_planner); the decision is returned for the
    // log.
    keepalive_planner::decision job_done(const patient_result& p, std::optional<sys_time> lapse,
                                         sys_time now);

    // A job ended but the vault could not be read to plan the next one:
    // the patient is retried as after a failure of a 15-minute interval.
    sys_time job_unplanned(const patient_result& p, sys_time now);

    // A pass over `ran` ended. A patient whose job reported nothing
    // (stopped, or a worker that died) would still be due and start again
    // at once, a tight loop: it waits as after a failure instead, unless
    // the daemon is stopping. Returns those patients with their new times.
    std::vector<change> pass_done(const std::vector<patient_ref>& ran, bool stopping, sys_time now);

    // The next action at `now`. Returning purge_audit counts as done.
    action next(sys_time now);

    // Due times set since the last call, oldest first.
    std::vector<change> take_changes();

    std::optional<sys_time> due_of(const patient_ref& who) const;
    std::size_t size() const { return due_.size(); }

private:
    struct ehr_timing {
        std::chrono::seconds interval{std::chrono::hours(6)};
        std::chrono::seconds keepalive_before{std::chrono::hours(24 * 14)};
    };
    ehr_timing timing_of(const std::string& ehr) const;
    void set_due(const patient_ref& who, sys_time when);

    options opts_;
    std::function<std::uint64_t()> random_;
    std::vector<patient_ref> order_;  // config order, for run_pass
    std::map<patient_ref, sys_time> due_;
    std::map<std::string, ehr_timing> timing_;
    keepalive_planner keepalive_;
    std::optional<sys_time> audit_purged_at_;
    std::vector<change> changes_;
};

}  // namespace headachemd::sync
