// Where the sync engine's audit events go, and when they are fsynced
// (docs/admin/monitoring.md "Audit log", durability). Events are buffered
// per job and appended in batches:
// - `deferred`: committed to vault.db's WAL without an fsync, which a crash
//   of the process does not lose; at each page commit, so the page's events
//   follow its rows into a file.
// - `full`: fsynced, which makes every earlier deferred commit durable too
//   (WAL frames reach the disk in order); for enrollment changes, at the end
//   of a job when the last fsync is fsync_every old or older, and at the end
//   of a pass.
// One fsync per request, or even per job, would block the executor for
// longer than the requests it records (bench_sync).
//
// A failing vault must not stop the sync of data already fetched: the
// events stay buffered for the next append (bounded), and the failure is
// logged once until an append succeeds again.
//
// No I/O of its own: the store is two injected functions (vault.db in the
// engine), and the pacing reads the injected clock.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include <spdlog/logger.h>

#include "headachemd/core/clock.hpp"
#include "headachemd/store/audit.hpp"

namespace headachemd::sync {

struct audit_store {
    // Appends events in one transaction; throws std::runtime_error (and
    // SQLite::Exception) when the vault refuses them.
    std::function<void(std::span<const store::audit_event>, store::audit_sync)> append;
    // Makes deferred appends durable without writing an event
    // (store::sync_audit); throws std::runtime_error.
    std::function<void()> sync;
};

class audit_sink {
public:
    // The longest a deferred commit waits for its fsync when jobs keep ending.
    static constexpr std::chrono::seconds fsync_every{10};
    // Events kept for a vault that stays broken, at most (the oldest go).
    static constexpr std::size_t max_buffered = 100000;

    // The last fsync counts from now (the engine's start).
    audit_sink(audit_store out, const clock& clk, std::shared_ptr<spdlog::logger> log);

    // Appends `buf` with `sync` and clears it; on a refusal keeps it (at
    // most max_buffered, the newest) for the next append. Never throws a
    // store failure.
    void flush(std::vector<store::audit_event>& buf, store::audit_sync sync);

    // The sync for the end of a job: full when the last fsync is
    // fsync_every old or older, else deferred.
    store::audit_sync due_at_job_end() const;

    // Every way out of a job: the EHR-wide events deferred, then the job's
    // own (nullptr: none) with due_at_job_end(), in one fsync for the job
    // rather than one per request.
    void end_of_job(std::vector<store::audit_event>& ehr_events, std::vector<store::audit_event>* job_events);

    // The pass's events reach the disk before it is reported done: the
    // EHR-wide events fsynced, and any deferred commit left synced.
    void end_of_pass(std::vector<store::audit_event>& ehr_events);

    // Commits not yet fsynced since the last full append or sync.
    bool unsynced() const { return unsynced_; }

private:
    audit_store out_;
    const clock& clk_;
    std::shared_ptr<spdlog::logger> log_;
    bool failure_logged_ = false;
    bool unsynced_ = false;
    std::chrono::steady_clock::time_point synced_at_;
};

}  // namespace headachemd::sync
