// ASCII text helpers every layer shares, one copy each (issue 14, item 4:
// the same comparison and hex encoder were written in five files).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace headachemd {

constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// ASCII case-insensitive equality, independent of the locale: HTTP field
// names and tokens (RFC 9110 §5.1), URL schemes and hosts (RFC 3986 §3.1,
// §3.2.2), FHIR codes that servers send in either case.
constexpr bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

// Lowercase hex of `n` bytes.
inline std::string to_hex(const unsigned char* p, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(n * 2, '\0');
    for (std::size_t i = 0; i < n; ++i) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    return out;
}

}  // namespace headachemd
