#include "headachemd/sync/engine.hpp"

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include <simdjson.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "headachemd/fhir/fhir.hpp"
#include "headachemd/http/url.hpp"
#include "headachemd/normalize/normalize.hpp"
#include "headachemd/smart/smart.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/commit_page.hpp"
#include "headachemd/store/sync_state.hpp"
#include "headachemd/sync/audit_sink.hpp"
#include "headachemd/sync/credentials.hpp"
#include "headachemd/sync/pager.hpp"
#include "headachemd/sync/request_policy.hpp"
#include "headachemd/sync/views_setup.hpp"

namespace headachemd::sync {
namespace {

namespace asio = boost::asio;
namespace cfg = headachemd::config;
namespace nz = headachemd::normalize;
using asio::awaitable;
using asio::use_awaitable;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

// RFC 3339 instants from the same server compare correctly as text when
// they share a form; FHIR lastUpdated is an instant with a zone, so compare
// by value where both parse and fall back to text.
bool later_instant(const std::string& a, const std::string& b) {
    const std::string na = fhir::last_updated_with_overlap(a, seconds(0));
    const std::string nb = fhir::last_updated_with_overlap(b, seconds(0));
    if (!na.empty() && !nb.empty() && na != nb) return na > nb;
    return a > b;
}

// An entry a search for `rs.type` cannot hold, described; nullopt when all
// may be there. FHIR R4 §3.1.1.x (Bundle.entry.search.mode): "match" marks
// a resource that matched the search, so it is of the searched type;
// "include" marks one added by _include/_revinclude; "outcome" an
// OperationOutcome about the search (warnings, never stored). The mode is
// optional, so an entry without it is judged by its type alone.
// - A "match" of another type is refused: a server that says so is broken
//   or hostile (an endless chain of such pages would commit rows forever).
// - Another type that the normalizer stores (it has a table) is refused
//   unless this search asked for includes: its rows would land in a table
//   nobody searched, with no cursor, no delete detection and no page cap
//   of its own.
// - Another type that is not stored (Medication for medicationReference,
//   Practitioner, Provenance, OperationOutcome) is allowed: the normalizer
//   reads it only to resolve references, and it still counts toward
//   max_resources_per_patient.
std::optional<std::string> foreign_entry(const fhir::page_meta& m, const cfg::resource_setting& rs) {
    bool includes_asked = false;
    for (const auto& [name, value] : rs.params)
        includes_asked = includes_asked || name.starts_with("_include") || name.starts_with("_revinclude");
    for (std::size_t i = 0; i < m.entries.size(); ++i) {
        const auto& en = m.entries[i];
        if (en.resource_type == rs.type) continue;
        // A type name from the server is quoted only when it is a real R4
        // type: the message reaches the log and sync_status.
        const std::string what =
            "entry " + std::to_string(i) + " is a " +
            (nz::is_r4_resource_type(en.resource_type) ? en.resource_type
                                                       : std::string("resource of no R4 type"));
        if (en.search_mode == "match") return what + " marked as a match of a search for " + rs.type;
        if (!nz::table_for_type(en.resource_type).empty() && !includes_asked)
            return what + ", which a search for " + rs.type +
                   " without _include or _revinclude cannot return";
    }
    return std::nullopt;
}

// A normalized page as the pager sees it: each record's id, and whether
// it is of the searched type's table (an included resource is not).
std::vector<page_entry> entries_of(const std::vector<nz::record>& records, std::string_view type) {
    std::vector<page_entry> out;
    out.reserve(records.size());
    for (const auto& rec : records)
        out.push_back({nz::header_of(rec).id, std::string_view(nz::resource_type_of(rec)) == type});
    return out;
}

// Where a searched type's rows are kept: its analyst table, or
// bare_resource for a type only a materialized view reads (schema 10).
std::string_view stored_table(std::string_view type) {
    const std::string_view t = nz::table_for_type(type);
    return t.empty() ? nz::bare_table : t;
}

}  // namespace

int patient_result::rows_changed() const {
    int n = 0;
    for (const auto& t : types) n += t.inserted + t.updated + t.deleted;
    return n;
}

void ehr_counters::add(const ehr_counters& other) {
    for (const auto& [status, n] : other.responses) responses[status] += n;
    transport_errors += other.transport_errors;
    refresh_ok += other.refresh_ok;
    refresh_invalid_grant += other.refresh_invalid_grant;
    refresh_failed += other.refresh_failed;
    refresh_interrupted += other.refresh_interrupted;
    access_token_reused += other.access_token_reused;
}

bool patient_result::failed() const { return (!ok && !skipped) || needs_reauth; }

int pass_result::failed() const {
    int n = 0;
    for (const auto& p : patients) n += p.failed() ? 1 : 0;
    return n;
}

int pass_result::succeeded() const {
    int n = 0;
    for (const auto& p : patients) n += p.ok ? 1 : 0;
    return n;
}

struct engine::impl : std::enable_shared_from_this<impl> {
    struct ehr_state {
        const cfg::ehr_settings* settings = nullptr;
        smart::client_credentials creds;
        std::string token_endpoint;
        std::optional<fhir::capabilities> caps;
        bool prepared = false;
        std::optional<error> prepare_failure;
        std::shared_ptr<rate_limiter> limiter;
        // A Retry-After beyond max_retry_after: nothing is sent to this EHR
        // before then, and its jobs end as rate-limited (not a sleep).
        std::optional<sys_time> rate_limited_until;
        ehr_state(const cfg::ehr_settings& s, std::shared_ptr<rate_limiter> shared)
            : settings(&s),
              limiter(shared ? std::move(shared)
                             : std::make_shared<rate_limiter>(s.requests_per_minute,
                                                              s.rate_window_fixed_minute)) {}
    };

    struct patient_state {
        smart::access_token_state access;
        // Audit events of this patient's requests not yet in vault.db
        // (appended at each page commit and at the end of the job).
        std::vector<store::audit_event> audit;
        std::string fhir_patient_id;  // to keep it out of sync_status under identifiers = "none"
        // Per job (reset when it starts). docs/admin/operations.md: a 401 gets one refresh; a
        // second 401 in the same job fails it, whatever type it came from.
        bool refreshed_for_401 = false;
        // Resources read in this job, every page and type (max_resources_per_patient).
        long long resources = 0;
        // The access token the EHR answered 401 to: never taken back from
        // the vault, where another process may have stored it.
        std::string rejected_access;
    };

    // What an audit event says about a request besides its answer. Never a
    // URL: a query string holds the FHIR patient id.
    struct call {
        std::string_view patient_key;  // empty: a call for the EHR as a whole
        std::string_view action;       // store::audit_action
        std::string_view resource_type = {};
        std::optional<int> page = {};
    };

    impl(asio::any_io_executor e, const cfg::config& c, http::transport& h, store::analytics_db& d,
         store::vault& v, const clock& k, std::shared_ptr<spdlog::logger> l, engine_options o)
        : ex(std::move(e)),
          config(c),
          http(h),
          db(d),
          vault(v),
          clk(k),
          log(std::move(l)),
          opts(std::move(o)),
          ids{v.pseudonymization_key(), c.privacy.identifiers == cfg::identifier_policy::minimal},
          writer(d, opts.store_raw, ids),
          state(d),
          views(open_views(d, c, store::utc_timestamp(k.now()))),
          normalizer(
              nz::options{.keep_raw = opts.store_raw,
                          .raw_for_types = views ? views->resource_types() : std::vector<std::string>{}}),
          auditor(vault_audit_store(v), k, log) {
        if (!opts.random) {
            auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
            opts.random = [rng] { return (*rng)(); };
        }
        // patient.id is a keyed hash made with the vault's key: a database
        // written with another key would split each patient in two. The
        // check only reads; a mismatch refuses to start.
        (void)db.has_pseudonym_fingerprint(store::fingerprint(ids.key));
        apply_identity_policy();
        backfill_views();
        if (!opts.refresh_locks)
            opts.refresh_locks =
                std::make_shared<store::file_refresh_locks>(store::file_refresh_locks::beside(v.path()));
        for (const auto& s : config.ehrs) {
            const auto shared = opts.limiters.find(s.name);
            auto st =
                std::make_unique<ehr_state>(s, shared == opts.limiters.end() ? nullptr : shared->second);
            st->creds = load_client_credentials(s);
            ehrs.emplace(s.name, std::move(st));
        }
    }

