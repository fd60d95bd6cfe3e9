#include "headachemd/sync/audit_sink.hpp"

#include <stdexcept>

namespace headachemd::sync {

audit_sink::audit_sink(audit_store out, const clock& clk, std::shared_ptr<spdlog::logger> log)
    : out_(std::move(out)), clk_(clk), log_(std::move(log)), synced_at_(clk.steady_now()) {}

void audit_sink::flush(std::vector<store::audit_event>& buf, store::audit_sync sync) {
    if (buf.empty()) return;
    try {
        out_.append(buf, sync);
        buf.clear();
        failure_logged_ = false;
        if (sync == store::audit_sync::full) {
            unsynced_ = false;
            synced_at_ = clk_.steady_now();
        } else {
            unsynced_ = true;
        }
    } catch (const std::runtime_error& failure) {
        if (!failure_logged_)
            log_->error("cannot append to the audit log: {}; {} event(s) kept in memory for the next try",
                        failure.what(), buf.size());
        failure_logged_ = true;
        if (buf.size() > max_buffered) {
            log_->critical("audit log: dropping {} event(s) that vault.db would not take",
                           buf.size() - max_buffered);
            buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(buf.size() - max_buffered));
        }
    }
}

store::audit_sync audit_sink::due_at_job_end() const {
    return clk_.steady_now() - synced_at_ >= fsync_every ? store::audit_sync::full
                                                         : store::audit_sync::deferred;
}

void audit_sink::end_of_job(std::vector<store::audit_event>& ehr_events,
                            std::vector<store::audit_event>* job_events) {
    const auto sync = due_at_job_end();
    flush(ehr_events, store::audit_sync::deferred);
    if (job_events) flush(*job_events, sync);
}

void audit_sink::end_of_pass(std::vector<store::audit_event>& ehr_events) {
    flush(ehr_events, store::audit_sync::full);
    if (!unsynced_) return;
    try {
        out_.sync();
        unsynced_ = false;
        synced_at_ = clk_.steady_now();
    } catch (const std::runtime_error& failure) {
        log_->error("cannot sync the audit log to disk: {}", failure.what());
    }
}

}  // namespace headachemd::sync
