#include "doctor_command.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/doctor/doctor.hpp"
#include "headachemd/doctor/invocation.hpp"
#include "headachemd/http/client.hpp"
#include "runtime.hpp"

namespace headachemd::daemon {
namespace {

namespace asio = boost::asio;
namespace dr = headachemd::doctor;

struct doctor_args {
    std::string ehr;
    std::string config = default_config;
    bool config_given = false;
    std::string authorize_url;
    std::string fhir_base;
    std::string redirect_uri;
    bool probe = false;
    bool no_probe = false;
};

// Color only for a person at a terminal (and never with NO_COLOR, no-color.org).
bool use_color() {
    if (!::isatty(STDOUT_FILENO)) return false;
    if (const char* nc = std::getenv("NO_COLOR"); nc && *nc) return false;
    const char* term = std::getenv("TERM");
    return !(term && std::string_view(term) == "dumb");
}

// On a terminal: color and lines wrapped at 100 columns. Otherwise (a pipe,
// a log, a test) plain text with one line per paragraph, easy to grep.
void print_report(const dr::report& rep, bool terminal) {
    std::cout << dr::render_report(rep, terminal, terminal ? 100 : 0);
}

// Exit status: 0 no error (warnings and notes allowed: they describe risks,
// not failures); 69 (EX_UNAVAILABLE) the server could not be reached at all;
// 78 (EX_CONFIG) a registration or configuration problem was found.
int exit_for(dr::outcome o) {
    switch (o) {
        case dr::outcome::unreachable:
            return exit_code::unavailable;
        case dr::outcome::problem:
            return exit_code::config;
        case dr::outcome::ok:
            break;
    }
    return exit_code::ok;
}

std::optional<config::config> load(const std::string& path) { return load_or_report(path, ""); }

template <class F>
dr::report run(const config::config* cfg, const config::ehr_settings* ehr, F&& make_task) {
    asio::io_context io;
    http::client http(io.get_executor(), dr::client_options(cfg, ehr));
    system_clock clk;
    dr::report rep;
    run_on_io(io, [&]() -> asio::awaitable<void> {
        rep = co_await make_task(http, clk);
        http.close_idle();
    });
    return rep;
}

int doctor_url(const doctor_args& a) {
    std::optional<config::config> cfg;
    if (a.config_given || !a.ehr.empty() || std::filesystem::exists(a.config)) {
        cfg = load(a.config);
        if (!cfg) return exit_code::config;
    }
    const config::ehr_settings* ehr = nullptr;
    if (cfg && !a.ehr.empty()) {
        ehr = cfg->find_ehr(a.ehr);
        if (!ehr) {
            std::cerr << "error: no [[ehr]] named \"" << a.ehr << "\" in " << a.config << "\n";
            return exit_code::usage;
        }
    } else if (cfg) {
        ehr = dr::ehr_for_authorize_url(*cfg, a.authorize_url, a.fhir_base);
    }
    const auto in = dr::make_url_check(a.authorize_url, a.fhir_base, a.probe, ehr);
    std::cout << "headachemd-sync doctor: authorize URL"
              << (ehr ? " for [[ehr]] \"" + ehr->name + "\"" : std::string())
              << (a.probe ? ", with probe" : "") << "\n";
    const auto rep = run(cfg ? &*cfg : nullptr, ehr, [&](http::transport& http, const clock& clk) {
        return dr::check_authorize_url(http, in, clk);
    });
    print_report(rep, use_color());
    return exit_for(dr::outcome_of(rep));
}

int doctor_config(const doctor_args& a) {
    auto cfg = load(a.config);
    if (!cfg) return exit_code::config;
    std::vector<const config::ehr_settings*> ehrs;
    if (!a.ehr.empty()) {
        const auto* e = cfg->find_ehr(a.ehr);
        if (!e) {
            std::cerr << "error: no [[ehr]] named \"" << a.ehr << "\" in " << a.config << "\n";
            return exit_code::usage;
        }
        ehrs.push_back(e);
    } else {
        for (const auto& e : cfg->ehrs) ehrs.push_back(&e);
    }
    if (ehrs.empty()) {
        std::cerr << "error: " << a.config << " lists no [[ehr]]\n";
        return exit_code::config;
    }
    auto worst = dr::outcome::ok;
    for (const auto* e : ehrs) {
        const auto in = dr::make_config_check(*cfg, *e, a.redirect_uri, !a.no_probe);
        std::cout << (e == ehrs.front() ? "" : "\n") << "headachemd-sync doctor: [[ehr]] \"" << e->name
                  << "\" (" << e->profile << ") at " << e->fhir_base << "\n";
        const auto rep = run(&*cfg, e, [&](http::transport& http, const clock& clk) {
            return dr::check_registration(http, in, clk);
        });
        print_report(rep, use_color());
        worst = dr::worst(worst, dr::outcome_of(rep));
    }
    return exit_for(worst);
}

int doctor(const doctor_args& a) {
    try {
        return a.authorize_url.empty() ? doctor_config(a) : doctor_url(a);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return exit_code::software;
    }
}

}  // namespace

void add_doctor_command(CLI::App& app, int* exit_code) {
    auto args = std::make_shared<doctor_args>();
    CLI::App* cmd = app.add_subcommand(
        "doctor", "Check an EHR registration (or an authorize URL) against what the server publishes");
    cmd->footer(
        "Examples:\n"
        "  headachemd-sync doctor ecw\n"
        "  headachemd-sync doctor --authorize-url 'https://…/authorize?response_type=code&…' --probe\n"
        "Checks discovery, aud, PKCE, scopes, offline_access, client authentication, the redirect URI,\n"
        "secret file modes and clock skew, then sends one authorize request without following its\n"
        "redirect (with --authorize-url only when --probe is given) and explains the answer.\n"
        "Exit status: 0 no error (warnings allowed), 78 a problem was found, 69 the server could not be\n"
        "reached, 64 bad command line.");
    cmd->add_option("ehr", args->ehr, "the [[ehr]] name (default: every [[ehr]] in the config)");
    cmd->add_option("-c,--config", args->config, "configuration file")->capture_default_str();
    cmd->add_option("--authorize-url", args->authorize_url,
                    "check this authorize URL (made elsewhere, e.g. by the HeadacheMD web app)");
    cmd->add_option("--fhir-base", args->fhir_base,
                    "the FHIR base for --authorize-url (default: the [[ehr]]'s, else the URL's aud)");
    cmd->add_option("--redirect-uri", args->redirect_uri,
                    "the redirect URI to check (default: the [[ehr]]'s redirect_uri)");
    cmd->add_flag("--probe", args->probe, "with --authorize-url: send that exact request once");
    cmd->add_flag("--no-probe", args->no_probe, "without --authorize-url: do not send an authorize request");
    cmd->callback([args, exit_code, cmd] {
        args->config_given = cmd->get_option("--config")->count() > 0;
        *exit_code = doctor(*args);
    });
}

}  // namespace headachemd::daemon