    asio::any_io_executor ex;
    const cfg::config& config;
    http::transport& http;
    store::analytics_db& db;
    store::vault& vault;
    const clock& clk;
    std::shared_ptr<spdlog::logger> log;
    engine_options opts;
    store::identity_policy ids;  // [privacy] identifiers
    store::resource_writer writer;
    store::sync_state state;
    std::shared_ptr<store::view_tables> views;  // the config's [[view]]s; nullptr when none
    nz::normalizer normalizer;
    std::map<std::string, std::unique_ptr<ehr_state>, std::less<>> ehrs;
    std::map<std::string, patient_state> patients;  // by ehr + '\n' + patient_key
    engine_counters counters;
    bool stopping = false;
    bool identity_applied = false;  // apply_identity_policy succeeded once
    std::set<asio::steady_timer*> timers;
    // Audit events of calls made for an EHR as a whole (discovery, metadata).
    std::vector<store::audit_event> ehr_audit;
    audit_sink auditor;  // buffering and fsync pacing of the events above and the patients'

    std::string now_text() const { return store::utc_timestamp(clk.now()); }

    // Waits, unless stop() comes first. Returns false when stopped.
    awaitable<bool> wait(std::chrono::nanoseconds d) {
        if (stopping) co_return false;
        if (d <= std::chrono::nanoseconds::zero()) co_return true;
        if (opts.on_wait) {
            opts.on_wait(d);  // a test's clock, instead of sleeping
            co_return !stopping;
        }
        asio::steady_timer timer(ex, d);
        timers.insert(&timer);
        co_await timer.async_wait(asio::as_tuple(use_awaitable));
        timers.erase(&timer);
        co_return !stopping;
    }

    // An audit event for a call, kept in `buf` until the next append.
    void record(std::vector<store::audit_event>& buf, const ehr_state& e, const call& c,
                std::optional<int> status, std::string outcome) {
        store::audit_event ev;
        ev.time = now_text();
        ev.patient_key = std::string(c.patient_key);
        ev.ehr = e.settings->name;
        ev.action = std::string(c.action);
        ev.resource_type = std::string(c.resource_type);
        ev.page = c.page;
        ev.http_status = status;
        ev.outcome = std::move(outcome);
        buf.push_back(std::move(ev));
    }

    // Appends buffered events to vault.db (audit_sink.hpp: deferred or full).
    void flush_audit(std::vector<store::audit_event>& buf, store::audit_sync sync) {
        auditor.flush(buf, sync);
    }

    static audit_store vault_audit_store(store::vault& v) {
        return audit_store{[&v](std::span<const store::audit_event> events, store::audit_sync sync) {
                               store::append_audit(v.sql(), events, sync);
                           },
                           [&v] { store::sync_audit(v.sql()); }};
    }

    // One request under the EHR's rate limit, with its audit event in `audit`.
    // `in_transport`, when given, grows by the time the transport took (the
    // retry budget's measure; the rate limiter's wait is not in it).
    awaitable<result<http::response>> send(ehr_state& e, http::request req,
                                           std::vector<store::audit_event>& audit, call c,
                                           std::chrono::nanoseconds* in_transport = nullptr) {
        // A hold learnt by another job (or earlier in this one): not sent.
        if (auto held = rate_limit_hold(e)) co_return *held;
        if (!co_await wait(e.limiter->acquire(clk.now())))
            co_return error{errc::stopped, "stopping: request not sent"};
        ++counters.requests;
        // The EHR's http_timeout is the deadline of the whole request
        // (issue 12, defect 7): per EHR, not one value for the client.
        if (!req.timeout) req.timeout = http_timeout(e);
        const auto sent_at = clk.steady_now();
        auto r = co_await http.send(std::move(req));
        if (in_transport) *in_transport += clk.steady_now() - sent_at;
        if (r)
            record(audit, e, c, r->status, r->status < 400 ? "ok" : "http_" + std::to_string(r->status));
        else
            record(audit, e, c, std::nullopt, to_string(r.err().code));
        if (r && r->status == 429) ++counters.http_429;
        auto& per_ehr = ehr_counts(e);
        if (r)
            ++per_ehr.responses[r->status];
        else
            ++per_ehr.transport_errors;
        co_return r;
    }

    static milliseconds http_timeout(const ehr_state& e) {
        return duration_cast<milliseconds>(e.settings->http_timeout);
    }

    ehr_counters& ehr_counts(const ehr_state& e) {
        auto it = counters.by_ehr.find(e.settings->name);
        if (it == counters.by_ehr.end()) it = counters.by_ehr.emplace(e.settings->name, ehr_counters{}).first;
        return it->second;
    }

    // What the request policy needs of this EHR (request_policy.hpp).
    request_limits limits_of(const ehr_state& e) const {
        return request_limits{opts.backoff, http_timeout(e), e.settings->max_retry_after,
                              e.settings->bare_429_waits_for_minute};
    }

    // The request policy's step between two attempts, but for its wait: a
    // 429/503's wait also holds the EHR's rate limiter; a Retry-After past
    // max_retry_after holds the whole EHR and ends the request (the error).
    std::optional<error> before_retry(ehr_state& e, const request_step& step) {
        if (step.action == request_action::hold) return hold_ehr(e, step);
        if (step.limiter_hold_until) e.limiter->hold_until(*step.limiter_hold_until);
        return std::nullopt;
    }

    // Nothing is sent to the EHR before the time its Retry-After named; its
    // jobs end as rate-limited until then (not a sleep).
    error hold_ehr(ehr_state& e, const request_step& step) {
        if (!e.rate_limited_until || *e.rate_limited_until < step.hold_until)
            e.rate_limited_until = step.hold_until;
        counters.rate_limited_until[e.settings->name] = *e.rate_limited_until;
        log->warn(
            "EHR {} asked to wait {} s (Retry-After), more than max_retry_after ({} s): its jobs "
            "end as rate-limited until {}",
            e.settings->name, step.asked.count(), e.settings->max_retry_after.count(),
            store::utc_timestamp(*e.rate_limited_until));
        return *rate_limit_hold(e);
    }

    // The policy's step after one attempt that `send` returned.
    request_step after_attempt(request_policy& policy, const result<http::response>& r,
                               std::chrono::nanoseconds took = {}) const {
        if (!r) return policy.on_error(r.err(), took);
        return policy.on_response(r->status, r->header("Retry-After"), clk.now(), took);
    }

    // The error of a job (or request) under a rate-limit hold; nullopt when
    // the EHR is not held. Its message is what `status` shows.
    std::optional<error> rate_limit_hold(const ehr_state& e) const {
        if (!e.rate_limited_until || clk.now() >= *e.rate_limited_until) return std::nullopt;
        return error{errc::rate_limited, "rate-limited until " + store::utc_timestamp(*e.rate_limited_until) +
                                             ": the EHR asked to wait "
                                             "longer than max_retry_after (" +
                                             std::to_string(e.settings->max_retry_after.count()) +
                                             " s); nothing is sent to it before then"};
    }

    // GET without a bearer token (discovery, metadata), with retries.
    awaitable<result<http::response>> get_public(ehr_state& e, std::string url, std::string_view action) {
        request_policy policy(request_kind::public_get, limits_of(e), opts.random);
        for (;;) {
            http::request req;
            req.url = url;
            req.headers.push_back({"Accept", "application/json, application/fhir+json"});
            std::chrono::nanoseconds took{0};  // against the retry budget
            auto r = co_await send(e, std::move(req), ehr_audit, call{{}, action}, &took);
            const request_step step = after_attempt(policy, r, took);
            if (step.action == request_action::use) co_return r;
            if (step.action == request_action::fail) co_return *step.failure;
            if (auto err = before_retry(e, step)) co_return *err;
            if (step.action == request_action::retry) {  // not resend_now
                if (!co_await wait(step.wait)) co_return error{errc::stopped, "stopping"};
            }
        }
    }

