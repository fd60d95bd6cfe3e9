// Exit codes from sysexits.h, so that scripts and systemd can tell a bad
// input from a bad config from a failing disk.
#pragma once

namespace headachemd::exit_code {
inline constexpr int ok = 0;
inline constexpr int usage = 64;        // EX_USAGE: wrong command line
inline constexpr int data_error = 65;   // EX_DATAERR: some input was rejected
inline constexpr int no_input = 66;     // EX_NOINPUT: an input file does not exist
inline constexpr int unavailable = 69;  // EX_UNAVAILABLE: a server could not be reached
inline constexpr int software = 70;     // EX_SOFTWARE: a bug
inline constexpr int cant_create = 73;  // EX_CANTCREAT: cannot create/open the output
inline constexpr int io_error = 74;     // EX_IOERR: the database failed while writing
inline constexpr int temp_fail = 75;    // EX_TEMPFAIL: some patient failed; the next run retries
inline constexpr int config = 78;       // EX_CONFIG: the configuration is wrong
}  // namespace headachemd::exit_code
