#include "sandbox_commands.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>

#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/files/write_file.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/smart/smart.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/pending.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/engine.hpp"
#include "headachemd/sync/enroll.hpp"
#include "logging.hpp"
#include "report_command.hpp"
#include "runtime.hpp"

namespace headachemd::daemon {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::awaitable;

void write_private_file(const fs::path& p, std::string_view text) {
    if (const auto failed = files::write_file_atomically(p, text, 0600))
        throw std::runtime_error("cannot write " + p.string() + ": " + failed->reason);
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

long long scalar(SQLite::Database& db, const std::string& sql) {
    SQLite::Statement q(db, sql);
    q.executeStep();
    return q.getColumn(0).getInt64();
}

void print_summary(store::analytics_db& db, const sync::pass_result& pass, const fs::path& dir) {
    std::cout << fmt::format("\nSynced {} of {} sandbox patients over TLS into {}\n\n", pass.succeeded(),
                             pass.patients.size(), (dir / "headache.db").string());
    std::cout << "rows per table:\n";
    for (const char* t : {"patient", "condition", "medication_request", "encounter", "observation",
                          "procedure", "appointment"})
        std::cout << fmt::format("  {:<20} {:>6}\n", t,
                                 scalar(db.sql(), std::string("SELECT count(*) FROM ") + t));
    std::cout << "\nheadache highlights:\n";
    SQLite::Statement types(db.sql(),
                            "SELECT headache_type, count(DISTINCT patient_key) FROM condition "
                            "WHERE headache_type IS NOT NULL GROUP BY 1 ORDER BY 2 DESC");
    while (types.executeStep())
        std::cout << fmt::format("  {:<28} {} patient{}\n", types.getColumn(0).getString(),
                                 types.getColumn(1).getInt(), types.getColumn(1).getInt() == 1 ? "" : "s");
    SQLite::Statement classes(db.sql(),
                              "SELECT drug_class, therapy_role, count(*) FROM medication_request "
                              "WHERE drug_class IS NOT NULL GROUP BY 1, 2 ORDER BY 3 DESC");
    while (classes.executeStep())
        std::cout << fmt::format("  {:<28} {:<21} {} prescriptions\n", classes.getColumn(0).getString(),
                                 classes.getColumn(1).getString(), classes.getColumn(2).getInt());
    std::cout << fmt::format(
        "  botulinum toxin procedures   {}\n",
        scalar(db.sql(), "SELECT count(*) FROM procedure WHERE procedure_kind='botulinum_toxin'"));
    std::cout << fmt::format("\nTry: sqlite3 -readonly {} \"SELECT * FROM condition LIMIT 5\"\n",
                             (dir / "headache.db").string());
}

struct demo_args {
    int patients = 5;
    std::string dir;
    bool ecw = false;
    std::string log_level = "warn";
    std::string log_format = "auto";
};

// The demo's config: one [[ehr]] at the sandbox, files beside the databases.
config::config demo_config(const demo_args& a, sandbox::background_server& sbx, const fs::path& dir) {
    const auto& sconf = sbx->config();
    sbx->write_ca_pem(dir / "sandbox-ca.pem");
    write_private_file(dir / "client.secret", sconf.client_secret);
    config::config cfg;
    cfg.daemon.database = dir / "headache.db";
    cfg.daemon.vault = dir / "vault.db";
    // The demo's own token key, beside its vault (a rerun with the same
    // --dir reuses it); a real deployment keeps the key elsewhere.
    cfg.daemon.token_key_file = dir / "token.key";
    config::ehr_settings ehr = *config::profile_preset(a.ecw ? "eclinicalworks" : "generic");
    ehr.name = "sandbox";
    ehr.fhir_base = sbx->fhir_base();
    ehr.client_id = sconf.client_id;
    ehr.client_secret_file = dir / "client.secret";
    ehr.ca_file = dir / "sandbox-ca.pem";
    ehr.redirect_uri = sconf.redirect_uris.front();
    if (!a.ecw) ehr.page_size = 50;
    cfg.ehrs.push_back(ehr);
    return cfg;
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

// The sandbox's history ends at its anchor (midnight UTC): the views'
// "today" is the day before, its last day of data, unless someone already
// chose one in this database.
void set_as_of(store::analytics_db& db, std::chrono::system_clock::time_point data_anchor) {
    const std::string anchor = store::utc_timestamp(data_anchor - std::chrono::hours{24}).substr(0, 10);
    SQLite::Statement set(db.sql(),
                          "UPDATE analyst_setting SET value = ?1 WHERE key = 'as_of' AND value = ''");
    set.bind(1, anchor);
    if (set.exec() > 0)
        std::cout << fmt::format(
            "as_of set to {}, the last day of the sandbox's history (analyst_setting 'as_of')\n", anchor);
}

std::optional<fs::path> demo_directory(const demo_args& a, spdlog::logger& log) {
    fs::path dir = a.dir;
    if (dir.empty()) {
        std::string tmpl = (fs::temp_directory_path() / "headachemd-demo-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) {
            log.error("cannot create a temporary directory");
            return std::nullopt;
        }
        dir = tmpl;
    }
    fs::create_directories(dir);
    return dir;
}

int demo(const demo_args& a) {
    auto log = make_logger(a.log_level, a.log_format);
    const auto dir = demo_directory(a, *log);
    if (!dir) return exit_code::cant_create;
    try {
        sandbox::options so;
        so.patients = std::max(a.patients, 1);
        so.ecw_mode = a.ecw;
        sandbox::background_server sbx(so);
        config::config cfg = demo_config(a, sbx, *dir);
        const auto token_key = fs::exists(*cfg.daemon.token_key_file)
                                   ? store::load_token_key(*cfg.daemon.token_key_file)
                                   : store::write_new_token_key(*cfg.daemon.token_key_file);
        store::analytics_db db(cfg.daemon.database);
        store::vault vault(cfg.daemon.vault, token_key);
        asio::io_context io;
        http::client_options ho;
        ho.extra_ca_files.push_back(*cfg.ehrs.front().ca_file);
        http::client http(io.get_executor(), ho);
        const auto ids = sbx->patient_ids();
        sync::pass_result pass;
        int enrolled = 0;
        run_on_io(io, [&]() -> awaitable<void> {
            for (int i = 0; i < so.patients && i < static_cast<int>(ids.size()); ++i) {
                sbx->set_authorize_patient(ids[i]);
                enrolled +=
                    co_await enroll_headless(http, cfg, vault, fmt::format("demo-{:03}", i + 1), *log);
            }
            std::cout << fmt::format("Enrolled {} sandbox patients (authorization code + PKCE S256)\n",
                                     enrolled);
            system_clock clk;
            sync::engine engine(io.get_executor(), cfg, http, db, vault, clk, log);
            pass = co_await engine.run_pass();
            http.close_idle();
        });
        print_summary(db, pass, *dir);
        set_as_of(db, so.data_anchor);
        // The picture first: the clinic report beside the database.
        const fs::path report_path = *dir / "report.html";
        std::cout << "\n";
        const int report_rc = write_report(*dir / "headache.db", report_path, 25, std::cout, std::cerr);
        if (report_rc != exit_code::ok) return report_rc;
        std::cout << fmt::format("Open the report: {}\n", fs::absolute(report_path).string());
        return pass.failed() == 0 && enrolled > 0 ? exit_code::ok : exit_code::temp_fail;
    } catch (const std::exception& e) {
        log->error("demo failed: {}", e.what());
        return exit_code::software;
    }
}

struct sandbox_args {
    int port = 8443;
    int patients = 25;
    std::uint64_t seed = 1;
    bool plain_http = false;
    bool ecw = false;
    std::string ca_out = "sandbox-ca.pem";
    std::string tokens_dir;
    std::string client_jwks;  // a file: the client authenticates with private_key_jwt
    std::string log_format = "auto";
};

int serve_sandbox(const sandbox_args& a) {
    auto log = make_logger("info", a.log_format);
    sandbox::options so;
    so.port = static_cast<std::uint16_t>(a.port);
    so.patients = a.patients;
    so.seed = a.seed;
    so.tls = !a.plain_http;
    so.ecw_mode = a.ecw;
    if (!a.client_jwks.empty()) {
        std::ifstream in(a.client_jwks, std::ios::binary);
        if (!in) {
            log->error("cannot read the client JWKS file {}", a.client_jwks);
            return exit_code::no_input;
        }
        so.client_jwks.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        so.client_auth = sandbox::options::client_auth_kind::private_key_jwt;
    }
    asio::io_context io;
    std::unique_ptr<sandbox::server> made;
    try {
        made = std::make_unique<sandbox::server>(io, so);
    } catch (const std::invalid_argument& e) {
        log->error("{}: {}", a.client_jwks, e.what());
        return exit_code::data_error;
    }
    sandbox::server& server = *made;
    server.start();
    if (so.tls) server.write_ca_pem(a.ca_out);
    std::cout << "HeadacheMD sandbox EHR (synthetic data only)\n"
              << "  FHIR base     " << server.fhir_base() << "\n"
              << "  client_id     " << server.config().client_id << "\n"
              << (so.client_jwks.empty()
                      ? "  client secret " + server.config().client_secret +
                            " (made for this run; put it in the client_secret_file)\n"
                      : "  client auth   private_key_jwt with the keys in " + a.client_jwks + "\n");
    if (so.tls) std::cout << "  CA file       " << a.ca_out << " (set ca_file to it)\n";
    if (!a.tokens_dir.empty()) {
        fs::create_directories(a.tokens_dir);
        for (const auto& id : server.patient_ids())
            write_private_file(fs::path(a.tokens_dir) / (id + ".token"), server.issue_refresh_token(id));
        std::cout << "  refresh tokens " << a.tokens_dir
                  << "/<patient id>.token (for enroll --refresh-token-file)\n";
    }
    std::cout << "  patients      " << server.patient_ids().size()
              << (so.ecw_mode ? " (eClinicalWorks mode)" : "") << "\nCtrl-C stops it.\n"
              << std::flush;
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code&, int) {
        server.stop();
        io.stop();
    });
    io.run();
    return exit_code::ok;
}

}  // namespace