    // Discovery and capabilities, once per EHR per engine.
    awaitable<std::optional<error>> prepare(ehr_state& e) {
        if (e.prepared) co_return e.prepare_failure;
        const auto& s = *e.settings;
        if (s.token_endpoint) e.token_endpoint = *s.token_endpoint;
        // The first transport failure of discovery or metadata, and which:
        // the error names it instead of guessing (issue 12, 10a).
        std::optional<error> failed;
        std::string_view failed_step;
        if (s.discovery && !s.token_endpoint) {
            // SMART App Launch 2.x: {fhir_base}/.well-known/smart-configuration,
            // per tenant at eCW; the CapabilityStatement's oauth-uris is the
            // older way and our fallback.
            auto r = co_await get_public(e, s.fhir_base + "/.well-known/smart-configuration",
                                         store::audit_action::discovery);
            if (r && r->status == 200) {
                auto c = smart::parse_configuration(r->body);
                if (c) e.token_endpoint = c->token_endpoint;
            } else if (!r) {
                if (r.err().code == errc::stopped || r.err().code == errc::rate_limited) co_return r.err();
                failed = r.err();
                failed_step = "discovery";
            }
        }
        // A refused certificate at the FHIR base is refused for /metadata
        // too: one handshake is enough to know.
        if (!failed || failed->code != errc::tls_verify) {
            auto meta = co_await get_public(e, s.fhir_base + "/metadata", store::audit_action::metadata);
            if (meta && meta->status == 200) {
                if (auto caps = fhir::parse_capability_statement(meta->body)) e.caps = std::move(*caps);
                if (e.token_endpoint.empty()) {
                    if (auto c = smart::parse_capability_oauth_uris(meta->body))
                        e.token_endpoint = c->token_endpoint;
                }
            } else if (!meta && (meta.err().code == errc::stopped || meta.err().code == errc::rate_limited)) {
                // Not a lasting failure of the EHR: prepared again by the next job.
                co_return meta.err();
            } else if (!meta && (!failed || meta.err().code == errc::tls_verify)) {
                failed = meta.err();
                failed_step = "metadata";
            }
        }
        // The transport's messages name scheme://host:port/path, never a
        // query, so they may go to the log and sync_status as they are.
        if (failed && failed->code == errc::tls_verify) {
            // Every request of this EHR goes to the FHIR base's origin, and
            // a refresh token must not be spent on a job that cannot fetch.
            e.prepare_failure =
                error{errc::tls_verify, "EHR " + s.name + ": " + std::string(failed_step) +
                                            " failed: " + failed->message +
                                            "; nothing else is sent to this EHR in this pass"};
        } else if (e.token_endpoint.empty()) {
            e.prepare_failure =
                failed ? error{errc::discovery_failed, "EHR " + s.name + ": " + std::string(failed_step) +
                                                           " failed: " + failed->message +
                                                           "; so there is no token endpoint (or set "
                                                           "token_endpoint in the config)"}
                       : error{errc::discovery_failed, "EHR " + s.name +
                                                           ": no token endpoint (discovery and metadata gave "
                                                           "none; set token_endpoint in the config)"};
        } else if (!http::same_origin(e.token_endpoint, s.fhir_base) && !http::origin_of(e.token_endpoint)) {
            e.prepare_failure =
                error{errc::discovery_failed, "EHR " + s.name + ": the token endpoint is not a URL"};
        }
        e.prepared = true;
        if (e.prepare_failure) log->error("{}", e.prepare_failure->message);
        co_return e.prepare_failure;
    }

    // The patient's refresh lock (store/refresh_lock.hpp says why it exists
    // and why it is an OFD lock). try_acquire never blocks, so a busy lock
    // is polled on the executor's timer: other patients' jobs go on
    // meanwhile. The other holder keeps it for one token request with its
    // retries; past refresh_lock_wait this job gives up with a message that
    // says so. Giving up is a failed job, never needs_reauth: the other
    // holder's refresh is what happens to the token.
    awaitable<result<store::refresh_locks::lease>> lock_for_refresh(ehr_state& e,
                                                                    const store::enrollment& enr) {
        const milliseconds step = std::max(opts.refresh_lock_poll, milliseconds(1));
        const milliseconds bound = opts.refresh_lock_wait.value_or(
            duration_cast<milliseconds>(2 * e.settings->http_timeout + seconds(30)));
        const auto polls = bound / step;
        for (std::int64_t n = 0;; ++n) {
            std::optional<store::refresh_locks::lease> held;
            try {
                held = opts.refresh_locks->try_acquire(enr.ehr, enr.patient_key);
            } catch (const store::store_error& failure) {
                co_return error{errc::refresh_lock_failed, failure.what()};
            }
            if (held) co_return std::move(*held);
            if (n == 0)
                log->info(
                    "patient {} at {}: another headachemd-sync process (or job) is refreshing this patient's "
                    "token; waiting for it to finish",
                    enr.patient_key, enr.ehr);
            if (n >= polls)
                co_return error{errc::refresh_busy,
                                "another headachemd-sync process is refreshing patient " + enr.patient_key +
                                    " at " + enr.ehr + "; skipped (waited " +
                                    std::to_string(duration_cast<seconds>(bound).count()) +
                                    " s for its refresh lock)"};
            if (!co_await wait(step)) co_return error{errc::stopped, "stopping"};
        }
    }

    // The enrollment as the vault holds it now: another process may have
    // rotated the refresh token, marked the patient or removed them since
    // `enr` was read. An error when the patient cannot be refreshed.
    std::optional<error> reread(store::enrollment& enr) {
        std::optional<store::enrollment> now;
        try {
            now = vault.find_enrollment(enr.patient_key, enr.ehr);
        } catch (const store::store_error& failure) {
            return error{errc::vault_failed, failure.what()};
        }
        if (!now)
            return error{errc::not_enrolled, "patient " + enr.patient_key + " was unenrolled at " + enr.ehr +
                                                 " while its job ran"};
        if (now->refresh_token != enr.refresh_token)
            log->info(
                "patient {} at {}: another headachemd-sync process refreshed the token meanwhile; "
                "going on with the one it stored",
                enr.patient_key, enr.ehr);
        enr = std::move(*now);
        if (enr.needs_reauth)
            return error{errc::needs_reauth, "patient " + enr.patient_key + " must be enrolled again"};
        return std::nullopt;
    }

    // refresh_token grant. On success the rotated refresh token (if any) is
    // in the vault before this returns.
    //
    // Issue 12, defect 1: the patient's refresh lock is held from reading
    // the stored token to storing the rotated one, and the token is read
    // again once it is held, so no two refreshers (processes, or two jobs
    // of this one) ever send the same single-use token. The access token
    // the other holder obtained stays in its process, so this one still
    // refreshes, with the token that holder stored.
    //
    // Issue 17: an access token another process (or an earlier run) stored
    // is used instead when it has life left, unless `keepalive` asks for a
    // new refresh token. Before the request leaves, the refresh journal
    // records it; the answer clears it in the transaction that stores the
    // tokens. An entry found here means a refresh of this very token was
    // interrupted: the token is tried once, and a refusal then says so.
    awaitable<std::optional<error>> refresh(ehr_state& e, patient_state& ps, store::enrollment& enr,
                                            bool keepalive = false) {
        const auto& s = *e.settings;
        auto lease = co_await lock_for_refresh(e, enr);
        if (!lease) co_return lease.err();
        if (auto err = reread(enr)) co_return *err;
        // Callers come here with no usable access token; one now means
        // another job of this process (same patient_state) refreshed while
        // this one waited for the lock.
        const bool renew =
            keepalive && lapses_within(refresh_token_lapse(enr.token_obtained_at, s.refresh_token_lifetime),
                                       s.keepalive_before, clk.now());
        if (!renew && ps.access.usable(clk.now())) co_return std::nullopt;
        if (!renew && adopt_stored_access(e, ps, enr)) co_return std::nullopt;
        const bool interrupted = !enr.interrupted_refresh_since.empty();
        if (interrupted)
            log->warn(
                "patient {} at {}: a refresh of the stored token began at {} and never finished (the process "
                "ended with the request in flight); trying the token once",
                enr.patient_key, s.name, enr.interrupted_refresh_since);
        // The policy holds the rule that a refresh which may have reached
        // the server is never sent again (request_policy.cpp).
        request_policy policy(request_kind::token_refresh, limits_of(e), opts.random);
        for (;;) {
            // Built for each attempt: a retried request gets a new
            // private_key_jwt assertion, since the server refuses a jti twice.
            const auto tr =
                smart::make_refresh_request(enr.refresh_token, e.creds, {e.token_endpoint, clk.now()});
            // The journal is on disk before the token can be spent.
            try {
                vault.begin_refresh(enr.patient_key, enr.ehr, enr.refresh_token, now_text());
            } catch (const store::store_error& failure) {
                co_return error{errc::vault_failed, failure.what()};
            }
            ++counters.token_requests;
            const auto sent_at = clk.steady_now();
            auto r = co_await send(e, token_post(e, tr), ps.audit,
                                   call{enr.patient_key, store::audit_action::token_refresh});
            request_step step = after_attempt(policy, r);
            if (step.action == request_action::use) {
                const token_outcome out = take_token_answer(e, ps, enr, *r, tr, interrupted, sent_at);
                if (!out.rotated_meanwhile) co_return out.failure;
                step = policy.on_token_rotated_meanwhile(
                    error{errc::refresh_raced,
                          "another headachemd-sync process kept rotating the refresh token of "
                          "patient " +
                              enr.patient_key + "; the next job tries again"});
            }
            if (step.action == request_action::fail) {
                if (step.refresh_failed) ++ehr_counts(e).refresh_failed;
                co_return step.failure;
            }
            if (auto err = before_retry(e, step)) co_return *err;
            if (step.action == request_action::retry) {  // not resend_now
                if (!co_await wait(step.wait)) co_return error{errc::stopped, "stopping"};
            }
        }
    }

    // The token endpoint request of a refresh_token grant.
    static http::request token_post(const ehr_state& e, const smart::token_request& tr) {
        http::request req;
        req.method = boost::beast::http::verb::post;
        req.url = e.token_endpoint;
        for (const auto& [n, v] : tr.headers) req.headers.push_back({n, v});
        req.body = tr.body;
        return req;
    }

