// JSON string escaping (RFC 8259 §7), shared by every place this program
// writes JSON by hand: the normalizer's code arrays, client assertions, the
// sandbox's responses and JSON log lines.
#pragma once

#include <string>
#include <string_view>

namespace headachemd {

// One byte of a JSON string's contents: `"` and `\` escaped, the controls
// with a short form as \b \f \n \r \t, the other controls below 0x20 as
// \u00XX. Every other byte is copied: callers pass UTF-8 (or, for log lines,
// check it first).
inline void append_json_escaped_byte(std::string& out, char ch) {
    static constexpr char hex[] = "0123456789abcdef";
    switch (ch) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\b':
            out += "\\b";
            break;
        case '\f':
            out += "\\f";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default: {
            const auto u = static_cast<unsigned char>(ch);
            if (u < 0x20) {
                out += "\\u00";
                out.push_back(hex[u >> 4]);
                out.push_back(hex[u & 0xF]);
            } else {
                out.push_back(ch);
            }
        }
    }
}

// `s` as a quoted JSON string, appended to `out`.
inline void append_json_string(std::string& out, std::string_view s) {
    out.reserve(out.size() + s.size() + 2);
    out.push_back('"');
    for (const char ch : s) append_json_escaped_byte(out, ch);
    out.push_back('"');
}

inline std::string json_string(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

}  // namespace headachemd