void add_sandbox_commands(CLI::App& app, int* exit_code) {
    {
        auto args = std::make_shared<demo_args>();
        CLI::App* cmd = app.add_subcommand("demo",
                                           "Start the built-in sandbox EHR, enroll a few patients, sync them "
                                           "once, show what landed and write "
                                           "the clinic report beside the database");
        cmd->footer(
            "Example:\n  headachemd-sync demo --patients 5\nNo account, no network: everything runs on "
            "loopback.");
        cmd->add_option("--patients", args->patients, "how many sandbox patients to enroll")
            ->capture_default_str();
        cmd->add_option("--dir", args->dir,
                        "where to write headache.db and vault.db (default: a new temporary directory)");
        cmd->add_flag("--ecw", args->ecw, "run the sandbox in eClinicalWorks mode");
        cmd->add_option("--log-level", args->log_level, "trace, debug, info, warn, error")
            ->capture_default_str();
        cmd->add_option("--log-format", args->log_format, "auto, journald, text or json lines on stderr")
            ->check(CLI::IsMember(log_format_names()))
            ->capture_default_str();
        cmd->callback([args, exit_code] { *exit_code = demo(*args); });
    }
    {
        auto args = std::make_shared<sandbox_args>();
        CLI::App* cmd =
            app.add_subcommand("sandbox", "Serve the built-in SMART on FHIR sandbox EHR on loopback");
        cmd->footer(
            "Example:\n  headachemd-sync sandbox --port 8443 --tokens-dir ./tokens\n"
            "Then point an [[ehr]] at the printed FHIR base with ca_file = the printed CA file.");
        cmd->add_option("--port", args->port, "TCP port on 127.0.0.1 (0: any free port)")
            ->capture_default_str();
        cmd->add_option("--patients", args->patients, "synthetic patients")->capture_default_str();
        cmd->add_option("--seed", args->seed, "data seed")->capture_default_str();
        cmd->add_flag("--http", args->plain_http, "plain http instead of TLS (loopback only)");
        cmd->add_flag("--ecw", args->ecw,
                      "eClinicalWorks mode: no _lastUpdated, no Appointment, 250 calls/minute");
        cmd->add_option("--ca-out", args->ca_out, "where to write the sandbox CA certificate")
            ->capture_default_str();
        cmd->add_option("--tokens-dir", args->tokens_dir,
                        "write one refresh token per patient here (mode 0600)");
        cmd->add_option("--client-jwks", args->client_jwks,
                        "the client authenticates with private_key_jwt, verified against this JWK Set "
                        "(as printed by keygen --jwks)");
        cmd->add_option("--log-format", args->log_format, "auto, journald, text or json lines on stderr")
            ->check(CLI::IsMember(log_format_names()))
            ->capture_default_str();
        cmd->callback([args, exit_code] { *exit_code = serve_sandbox(*args); });
    }
}

}  // namespace headachemd::daemon
