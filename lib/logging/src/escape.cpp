#include "headachemd/logging/escape.hpp"

#include <cstdint>

#include "headachemd/core/json.hpp"

namespace headachemd::logging {
namespace {

constexpr std::string_view replacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr char hex[] = "0123456789abcdef";

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629
// §4 table: the second byte's range depends on the lead byte, which rules
// out overlongs, surrogates and code points above U+10FFFF), or 0.
std::size_t utf8_sequence_length(std::string_view s) {
    const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char c = b(0);
    if (c < 0x80) return 1;
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;  // a continuation byte, C0, C1 or F5..FF as a lead
    }
    if (s.size() < len) return 0;
    if (b(1) < lo || b(1) > hi) return 0;
    for (std::size_t i = 2; i < len; ++i)
        if (b(i) < 0x80 || b(i) > 0xBF) return 0;
    return len;
}

void append_hex_escape(std::string& out, std::string_view prefix, unsigned char c) {
    out += prefix;
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 0xF]);
}

}  // namespace

void append_json_escaped(std::string& out, std::string_view in) {
    out.reserve(out.size() + in.size());
    for (std::size_t i = 0; i < in.size();) {
        const auto c = static_cast<unsigned char>(in[i]);
        if (c >= 0x80) {
            const std::size_t len = utf8_sequence_length(in.substr(i));
            if (len == 0) {
                out += replacement;
                ++i;
                continue;
            }
            const std::string_view seq = in.substr(i, len);
            if (seq == "\xE2\x80\xA8")
                out += "\\u2028";
            else if (seq == "\xE2\x80\xA9")
                out += "\\u2029";
            else
                out += seq;
            i += len;
            continue;
        }
        // DEL too: a terminal may act on it, and JSON allows escaping any character.
        if (c == 0x7F)
            append_hex_escape(out, "\\u00", c);
        else
            append_json_escaped_byte(out, static_cast<char>(c));
        ++i;
    }
}

void append_line_escaped(std::string& out, std::string_view in) {
    out.reserve(out.size() + in.size());
    for (std::size_t i = 0; i < in.size();) {
        const auto c = static_cast<unsigned char>(in[i]);
        if (c >= 0x80) {
            const std::size_t len = utf8_sequence_length(in.substr(i));
            if (len == 0) {
                out += replacement;
                ++i;
            } else if (len == 2 && c == 0xC2 && static_cast<unsigned char>(in[i + 1]) < 0xA0) {
                // C1 controls (U+0080..U+009F): NEL ends a line for some
                // readers, CSI starts a terminal escape.
                append_hex_escape(out, "\\u00", static_cast<unsigned char>(in[i + 1]));
                i += 2;
            } else {
                out += in.substr(i, len);
                i += len;
            }
            continue;
        }
        if (c == '\n')
            out += "\\n";
        else if (c == '\r')
            out += "\\r";
        else if ((c < 0x20 && c != '\t') || c == 0x7F)
            append_hex_escape(out, "\\x", c);
        else
            out.push_back(static_cast<char>(c));
        ++i;
    }
}

}  // namespace headachemd::logging
