// The file form of options::secret_observer: when the environment names a
// ledger directory, every secret and identifying value the server reports
// is appended to a file of its own there, for the integration suite's log
// scan (tests/logscan). Nothing here throws: a ledger that cannot be
// written is skipped, since the sandbox must still serve (the scan then
// fails loudly for having no secrets).
#pragma once

#include <functional>
#include <string_view>

#include "headachemd/sandbox/sandbox.hpp"

namespace headachemd::sandbox::detail {

inline constexpr const char* secret_ledger_env = "HEADACHEMD_SANDBOX_SECRET_LEDGER_DIR";

// `observer` chained with a writer to a new ledger file when
// $HEADACHEMD_SANDBOX_SECRET_LEDGER_DIR is set; `observer` itself otherwise.
std::function<void(secret_kind, std::string_view)> with_ledger(
    std::function<void(secret_kind, std::string_view)> observer);

}  // namespace headachemd::sandbox::detail
