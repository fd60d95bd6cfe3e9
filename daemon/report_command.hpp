// `headachemd-sync report`: the clinic report as one self-contained HTML file.
#pragma once

#include <filesystem>
#include <ostream>

#include <CLI/CLI.hpp>

namespace headachemd::daemon {

void add_report_command(CLI::App& app, int* exit_code);

// Reads `db` read-only and writes the report to `out` atomically (mode
// 0640). Prints "Wrote <out> (...)" to `info` and errors to `error`; returns
// an exit_code (0 written, 66 no database, 65 not ours or too old, 73 cannot
// write, 74 read failed). Shared by `report` and `demo`.
int write_report(const std::filesystem::path& db, const std::filesystem::path& out, int page_size,
                 std::ostream& info, std::ostream& error);

}  // namespace headachemd::daemon
