// The Bulk Data export job's state machine: see bulk_job.hpp for the rules.
#include "headachemd/sync/bulk_job.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include "headachemd/http/url.hpp"
#include "headachemd/sync/request_policy.hpp"

namespace headachemd::sync {

using std::chrono::seconds;
using kind = bulk_action::kind;

std::string_view to_string(bulk_phase p) {
    switch (p) {
        case bulk_phase::kickoff:
            return "kickoff";
        case bulk_phase::polling:
            return "polling";
        case bulk_phase::downloading:
            return "downloading";
        case bulk_phase::storing:
            return "storing";
        case bulk_phase::releasing:
            return "releasing";
        case bulk_phase::done:
            return "done";
        case bulk_phase::failed:
            return "failed";
        case bulk_phase::cancelled:
            return "cancelled";
    }
    return "kickoff";
}

bulk_job_record new_bulk_record(std::string kickoff_url, sys_time now) {
    bulk_job_record r;
    r.kickoff_url = std::move(kickoff_url);
    r.started_at = now;
    return r;
}

namespace {

error bad_status(std::string what) {
    return error{errc::bad_status_url, "bulk kick-off accepted (202), but " + std::move(what)};
}

// The status URL from a 202's Content-Location. The IG says it is absolute;
// HTTP itself (RFC 9110 §8.7) resolves a relative one against the request's
// URL, which keeps it on the FHIR server's origin, so that is accepted too:
// refusing it would orphan an export the server has already started. Another
// origin is accepted (the spec allows it) but gets no bearer token. Plain
// http is refused unless to a loopback host. The value is never repeated in
// an error: a status URL can be a capability URL.
result<std::string> status_url_of(const std::string& kickoff_url,
                                  const std::optional<std::string>& location) {
    if (!location || location->empty())
        return bad_status("it has no Content-Location: the export can be neither polled nor cancelled");
    if (location->size() > 4096) return bad_status("its Content-Location is longer than 4096 bytes");
    std::string url;
    if (boost::urls::parse_uri(*location)) {
        url = *location;
    } else {
        const auto ref = boost::urls::parse_relative_ref(*location);
        const auto base = boost::urls::parse_uri(kickoff_url);
        boost::urls::url dest;
        if (!ref || !base || !boost::urls::resolve(*base, *ref, dest))
            return bad_status("its Content-Location is not a URL");
        url = std::string(dest.buffer());
    }
    const auto o = http::origin_of(url);
    if (!o) return bad_status("its Content-Location is not an http(s) URL");
    if (o->scheme != "https" && !http::is_loopback_host(o->host))
        return bad_status("its Content-Location is plain http to a host that is not loopback");
    return url;
}

bool retryable_status(int status, outcome_class verdict) {
    if (verdict == outcome_class::transient) return true;
    if (verdict == outcome_class::fatal) return false;
    return status == 429 || status >= 500;  // no outcome: a gateway's 502/503, a rate limit
}

bool is_medication_output(const bulk_file& f) {
    return f.kind == bulk_file_kind::output && f.type == "Medication";
}

std::string http_text(int status) { return "HTTP " + std::to_string(status); }

// base * 2^k, at most cap, without overflow whatever the configured values.
seconds doubled(seconds base, int k, seconds cap) {
    seconds step = std::min(base, cap);
    for (int i = 0; i < k && step < cap; ++i) step = std::min(step * 2, cap);
    return step;
}

}  // namespace

bulk_job::bulk_job(options o, bulk_job_record record) : opts_(std::move(o)), rec_(std::move(record)) {}

bool bulk_job::past_deadline(sys_time t) const { return t >= rec_.started_at + opts_.job_deadline; }

bool bulk_job::same_origin_as_fhir(std::string_view url) const {
    return http::same_origin(url, rec_.kickoff_url);
}

bulk_action bulk_job::start(sys_time now) {
    auto& r = rec_;
    if (ended(r.phase)) return finish(false);
    if (r.failure || r.cancel_requested || r.since_stored) {
        if (!r.status_url) return finish(false);
        r.phase = bulk_phase::releasing;
        attempts_ = 0;
        return release(now);
    }
    if (!r.status_url) {
        r.phase = bulk_phase::kickoff;
        attempts_ = 0;
        return send_kickoff(now);
    }
    if (!r.manifest) {
        r.phase = bulk_phase::polling;
        return poll_at(now);
    }
    r.phase = bulk_phase::downloading;
    // The Medication index the normalizer resolves medicationReference
    // with lives in memory only: a restarted job that still has other
    // output files to apply applies its Medication files again first
    // (harmless: applying is idempotent, bulk_store.hpp).
    const auto& files = r.manifest->files;
    bool output_left = false;
    for (std::size_t i = 0; i < files.size(); ++i)
        if (files[i].kind == bulk_file_kind::output && !is_medication_output(files[i]) &&
            r.applied.count(i) == 0)
            output_left = true;
    if (output_left)
        for (std::size_t i = 0; i < files.size(); ++i)
            if (is_medication_output(files[i])) r.applied.erase(i);
    return download_next(now);
}

bulk_action bulk_job::next(const bulk_event& e, sys_time now) {
    if (awaiting_ == awaiting::nothing) throw std::logic_error("bulk_job: an event after the job ended");
    if (std::holds_alternative<cancel_requested>(e)) {
        rec_.cancel_requested = true;
        if (!rec_.status_url) return finish(false);
        if (awaiting_ == awaiting::release) return release(now);
        rec_.phase = bulk_phase::releasing;
        attempts_ = 0;
        return persist();  // the cancel survives a restart before the DELETE
    }
    if (const auto* a = std::get_if<http_answer>(&e); a && a->status != 401) refreshed_ = false;
    switch (awaiting_) {
        case awaiting::kickoff:
            return on_kickoff(e, now);
        case awaiting::persist:
            if (const auto* f = std::get_if<persist_failed>(&e)) return on_persist_failed(f->failure, now);
            if (!std::holds_alternative<persisted>(e)) break;
            return on_persisted(now);
        case awaiting::poll:
            return on_poll(e, now);
        case awaiting::download:
        case awaiting::apply:
            return on_download(e, now);
        case awaiting::since:
            if (!std::holds_alternative<since_stored>(e)) break;
            rec_.since_stored = true;
            rec_.phase = bulk_phase::releasing;
            attempts_ = 0;
            return release(now);
        case awaiting::release:
            return on_release(e, now);
        case awaiting::nothing:
            break;
    }
    throw std::logic_error("bulk_job: an event that does not answer the last action");
}

// ---- requests ------------------------------------------------------------------

bulk_action bulk_job::send_kickoff(sys_time at) {
    if (past_deadline(at))
        return fail(error{errc::deadline_exceeded,
                          "bulk export: the kick-off did not succeed before the job deadline"},
                    at);
    bulk_action a;
    a.what = kind::send_kickoff;
    a.at = at;
    a.url = rec_.kickoff_url;
    a.bearer = true;  // built from the FHIR base: its own origin
    awaiting_ = awaiting::kickoff;
    last_ = a;
    return a;
}

bulk_action bulk_job::poll_at(sys_time at) {
    // A wait that ends past the deadline cannot end in a manifest in time:
    // give up now and release the server's job rather than sleep first.
    if (past_deadline(at))
        return fail(error{errc::deadline_exceeded,
                          "bulk export: the server did not finish the export within "
                          "the job deadline of " +
                              std::to_string(opts_.job_deadline.count()) + " s"},
                    at);
    bulk_action a;
    a.what = kind::poll;
    a.at = at;
    a.url = *rec_.status_url;
    a.bearer = rec_.status_on_fhir_origin;
    awaiting_ = awaiting::poll;
    last_ = a;
    return a;
}

// Medication output files first, then the manifest's order: the
// normalizer resolves a MedicationRequest's medicationReference from the
// Medication resources it has already read (normalize.hpp), and a
// server lists its files in any order.
std::optional<std::size_t> bulk_job::next_file() const {
    const auto& files = rec_.manifest->files;
    std::optional<std::size_t> first;
    for (std::size_t i = 0; i < files.size(); ++i) {
        if (rec_.applied.count(i) != 0) continue;
        if (is_medication_output(files[i])) return i;
        if (!first) first = i;
    }
    return first;
}

bulk_action bulk_job::download_next(sys_time now) {
    if (const auto i = next_file()) {
        rec_.phase = bulk_phase::downloading;
        attempts_ = 0;
        return download(*i, now);
    }
    // Every file is in: only now may transactionTime become the next _since
    // (IG: the next export asks for changes since it).
    rec_.phase = bulk_phase::storing;
    bulk_action a;
    a.what = kind::store_since;
    a.at = now;
    a.since = rec_.manifest->transaction_time;
    awaiting_ = awaiting::since;
    return a;
}

bulk_action bulk_job::download(std::size_t file, sys_time at) {
    if (past_deadline(at))
        return fail(error{errc::deadline_exceeded,
                          "bulk export: the files were not all applied before the job "
                          "deadline"},
                    at);
    const auto& f = rec_.manifest->files[file];
    bulk_action a;
    a.what = kind::download;
    a.at = at;
    a.url = f.url;
    a.file = file;
    // IG: the token goes with a file request only when requiresAccessToken;
    // issue 15: and never to another origin than the FHIR server's.
    a.bearer = rec_.manifest->requires_access_token && same_origin_as_fhir(f.url);
    awaiting_ = awaiting::download;
    last_ = a;
    return a;
}

bulk_action bulk_job::release(sys_time at) {
    bulk_action a;
    a.what = kind::release;
    a.at = at;
    a.url = *rec_.status_url;
    a.bearer = rec_.status_on_fhir_origin;
    awaiting_ = awaiting::release;
    last_ = a;
    return a;
}

bulk_action bulk_job::persist() {
    awaiting_ = awaiting::persist;
    bulk_action a;
    a.what = kind::persist;
    return a;
}

bulk_action bulk_job::fail(error e, sys_time now) {
    if (!rec_.failure) rec_.failure = std::move(e);
    if (!rec_.status_url) return finish(false);
    // The server holds an export: cancel it or free its files. The reason
    // is persisted first, so a restart releases instead of polling again.
    rec_.phase = bulk_phase::releasing;
    attempts_ = 0;
    (void)now;
    return persist();
}

bulk_action bulk_job::finish(bool released) {
    bulk_action a;
    if (rec_.failure) {
        rec_.phase = bulk_phase::failed;
        a.what = kind::failed;
        a.failure = rec_.failure;
    } else if (rec_.cancel_requested) {
        rec_.phase = bulk_phase::cancelled;
        a.what = kind::cancelled;
    } else {
        rec_.phase = bulk_phase::done;
        a.what = kind::done;
    }
    a.released = released;
    awaiting_ = awaiting::nothing;
    return a;
}

// A 401: the shell acquires a new access token and sends the same request
// again, once (Backend Services tokens last about 5 minutes, so expiry in
// the middle of a long job is the normal case). Without a bearer (another
// origin) a new token cannot help.
std::optional<bulk_action> bulk_job::unauthorized(bool bearer, const char* what, sys_time now) {
    if (!bearer)
        return fail(
            error{errc::unauthorized, std::string("bulk export: ") + what +
                                          " answered 401; it is not on the FHIR server's origin, so no "
                                          "token is sent there"},
            now);
    if (refreshed_)
        return fail(error{errc::unauthorized, std::string("bulk export: ") + what +
                                                  " answered 401 again with a fresh access token"},
                    now);
    refreshed_ = true;
    last_.at = now;
    last_.fresh_token = true;
    return last_;
}

// ---- waits -------------------------------------------------------------------

// The IG asks clients to poll with exponential backoff and to honour
// Retry-After. Without one: first_poll_after doubling up to
// poll_backoff_cap. With one (seconds or an HTTP-date, RFC 9110 §10.2.3):
// its value, capped by max_retry_after (Oracle Health has asked for hours;
// an HTTP-date can name any time). `back_off` (429, a transient error):
// also at least the next backoff step, since honouring a short Retry-After
// alone would keep the pace that was too fast. Never below
// min_poll_interval: "Retry-After: 0" or a date in the past is no licence
// for a tight loop. Waits are exact, without jitter: one job per EHR runs at
// a time, so there is no herd to spread.
seconds bulk_job::poll_wait(const std::optional<std::string>& retry_after, bool back_off, sys_time now) {
    std::optional<seconds> asked;
    if (retry_after) asked = http::parse_retry_after(*retry_after, now);
    seconds wait{0};
    if (asked) wait = std::min(*asked, opts_.max_retry_after);
    if (!asked || back_off) {
        wait = std::max(wait, doubled(opts_.first_poll_after, poll_backoff_, opts_.poll_backoff_cap));
        ++poll_backoff_;
    }
    return std::max(wait, opts_.min_poll_interval);
}

// A kick-off, file or release retry: Retry-After (capped) when given, else
// retry_base doubling per attempt, up to poll_backoff_cap.
seconds bulk_job::retry_wait(const std::optional<std::string>& retry_after, int attempt, sys_time now) const {
    if (retry_after)
        if (const auto asked = http::parse_retry_after(*retry_after, now))
            return std::min(*asked, opts_.max_retry_after);
    return doubled(opts_.retry_base, attempt, opts_.poll_backoff_cap);
}

// ---- outcomes ------------------------------------------------------------------

bulk_action bulk_job::on_kickoff(const bulk_event& e, sys_time now) {
    if (const auto* t = std::get_if<transport_failed>(&e)) {
        // A kick-off that may have reached the server may have started an
        // export we cannot see; another one at once doubles the server's work
        // (and Epic refuses a second export per client and group). Only a
        // request that certainly never left is sent again.
        if (never_sent(t->failure) && ++attempts_ < opts_.max_attempts)
            return send_kickoff(now + retry_wait(std::nullopt, attempts_ - 1, now));
        const char* why = never_sent(t->failure) ? "" : "; not repeated: it may have reached the server";
        return fail(error{t->failure.code, "bulk kick-off failed: " + t->failure.message + why}, now);
    }
    const auto* a = std::get_if<http_answer>(&e);
    if (!a) throw std::logic_error("bulk_job: the kick-off's outcome is an answer or a transport failure");
    if (a->status == 202) {
        auto url = status_url_of(rec_.kickoff_url, a->content_location);
        if (!url) return fail(url.err(), now);
        const auto o = http::origin_of(*url);
        rec_.status_url = *url;
        rec_.status_origin = o->to_string();
        rec_.status_on_fhir_origin = same_origin_as_fhir(*url);
        if (a->x_progress) rec_.progress = sanitize_progress(*a->x_progress);
        rec_.phase = bulk_phase::polling;
        first_poll_at_ = now + poll_wait(a->retry_after, false, now);
        return persist();  // issue 15: persisted before the first poll
    }
    if (a->status == 401) return *unauthorized(true, "the kick-off", now);
    const auto outcome = read_operation_outcome(a->body);
    const std::string detail = outcome.summary.empty() ? "" : ": " + outcome.summary;
    if (a->status >= 400 && retryable_status(a->status, outcome.verdict)) {
        if (++attempts_ < opts_.max_attempts)
            return send_kickoff(now + retry_wait(a->retry_after, attempts_ - 1, now));
        return fail(error{error_code::http(a->status),
                          "bulk kick-off kept failing (" + http_text(a->status) + ")" + detail},
                    now);
    }
    if (a->status >= 200 && a->status < 300)
        return fail(
            error{errc::export_failed, "bulk kick-off answered " + http_text(a->status) +
                                           ", not 202: the server did not start an asynchronous export"},
            now);
    return fail(
        error{error_code::http(a->status), "bulk kick-off refused (" + http_text(a->status) + ")" + detail},
        now);
}

bulk_action bulk_job::on_persisted(sys_time now) {
    switch (rec_.phase) {
        case bulk_phase::polling:
            return poll_at(first_poll_at_);
        case bulk_phase::downloading:
            return download_next(now);
        case bulk_phase::releasing:
            return release(now);
        default:
            throw std::logic_error("bulk_job: persisted in a phase that asks for no persist");
    }
}

// Polling an export whose status URL is not on disk would let a crash
// orphan it, and the next job would kick off again: the rule is
// "persisted before the first poll". So no poll: the export is cancelled
// (one DELETE, not persisted either) and the job fails.
bulk_action bulk_job::on_persist_failed(const error& e, sys_time now) {
    if (!rec_.failure)
        rec_.failure = error{e.code, "bulk export: the job's record could not be saved: " + e.message};
    if (!rec_.status_url) return finish(false);
    rec_.phase = bulk_phase::releasing;
    attempts_ = 0;
    return release(now);
}

bulk_action bulk_job::on_poll(const bulk_event& e, sys_time now) {
    if (const auto* t = std::get_if<transport_failed>(&e)) {
        if (!transient(t->failure))
            return fail(error{t->failure.code, "bulk status poll failed: " + t->failure.message}, now);
        if (++poll_errors_ > opts_.max_poll_errors)
            return fail(error{t->failure.code, "bulk status poll kept failing: " + t->failure.message}, now);
        return poll_at(now + poll_wait(std::nullopt, true, now));
    }
    const auto* a = std::get_if<http_answer>(&e);
    if (!a) throw std::logic_error("bulk_job: a poll's outcome is an answer or a transport failure");
    return on_poll_answer(*a, now);
}

bulk_action bulk_job::on_poll_answer(const http_answer& a, sys_time now) {
    if (a.x_progress) rec_.progress = sanitize_progress(*a.x_progress);
    if (a.status == 202) {
        poll_errors_ = 0;
        return poll_at(now + poll_wait(a.retry_after, false, now));
    }
    if (a.status == 200) return on_manifest(a, now);
    if (a.status == 401) return *unauthorized(rec_.status_on_fhir_origin, "the status URL", now);
    if (a.status == 404 || a.status == 410)
        return fail(error{errc::export_failed, "bulk status URL answered " + http_text(a.status) +
                                                   ": the server no longer knows this export (expired or "
                                                   "cancelled)"},
                    now);
    const auto outcome = read_operation_outcome(a.body);
    const std::string detail = outcome.summary.empty() ? "" : ": " + outcome.summary;
    if (a.status >= 400 && retryable_status(a.status, outcome.verdict)) {
        // 429: polling too fast (IG); a transient outcome: "retry later".
        if (a.status != 429 && ++poll_errors_ > opts_.max_poll_errors)
            return fail(error{error_code::http(a.status),
                              "bulk status poll kept failing (" + http_text(a.status) + ")" + detail},
                        now);
        return poll_at(now + poll_wait(a.retry_after, true, now));
    }
    return fail(error{errc::export_failed, "bulk export failed (" + http_text(a.status) + ")" + detail}, now);
}

bulk_action bulk_job::on_manifest(const http_answer& a, sys_time now) {
    auto m = parse_manifest(a.body, opts_.manifest);
    if (!m) return fail(m.err(), now);
    rec_.manifest = std::move(*m);
    rec_.applied.clear();
    rec_.phase = bulk_phase::downloading;
    return persist();  // the file list survives a restart: downloads resume, no new kick-off
}

bulk_action bulk_job::on_download(const bulk_event& e, sys_time now) {
    const std::size_t i = last_.file;
    const auto& f = rec_.manifest->files[i];
    const std::string which =
        "bulk file " + std::to_string(i) + " (" + std::string(to_string(f.kind)) + ", " + f.type + ")";
    if (awaiting_ == awaiting::apply) {
        if (const auto* ok = std::get_if<file_applied>(&e); ok && ok->file == i) {
            rec_.applied.insert(i);
            return download_next(now);
        }
        if (const auto* bad = std::get_if<apply_failed>(&e); bad && bad->file == i)
            return fail(error{bad->failure.code, which + " could not be applied: " + bad->failure.message},
                        now);
        throw std::logic_error("bulk_job: an apply's outcome must name the file it applied");
    }
    const auto* a = std::get_if<http_answer>(&e);
    const auto* done = std::get_if<file_downloaded>(&e);
    if ((done && done->file == i) || (a && a->status >= 200 && a->status < 300)) {
        awaiting_ = awaiting::apply;
        bulk_action apply;
        apply.what = kind::apply;
        apply.at = now;
        apply.file = i;
        return apply;
    }
    if (const auto* t = std::get_if<transport_failed>(&e)) {
        if (transient(t->failure) && ++attempts_ < opts_.max_attempts)
            return download(i, now + retry_wait(std::nullopt, attempts_ - 1, now));
        return fail(error{t->failure.code, which + " failed: " + t->failure.message}, now);
    }
    if (!a) throw std::logic_error("bulk_job: a download's outcome must name the file it downloaded");
    if (a->status == 401) return *unauthorized(last_.bearer, which.c_str(), now);
    if (a->status == 429 || a->status >= 500) {
        if (++attempts_ < opts_.max_attempts)
            return download(i, now + retry_wait(a->retry_after, attempts_ - 1, now));
        return fail(
            error{error_code::http(a->status), which + " kept failing (" + http_text(a->status) + ")"}, now);
    }
    const char* why =
        (a->status == 404 || a->status == 410) ? ": the export's files expired or were released" : "";
    return fail(error{error_code::http(a->status), which + " answered " + http_text(a->status) + why}, now);
}

bulk_action bulk_job::on_release(const bulk_event& e, sys_time now) {
    // The DELETE cancels a running export or frees a finished one's files
    // (IG "Delete a Bulk Data Request"); 404: already gone, which is the
    // aim. It is cleanup: it never turns a success into a failure, and it is
    // tried a bounded number of times, past the job deadline too.
    if (const auto* a = std::get_if<http_answer>(&e)) {
        if ((a->status >= 200 && a->status < 300) || a->status == 404 || a->status == 410)
            return finish(true);
        if (a->status == 401 && last_.bearer && !refreshed_) {
            refreshed_ = true;
            last_.at = now;
            last_.fresh_token = true;
            return last_;
        }
        if ((a->status == 429 || a->status >= 500) && ++attempts_ < opts_.max_attempts)
            return release(now + retry_wait(a->retry_after, attempts_ - 1, now));
        return finish(false);
    }
    if (const auto* t = std::get_if<transport_failed>(&e)) {
        if (transient(t->failure) && ++attempts_ < opts_.max_attempts)
            return release(now + retry_wait(std::nullopt, attempts_ - 1, now));
        return finish(false);
    }
    throw std::logic_error("bulk_job: a release's outcome is an answer or a transport failure");
}

}  // namespace headachemd::sync
