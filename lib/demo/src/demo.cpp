#include "headachemd/demo/demo.hpp"

#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <exception>
#include <stdexcept>

#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/files/write_file.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/smart/smart.hpp"
#include "headachemd/store/database.hpp"
#include "headachemd/store/pending.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/bulk_export.hpp"
#include "headachemd/sync/enroll.hpp"

namespace headachemd::demo {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::awaitable;

constexpr const char* summary_tables[] = {"patient",     "condition", "medication_request", "encounter",
                                          "observation", "procedure", "appointment"};
constexpr const char* headache_types_sql =
    "SELECT headache_type, count(DISTINCT patient_key) FROM condition "
    "WHERE headache_type IS NOT NULL GROUP BY 1 ORDER BY 2 DESC";
constexpr const char* drug_classes_sql =
    "SELECT drug_class, therapy_role, count(*) FROM medication_request "
    "WHERE drug_class IS NOT NULL GROUP BY 1, 2 ORDER BY 3 DESC";
constexpr const char* botulinum_toxin_sql =
    "SELECT count(*) FROM procedure WHERE procedure_kind='botulinum_toxin'";
// Only an empty as_of is replaced: an analyst's chosen date survives a rerun.
constexpr const char* set_as_of_sql =
    "UPDATE analyst_setting SET value = ?1 WHERE key = 'as_of' AND value = ''";

long long scalar(SQLite::Database& db, const std::string& sql) {
    SQLite::Statement q(db, sql);
    q.executeStep();
    return q.getColumn(0).getInt64();
}

// The person at the browser, played headlessly: the sandbox's /authorize
// approves without anyone signing in and answers 302 to the redirect URI
// with code and state (RFC 6749 §4.1.2). The redirect's parameters are
// what the callback listener would receive; everything else is
// begin_enrollment's and complete_enrollment's, as for a real patient.
awaitable<result<smart::callback_params>> headless_redirect(http::transport& http,
                                                            std::string authorize_url) {
    http::request auth;
    auth.url = std::move(authorize_url);
    auto a = co_await http.send(std::move(auth));
    if (!a) co_return a.err();
    const auto location = a->header("Location");
    if (a->status != 302 || !location)
        co_return error{errc::authorize_failed,
                        "the authorize endpoint answered HTTP " + std::to_string(a->status)};
    co_return smart::parse_callback(*location);
}

// The demo's config: one [[ehr]] at the sandbox, files beside the databases.
config::config demo_config(const options& o, sandbox::background_server& sbx) {
    const auto& sconf = sbx->config();
    sbx->write_ca_pem(o.dir / "sandbox-ca.pem");
    write_private_file(o.dir / "client.secret", sconf.client_secret);
    config::config cfg;
    cfg.daemon.database = o.dir / "headache.db";
    cfg.daemon.vault = o.dir / "vault.db";
    // The demo's own token key, beside its vault (a rerun with the same
    // --dir reuses it); a real deployment keeps the key elsewhere.
    cfg.daemon.token_key_file = o.dir / "token.key";
    config::ehr_settings ehr = *config::profile_preset(o.ecw ? "eclinicalworks" : "generic");
    ehr.name = "sandbox";
    ehr.fhir_base = sbx->fhir_base();
    ehr.client_id = sconf.client_id;
    ehr.client_secret_file = o.dir / "client.secret";
    ehr.ca_file = o.dir / "sandbox-ca.pem";
    ehr.redirect_uri = sconf.redirect_uris.front();
    if (!o.ecw) ehr.page_size = 50;
    cfg.ehrs.push_back(ehr);
    return cfg;
}

// The backend app of options::bulk: its key, and the kid the sandbox knows
// it by. A key left by an earlier run in the same --dir is used again (the
// sandbox is new each run, so either would do; keygen's rule is never to
// overwrite a key).
constexpr const char* demo_backend_client_id = "headachemd-demo-backend";
constexpr const char* demo_backend_kid = "demo-bulk-1";

fs::path backend_key_file(const options& o) { return o.dir / "bulk-key.pem"; }

smart::signing_key demo_backend_key(const options& o) {
    const fs::path file = backend_key_file(o);
    if (fs::exists(file)) {
        auto key = smart::signing_key::from_file(file);
        if (!key) throw std::runtime_error(key.err().message);
        return std::move(*key);
    }
    // eCW verifies RS384 assertions only (its preset says so); ES384 elsewhere.
    auto key = smart::signing_key::generate(o.ecw ? smart::jws_alg::rs384 : smart::jws_alg::es384);
    write_private_file(file, key.private_pem());
    return key;
}

// [ehr.bulk] for the demo's EHR: the profile's preset with the backend's
// registration and the sandbox's Group.
void add_bulk_section(config::ehr_settings& ehr, const options& o, const smart::signing_key& key,
                      const sandbox::options& so) {
    auto bulk = config::bulk_preset(ehr.profile, ehr.resources);
    if (!bulk) throw std::logic_error("demo: the " + ehr.profile + " profile has no [ehr.bulk] preset");
    bulk->client_id = demo_backend_client_id;
    bulk->private_key_file = backend_key_file(o);
    bulk->key_id = demo_backend_kid;
    bulk->algorithm =
        key.alg() == smart::jws_alg::rs384 ? config::bulk_algorithm::rs384 : config::bulk_algorithm::es384;
    bulk->group_id = so.bulk_group_id;
    ehr.bulk = std::move(*bulk);
}

// One sandbox patient enrolled by the production path: pending row, state
// and PKCE S256, then the callback's code exchanged and stored with its
// audit events (issue 14). On success the patient is the last entry of
// cfg.patients, with its FHIR id; on failure it is not listed.
awaitable<bool> enroll_headless(http::transport& http, config::config& cfg, store::vault& vault,
                                const std::string& key, spdlog::logger& log) {
    const config::ehr_settings& ehr = cfg.ehrs.front();
    cfg.patients.push_back({key, ehr.name, std::nullopt});
    const config::patient_settings patient = cfg.patients.back();
    const auto fail = [&](const std::string& why) {
        cfg.patients.pop_back();
        log.error("enrolling {} failed: {}", key, why);
        return false;
    };
    auto start = co_await sync::begin_enrollment(http, ehr, patient, std::chrono::system_clock::now());
    if (!start) co_return fail(start.err().message);
    store::pending_enrollments(vault).put(start->pending);
    // The pending row of a failed redirect stays until it expires, as when
    // a person closes the browser (purged at the next enroll).
    auto redirect = co_await headless_redirect(http, start->authorize_url);
    if (!redirect) co_return fail(redirect.err().message);
    auto outcome =
        co_await sync::complete_enrollment(http, cfg, vault, *redirect, std::chrono::system_clock::now());
    if (!outcome.audit_error.empty()) log.error("audit log: {}", outcome.audit_error);
    const auto stored = vault.find_enrollment(key, ehr.name);
    if (!outcome.ok || !stored) co_return fail(outcome.headline);
    cfg.patients.back().fhir_patient_id = stored->fhir_patient_id;
    co_return true;
}

// Everything that needs the io_context: the enrollments, then one pass.
struct session {
    const sandbox::options& so;
    sandbox::background_server& sbx;
    config::config& cfg;
    store::analytics_db& db;
    store::vault& vault;
    http::client& http;
    std::shared_ptr<spdlog::logger> log;
    const std::function<void(int)>& on_enrolled;
    bool bulk;
    const std::function<void(std::chrono::nanoseconds)>& on_wait;

