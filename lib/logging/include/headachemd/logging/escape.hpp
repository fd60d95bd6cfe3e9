// Escaping for log lines: one log call must give exactly one output line,
// whatever bytes its message holds (a server's error text, a file name, a
// config value). Pure functions over bytes; nothing throws but bad_alloc.
#pragma once

#include <string>
#include <string_view>

namespace headachemd::logging {

// Appends `in` as the body of a JSON string (RFC 8259 §7), without the
// surrounding quotes: `"` and `\` are escaped, every control character
// (U+0000..U+001F, and DEL) becomes \n, \r, \t, \b, \f or \u00XX, U+2028 and
// U+2029 become \u2028 / \u2029 (line terminators to JavaScript), and each
// byte that does not start a well-formed UTF-8 sequence (RFC 3629 §4:
// overlongs, surrogates and code points above U+10FFFF included) is
// replaced by U+FFFD. The result is valid UTF-8 and holds no raw newline.
void append_json_escaped(std::string& out, std::string_view in);

// For the text and journald forms: a newline becomes the two characters
// `\n`, a carriage return `\r`, any other control character (tab kept,
// ESC included, so no terminal escape sequence gets through) `\xNN`, and
// malformed UTF-8 becomes U+FFFD as above. The result holds no byte below
// 0x20 except tab (and no C1 control: U+0080..U+009F become \u00NN), so it
// cannot end the line or start a forged one.
void append_line_escaped(std::string& out, std::string_view in);

inline std::string json_escaped(std::string_view in) {
    std::string out;
    append_json_escaped(out, in);
    return out;
}

inline std::string line_escaped(std::string_view in) {
    std::string out;
    append_line_escaped(out, in);
    return out;
}

}  // namespace headachemd::logging