    // What became of a token endpoint's answer: the refresh is over (with
    // `failure` when it failed), or the EHR refused a token that another
    // refresher rotated meanwhile, so the stored one may be sent.
    struct token_outcome {
        std::optional<error> failure;
        bool rotated_meanwhile = false;
    };

    // The token endpoint answered: its tokens are stored before anything
    // else happens, or its refusal is recorded.
    token_outcome take_token_answer(ehr_state& e, patient_state& ps, store::enrollment& enr,
                                    const http::response& r, const smart::token_request& tr, bool interrupted,
                                    std::chrono::steady_clock::time_point sent_at) {
        const auto& s = *e.settings;
        // The secrets this request carried are cut out of any text taken
        // from the answer: a token endpoint may echo its request.
        auto t = smart::parse_token_response(r.status, r.body, tr.secret_views());
        if (!t) return refused_refresh(e, ps, enr, r, t.err(), interrupted);
        if (t->refresh_token_malformed)
            log->warn(
                "patient {} at {}: the token response's refresh_token was empty or malformed; the "
                "stored refresh token is kept",
                enr.patient_key, s.name);
        const std::optional<std::string> rotated =
            t->refresh_token && *t->refresh_token != enr.refresh_token ? t->refresh_token : std::nullopt;
        // SMART App Launch: `patient` in a token response is the patient
        // this grant is for. Another one than the enrolled patient means
        // the EHR's grant is not what we enrolled (a mix-up at the EHR,
        // or a hostile server): its data would be stored under this
        // patient's key, so its access token is never used and the job
        // fails, without needs_reauth (an admin checks the grant first).
        // The rotated refresh token is kept all the same: with single-use
        // tokens the old one is spent, and dropping the new one would
        // strand the patient for a mistake that may be fixed at the EHR.
        // The message names the key, never the ids.
        if (t->patient && !enr.fhir_patient_id.empty() && *t->patient != enr.fhir_patient_id) {
            store_token_answer(enr, rotated, std::nullopt);
            ps.audit.back().outcome = "token_patient_mismatch";
            ++ehr_counts(e).refresh_failed;
            error mismatch{errc::token_patient_mismatch,
                           "patient " + enr.patient_key + " at " + s.name +
                               ": the token response names a different patient than the one enrolled; "
                               "its access token was not used. Check this patient's authorization at "
                               "the EHR, or enroll the patient again"};
            log->error("{}", mismatch.message);
            return {mismatch};
        }
        ps.access.set(*t, clk.now());
        store_token_answer(enr, rotated,
                           store::stored_access_token{
                               t->access_token, store::utc_timestamp(ps.access.expires_at()), t->scope});
        ps.rejected_access.clear();
        ++ehr_counts(e).refresh_ok;
        note_refresh_window(enr, clk.steady_now() - sent_at);
        return {};
    }

    // A token answer that was refused (`refusal`: the OAuth error, or why
    // a 2xx could not be used).
    token_outcome refused_refresh(ehr_state& e, patient_state& ps, store::enrollment& enr,
                                  const http::response& r, const error& refusal, bool interrupted) {
        // A 2xx that was refused (an access token over its cap, …) may
        // still carry the rotated refresh token: the server has spent the
        // old one, so it is kept before anything else.
        keep_rotated(enr, smart::rotated_refresh_token(r.status, r.body));
        // The OAuth error code (invalid_grant, …), not just the status.
        ps.audit.back().outcome = store::audit_outcome_code(to_string(refusal.code));
        auto& per_ehr = ehr_counts(e);
        const bool invalid_grant = refusal.code == errc::invalid_grant;
        if (invalid_grant) {
            // Refused for a token the vault no longer holds: a refresher
            // that did not take the lock (an older binary, a lock file on a
            // filesystem without OFD locks) rotated it meanwhile. The grant
            // is alive under the stored token; marking the patient would
            // strand it.
            const std::string sent = enr.refresh_token;
            if (auto err = reread(enr)) {
                ++per_ehr.refresh_failed;
                return {*err};
            }
            if (enr.refresh_token != sent) {
                ++per_ehr.refresh_failed;
                return {std::nullopt, true};
            }
        }
        ++(invalid_grant ? per_ehr.refresh_invalid_grant : per_ehr.refresh_failed);
        if (invalid_grant) {
            mark_needs_reauth(e, ps, enr, interrupted);
        } else if (r.status >= 400 && r.status < 500 && refusal.code != errc::rate_limited) {
            // RFC 6749 §5.2: an error response; the token was not spent,
            // so the journal entry means nothing any more. A 5xx or a
            // refused 2xx proves nothing and keeps it.
            try {
                vault.clear_refresh_journal(enr.patient_key, enr.ehr);
            } catch (const store::store_error& failure) {
                log->warn("patient {} at {}: cannot clear the refresh journal: {}", enr.patient_key,
                          e.settings->name, failure.what());
            }
        }
        return {refusal};
    }

    // The grant is gone (revoked, expired, or a token reused): only a new
    // enrollment helps. Logged once, here. After an interrupted refresh the
    // likely cause is ours: the EHR rotated the token and the process died
    // before storing the new one; the reason says so (docs/admin/
    // operations.md, "When a patient needs re-enrollment").
    void mark_needs_reauth(ehr_state& e, patient_state& ps, store::enrollment& enr, bool interrupted) {
        const auto& s = *e.settings;
        const std::string reason = interrupted ? "interrupted_refresh" : "invalid_grant";
        if (interrupted) ++ehr_counts(e).refresh_interrupted;
        vault.set_needs_reauth(enr.patient_key, enr.ehr, true, now_text(), reason);
        enr.needs_reauth = true;
        enr.needs_reauth_reason = reason;
        // An enrollment change: on disk now, with the refusal before it.
        record(ps.audit, e, call{enr.patient_key, store::audit_action::needs_reauth}, std::nullopt, reason);
        flush_audit(ps.audit, store::audit_sync::full);
        if (interrupted)
            log->error(
                "patient {} at {}: the EHR refused the refresh token (invalid_grant) after a "
                "refresh "
                "that was interrupted at {}; the EHR had most likely rotated it. The patient "
                "must "
                "be enrolled again",
                enr.patient_key, s.name, enr.interrupted_refresh_since);
        else
            log->error(
                "patient {} at {}: the EHR refused the refresh token (invalid_grant); the "
                "patient must be enrolled again",
                enr.patient_key, s.name);
    }

    // The rotated refresh token, the access token and the cleared journal,
    // in one vault transaction (DESIGN.md "Tokens": durable before the
    // access token is used).
    void store_token_answer(store::enrollment& enr, const std::optional<std::string>& rotated,
                            const std::optional<store::stored_access_token>& access) {
        const std::string now = now_text();
        vault.finish_refresh(enr.patient_key, enr.ehr, rotated, now, access);
        if (rotated) {
            enr.refresh_token = *rotated;
            enr.token_obtained_at = now;
        }
        enr.access = access;
        enr.interrupted_refresh_since.clear();
    }

    // The refresh window (docs/dev/testing.md "Crash safety"): from sending a refresh to
    // the new token being durable. Kept for the log at debug level and the
    // kill test's figures.
    void note_refresh_window(const store::enrollment& enr, std::chrono::steady_clock::duration d) {
        const auto us = duration_cast<std::chrono::microseconds>(d).count();
        log->debug("patient {} at {}: refresh window {} us (request sent to new token durable)",
                   enr.patient_key, enr.ehr, us);
        counters.refresh_window_max_us = std::max<std::int64_t>(counters.refresh_window_max_us, us);
        counters.refresh_window_total_us += us;
        ++counters.refresh_windows;
    }

    // Issue 17: the access token the vault holds for the patient, when it
    // has more than the margin of life left and is not the one the EHR just
    // refused. Returns true when it is now this job's token.
    bool adopt_stored_access(ehr_state& e, patient_state& ps, const store::enrollment& enr) {
        if (!enr.access || enr.access->token.empty() || enr.access->token == ps.rejected_access) return false;
        const auto expires = parse_utc_timestamp(enr.access->expires_at);
        if (!expires) return false;
        smart::access_token_state stored;
        stored.restore(enr.access->token, *expires);
        if (!stored.usable(clk.now())) return false;
        ps.access = std::move(stored);
        ++ehr_counts(e).access_token_reused;
        return true;
    }

    // DESIGN.md "Tokens": a new refresh token is durable before anything
    // else happens. Only a well-formed one reaches here (smart::
    // parse_token_response and rotated_refresh_token check it).
    void keep_rotated(store::enrollment& enr, const std::optional<std::string>& rotated) {
        if (!rotated || *rotated == enr.refresh_token) return;
        vault.replace_refresh_token(enr.patient_key, enr.ehr, *rotated, now_text());
        enr.refresh_token = *rotated;
    }

