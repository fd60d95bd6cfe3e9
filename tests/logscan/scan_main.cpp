// integration_log_scan: the ctest fixture cleanup that runs after the whole
// integration suite (tests/CMakeLists.txt) and fails when any captured log
// line holds a secret a sandbox issued or a patient identifier from its
// data, or when there was nothing to scan. Usage: log_scan CAPTURE_DIR
#include <cstdio>
#include <map>

#include "log_scan.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CAPTURE_DIR\n", argv[0]);
        return 64;
    }
    const auto r = headachemd::logscan::scan_capture_dir(argv[1]);
    std::printf("log scan of %s: %zu files, %zu lines, %zu bytes; %zu ledgers:", argv[1], r.files, r.lines,
                r.bytes, r.ledger_files);
    for (const auto& [kind, n] : r.secrets_by_kind) std::printf(" %zu %s", n, kind.c_str());
    std::printf("\n");
    // The kind and where, never the value.
    std::map<std::string, std::size_t> per_file;
    for (const auto& f : r.findings) {
        if (++per_file[f.file] <= 20)
            std::printf("LEAK %s:%zu: a %s from the sandbox\n", f.file.c_str(), f.line, f.kind.c_str());
    }
    for (const auto& [file, n] : per_file)
        if (n > 20) std::printf("LEAK %s: %zu more\n", file.c_str(), n - 20);
    for (const auto& p : r.problems) std::printf("CANNOT TRUST THE SCAN: %s\n", p.c_str());
    if (!r.passed()) {
        std::printf("FAILED: %zu leaks, %zu problems\n", r.findings.size(), r.problems.size());
        return 1;
    }
    std::printf("passed: no secret in any captured line\n");
    return 0;
}
