// `unenroll KEY [--ehr NAME] [--purge] [--force]`: ends a patient's
// enrollment. Revokes the refresh token at the EHR (RFC 7009) where it
// offers a revocation endpoint, removes the enrollment and any pending
// browser enrollment from vault.db, and with --purge deletes the patient's
// rows from headache.db. docs/admin/operations.md "Unenrolling a patient"
// has the rules.
#pragma once

#include <CLI/CLI.hpp>

namespace headachemd::daemon {

void add_unenroll_command(CLI::App& app, int* exit_code);

}  // namespace headachemd::daemon