    // GET a FHIR URL with the patient's bearer token: refresh when needed
    // and once per job on a 401; wait on 429/503; back off on 5xx and
    // transport failures (request_policy decides which). Returns the
    // response for 2xx, 403 and 404.
    awaitable<result<http::response>> fhir_get(ehr_state& e, patient_state& ps, store::enrollment& enr,
                                               std::string url, call c) {
        request_policy policy(request_kind::fhir_get, limits_of(e), opts.random, ps.refreshed_for_401);
        for (;;) {
            if (!ps.access.usable(clk.now())) {
                if (auto err = co_await refresh(e, ps, enr)) co_return *err;
            }
            // The bearer token goes to the FHIR base's origin only.
            if (!http::same_origin(url, e.settings->fhir_base)) {
                ++counters.refused_origin;
                record(ps.audit, e, c, std::nullopt, "foreign_origin");  // not sent, but asked for
                co_return error{
                    errc::foreign_origin,
                    "refused to send the access token to another origin than " + e.settings->fhir_base};
            }
            http::request req;
            req.url = url;
            req.headers.push_back({"Authorization", "Bearer " + ps.access.token()});
            req.headers.push_back({"Accept", "application/fhir+json"});
            std::chrono::nanoseconds took{0};  // against the retry budget
            auto r = co_await send(e, std::move(req), ps.audit, c, &took);
            const request_step step = after_attempt(policy, r, took);
            if (step.action == request_action::use) co_return r;
            if (step.action == request_action::fail) co_return *step.failure;
            if (step.action == request_action::refresh_access) {
                ps.refreshed_for_401 = true;
                drop_refused_access(ps, enr);
                continue;
            }
            if (auto err = before_retry(e, step)) co_return *err;
            if (step.action == request_action::retry) {  // not resend_now
                if (!co_await wait(step.wait)) co_return error{errc::stopped, "stopping"};
            }
        }
    }

    // After a 401: not this token again, from memory or from the vault,
    // where another process may otherwise find it.
    void drop_refused_access(patient_state& ps, const store::enrollment& enr) {
        ps.rejected_access = ps.access.token();
        try {
            vault.forget_access_token(enr.patient_key, enr.ehr, ps.rejected_access);
        } catch (const store::store_error& failure) {
            log->warn("patient {} at {}: cannot drop the refused access token: {}", enr.patient_key, enr.ehr,
                      failure.what());
        }
        ps.access.invalidate();
    }

    bool count_check_due(const store::cursor& c, const cfg::ehr_settings& s) const {
        if (s.count_check_every <= seconds::zero() || !c.last_count_check_at) return true;
        const std::string limit = fhir::last_updated_with_overlap(now_text(), s.count_check_every);
        return limit.empty() || *c.last_count_check_at <= limit;
    }

    bool within_reconcile(const store::cursor& c, const cfg::ehr_settings& s) const {
        if (!c.last_full_pull_at) return false;
        const std::string limit = fhir::last_updated_with_overlap(now_text(), s.reconcile_every);
        return !limit.empty() && *c.last_full_pull_at > limit;
    }

    // After an incremental pull: deletes are invisible to _lastUpdated, so
    // compare the server's count for the search with our live rows (one
    // small request); when they differ, a full pull finds what went away.
    awaitable<bool> counts_agree(ehr_state& e, patient_state& ps, store::enrollment& enr,
                                 fhir::search_spec spec) {
        spec.last_updated_gt.reset();
        spec.count = 1;
        const std::string url = fhir::with_query_param(fhir::search_url(spec), "_summary", "count");
        auto r = co_await fhir_get(
            e, ps, enr, url, call{enr.patient_key, store::audit_action::fhir_count, spec.resource_type});
        if (!r || r->status != 200) co_return false;
        simdjson::padded_string body(r->body);
        auto meta = fhir::read_page_meta(body);
        if (!meta || !meta->total) co_return false;
        ps.audit.back().count = static_cast<int>(*meta->total);  // this request's event: the server's total
        co_return *meta->total == state.live_rows(e.settings->name, enr.patient_key,
                                                  stored_table(spec.resource_type), spec.resource_type);
    }

    // What a search asks for, decided before its first page.
    struct search_plan {
        fhir::search_spec spec;
        store::cursor cursor;                    // as read before the first page
        std::optional<std::string> max_updated;  // the newest lastUpdated of the committed pages
        bool incremental = false;
        bool is_read = false;  // Patient/{id}: one page
    };

    search_plan plan_search(const ehr_state& e, const store::enrollment& enr, const cfg::resource_setting& rs,
                            bool force_full) {
        const auto& s = *e.settings;
        search_plan p;
        p.cursor = state.read_cursor(s.name, enr.patient_key, rs.type);
        p.max_updated = p.cursor.last_updated_max;
        p.incremental = !force_full && rs.type != "Patient" && s.use_last_updated && e.caps &&
                        e.caps->supports(rs.type, "_lastUpdated") && p.cursor.last_updated_max &&
                        within_reconcile(p.cursor, s);
        p.spec.fhir_base = s.fhir_base;
        p.spec.resource_type = rs.type;
        p.spec.patient_param = rs.type == "Patient" ? "_id" : s.patient_param;
        p.spec.patient_id = enr.fhir_patient_id;
        p.spec.extra = rs.params;
        p.spec.count = s.page_size;
        if (p.incremental) {
            const std::string since =
                fhir::last_updated_with_overlap(*p.cursor.last_updated_max, s.last_updated_overlap);
            if (!since.empty()) p.spec.last_updated_gt = since;
        }
        // The patient itself is a read, Patient/{id} (every SMART server
        // allows it with patient/Patient.read; eCW has no search by patient
        // for Patient); the other types are searches.
        p.is_read = rs.type == "Patient";
        return p;
    }

    pager pager_for(const ehr_state& e, const store::enrollment& enr, const search_plan& p) const {
        const auto& s = *e.settings;
        const std::string search = fhir::search_url(p.spec);
        return pager(
            p.spec.resource_type,
            p.is_read ? s.fhir_base + "/Patient/" + http::percent_encode(enr.fhir_patient_id) : search,
            p.is_read, search, paging_rules{s.max_pages_per_search, s.page_param});
    }

    // A fetched page, read and checked: its records and its next link.
    struct checked_page {
        nz::result page;
        std::optional<std::string> next;
    };

    // Reads a fetched page and refuses it whole (nothing of it is written)
    // when it is not what the search asked for; the error names `where`.
    // The page's audit event learns its size, and the job's resource count
    // grows by what the page made us read.
    result<checked_page> check_page(const ehr_state& e, patient_state& ps, const store::enrollment& enr,
                                    const cfg::resource_setting& rs, bool is_read, const std::string& where,
                                    std::size_t page_event, const std::string& bytes) {
        const auto& s = *e.settings;
        simdjson::padded_string body(bytes);
        auto meta = fhir::read_page_meta(body);
        if (!meta)
            return error{errc::bad_page, where + ": " + meta.err().message + "; nothing from it was written"};
        if (is_read && meta->resource_type == "Patient") {
            meta->next.reset();  // a read is one page
        } else if (meta->resource_type != "Bundle") {
            return error{errc::bad_page,
                         where + ": the EHR answered a " + meta->resource_type +
                             (meta->outcome_summary.empty() ? "" : " (" + meta->outcome_summary + ")") +
                             " instead of a Bundle"};
        }
        if (!is_read) {
            if (auto refused = foreign_entry(*meta, rs))
                return error{errc::bad_page, where + ": " + *refused + "; nothing from it was written"};
        }
        nz::result page = normalizer.normalize_document(body);
        ps.audit[page_event].count = static_cast<int>(page.records.size());
        // Every entry read counts, of every type and whether stored or
        // not: what the server makes us parse and hold.
        long long read = 0;
        for (const auto& [type, n] : page.read) read += static_cast<long long>(n);
        if (ps.resources + read > s.max_resources_per_patient)
            return error{errc::resource_limit,
                         where + ": the job would read more than " +
                             std::to_string(s.max_resources_per_patient) +
                             " resources (max_resources_per_patient); nothing from this page "
                             "was written"};
        ps.resources += read;
        if (!page.ok())
            return error{errc::bad_page, where + ": " + page.problems.front().where + ": " +
                                             page.problems.front().message + "; nothing from it was written"};
        // Data for patient A never lands under patient B.
        for (const auto& rec : page.records) {
            const auto& h = nz::header_of(rec);
            // FHIR R4 §2.3.0: an absolute reference names the patient
            // on the server at its base; only the EHR's own fhir_base
            // makes it the same as the relative Patient/{id}.
            const bool foreign_base =
                !h.patient_ref_base.empty() && !same_fhir_base(h.patient_ref_base, s.fhir_base);
            if (h.patient_ref != enr.fhir_patient_id || foreign_base)
                return error{errc::wrong_patient,
                             where + ": holds a resource of another patient; nothing from it was written"};
        }
        return checked_page{std::move(page), std::move(meta->next)};
    }

