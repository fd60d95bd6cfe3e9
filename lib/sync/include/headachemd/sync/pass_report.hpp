// What `sync-once` prints after its pass: one line per patient, then the
// count. Pure: the daemon runs the pass and writes the string to stdout.
#pragma once

#include <string>

#include "headachemd/sync/engine.hpp"

namespace headachemd::sync {

// One line per patient (key and EHR in columns, then what its job did:
// NEEDS RE-ENROLLMENT, skipped, ok with the rows changed, or FAILED with the
// reason), then "N patients: X ok, Y failed".
std::string render_pass(const pass_result& pass);

}  // namespace headachemd::sync
