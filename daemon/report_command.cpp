#include "report_command.hpp"

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>

#include <SQLiteCpp/Exception.h>
#include <fmt/format.h>

#include "exit_codes.hpp"
#include "headachemd/files/write_file.hpp"
#include "headachemd/report/report.hpp"
#include "headachemd/store/database.hpp"

namespace headachemd::daemon {
namespace {

namespace fs = std::filesystem;

struct report_args {
    std::string db = "headache.db";
    std::string out = "report.html";
    int page_size = 25;
};

}  // namespace

int write_report(const fs::path& db_path, const fs::path& out, int page_size, std::ostream& info,
                 std::ostream& err) {
    try {
        SQLite::Database db = report::open_read_only(db_path);
        const report::report_data data = report::load(db);
        report::options opts;
        opts.generated_at = store::utc_timestamp(std::chrono::system_clock::now());
        opts.page_size = page_size;
        const std::string html = report::render_html(data, opts);
        // Beside the target, then renamed: a reader never sees half a file.
        // Mode 0640: the report names patients by key only, but it is
        // clinical data.
        if (const auto failed = files::write_file_atomically(out, html, 0640)) {
            err << fmt::format("error: cannot write {}: {}\n", out.string(), failed->reason);
            return exit_code::cant_create;
        }
        info << fmt::format("Wrote {} ({} patients, {:.1f} kB)\n", out.string(), data.patients.size(),
                            static_cast<double>(html.size()) / 1024.0);
        return exit_code::ok;
    } catch (const report::report_error& e) {
        err << "error: " << e.what() << "\n";
        return fs::exists(db_path) ? exit_code::data_error : exit_code::no_input;
    } catch (const SQLite::Exception& e) {
        err << fmt::format("error: reading {} failed: {}\n", db_path.string(), e.what());
        return exit_code::io_error;
    }
}

void add_report_command(CLI::App& app, int* exit_code) {
    auto args = std::make_shared<report_args>();
    CLI::App* cmd = app.add_subcommand(
        "report", "Write the clinic report: one self-contained HTML file with charts, read from headache.db");
    cmd->footer(
        "Example:\n  headachemd-sync report --db /var/lib/headachemd/headache.db --out clinic.html\n"
        "The database is opened read-only, so this is safe while the daemon runs.\n"
        "\nExit status: 0 written, 66 no database, 65 not a HeadacheMD database or too old,\n"
        "73 the output cannot be written, 74 reading failed.");
    cmd->add_option("--db", args->db, "analytics database to read")->capture_default_str();
    cmd->add_option("--out", args->out, "HTML file to write")->capture_default_str();
    cmd->add_option("--page-size", args->page_size, "patients per page in the list")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    cmd->callback([args, exit_code] {
        *exit_code = write_report(args->db, args->out, args->page_size, std::cout, std::cerr);
    });
}

}  // namespace headachemd::daemon