    // Inside the last page's transaction: the cursor moves on and, after a
    // complete full pull, what we hold and the pull did not return is
    // marked deleted at the EHR. Returns the number of rows so marked.
    int finish_search(const std::string& ehr, const store::enrollment& enr, const std::string& type,
                      const search_plan& p, const std::optional<std::string>& max_updated,
                      const std::vector<std::string>& seen_ids, const std::string& now) {
        int deleted = 0;
        store::cursor c = p.cursor;
        c.last_updated_max = max_updated;
        if (!p.incremental) {
            const std::string_view table = stored_table(type);
            std::vector<std::string> stored_ids;
            if (table == "patient") {
                // patient rows are stored under their pseudonymized id
                for (const auto& id : seen_ids)
                    stored_ids.push_back(store::patient_key_for(ids.key, ehr, id));
            }
            deleted = state.mark_deleted_except(ehr, enr.patient_key, table,
                                                table == "patient" ? stored_ids : seen_ids, now, type);
            c.last_full_pull_at = now;
            c.last_count_check_at = now;  // a full pull is the stronger check
        }
        state.write_cursor(ehr, enr.patient_key, type, c);
        return deleted;
    }

    // A resource a view could not evaluate was stored without view rows
    // (store::view_tables). The log names the view, the type and the
    // stored id (a Patient's is its keyed hash), never the resource.
    void log_view_failures(const std::string& patient_key) {
        if (!views) return;
        for (const auto& f : views->take_failures())
            log->warn("{}: view {}: {}/{} has no rows: {}{}{}", patient_key, f.view, f.resource_type,
                      f.resource_id, f.json_path, f.json_path.empty() ? "" : ": ", f.message);
    }

    // The page's transaction (store::commit_page): its rows and, on the
    // last page, finish_search. The database may refuse the page (disk
    // full, or locked past busy_timeout by an analyst's write transaction):
    // the page is rolled back whole, the job fails, and a later pass
    // repeats it. Counts and ids are taken over only once the page committed.
    std::optional<error> commit_search_page(const ehr_state& e, patient_state& ps,
                                            const store::enrollment& enr, const std::string& type,
                                            search_plan& p, pager& pg, const nz::result& page,
                                            type_result& out) {
        const std::string& source = e.settings->name;
        const std::string now = now_text();
        std::optional<std::string> max_updated = p.max_updated;
        int deleted = 0;
        store::page_hooks hooks;
        hooks.patient_key = [&enr](const nz::record&) -> const std::string& { return enr.patient_key; };
        hooks.on_row = [&max_updated](const nz::record& rec, store::upsert_outcome) {
            const auto& h = nz::header_of(rec);
            if (h.last_updated && (!max_updated || later_instant(*h.last_updated, *max_updated)))
                max_updated = h.last_updated;
        };
        hooks.views = views.get();
        // A view's key columns join the fixed tables on patient_key: this
        // job's patient is its configured key, any other patient the keyed
        // hash its Patient row is stored under.
        hooks.view_patient_key = [this, &enr, &source](std::string_view id) {
            return id == enr.fhir_patient_id ? enr.patient_key : store::patient_key_for(ids.key, source, id);
        };
        if (pg.last_page())
            hooks.before_commit = [&] {
                deleted = finish_search(source, enr, type, p, max_updated, pg.ids_with_page(), now);
            };
        store::page_counts counts;
        try {
            counts = store::commit_page(db, writer, page.records, source, now, hooks);
            log_view_failures(enr.patient_key);
            // The page's events follow its rows into a file: a crash loses
            // at most the events of the page in flight (docs/admin/monitoring.md "Audit log").
            flush_audit(ps.audit, store::audit_sync::deferred);
        } catch (const std::runtime_error& failure) {
            if (views) (void)views->take_failures();  // of a page that was rolled back
            // SQLite::Exception and store_error; SQLite's messages name
            // the condition ("database or disk is full", "database is
            // locked"), never a value.
            return error{errc::store_failed, pg.where() + ": headache.db refused the write (" +
                                                 failure.what() + "); nothing from it was written"};
        }
        pg.committed();
        p.max_updated = std::move(max_updated);
        out.inserted += counts.inserted;
        out.updated += counts.updated;
        out.unchanged += counts.unchanged;
        out.deleted += deleted;
        return std::nullopt;
    }

    // After the last page of an incremental search. The count check is for
    // deletes only, so it follows its own schedule (count_check_every), not
    // every pass: a pass within the access token's life then costs the
    // searches alone (issue 17). When the counts differ, a full pull of the
    // type follows, and its result (with this pull's counts) is returned.
    awaitable<std::optional<type_result>> check_counts(ehr_state& e, patient_state& ps,
                                                       store::enrollment& enr,
                                                       const cfg::resource_setting& rs, const search_plan& p,
                                                       type_result& out) {
        const auto& s = *e.settings;
        if (!p.incremental || p.is_read || stopping || !count_check_due(p.cursor, s)) co_return std::nullopt;
        ++out.count_checks;
        if (!co_await counts_agree(e, ps, enr, p.spec)) {
            type_result full = co_await sync_type(e, ps, enr, rs, true);
            full.inserted += out.inserted;
            full.updated += out.updated;
            full.pages += out.pages;
            full.count_checks += out.count_checks;
            co_return full;
        }
        try {
            store::cursor c = state.read_cursor(s.name, enr.patient_key, rs.type);
            c.last_count_check_at = now_text();
            state.write_cursor(s.name, enr.patient_key, rs.type, c);
        } catch (const std::runtime_error& failure) {
            // Only the schedule is lost: the next pass checks again.
            log->warn("patient {} at {}: {}: cannot record the count check: {}", enr.patient_key, s.name,
                      rs.type, failure.what());
        }
        co_return std::nullopt;
    }

    // A page refused after it was fetched: the job's failure, and the
    // outcome of the page's audit event.
    static void refuse_page(type_result& out, store::audit_event& page_event, error failure) {
        page_event.outcome = to_string(failure.code);
        out.failure = std::move(failure);
    }

    awaitable<type_result> sync_type(ehr_state& e, patient_state& ps, store::enrollment& enr,
                                     const cfg::resource_setting& rs, bool force_full = false) {
        type_result out;
        out.type = rs.type;
        if (e.caps && !e.caps->search_params.empty() && !e.caps->serves(rs.type)) {
            out.not_served = true;  // eCW serves no Appointment in its clinical API
            co_return out;
        }
        search_plan plan = plan_search(e, enr, rs, force_full);
        out.incremental = plan.incremental;
        pager pg = pager_for(e, enr, plan);
        for (;;) {
            if (stopping) {
                out.failure = error{errc::stopped, "stopped before " + rs.type + " was complete"};
                co_return out;
            }
            if (auto stop = pg.before_fetch()) {  // a loop of URLs, or max_pages_per_search
                out.failure = std::move(stop);
                co_return out;
            }
            const call this_page{enr.patient_key,
                                 plan.is_read     ? store::audit_action::fhir_read
                                 : out.pages == 0 ? store::audit_action::fhir_search
                                                  : store::audit_action::fhir_page,
                                 rs.type, out.pages + 1};
            auto r = co_await fhir_get(e, ps, enr, pg.url(), this_page);
            if (!r) {
                out.failure = r.err();
                co_return out;
            }
            if (r->status == 403) {
                out.not_permitted = true;
                co_return out;
            }
            if (r->status == 404) {
                out.not_served = true;
                co_return out;
            }
            pg.fetched();
            ++out.pages;
            // This page's audit event (fhir_get returned right after
            // recording it): it learns the page's size and, when the page is
            // refused below, why.
            const std::size_t page_event = ps.audit.size() - 1;
            auto checked = check_page(e, ps, enr, rs, plan.is_read, pg.where(), page_event, r->body);
            if (!checked) {
                refuse_page(out, ps.audit[page_event], checked.err());
                co_return out;
            }
            if (auto loop =
                    pg.take_page(std::move(checked->next), entries_of(checked->page.records, rs.type))) {
                refuse_page(out, ps.audit[page_event], std::move(*loop));
                co_return out;
            }
            if (auto refused = commit_search_page(e, ps, enr, rs.type, plan, pg, checked->page, out)) {
                refuse_page(out, ps.audit[page_event], std::move(*refused));
                co_return out;
            }
            if (pg.last_page()) {
                if (auto full = co_await check_counts(e, ps, enr, rs, plan, out)) co_return std::move(*full);
                co_return out;
            }
        }
    }

    // write_status, which must not end the job when headache.db refuses
    // the write (disk full, locked): the rows are safe either way, and the
    // status row is written again after the next attempt.
    void write_status_or_log(const patient_result& pr) {
        try {
            write_status(pr);
        } catch (const std::runtime_error& failure) {
            log->error("patient {} at {}: cannot write sync_status: {}", pr.patient_key, pr.ehr,
                       failure.what());
        }
    }

