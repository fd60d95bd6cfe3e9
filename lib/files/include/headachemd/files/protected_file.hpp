// The one rule for the files the daemon trusts: the config (it says where
// secrets and tokens are sent) and every secret file (client secret,
// private_key_jwt key, vault token key, systemd credentials).
//
//   config  must not be writable by group or others; reading is fine (a
//           root-owned 0644 /etc/headachemd/sync.toml holds no secret).
//   secret  must not be writable by group or others, nor readable by others.
//           Group read is allowed: systemd shows a credential under
//           $CREDENTIALS_DIRECTORY as root-owned 0440 (the group bits are the
//           mask of the ACL that grants the service user read access), and a
//           secret installed 0640 root:headachemd is readable by the daemon's
//           group only.
//   both    owned by root or by the user the process runs as: any other
//           owner can chmod the file or rewrite it at will, whatever its mode.
//
// Each problem names the file, what is wrong and the command that fixes it.
// The rule is a pure function (mode_problem); read_protected_file is the
// thin shell that opens, fstat()s the opened descriptor (so a symlink is
// judged by its target and a rename race cannot swap the file after the
// check) and reads at most a cap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace headachemd::files {

enum class file_kind { config, secret };

enum class problem_kind {
    missing,        // ENOENT: nothing at the path
    unreadable,     // open() or read() failed (EACCES, EIO, …)
    not_regular,    // a directory, device, FIFO or socket (after following symlinks)
    unsafe_mode,    // group/other write, or other read for a secret
    foreign_owner,  // owned by neither root nor the process's user
    too_large,      // more bytes than the caller's cap
    empty,          // a secret file with nothing in it
};

std::string_view to_string(problem_kind k);

// What is wrong and how to fix it, each a fragment for a person.
// Neither ever holds a byte of the file's content.
struct file_problem {
    problem_kind kind = problem_kind::unreadable;
    std::string what;  // "the client secret file '/etc/x.secret' is accessible to other users (mode 0644)"
    std::string fix;   // "chmod 600 /etc/x.secret"

    // "<what>; refusing to use it. Fix: <fix>" (or without the fix when there is none).
    std::string message() const;
};

// The mode and ownership rule above, over stat() values. `mode` is the
// permission bits (st_mode & 07777); `role` labels the file in the message
// after "the" ("client secret file"). nullopt: acceptable.
std::optional<file_problem> mode_problem(file_kind kind, unsigned mode, unsigned owner_uid,
                                         unsigned process_uid, std::string_view role,
                                         const std::filesystem::path& path);

// "a directory", "a character device", … for a st_mode that is not S_IFREG.
std::string_view file_type_name(unsigned st_mode);

// Caps for read_protected_file. A client secret is tens of bytes, a PEM
// private key a few KiB (RSA 4096: about 3.3 KiB), sync.toml a few KiB;
// anything near these sizes is the wrong file.
inline constexpr std::size_t max_secret_bytes = 64 * 1024;
inline constexpr std::size_t max_config_bytes = 1024 * 1024;

struct read_outcome {
    std::optional<std::string> content;   // set when the file passed every check
    std::optional<file_problem> problem;  // set otherwise
};

// Opens `path` (following symlinks; O_NONBLOCK so a FIFO cannot hang us),
// checks the opened file is a regular file, applies mode_problem for `kind`
// with the process's effective uid, and reads at most `max_bytes`: a file
// that holds more (or grows past it while read) is refused, so /dev/zero
// behind a symlink or a swapped file never exhausts memory. A secret must
// not be empty. Never throws for a bad file (only std::bad_alloc). The
// content of a refused file is wiped before returning.
read_outcome read_protected_file(const std::filesystem::path& path, file_kind kind, std::string_view role,
                                 std::size_t max_bytes);

// Wipes a string that held a secret (not optimised away), then clears it.
void wipe(std::string& s);

}  // namespace headachemd::files
