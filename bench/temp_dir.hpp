#pragma once
// A benchmark's scratch directory: made new (mkdtemp) under TMPDIR, removed
// with everything in it when the object goes.
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace headachemd::bench {

struct temp_dir {
    std::filesystem::path path;
    // `prefix` names the bench: "headachemd-bench-sync-XXXXXX".
    explicit temp_dir(const std::string& prefix) {
        std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a temporary directory");
        path = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

}  // namespace headachemd::bench