    // An error text names the request's scheme://host/path (never the
    // query), and a read's path ends in the FHIR patient id: under
    // identifiers = "none" it must not reach sync_status in headache.db.
    std::string for_status(const patient_result& pr, std::string message) const {
        if (ids.keep_fhir_patient_id) return message;
        const auto it = patients.find(pr.ehr + "\n" + pr.patient_key);
        if (it == patients.end() || it->second.fhir_patient_id.empty()) return message;
        for (const std::string& id :
             {it->second.fhir_patient_id, http::percent_encode(it->second.fhir_patient_id)}) {
            for (auto at = message.find(id); at != std::string::npos; at = message.find(id, at + 9))
                message.replace(at, id.size(), "<patient>");
        }
        return message;
    }

    void write_status(const patient_result& pr) {
        const std::string now = now_text();
        for (const auto& t : pr.types) {
            store::status_row row;
            row.source = pr.ehr;
            row.patient_key = pr.patient_key;
            row.resource_type = t.type;
            row.last_attempt_at = now;
            const bool ok = !t.failure;
            if (ok)
                row.last_success_at = now;
            else {
                row.last_error = for_status(pr, t.failure->message);
                row.last_success_at = state.last_success(pr.ehr, pr.patient_key, t.type);
            }
            row.rows_changed = t.inserted + t.updated + t.deleted;
            row.not_permitted = t.not_permitted;
            state.put_status(row);
        }
        store::status_row whole;
        whole.source = pr.ehr;
        whole.patient_key = pr.patient_key;
        whole.resource_type = "*";
        whole.last_attempt_at = now;
        whole.last_success_at =
            pr.ok ? std::optional<std::string>(now) : state.last_success(pr.ehr, pr.patient_key, "*");
        if (pr.failure) whole.last_error = for_status(pr, pr.failure->message);
        whole.rows_changed = pr.rows_changed();
        whole.needs_reauth = pr.needs_reauth;
        const auto& s = *ehrs.at(pr.ehr)->settings;
        whole.next_run_at =
            store::utc_timestamp(pr.retry_at ? *pr.retry_at : next_run(clk.now(), s.interval, opts.random()));
        state.put_status(whole);
    }

    awaitable<patient_result> sync_patient(std::string key, std::string ehr_name) {
        const auto started = clk.steady_now();
        patient_result pr;
        // The failure boundary of a job (STYLE "Failure boundaries"):
        // expected errors are values, so what arrives here is a bug or an
        // exhausted resource (Beast's "field value too large" for a 64 KiB
        // access token was one). It fails this patient, recorded like any
        // failure; the worker goes on with the next patient.
        std::optional<std::string> thrown;
        try {
            pr = co_await sync_patient_timed(key, ehr_name);
        } catch (const std::exception& failure) {
            thrown = failure.what();
        }
        if (thrown) pr = job_threw(key, ehr_name, *thrown);
        pr.elapsed = clk.steady_now() - started;
        // Every way out of a job: its remaining events reach the disk.
        const auto it = patients.find(ehr_name + "\n" + key);
        auditor.end_of_job(ehr_audit, it != patients.end() ? &it->second.audit : nullptr);
        co_return pr;
    }

    // Stamps the fingerprint (first run) and applies [privacy] identifiers
    // to rows stored before this run (a switch from "minimal" to "none",
    // rows from before schema 4). Both read first and write only when there
    // is something to do; when headache.db is locked by another writer the
    // next job tries again, and its pages fail on the same lock meanwhile.
    void apply_identity_policy() {
        if (identity_applied) return;
        try {
            db.bind_pseudonym_fingerprint(store::fingerprint(ids.key));
            const store::identity_changes changed = db.enforce_identifier_policy(ids);
            identity_applied = true;
            if (changed.any())
                log->info(
                    "[privacy] identifiers = \"{}\": {} patient id(s) pseudonymized, {} FHIR patient id(s) "
                    "removed, {} raw resource(s) removed from headache.db",
                    ids.keep_fhir_patient_id ? "minimal" : "none", changed.ids_pseudonymized,
                    changed.fhir_ids_cleared, changed.raw_rows_removed);
        } catch (const store::store_error& failure) {
            log->warn("cannot apply [privacy] identifiers to headache.db yet ({}); the next job retries",
                      failure.what());
        }
    }

    // At start, before any pass: a view made while resources of its type
    // were already stored is filled from the JSON kept of them (raw_frame)
    // (store::view_tables::backfill). Before the pass, because a view left
    // pending evaluates every resource of every page, unchanged ones too;
    // once back-filled only changes cost an evaluation. Only after the
    // identifier rule was applied, so it never reads JSON the rule removes.
    // A failure (headache.db locked past busy_timeout by an analyst's
    // write) does not stop the daemon: the view stays pending, its pages
    // still fill it, and the next start goes on where this one stopped.
    void backfill_views() {
        if (!views || !identity_applied) return;
        try {
            // A key column maps each enrolled patient to its configured key
            // and any other patient to its keyed hash, as in
            // commit_search_page.
            std::map<std::pair<std::string, std::string>, std::string, std::less<>> enrolled;
            for (const auto& e : vault.enrollments()) enrolled[{e.ehr, e.fhir_patient_id}] = e.patient_key;
            const store::source_key_mapper keys = [this, &enrolled](std::string_view source,
                                                                    std::string_view id) {
                const auto it = enrolled.find(std::pair<std::string, std::string>{source, id});
                return it != enrolled.end() ? it->second : store::patient_key_for(ids.key, source, id);
            };
            store::backfill_options o;
            o.after_batch = [this] { log_view_failures("view back-fill"); };
            for (const auto& r : views->backfill(store::utc_timestamp(clk.now()), keys, o))
                if (r.resources > 0) log->info("{}", store::backfill_summary(r));
        } catch (const std::runtime_error& failure) {
            (void)views->take_failures();  // of a batch that was rolled back
            log->warn("back-filling the views stopped ({}); the next start goes on", failure.what());
        }
    }

    // The result of a job that threw: a failure with a status row and an
    // audit event. The patient's cached access token is dropped, since it
    // may be what made the job throw (a cached bad token was reused about
    // 160 times a second before this boundary existed).
    patient_result job_threw(const std::string& key, const std::string& ehr_name, std::string what) {
        // Bounded: an exception's text is ours, but it may quote a value.
        if (what.size() > 200) what = what.substr(0, 200) + "…";
        log->error("patient {} at {}: the job stopped on an unexpected error: {}", key, ehr_name, what);
        patient_result pr;
        pr.patient_key = key;
        pr.ehr = ehr_name;
        pr.failure = error{errc::internal_error, "the job stopped on an unexpected error: " + what};
        auto e = ehrs.find(ehr_name);
        if (e == ehrs.end()) return pr;
        auto ps = patients.find(ehr_name + "\n" + key);
        if (ps != patients.end()) {
            ps->second.access.invalidate();
            record(ps->second.audit, *e->second, call{key, store::audit_action::job_failed}, std::nullopt,
                   "internal_error");
        } else {
            record(ehr_audit, *e->second, call{key, store::audit_action::job_failed}, std::nullopt,
                   "internal_error");
        }
        write_status_or_log(pr);
        return pr;
    }

    // The job's resource types in config order, into pr.types; false when
    // one failed. The first failure is the job's, except that a rate-limit
    // hold wins: `status` shows when a held EHR is tried again, whatever
    // failed first.
    awaitable<bool> sync_types(ehr_state& e, patient_state& ps, store::enrollment& enr, patient_result& pr) {
        bool all_ok = true;
        for (const auto& rs : e.settings->resources) {
            type_result t = co_await sync_type(e, ps, enr, rs);
            if (t.failure) {
                all_ok = false;
                if (!pr.failure) pr.failure = t.failure;
                log->warn("patient {} at {}: {}: {}", pr.patient_key, pr.ehr, rs.type, t.failure->message);
            }
            const std::optional<error_code> code =
                t.failure ? std::optional<error_code>(t.failure->code) : std::nullopt;
            pr.types.push_back(std::move(t));
            if (code && *code == errc::rate_limited) pr.failure = pr.types.back().failure;
            if (enr.needs_reauth) {
                pr.needs_reauth = true;
                pr.needs_reauth_reason = enr.needs_reauth_reason;
                break;
            }
            // headache.db refused a page (full, or locked past busy_timeout):
            // the next type would only fetch pages it cannot store, and wait
            // out busy_timeout again. A rate-limit hold, a second 401 and the
            // job's resource cap end the job the same way: the next type
            // could only send requests that meet the same answer.
            if (stopping || (code && (*code == errc::store_failed || *code == errc::rate_limited ||
                                      *code == errc::unauthorized || *code == errc::resource_limit)))
                break;
        }
        co_return all_ok;
    }

