#include "view_command.hpp"

#include <sys/random.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <fmt/format.h>
#include <simdjson.h>

#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/ingest/fhir_files.hpp"
#include "headachemd/report/report.hpp"
#include "headachemd/store/pseudonym.hpp"
#include "headachemd/store/raw_views.hpp"
#include "headachemd/views/render.hpp"
#include "headachemd/views/run.hpp"
#include "headachemd/views/view.hpp"

namespace headachemd::daemon {
namespace {

namespace fs = std::filesystem;
namespace v = views;

struct view_args {
    std::string definition;
    std::vector<std::string> inputs;
    std::string format = "csv";
    std::string config;
    bool db = false;      // --db given
    std::string db_path;  // its value; empty: the config's [daemon] database, else headache.db
};

// A definition is a small JSON document; a bigger file is a wrong argument.
constexpr std::uintmax_t max_definition_bytes = 1 << 20;

// The same files `ingest` reads (ingest::walk_input): a file named that is
// not .json/.ndjson/.jsonl is refused, one found in a directory skipped.
void read_files(const std::vector<std::string>& inputs, v::view_runner& runner) {
    simdjson::dom::parser parser;
    const auto on_document = [&runner](simdjson::dom::element root, std::string_view text,
                                       const std::string& where) { runner.document(root, text, where); };
    const auto on_problem = [&runner](const std::string& where, std::string_view message) {
        runner.problem(where, message);
    };
    for (const auto& input : inputs) {
        const auto walked = ingest::walk_input(input);
        if (walked.missing) runner.problem(input, "no such file or directory");
        for (const auto& f : walked.files) {
            if (f.kind != ingest::file_kind::other)
                ingest::read_documents(f, parser, on_document, on_problem);
            else if (!f.in_directory)
                runner.problem(f.path.string(), "not a FHIR file (.json, .ndjson, .jsonl)");
        }
    }
}

// Under identifiers = "none" a Patient key is a keyed hash of the FHIR id.
// view run has no vault, so the key is random per run: rows of one run join
// on it, and it links to nothing outside the run (not even headache.db).
v::key_mapper run_pseudonyms() {
    store::pseudonym_key key{};
    if (getrandom(key.data(), key.size(), 0) != static_cast<ssize_t>(key.size())) return {};
    auto cache = std::make_shared<std::map<std::string, std::string, std::less<>>>();
    return [key, cache](std::string_view id) {
        auto it = cache->find(id);
        if (it == cache->end()) it = cache->emplace(id, store::patient_key_for(key, "view-run", id)).first;
        return it->second;
    };
}

// What --config decides: the identifier rule ([privacy] identifiers, else
// "none") and where headache.db is ([daemon] database).
struct run_settings {
    v::privacy rule = v::privacy::none;
    std::optional<fs::path> database;
};

std::optional<run_settings> settings_of(const std::string& config_file) {
    if (config_file.empty()) return run_settings{};
    auto loaded = config::load_config(config_file);
    if (auto* errors = std::get_if<std::vector<config::config_error>>(&loaded)) {
        for (const auto& e : *errors) std::cerr << "error: " << e.to_string() << "\n";
        return std::nullopt;
    }
    const auto& c = std::get<config::config>(loaded);
    return run_settings{
        c.privacy.identifiers == config::identifier_policy::minimal ? v::privacy::minimal : v::privacy::none,
        c.daemon.database};
}

// The definition, compiled under `rule`, or the exit code of why not
// (the message printed).
std::variant<v::view, int> load_definition(const std::string& file, v::privacy rule) {
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    if (ec) {
        std::cerr << fmt::format("error: {}: {}\n", file, ec.message());
        return exit_code::no_input;
    }
    if (size > max_definition_bytes) {
        std::cerr << fmt::format("error: {}: larger than 1 MiB; not a ViewDefinition\n", file);
        return exit_code::data_error;
    }
    std::ifstream in(file, std::ios::binary);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    auto compiled = v::compile(text, v::compile_options{rule});
    if (auto* e = std::get_if<v::compile_error>(&compiled)) {
        std::cerr << fmt::format(
            "error: {}: refused at {}{}: {}\n", file, e->json_path.empty() ? "the definition" : e->json_path,
            e->expr_offset ? fmt::format(" (offset {})", *e->expr_offset) : "", e->message);
        return exit_code::data_error;
    }
    return std::move(std::get<v::view>(compiled));
}

// Rows to stdout, problems to stderr.
struct printer {
    const v::view& plan;
    bool csv;
    v::view_runner::row_fn rows() const {
        return [this](const v::row& row) {
            std::cout << (csv ? v::csv_record(row) : v::ndjson_record(plan.columns(), row));
        };
    }
    static void problem(const std::string& where, std::string_view message) {
        std::cerr << fmt::format("error: {}: {}\n", where, message);
    }
};

// Exit code for how the output ended.
int finish(int problems) {
    std::cout.flush();
    if (!std::cout) {
        std::cerr << "error: writing the rows failed\n";
        return exit_code::io_error;
    }
    return problems == 0 ? exit_code::ok : exit_code::data_error;
}

int run_over_files(const view_args& a, const v::view& plan, v::privacy rule) {
    v::eval_options opts;
    if (rule == v::privacy::none) {
        opts.map_patient_key = run_pseudonyms();
        if (!opts.map_patient_key) {
            std::cerr << "error: no random bytes for the run's pseudonym key\n";
            return exit_code::software;
        }
    }
    const printer out{plan, a.format == "csv"};
    if (out.csv) std::cout << v::csv_header(plan.columns());
    v::view_runner runner(plan, std::move(opts), out.rows(), &printer::problem);
    read_files(a.inputs, runner);
    return finish(runner.problems());
}

// --db: the resources whose JSON headache.db keeps (raw_frame, and
// resource_raw from before schema 12), opened read-only
// (safe while the daemon writes: WAL). Key columns hold the stored
// patient_key.
int run_over_db(const fs::path& db_path, const v::view& plan, bool csv) {
    try {
        SQLite::Database db = report::open_read_only(db_path);
        if (store::count_raw_rows(db, plan.resource()) == 0) {
            std::cerr << fmt::format(
                "error: {}: no JSON of {} resources is kept: store_raw was off when they were stored "
                "(the default), or none were. --db reads only the raw JSON; keep it with "
                "`headachemd-sync ingest --store-raw --identifiers minimal`, or run the view over the "
                "FHIR files instead\n",
                db_path.string(), plan.resource());
            return exit_code::no_input;
        }
        const printer out{plan, csv};
        if (out.csv) std::cout << v::csv_header(plan.columns());
        const auto result = store::run_view_over_raw(db, plan, out.rows(), &printer::problem);
        return finish(result.problems);
    } catch (const report::report_error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return fs::exists(db_path) ? exit_code::data_error : exit_code::no_input;
    } catch (const SQLite::Exception& e) {
        std::cerr << fmt::format("error: reading {} failed: {}\n", db_path.string(), e.what());
        return exit_code::io_error;
    }
}

int run_view(const view_args& a) {
    if (a.db && !a.inputs.empty()) {
        std::cerr << "error: --db reads headache.db; name FHIR files or --db, not both\n";
        return exit_code::usage;
    }
    if (!a.db && a.inputs.empty()) {
        std::cerr << "error: name the FHIR files or directories to read, or --db to read headache.db\n";
        return exit_code::usage;
    }
    const auto settings = settings_of(a.config);
    if (!settings) return exit_code::config;
    // The definition is checked before any input is opened.
    auto loaded = load_definition(a.definition, settings->rule);
    if (const int* code = std::get_if<int>(&loaded)) return *code;
    const v::view& plan = std::get<v::view>(loaded);
    if (!a.db) return run_over_files(a, plan, settings->rule);
    const fs::path db_path =
        !a.db_path.empty() ? fs::path(a.db_path) : settings->database.value_or("headache.db");
    return run_over_db(db_path, plan, a.format == "csv");
}

}  // namespace

void add_view_commands(CLI::App& app, int* exit_code) {
    CLI::App* view =
        app.add_subcommand("view", "SQL on FHIR ViewDefinitions: try one on files or headache.db");
    view->require_subcommand(1);
    auto args = std::make_shared<view_args>();
    CLI::App* cmd = view->add_subcommand(
        "run", "Evaluate a ViewDefinition over FHIR files or headache.db and print its rows");
    cmd->footer(
        "Reads FHIR JSON resources, Bundles (their entries) and NDJSON, like `ingest`.\n"
        "Privacy: with --config, the config's [privacy] identifiers applies; without it,\n"
        "\"none\" (the safe default). Under \"none\" a definition that reaches a patient's name,\n"
        "address, telecom, identifier, photo, contact, birth date or FHIR id is refused, and\n"
        "getResourceKey()/getReferenceKey() give a pseudonymous key that is random per run\n"
        "(it links rows of this run only).\n"
        "--db reads the resources whose JSON headache.db keeps (ingest --store-raw),\n"
        "read-only, leaving out deleted ones; key columns then hold the stored patient_key.\n"
        "Its path: --db PATH, else the --config's [daemon] database, else ./headache.db.\n"
        "\nExamples:\n  headachemd-sync view run views/allergies.json export/ --format ndjson\n"
        "  headachemd-sync view run views/allergies.json --db --config /etc/headachemd/sync.toml\n"
        "\nExit status: 0 done, 64 usage (also --db with FILEs), 65 the definition was refused,\n"
        "a resource or stored row failed (the other rows are printed), or not a headache.db,\n"
        "66 no definition file, no database, or no raw resources of the view's type in it\n"
        "(store_raw off), 74 reading the database failed, 78 the config is wrong.");
    cmd->add_option("DEFINITION", args->definition, "ViewDefinition JSON file")->required();
    cmd->add_option("INPUT", args->inputs, "FHIR .json/.ndjson/.jsonl files or directories");
    cmd->add_option("--format", args->format, "output format")
        ->capture_default_str()
        ->check(CLI::IsMember({"csv", "ndjson"}));
    CLI::Option* db = cmd->add_option("--db", args->db_path,
                                      "read the JSON headache.db keeps instead of files (PATH optional)");
    db->expected(0, 1);
    cmd->add_option("--config", args->config,
                    "sync.toml whose [privacy] identifiers applies (default: none)");
    cmd->callback([args, exit_code, db] {
        args->db = db->count() > 0;
        *exit_code = run_view(*args);
    });
}

}  // namespace headachemd::daemon
