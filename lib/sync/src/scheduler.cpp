#include "headachemd/sync/scheduler.hpp"

#include <algorithm>
#include <utility>

#include "headachemd/sync/engine.hpp"

namespace headachemd::sync {

scheduler::scheduler(options o, std::function<std::uint64_t()> random)
    : opts_(o), random_(std::move(random)) {}

void scheduler::configure(const config::config& cfg, sys_time now,
                          const std::map<patient_ref, sys_time>& stored) {
    timing_.clear();
    for (const auto& e : cfg.ehrs) timing_[e.name] = ehr_timing{e.interval, e.keepalive_before};
    std::map<patient_ref, sys_time> next;
    order_.clear();
    for (const auto& p : cfg.patients) {
        patient_ref who{p.key, p.ehr};
        if (next.count(who) != 0) continue;
        order_.push_back(who);
        if (const auto it = due_.find(who); it != due_.end()) {
            next[who] = it->second;
        } else if (const auto s = stored.find(who); s != stored.end() && s->second > now) {
            const auto interval = timing_of(p.ehr).interval;
            const sys_time latest = now + interval + interval / 10;
            next[who] = std::min(s->second, latest);
            if (s->second > latest) changes_.push_back({who, latest});
        } else {
            next[who] = now;
            changes_.push_back({who, now});
        }
    }
    due_ = std::move(next);
}

void scheduler::enrolled(const patient_ref& who, sys_time now) {
    if (due_.count(who) == 0) order_.push_back(who);
    set_due(who, now);
}

scheduler::ehr_timing scheduler::timing_of(const std::string& ehr) const {
    // An EHR a reload removed while its patient's job ran: the defaults.
    const auto it = timing_.find(ehr);
    return it != timing_.end() ? it->second : ehr_timing{};
}

void scheduler::set_due(const patient_ref& who, sys_time when) {
    due_[who] = when;
    changes_.push_back({who, when});
}

keepalive_planner::decision scheduler::job_done(const patient_result& p, std::optional<sys_time> lapse,
                                                sys_time now) {
    const ehr_timing t = timing_of(p.ehr);
    // A failed job is retried sooner than a successful one repeats, but not
    // in a tight loop; a rate-limited one when the EHR's hold ends.
    const sys_time regular = p.ok ? next_run(now, t.interval, random_())
                                  : next_run_after_failure(now, t.interval, p.retry_at, random_());
    const auto d = keepalive_.next_job(p.ehr + "\n" + p.patient_key, now, regular, lapse, t.keepalive_before);
    set_due({p.patient_key, p.ehr}, d.due);
    return d;
}

sys_time scheduler::job_unplanned(const patient_result& p, sys_time now) {
    const sys_time when = next_run_after_failure(now, failure_retry_ceiling, p.retry_at, random_());
    set_due({p.patient_key, p.ehr}, when);
    return when;
}

std::vector<scheduler::change> scheduler::pass_done(const std::vector<patient_ref>& ran, bool stopping,
                                                    sys_time now) {
    std::vector<change> lost;
    if (stopping) return lost;
    for (const auto& who : ran) {
        const auto it = due_.find(who);
        if (it == due_.end() || it->second > now) continue;
        const sys_time when =
            next_run_after_failure(now, timing_of(who.ehr).interval, std::nullopt, random_());
        set_due(who, when);
        lost.push_back({who, when});
    }
    return lost;
}

scheduler::action scheduler::next(sys_time now) {
    const auto audit_due = audit_purged_at_ ? *audit_purged_at_ + opts_.audit_every : now;
    if (audit_due <= now) {
        audit_purged_at_ = now;
        return {action::kind::purge_audit, {}, {}, false};
    }
    action a;
    auto wake = std::min(audit_due, now + opts_.longest_sleep);
    for (const auto& who : order_) {
        const auto it = due_.find(who);
        if (it == due_.end()) continue;
        if (it->second <= now)
            a.patients.push_back(who);
        else
            wake = std::min(wake, it->second);
    }
    if (!a.patients.empty()) {
        a.what = action::kind::run_pass;
        return a;
    }
    // Nothing due: sleep until the earliest due time or the next purge,
    // unless an event (a signal, an enrollment) comes first. No polling.
    a.sleep = std::chrono::duration_cast<std::chrono::nanoseconds>(wake - now);
    a.close_idle = a.sleep >= opts_.idle_close_after;
    return a;
}

std::vector<scheduler::change> scheduler::take_changes() { return std::exchange(changes_, {}); }

std::optional<sys_time> scheduler::due_of(const patient_ref& who) const {
    const auto it = due_.find(who);
    if (it == due_.end()) return std::nullopt;
    return it->second;
}

}  // namespace headachemd::sync
