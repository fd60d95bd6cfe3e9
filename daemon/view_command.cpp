#include "view_command.hpp"

#include <sys/random.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/ingest/fhir_files.hpp"
#include "headachemd/store/pseudonym.hpp"
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

// The identifier rule: the config's [privacy] identifiers, else "none".
std::optional<v::privacy> privacy_of(const std::string& config_file) {
    if (config_file.empty()) return v::privacy::none;
    auto loaded = config::load_config(config_file);
    if (auto* errors = std::get_if<std::vector<config::config_error>>(&loaded)) {
        for (const auto& e : *errors) std::cerr << "error: " << e.to_string() << "\n";
        return std::nullopt;
    }
    return std::get<config::config>(loaded).privacy.identifiers == config::identifier_policy::minimal
               ? v::privacy::minimal
               : v::privacy::none;
}

int run_view(const view_args& a) {
    if (a.inputs.empty()) {
        std::cerr
            << "error: name the FHIR files or directories to read (reading --db is not supported yet)\n";
        return exit_code::usage;
    }
    const auto rule = privacy_of(a.config);
    if (!rule) return exit_code::config;
    std::error_code ec;
    const auto size = fs::file_size(a.definition, ec);
    if (ec) {
        std::cerr << fmt::format("error: {}: {}\n", a.definition, ec.message());
        return exit_code::no_input;
    }
    if (size > max_definition_bytes) {
        std::cerr << fmt::format("error: {}: larger than 1 MiB; not a ViewDefinition\n", a.definition);
        return exit_code::data_error;
    }
    std::ifstream in(a.definition, std::ios::binary);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    auto compiled = v::compile(text, v::compile_options{*rule});
    if (auto* e = std::get_if<v::compile_error>(&compiled)) {
        std::cerr << fmt::format("error: {}: refused at {}{}: {}\n", a.definition,
                                 e->json_path.empty() ? "the definition" : e->json_path,
                                 e->expr_offset ? fmt::format(" (offset {})", *e->expr_offset) : "",
                                 e->message);
        return exit_code::data_error;
    }
    v::eval_options opts;
    if (*rule == v::privacy::none) {
        opts.map_patient_key = run_pseudonyms();
        if (!opts.map_patient_key) {
            std::cerr << "error: no random bytes for the run's pseudonym key\n";
            return exit_code::software;
        }
    }
    const v::view& plan = std::get<v::view>(compiled);
    const bool csv = a.format == "csv";
    if (csv) std::cout << v::csv_header(plan.columns());
    v::view_runner runner(
        plan, std::move(opts),
        [&plan, csv](const v::row& row) {
            std::cout << (csv ? v::csv_record(row) : v::ndjson_record(plan.columns(), row));
        },
        [](const std::string& where, std::string_view message) {
            std::cerr << fmt::format("error: {}: {}\n", where, message);
        });
    read_files(a.inputs, runner);
    std::cout.flush();
    if (!std::cout) {
        std::cerr << "error: writing the rows failed\n";
        return exit_code::io_error;
    }
    return runner.problems() == 0 ? exit_code::ok : exit_code::data_error;
}

}  // namespace

void add_view_commands(CLI::App& app, int* exit_code) {
    CLI::App* view = app.add_subcommand("view", "SQL on FHIR ViewDefinitions: try one on files");
    view->require_subcommand(1);
    auto args = std::make_shared<view_args>();
    CLI::App* cmd =
        view->add_subcommand("run", "Evaluate a ViewDefinition over FHIR files and print its rows");
    cmd->footer(
        "Reads FHIR JSON resources, Bundles (their entries) and NDJSON, like `ingest`.\n"
        "Privacy: with --config, the config's [privacy] identifiers applies; without it,\n"
        "\"none\" (the safe default). Under \"none\" a definition that reaches a patient's name,\n"
        "address, telecom, identifier, photo, contact, birth date or FHIR id is refused, and\n"
        "getResourceKey()/getReferenceKey() give a pseudonymous key that is random per run\n"
        "(it links rows of this run only). Reading headache.db (--db) is not supported yet.\n"
        "\nExample:\n  headachemd-sync view run views/allergies.json export/ --format ndjson\n"
        "\nExit status: 0 done, 64 usage, 65 the definition was refused or a resource failed\n"
        "(the other rows are printed), 66 no definition file, 78 the config is wrong.");
    cmd->add_option("DEFINITION", args->definition, "ViewDefinition JSON file")->required();
    cmd->add_option("INPUT", args->inputs, "FHIR .json/.ndjson/.jsonl files or directories");
    cmd->add_option("--format", args->format, "output format")
        ->capture_default_str()
        ->check(CLI::IsMember({"csv", "ndjson"}));
    cmd->add_option("--config", args->config,
                    "sync.toml whose [privacy] identifiers applies (default: none)");
    cmd->callback([args, exit_code] { *exit_code = run_view(*args); });
}

}  // namespace headachemd::daemon
