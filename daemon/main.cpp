// headachemd-sync: one binary, one subcommand per job (DESIGN.md, "The
// command line"). Each subcommand lives in its own file beside this one.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "audit_command.hpp"
#include "doctor_command.hpp"
#include "exit_codes.hpp"
#include "ingest_command.hpp"
#include "keygen_command.hpp"
#include "report_command.hpp"
#include "sandbox_commands.hpp"
#include "sync_commands.hpp"
#include "unenroll_command.hpp"
#include "vault_commands.hpp"
#include "view_command.hpp"

int main(int argc, char** argv) {
#if defined(HEADACHEMD_REQUIRES_X86_64_V3)
    // Built for x86-64-v3 (see CMakeLists.txt): say so instead of dying of SIGILL.
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("bmi2")) {
        std::fputs(
            "headachemd-sync: this build needs an x86-64-v3 CPU (AVX2); rebuild with "
            "-DHEADACHEMD_X86_64_V3=OFF\n",
            stderr);
        return headachemd::exit_code::software;
    }
#endif
    CLI::App app{"HeadacheMD Sync: pulls headache-relevant FHIR R4 data into SQLite for analysts"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "headachemd-sync 0.1.0");
    int exit_code = headachemd::exit_code::ok;
    headachemd::daemon::add_ingest_command(app, &exit_code);
    headachemd::daemon::add_sync_commands(app, &exit_code);
    headachemd::daemon::add_sandbox_commands(app, &exit_code);
    headachemd::daemon::add_vault_commands(app, &exit_code);
    headachemd::daemon::add_doctor_command(app, &exit_code);
    headachemd::daemon::add_keygen_command(app, &exit_code);
    headachemd::daemon::add_report_command(app, &exit_code);
    headachemd::daemon::add_audit_command(app, &exit_code);
    headachemd::daemon::add_unenroll_command(app, &exit_code);
    headachemd::daemon::add_view_commands(app, &exit_code);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : headachemd::exit_code::usage;
    }
    return exit_code;
}