    // options::bulk: the export the `export` command would run.
    awaitable<void> export_clinic(outcome& out) {
        system_clock clk;
        sync::export_context ctx{http, cfg, db, vault, clk, log, nullptr, on_wait, {}, {}};
        // GCC 12: no temporary in a co_await operand (named, as elsewhere).
        sync::export_request whole_clinic;
        auto r = co_await sync::run_configured_export(ctx, whole_clinic);
        http.close_idle();
        if (!r) throw std::runtime_error(r.err().message);
        out.bulk = std::move(*r);
    }

    awaitable<void> operator()(outcome& out) {
        if (bulk) {
            co_await export_clinic(out);
            co_return;
        }
        const auto ids = sbx->patient_ids();
        for (int i = 0; i < so.patients && i < static_cast<int>(ids.size()); ++i) {
            sbx->set_authorize_patient(ids[i]);
            out.enrolled +=
                co_await enroll_headless(http, cfg, vault, fmt::format("demo-{:03}", i + 1), *log);
        }
        if (on_enrolled) on_enrolled(out.enrolled);
        system_clock clk;
        sync::engine engine(co_await asio::this_coro::executor, cfg, http, db, vault, clk, log);
        out.pass = co_await engine.run_pass();
        http.close_idle();
    }
};

}  // namespace

