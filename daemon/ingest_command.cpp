#include "ingest_command.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/ingest/ingest.hpp"
#include "headachemd/ingest/session.hpp"
#include "headachemd/store/token_key.hpp"
#include "logging.hpp"

namespace headachemd::daemon {
namespace {

namespace fs = std::filesystem;

struct ingest_args {
    std::string db = "headache.db";
    std::string vault;           // default: vault.db beside the database
    std::string token_key_file;  // default: the systemd credential token.key
    std::string source = "file";
    bool store_raw = false;
    std::string identifiers = "none";  // [privacy] identifiers; ingest reads no config file
    std::string log_level = "info";
    std::string log_format = "auto";
    std::vector<std::string> view_specs;  // NAME=FILE, as [[view]] name and file
    std::vector<store::view_file> views;
    std::vector<std::string> inputs;
};

// `--view NAME=FILE`: the [[view]] entries of sync.toml, for a clinic that
// only ingests files (ingest reads no config). The name follows the
// config's rule, since it becomes the table view_<name>.
std::vector<store::view_file> parse_views(const std::vector<std::string>& specs) {
    std::vector<store::view_file> out;
    for (const auto& spec : specs) {
        const auto eq = spec.find('=');
        if (eq == std::string::npos || eq + 1 == spec.size())
            throw CLI::ValidationError("--view", "'" + spec + "' is not NAME=FILE");
        const std::string name = spec.substr(0, eq);
        if (auto problem = config::view_name_problem(name))
            throw CLI::ValidationError("--view", "'" + name + "': " + *problem);
        for (const auto& v : out)
            if (v.name == name) throw CLI::ValidationError("--view", "'" + name + "' is named twice");
        out.push_back({name, fs::absolute(spec.substr(eq + 1))});
    }
    return out;
}

int run_ingest(const ingest_args& a) {
    auto log = make_logger(a.log_level, a.log_format);
    // Two phases, two exit codes (sysexits.h, docs/admin/ingest.md):
    // everything up to the first batch opens, creates or checks the files
    // (a file that is not SQLite, a read-only or newer database, a vault
    // that does not open): EX_CANTCREAT 73, and nothing was written. Once
    // the batches run, a store failure is the disk or a lock failing a
    // write (full, locked past busy_timeout): EX_IOERR 74, the open batch
    // rolled back. Whether the file existed says neither.
    ingest::session session;
    try {
        const ingest::options opts{.source = a.source,
                                   .store_raw = a.store_raw,
                                   .keep_fhir_patient_id = a.identifiers == "minimal",
                                   .views = a.views};
        session = ingest::open_session({a.db, a.vault, a.token_key_file}, opts, log);
    } catch (const std::invalid_argument& e) {
        // A --view definition that cannot be read or is refused (its JSON
        // path and offset, or the identifier rule): nothing was written.
        log->error("{}", e.what());
        return exit_code::data_error;
    } catch (const store::key_error& e) {
        log->error("{}", e.what());
        return exit_code::config;
    } catch (const store::store_error& e) {
        log->error("{}", e.what());
        return exit_code::cant_create;
    }
    ingest::ingester* ingester = session.loader.get();
    try {
        // A progress line only for a person watching, and only once the
        // input has taken a few seconds.
        ingest::progress_fn progress;
        const bool tty = ::isatty(STDERR_FILENO) != 0;
        if (tty) {
            progress = [](std::uint64_t done, std::uint64_t total, double seconds) {
                if (seconds < 3.0) return;
                std::fprintf(stderr, "\r  %.1f / %.1f MB (%.0f%%), %.1f MB/s   ", done / 1e6, total / 1e6,
                             total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0,
                             done / 1e6 / seconds);
            };
        }
        std::vector<fs::path> inputs(a.inputs.begin(), a.inputs.end());
        ingester->run(inputs, progress);
        if (tty && ingester->result().seconds >= 3.0) std::fputs("\n", stderr);
        std::cout << ingest::format_report(ingester->result()) << std::flush;
        return ingester->result().clean() ? exit_code::ok : exit_code::data_error;
    } catch (const store::store_error& e) {
        log->error("{}", e.what());
        return exit_code::io_error;
    }
}

}  // namespace

void add_ingest_command(CLI::App& app, int* exit_code) {
    auto args = std::make_shared<ingest_args>();
    CLI::App* cmd =
        app.add_subcommand("ingest", "Load FHIR R4 files (Bundles, resources, NDJSON) into headache.db");
    cmd->footer(
        "Examples:\n"
        "  headachemd-sync ingest --db /var/lib/headachemd/headache.db --source bulk-2026-11 \\\n"
        "      --token-key-file /etc/headachemd/token.key export/\n"
        "  headachemd-sync ingest --db headache.db --token-key-file token.key patient-bundle.json\n"
        "  headachemd-sync ingest --db headache.db --identifiers minimal --store-raw export/\n"
        "  headachemd-sync ingest --db headache.db --view blood_pressure=views/blood_pressure.json export/\n"
        "\nExit status: 0 all loaded, 65 some input was rejected or a --view definition was refused\n"
        "(see the errors), 66 no input,\n"
        "74 the database failed while writing, 73 the database cannot be opened,\n"
        "78 the token key is missing or wrong.");
    cmd->add_option("--db", args->db, "analytics database to create or update")->capture_default_str();
    cmd->add_option("--vault", args->vault,
                    "vault holding the pseudonymization key (default: vault.db beside --db; mode 0600)");
    cmd->add_option("--token-key-file", args->token_key_file,
                    "the key that seals the vault's secrets (default: $CREDENTIALS_DIRECTORY/token.key; "
                    "`headachemd-sync keygen --token-key PATH` writes one)");
    cmd->add_option("--source", args->source, "value of the `source` column (an EHR or export name)")
        ->capture_default_str();
    cmd->add_flag("--store-raw", args->store_raw,
                  "also keep each resource's JSON, zstd-compressed (needs --identifiers minimal; a "
                  "Patient's JSON is never kept)");
    cmd->add_option("--identifiers", args->identifiers,
                    "[privacy] identifiers: none (no FHIR patient id in headache.db) or minimal (adds "
                    "patient.fhir_patient_id); use the value of sync.toml when the database is shared")
        ->check(CLI::IsMember({"none", "minimal"}))
        ->capture_default_str();
    // One value per --view: CLI11 lets a vector option take every value
    // that follows, so `--view a=A.json dir1 dir2` swallowed dir1 and
    // failed with "'dir1' is not NAME=FILE".
    cmd->add_option("--view", args->view_specs,
                    "NAME=FILE: fill the table view_NAME from this ViewDefinition, as a [[view]] of "
                    "sync.toml does (repeatable; checked under --identifiers)")
        ->expected(1)
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cmd->add_option("--log-level", args->log_level, "trace, debug, info, warn, error")->capture_default_str();
    cmd->add_option("--log-format", args->log_format, "auto, journald, text or json lines on stderr")
        ->check(CLI::IsMember(log_format_names()))
        ->capture_default_str();
    cmd->add_option("inputs", args->inputs, "files or directories (.json, .ndjson, .jsonl)")->required();
    cmd->callback([args, exit_code] {
        if (args->source.empty()) throw CLI::ValidationError("--source", "must not be empty");
        // Raw resources name the FHIR patient in every subject reference.
        if (args->store_raw && args->identifiers != "minimal")
            throw CLI::ValidationError("--store-raw",
                                       "the raw JSON names the FHIR patient id, which --identifiers none "
                                       "(the default) keeps out of headache.db; add --identifiers minimal");
        args->views = parse_views(args->view_specs);
        *exit_code = run_ingest(*args);
    });
}

}  // namespace headachemd::daemon
