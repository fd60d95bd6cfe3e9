// Writing the files this program creates: keys it must never overwrite,
// and outputs a reader must never see half-written. One implementation of
// the open/write/fsync/rename dance, so that every writer gets the EINTR
// loop, the exact mode and the directory fsync.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace headachemd::files {

struct write_failure {
    bool already_exists = false;  // write_new_private_file only: O_EXCL refused
    bool opened = false;          // false: the file could not be created at all
    std::string reason;           // strerror text, for a message naming the file
};

// Creates `path` with mode exactly 0600 (whatever the umask) and writes
// `text`, fsyncing the file and its directory. Never touches an existing
// file: O_EXCL refuses to overwrite (a key already registered with an EHR,
// or one that sealed the vault, must not be lost) and O_NOFOLLOW a planted
// link. On failure, nothing is left at `path` that this call created.
std::optional<write_failure> write_new_private_file(const std::filesystem::path& path, std::string_view text);

// Writes `text` to `path` through "<path>.tmp" and rename(2), so a reader
// sees the old file or the new one, never part of one; `mode` is the new
// file's (before the umask).
std::optional<write_failure> write_file_atomically(const std::filesystem::path& path, std::string_view text,
                                                   unsigned mode);

}  // namespace headachemd::files