void write_private_file(const fs::path& p, std::string_view text) {
    if (const auto failed = files::write_file_atomically(p, text, 0600))
        throw std::runtime_error("cannot write " + p.string() + ": " + failed->reason);
}

summary summarize(store::analytics_db& db) {
    summary s;
    for (const char* t : summary_tables)
        s.rows_per_table.emplace_back(t, scalar(db.sql(), std::string("SELECT count(*) FROM ") + t));
    SQLite::Statement types(db.sql(), headache_types_sql);
    while (types.executeStep())
        s.headache_types.push_back({types.getColumn(0).getString(), types.getColumn(1).getInt64()});
    SQLite::Statement classes(db.sql(), drug_classes_sql);
    while (classes.executeStep())
        s.drug_classes.push_back({classes.getColumn(0).getString(), classes.getColumn(1).getString(),
                                  classes.getColumn(2).getInt64()});
    s.botulinum_toxin_procedures = scalar(db.sql(), botulinum_toxin_sql);
    return s;
}

std::optional<std::string> set_as_of(store::analytics_db& db,
                                     std::chrono::system_clock::time_point data_anchor) {
    const std::string anchor = store::utc_timestamp(data_anchor - std::chrono::hours{24}).substr(0, 10);
    SQLite::Statement set(db.sql(), set_as_of_sql);
    set.bind(1, anchor);
    if (set.exec() > 0) return anchor;
    return std::nullopt;
}

outcome run(const options& opts, std::shared_ptr<spdlog::logger> log,
            const std::function<void(int enrolled)>& on_enrolled) {
    sandbox::options so;
    so.patients = std::max(opts.patients, 1);
    so.ecw_mode = opts.ecw;
    std::optional<smart::signing_key> backend_key;
    if (opts.bulk) {
        backend_key = demo_backend_key(opts);
        so.backend_client_id = demo_backend_client_id;
        so.backend_jwks = backend_key->public_jwks(demo_backend_kid);
        // Every resource of the clinic in the first poll's manifest.
        so.bulk_pending_polls = 0;
    }
    sandbox::background_server sbx(so);
    config::config cfg = demo_config(opts, sbx);
    if (backend_key) add_bulk_section(cfg.ehrs.front(), opts, *backend_key, so);
    const auto token_key = fs::exists(*cfg.daemon.token_key_file)
                               ? store::load_token_key(*cfg.daemon.token_key_file)
                               : store::write_new_token_key(*cfg.daemon.token_key_file);
    store::analytics_db db(cfg.daemon.database);
    store::vault vault(cfg.daemon.vault, token_key);
    asio::io_context io;
    http::client_options ho;
    ho.extra_ca_files.push_back(*cfg.ehrs.front().ca_file);
    http::client http(io.get_executor(), ho);
    outcome out;
    // GCC 12: the coroutine's callable is a named object, not a temporary.
    session body{so, sbx, cfg, db, vault, http, log, on_enrolled, opts.bulk, opts.on_wait};
    std::exception_ptr failure;
    asio::co_spawn(io, body(out), [&failure](std::exception_ptr ep) { failure = ep; });
    io.run();
    if (failure) std::rethrow_exception(failure);
    out.counts = summarize(db);
    out.as_of = set_as_of(db, so.data_anchor);
    return out;
}

result<fs::path> make_directory(const fs::path& dir) {
    fs::path made = dir;
    std::error_code ec;
    if (made.empty()) {
        const fs::path tmp = fs::temp_directory_path(ec);
        std::string tmpl = (tmp / "headachemd-demo-XXXXXX").string();
        if (ec || !::mkdtemp(tmpl.data()))
            return error{errc::cannot_create, "cannot create a temporary directory in " +
                                                  (ec ? std::string("$TMPDIR") : tmp.string())};
        return fs::path(tmpl);
    }
    // A file in the way or a directory we may not write is the admin's
    // typo, not a crash: say which path and why (it used to abort, exit 134).
    fs::create_directories(made, ec);
    if (ec)
        return error{errc::cannot_create,
                     "cannot create the directory " + made.string() + ": " + ec.message()};
    return made;
}

}  // namespace headachemd::demo
