#include "view_command.hpp"

#include <sys/random.h>

#include <algorithm>
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
#include "headachemd/store/pseudonym.hpp"
#include "headachemd/views/render.hpp"
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

// The same files `ingest` reads: .json (a resource or a Bundle) and
// .ndjson/.jsonl (Bulk Data), directories recursively in name order,
// hidden files skipped.
enum class file_kind { json, ndjson, other };
file_kind kind_of(const fs::path& p) {
    const auto ext = p.extension().string();
    if (ext == ".json") return file_kind::json;
    if (ext == ".ndjson" || ext == ".jsonl") return file_kind::ndjson;
    return file_kind::other;
}

class run {
public:
    run(const v::view& plan, v::eval_options opts, bool csv)
        : plan_(plan), opts_(std::move(opts)), csv_(csv) {}

    void header() {
        if (csv_) std::cout << v::csv_header(plan_.columns());
    }

    void input(const fs::path& p) {
        std::error_code ec;
        if (fs::is_directory(p, ec)) {
            std::vector<fs::path> files;
            for (auto it =
                     fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
                 !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
                if (it->path().filename().string().starts_with(".")) {
                    if (it->is_directory()) it.disable_recursion_pending();
                    continue;
                }
                if (it->is_regular_file() && kind_of(it->path()) != file_kind::other)
                    files.push_back(it->path());
            }
            std::sort(files.begin(), files.end());
            for (const auto& f : files) file(f);
            return;
        }
        if (!fs::exists(p, ec)) return problem(p.string(), "no such file or directory");
        if (kind_of(p) == file_kind::other)
            return problem(p.string(), "not a FHIR file (.json, .ndjson, .jsonl)");
        file(p);
    }

    int problems() const { return problems_; }

private:
    void file(const fs::path& p) {
        if (kind_of(p) == file_kind::ndjson) return ndjson(p);
        simdjson::padded_string text;
        if (auto err = simdjson::padded_string::load(p.string()).get(text)) {
            return problem(p.string(), simdjson::error_message(err));
        }
        simdjson::dom::element root;
        if (auto err = parser_.parse(text).get(root))
            return problem(p.string(), simdjson::error_message(err));
        // The text beside the DOM: decimals keep their written precision
        // for lowBoundary()/highBoundary() (1.0 gives 0.95).
        const v::source_text source(root, std::string_view(text.data(), text.size()));
        resource(root, p.string(), source);
    }

    void ndjson(const fs::path& p) {
        std::ifstream in(p, std::ios::binary);
        if (!in) return problem(p.string(), "cannot be read");
        std::string line;
        for (std::size_t n = 1; std::getline(in, line); ++n) {
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
            simdjson::dom::element root;
            const std::string where = fmt::format("{}:{}", p.string(), n);
            if (auto err = parser_.parse(line).get(root)) {
                problem(where, simdjson::error_message(err));
                continue;
            }
            const v::source_text source(root, line);
            resource(root, where, source);
        }
    }

    // A resource, or a Bundle's entries (FHIR R4 Bundle.entry.resource):
    // a view over Observation finds the Observations of a patient bundle.
    void resource(simdjson::dom::element r, const std::string& where, const v::source_text& source) {
        rows(r, where, source);
        std::string_view type;
        simdjson::dom::array entries;
        if (r["resourceType"].get(type) || type != "Bundle" || r["entry"].get(entries)) return;
        std::size_t i = 0;
        for (auto e : entries) {
            simdjson::dom::element inner;
            if (!e["resource"].get(inner)) rows(inner, fmt::format("{} entry[{}]", where, i), source);
            ++i;
        }
    }

    void rows(simdjson::dom::element r, const std::string& where, const v::source_text& source) {
        opts_.source = &source;
        auto out = v::evaluate(plan_, r, opts_);
        opts_.source = nullptr;
        if (out.error) {
            // The message names the definition's path, never resource data.
            return problem(where, fmt::format("{}: {}", out.error->json_path, out.error->message));
        }
        for (const auto& row : out.rows) {
            std::cout << (csv_ ? v::csv_record(row) : v::ndjson_record(plan_.columns(), row));
        }
    }

    void problem(const std::string& where, std::string_view message) {
        ++problems_;
        std::cerr << fmt::format("error: {}: {}\n", where, message);
    }

    const v::view& plan_;
    v::eval_options opts_;
    bool csv_;
    simdjson::dom::parser parser_;
    int problems_ = 0;
};

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
    run r(std::get<v::view>(compiled), std::move(opts), a.format == "csv");
    r.header();
    for (const auto& input : a.inputs) r.input(input);
    std::cout.flush();
    if (!std::cout) {
        std::cerr << "error: writing the rows failed\n";
        return exit_code::io_error;
    }
    return r.problems() == 0 ? exit_code::ok : exit_code::data_error;
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