    // Another process may have marked the patient while this job ran (its
    // refresh was refused for the current token): this pass must not
    // report the patient as fine then, or sync-once exits 0 while `status`
    // shows NEEDS RE-ENROLLMENT (issue 12).
    void read_back_reauth(patient_result& pr) {
        try {
            const auto now = vault.find_enrollment(pr.patient_key, pr.ehr);
            pr.needs_reauth = now && now->needs_reauth;
            if (pr.needs_reauth) pr.needs_reauth_reason = now->needs_reauth_reason;
        } catch (const store::store_error& failure) {
            log->error("patient {} at {}: cannot read the enrollment back: {}", pr.patient_key, pr.ehr,
                       failure.what());
        }
    }

    awaitable<patient_result> sync_patient_timed(std::string key, std::string ehr_name) {
        apply_identity_policy();
        patient_result pr;
        pr.patient_key = key;
        pr.ehr = ehr_name;
        auto it = ehrs.find(ehr_name);
        if (it == ehrs.end()) {
            pr.failure = error{errc::unknown_ehr, "no [[ehr]] named " + ehr_name};
            co_return pr;
        }
        ehr_state& e = *it->second;
        std::optional<store::enrollment> enr;
        try {
            enr = vault.find_enrollment(key, ehr_name);
        } catch (const store::key_error& unopenable) {
            // A sealed token that does not open (tampered with since start-up):
            // this patient fails with the vault's message, the others go on,
            // and the row stays as it is for the admin (issue 5).
            pr.failure = error{errc::vault_row_unopenable, unopenable.what()};
            write_status(pr);
            co_return pr;
        }
        if (!enr) {
            pr.skipped = true;
            pr.failure = error{errc::not_enrolled, "patient " + key + " is not enrolled at " + ehr_name};
            co_return pr;
        }
        if (enr->needs_reauth) {
            pr.skipped = true;
            pr.needs_reauth = true;
            pr.needs_reauth_reason = enr->needs_reauth_reason;
            pr.failure =
                error{errc::needs_reauth, "patient " + key + " must be enrolled again" +
                                              (enr->needs_reauth_reason == "interrupted_refresh"
                                                   ? " (a refresh was interrupted and the EHR then refused "
                                                     "the token)"
                                                   : "")};
            write_status_or_log(pr);
            co_return pr;
        }
        // A rate-limit hold beyond max_retry_after: the job ends at once,
        // with the time `run` starts it again (nothing is sent meanwhile).
        if (auto held = rate_limit_hold(e)) {
            pr.failure = *held;
            pr.retry_at = e.rate_limited_until;
            write_status_or_log(pr);
            co_return pr;
        }
        if (auto err = co_await prepare(e)) {
            pr.failure = *err;
            if (err->code == errc::rate_limited) pr.retry_at = e.rate_limited_until;
            write_status_or_log(pr);
            co_return pr;
        }
        patient_state& ps = patients[ehr_name + "\n" + key];
        ps.fhir_patient_id = enr->fhir_patient_id;
        ps.refreshed_for_401 = false;
        ps.resources = 0;
        // DESIGN.md "Tokens": a refresh token near the end of its lifetime is
        // renewed even while the access token is good (the daemon schedules
        // this job in time; eCW then issues a new 90-day token).
        //
        // Issue 17: otherwise an access token with life left is used, ours
        // or one another process stored, and nothing is refreshed: each
        // refresh of a single-use token opens a window in which a crash
        // strands the patient. The refresh happens here, right before the
        // first request that needs a token, or on a 401.
        const bool keepalive =
            lapses_within(refresh_token_lapse(enr->token_obtained_at, e.settings->refresh_token_lifetime),
                          e.settings->keepalive_before, clk.now());
        if (keepalive) ps.access.invalidate();
        if (!keepalive && !ps.access.usable(clk.now())) adopt_stored_access(e, ps, *enr);
        if (!ps.access.usable(clk.now())) {
            if (auto err = co_await refresh(e, ps, *enr, keepalive)) {
                pr.failure = *err;
                pr.needs_reauth = enr->needs_reauth;
                pr.needs_reauth_reason = enr->needs_reauth_reason;
                if (err->code == errc::rate_limited) pr.retry_at = e.rate_limited_until;
                write_status_or_log(pr);
                co_return pr;
            }
        }
        const bool all_ok = co_await sync_types(e, ps, *enr, pr);
        if (!pr.needs_reauth) read_back_reauth(pr);
        if (pr.failure && pr.failure->code == errc::rate_limited) pr.retry_at = e.rate_limited_until;
        pr.ok = all_ok && !stopping;
        write_status_or_log(pr);
        log->info("patient {} at {}: {} ({} rows changed)", key, ehr_name, pr.ok ? "synced" : "failed",
                  pr.rows_changed());
        co_return pr;
    }

    awaitable<pass_result> run_patients(std::vector<std::pair<std::string, std::string>> who) {
        pass_result out;
        // Grouped per EHR: each EHR has its own concurrency limit.
        std::map<std::string, std::vector<std::string>> queue;
        for (auto& [key, ehr_name] : who) queue[ehr_name].push_back(key);

        // Discovery and capabilities once per EHR, before the workers start,
        // not once per worker.
        for (auto& [ehr_name, keys] : queue) {
            auto it = ehrs.find(ehr_name);
            if (it == ehrs.end()) continue;
            // A preparation that failed (a refused certificate, discovery
            // down) is tried again once per pass, not kept for the life of
            // a daemon: the EHR may have renewed its certificate since.
            if (it->second->prepare_failure) {
                it->second->prepared = false;
                it->second->prepare_failure.reset();
            }
            co_await prepare(*it->second);
        }
        flush_audit(ehr_audit, store::audit_sync::deferred);
        auto self = shared_from_this();
        int running = 0;
        asio::steady_timer done(ex, asio::steady_timer::time_point::max());
        for (auto& [ehr_name, keys] : queue) {
            auto it = ehrs.find(ehr_name);
            if (it == ehrs.end()) continue;
            auto shared_keys = std::make_shared<std::vector<std::string>>(keys);
            auto next = std::make_shared<std::size_t>(0);
            const int workers = std::max(
                1, std::min<int>(it->second->settings->max_concurrent, static_cast<int>(keys.size())));
            for (int w = 0; w < workers; ++w) {
                ++running;
                // GCC 12: a capturing lambda passed to co_spawn must be a named variable.
                auto worker = [self, shared_keys, next, ehr_name = ehr_name, &out]() -> awaitable<void> {
                    while (*next < shared_keys->size() && !self->stopping) {
                        const std::string key = (*shared_keys)[(*next)++];
                        out.patients.push_back(co_await self->sync_patient(key, ehr_name));
                        if (self->opts.on_patient_done) self->opts.on_patient_done(out.patients.back());
                        if (!self->opts.pass_details) out.patients.back().types = {};
                    }
                };
                auto on_done = [self, &running, &done](std::exception_ptr ep) {
                    if (ep) {
                        try {
                            std::rethrow_exception(ep);
                        } catch (const std::exception& failure) {
                            self->log->critical("sync worker failed: {}", failure.what());
                        }
                    }
                    if (--running == 0) done.cancel();
                };
                asio::co_spawn(ex, worker, on_done);
            }
        }
        while (running > 0) co_await done.async_wait(asio::as_tuple(use_awaitable));
        // The pass's events reach the disk before it is reported done.
        auditor.end_of_pass(ehr_audit);
        // The daemon's connection stays open for days, so SQLite's
        // checkpoint on close never comes; an analyst who held a snapshot
        // through the pass left the WAL grown. Give it back now if nobody
        // reads (never waits for a reader; docs/analyst/guide.md "Reading while
        // the daemon runs").
        db.checkpoint_unless_read();
        co_return out;
    }
};

engine::engine(asio::any_io_executor ex, const cfg::config& cfg, http::transport& http,
               store::analytics_db& db, store::vault& vault, const clock& clk,
               std::shared_ptr<spdlog::logger> log, engine_options opts)
    : impl_(std::make_shared<impl>(std::move(ex), cfg, http, db, vault, clk, std::move(log),
                                   std::move(opts))) {}

engine::~engine() = default;

awaitable<pass_result> engine::run_pass() {
    // Who to sync: the patients listed in the config.
    std::vector<std::pair<std::string, std::string>> who;
    for (const auto& p : impl_->config.patients) who.emplace_back(p.key, p.ehr);
    co_return co_await impl_->run_patients(std::move(who));
}

awaitable<pass_result> engine::run_patients(std::vector<std::pair<std::string, std::string>> patients) {
    co_return co_await impl_->run_patients(std::move(patients));
}

awaitable<patient_result> engine::sync_patient(std::string patient_key, std::string ehr) {
    co_return co_await impl_->sync_patient(std::move(patient_key), std::move(ehr));
}

void engine::stop() {
    impl_->stopping = true;
    for (auto* t : impl_->timers) t->cancel();
}

bool engine::stopping() const { return impl_->stopping; }

const engine_counters& engine::counters() const { return impl_->counters; }

}  // namespace headachemd::sync
