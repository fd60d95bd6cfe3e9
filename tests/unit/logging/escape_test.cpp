// The escaping behind every log form: one message, one line, valid UTF-8.
#include <gtest/gtest.h>

#include <string>

#include "headachemd/logging/escape.hpp"

namespace {

using headachemd::logging::json_escaped;
using headachemd::logging::line_escaped;

TEST(JsonEscape, QuotesBackslashAndControlCharacters) {
    EXPECT_EQ(json_escaped("plain text 123"), "plain text 123");
    EXPECT_EQ(json_escaped("say \"hi\""), "say \\\"hi\\\"");
    EXPECT_EQ(json_escaped("C:\\path"), "C:\\\\path");
    EXPECT_EQ(json_escaped("a\nb\rc\td\be\ff"), "a\\nb\\rc\\td\\be\\ff");
    EXPECT_EQ(json_escaped(std::string("nul\0x", 5)), "nul\\u0000x");
    EXPECT_EQ(json_escaped("\x01\x1f\x7f"), "\\u0001\\u001f\\u007f");
    EXPECT_EQ(json_escaped("esc \x1b[31m"), "esc \\u001b[31m");
}

TEST(JsonEscape, ValidUtf8PassesAndLineSeparatorsAreEscaped) {
    EXPECT_EQ(json_escaped("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
              "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
    EXPECT_EQ(json_escaped("a\xE2\x80\xA8"
                           "b\xE2\x80\xA9"),
              "a\\u2028b\\u2029");
}

TEST(JsonEscape, InvalidUtf8IsReplacedByteByByte) {
    const std::string fffd = "\xEF\xBF\xBD";
    EXPECT_EQ(json_escaped("a\xFF"
                           "b"),
              "a" + fffd + "b");            // never a lead byte
    EXPECT_EQ(json_escaped("\x80"), fffd);  // lone continuation
    EXPECT_EQ(json_escaped("\xC3"), fffd);  // cut short at the end
    EXPECT_EQ(json_escaped("\xC3"
                           "A"),
              fffd + "A");                                                   // cut short mid-text
    EXPECT_EQ(json_escaped("\xC0\xAF"), fffd + fffd);                        // overlong '/'
    EXPECT_EQ(json_escaped("\xE0\x80\xAF"), fffd + fffd + fffd);             // overlong, 3 bytes
    EXPECT_EQ(json_escaped("\xED\xA0\x80"), fffd + fffd + fffd);             // UTF-16 surrogate
    EXPECT_EQ(json_escaped("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // above U+10FFFF
    EXPECT_EQ(json_escaped("\xF5\x80"), fffd + fffd);
    // A malformed byte cannot swallow the quote after it.
    EXPECT_EQ(json_escaped("\xE2\x80\""), fffd + fffd + "\\\"");
}

TEST(LineEscape, NewlinesCannotForgeALine) {
    const std::string forged = "refresh failed\n<3>error: forged entry\r\nmore";
    const std::string out = line_escaped(forged);
    EXPECT_EQ(out, "refresh failed\\n<3>error: forged entry\\r\\nmore");
    EXPECT_EQ(out.find('\n'), std::string::npos);
    EXPECT_EQ(out.find('\r'), std::string::npos);
}

TEST(LineEscape, ControlCharactersAndTerminalEscapes) {
    EXPECT_EQ(line_escaped("tab\tkept"), "tab\tkept");
    EXPECT_EQ(line_escaped("\x1b[2J\x07"), "\\x1b[2J\\x07");
    EXPECT_EQ(line_escaped(std::string("a\0b", 3)), "a\\x00b");
    EXPECT_EQ(line_escaped("\x7f"), "\\x7f");
    // C1 controls as UTF-8: NEL (U+0085) and CSI (U+009B).
    EXPECT_EQ(line_escaped("x\xC2\x85y\xC2\x9B"), "x\\u0085y\\u009b");
    EXPECT_EQ(line_escaped("quotes \" and \\ stay"), "quotes \" and \\ stay");
    EXPECT_EQ(line_escaped("caf\xC3\xA9 \xC2\xA0"), "caf\xC3\xA9 \xC2\xA0");
    EXPECT_EQ(line_escaped("bad \xFF\xFE"), "bad \xEF\xBF\xBD\xEF\xBF\xBD");
}

// Every single byte, alone and between letters: neither form ever emits a
// raw newline or a byte JSON forbids unescaped.
TEST(Escape, NoByteValueEscapesItsLine) {
    for (int b = 0; b < 256; ++b) {
        const std::string in = "a" + std::string(1, static_cast<char>(b)) + "z";
        const std::string j = json_escaped(in);
        const std::string t = line_escaped(in);
        for (const char c : j) {
            EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20) << "byte " << b;
        }
        EXPECT_EQ(t.find('\n'), std::string::npos) << "byte " << b;
        EXPECT_EQ(t.find('\r'), std::string::npos) << "byte " << b;
        for (std::size_t k = 0; k < j.size(); ++k) {
            if (j[k] == '"') {
                EXPECT_TRUE(k > 0 && j[k - 1] == '\\') << "byte " << b;
            }
        }
    }
}

}  // namespace
