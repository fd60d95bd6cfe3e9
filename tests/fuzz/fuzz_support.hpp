// Helpers shared by the libFuzzer targets: an invariant check that aborts
// (libFuzzer records an abort as a crash and saves the input), and the
// checks several targets apply to the normalizer's output.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <simdjson.h>

// Not assert(): the fuzz build may define NDEBUG, and a broken invariant
// must stop the run whatever the build type.
#define FUZZ_CHECK(cond, what)                                                                       \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            std::fprintf(stderr, "fuzz invariant broken: %s [%s] at %s:%d\n", what, #cond, __FILE__, \
                         __LINE__);                                                                  \
            std::abort();                                                                            \
        }                                                                                            \
    } while (0)

namespace headachemd::fuzz {

inline bool valid_utf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

inline bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

}  // namespace headachemd::fuzz
