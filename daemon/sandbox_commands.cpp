#include "sandbox_commands.hpp"

#include <csignal>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>

#include <fmt/format.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "exit_codes.hpp"
#include "headachemd/demo/demo.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/sync/bulk_export.hpp"
#include "logging.hpp"
#include "report_command.hpp"

namespace headachemd::daemon {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

// What landed, then the as_of the demo chose (after the "Try:" line).
void print_outcome(const demo::outcome& out, const fs::path& dir) {
    const demo::summary& s = out.counts;
    if (out.bulk)
        std::cout << "\n"
                  << sync::render_export("sandbox", *out.bulk)
                  << fmt::format("\nExported the sandbox's clinic over TLS into {}\n\n",
                                 (dir / "headache.db").string());
    else
        std::cout << fmt::format("\nSynced {} of {} sandbox patients over TLS into {}\n\n",
                                 out.pass.succeeded(), out.pass.patients.size(),
                                 (dir / "headache.db").string());
    std::cout << "rows per table:\n";
    for (const auto& [table, rows] : s.rows_per_table)
        std::cout << fmt::format("  {:<20} {:>6}\n", table, rows);
    std::cout << "\nheadache highlights:\n";
    for (const auto& t : s.headache_types)
        std::cout << fmt::format("  {:<28} {} patient{}\n", t.type, t.patients, t.patients == 1 ? "" : "s");
    for (const auto& c : s.drug_classes)
        std::cout << fmt::format("  {:<28} {:<21} {} prescriptions\n", c.drug_class, c.therapy_role,
                                 c.prescriptions);
    std::cout << fmt::format("  botulinum toxin procedures   {}\n", s.botulinum_toxin_procedures);
    std::cout << fmt::format("\nTry: sqlite3 -readonly {} \"SELECT * FROM condition LIMIT 5\"\n",
                             (dir / "headache.db").string());
    if (out.as_of)
        std::cout << fmt::format(
            "as_of set to {}, the last day of the sandbox's history (analyst_setting 'as_of')\n", *out.as_of);
}

struct demo_args {
    int patients = 5;
    std::string dir;
    bool ecw = false;
    bool bulk = false;
    std::string log_level = "warn";
    std::string log_format = "auto";
};

int run_demo(const demo_args& a) {
    auto log = make_logger(a.log_level, a.log_format);
    const auto dir = demo::make_directory(a.dir);
    if (!dir) {
        log->error("{}", dir.err().message);
        return exit_code::cant_create;
    }
    try {
        demo::options o{a.patients, *dir, a.ecw};
        o.bulk = a.bulk;
        if (a.bulk)
            std::cout << fmt::format(
                             "Exporting the sandbox's clinic of {} patients with FHIR Bulk Data (SMART "
                             "Backend Services); "
                             "the first status poll comes 10 s after the kick-off, as against a real EHR\n",
                             a.patients)
                      << std::flush;
        // Printed as soon as the enrollments end, before the pass starts.
        const auto out = demo::run(o, log, [](int n) {
            std::cout << fmt::format("Enrolled {} sandbox patients (authorization code + PKCE S256)\n", n);
        });
        print_outcome(out, *dir);
        // The picture first: the clinic report beside the database.
        const fs::path report_path = *dir / "report.html";
        std::cout << "\n";
        const int report_rc = write_report(*dir / "headache.db", report_path, 25, std::cout, std::cerr);
        if (report_rc != exit_code::ok) return report_rc;
        std::cout << fmt::format("Open the report: {}\n", fs::absolute(report_path).string());
        if (out.bulk)
            return out.bulk->end.what == sync::bulk_action::kind::done ? exit_code::ok : exit_code::temp_fail;
        return out.pass.failed() == 0 && out.enrolled > 0 ? exit_code::ok : exit_code::temp_fail;
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
            demo::write_private_file(fs::path(a.tokens_dir) / (id + ".token"),
                                     server.issue_refresh_token(id));
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
            "Example:\n  headachemd-sync demo --patients 5\n  headachemd-sync demo --bulk --patients 25\nNo "
            "account, no network: everything runs on "
            "loopback.");
        cmd->add_option("--patients", args->patients, "how many sandbox patients to enroll")
            ->capture_default_str();
        cmd->add_option("--dir", args->dir,
                        "where to write headache.db and vault.db (default: a new temporary directory)");
        cmd->add_flag("--ecw", args->ecw, "run the sandbox in eClinicalWorks mode");
        cmd->add_flag("--bulk", args->bulk,
                      "export the whole clinic with FHIR Bulk Data as a backend app, instead of enrolling "
                      "patients and syncing each (--patients: the clinic's size)");
        cmd->add_option("--log-level", args->log_level, "trace, debug, info, warn, error")
            ->capture_default_str();
        cmd->add_option("--log-format", args->log_format, "auto, journald, text or json lines on stderr")
            ->check(CLI::IsMember(log_format_names()))
            ->capture_default_str();
        cmd->callback([args, exit_code] { *exit_code = run_demo(*args); });
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
