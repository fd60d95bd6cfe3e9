// ndjson::line_splitter: NDJSON lines out of byte chunks cut anywhere,
// with over-long lines reported one by one and never held.
#include <gtest/gtest.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "headachemd/ndjson/line_splitter.hpp"

namespace {

using headachemd::ndjson::line;
using headachemd::ndjson::line_splitter;
using headachemd::ndjson::line_too_long;
using headachemd::ndjson::split_event;

// What a run gave, one string per event: "3:text" or "7:too long 12>10".
std::string shown(const split_event& e) {
    if (const auto* l = std::get_if<line>(&e)) return std::to_string(l->number) + ":" + std::string(l->text);
    const auto& t = std::get<line_too_long>(e);
    return std::to_string(t.number) + ":too long " + std::to_string(t.length) + ">" +
           std::to_string(t.max_line_bytes);
}

// Feeds `in` cut at the given offsets and drains every event.
std::vector<std::string> split_at(line_splitter& s, std::string_view in,
                                  const std::vector<std::size_t>& cuts) {
    std::vector<std::string> out;
    std::size_t from = 0;
    auto drain = [&] {
        while (auto e = s.next()) out.push_back(shown(*e));
    };
    for (std::size_t cut : cuts) {
        s.feed(in.substr(from, cut - from));
        drain();
        from = cut;
    }
    s.feed(in.substr(from));
    drain();
    if (auto e = s.finish()) out.push_back(shown(*e));
    return out;
}

std::vector<std::string> split(std::string_view in, std::size_t max_line_bytes,
                               const std::vector<std::size_t>& cuts = {}) {
    line_splitter s(max_line_bytes);
    return split_at(s, in, cuts);
}

using lines = std::vector<std::string>;

// CRLF and LF, a blank line, a whitespace-only line, a "\r" inside a
// line, and a last line with no newline.
constexpr std::string_view sample = "{\"a\":1}\r\n{\"b\":2}\n\n  \t\r\n{\"c\":\"x\ry\"}\r\n{\"d\":4}";
const lines sample_lines = {"1:{\"a\":1}", "2:{\"b\":2}", "5:{\"c\":\"x\ry\"}", "6:{\"d\":4}"};

TEST(line_splitter, lines_keep_their_numbers_and_lose_their_line_ends) {
    EXPECT_EQ(split(sample, 100), sample_lines);
}

TEST(line_splitter, a_cut_at_every_offset_gives_the_same_lines) {
    for (std::size_t cut = 0; cut <= sample.size(); ++cut)
        EXPECT_EQ(split(sample, 100, {cut}), sample_lines) << "cut at " << cut;
    for (std::size_t a = 0; a <= sample.size(); ++a)
        for (std::size_t b = a; b <= sample.size(); ++b)
            ASSERT_EQ(split(sample, 100, {a, b}), sample_lines) << "cuts at " << a << ", " << b;
    // One byte at a time, every chunk its own short-lived buffer.
    line_splitter s(100);
    lines out;
    for (char c : sample) {
        const std::string one(1, c);
        s.feed(one);
        while (auto e = s.next()) out.push_back(shown(*e));
    }
    if (auto e = s.finish()) out.push_back(shown(*e));
    EXPECT_EQ(out, sample_lines);
}

TEST(line_splitter, an_over_long_line_is_one_error_and_its_neighbours_survive) {
    // Setup: line 2 is 30 bytes under a cap of 10.
    const std::string in = "{\"a\":1}\n" + std::string(30, 'x') + "\r\n{\"b\":2}\n";
    // Run: whole, and cut at every offset.
    for (std::size_t cut = 0; cut <= in.size(); ++cut) {
        const lines got = split(in, 10, {cut});
        // Check: reported once, where it passed the cap when it came in
        // pieces, and the lines around it intact.
        ASSERT_EQ(got.size(), 3u) << "cut at " << cut;
        EXPECT_EQ(got[0], "1:{\"a\":1}");
        // (Line 2 is bytes 8 to 37, then "\r\n".)
        const std::size_t seen = cut > 8 + 10 && cut < 38 ? cut - 8 : 30;
        EXPECT_EQ(got[1], "2:too long " + std::to_string(seen) + ">10") << "cut at " << cut;
        EXPECT_EQ(got[2], "3:{\"b\":2}");
    }
}

TEST(line_splitter, the_cap_is_the_line_without_its_line_end) {
    EXPECT_EQ(split("0123456789\r\n0123456789\n", 10), (lines{"1:0123456789", "2:0123456789"}));
    EXPECT_EQ(split("0123456789A\n", 10), (lines{"1:too long 11>10"}));
    // Split inside the CRLF: the "\r" held may still be a line end.
    EXPECT_EQ(split("0123456789\r\nok\n", 10, {11}), (lines{"1:0123456789", "2:ok"}));
    EXPECT_EQ(split("0123456789\rX\n", 10, {11}), (lines{"1:too long 12>10"}));
    // A last line with no newline is capped too.
    EXPECT_EQ(split("ok\n0123456789A", 10, {5}), (lines{"1:ok", "2:too long 11>10"}));
}

TEST(line_splitter, an_over_long_line_is_never_held) {
    // Setup: a 1 MiB line fed in 4 KiB chunks under a 1 KiB cap.
    line_splitter s(1024);
    const std::string chunk(4096, 'x');
    lines got;
    // Run
    for (int i = 0; i < 256; ++i) {
        s.feed(chunk);
        while (auto e = s.next()) got.push_back(shown(*e));
    }
    s.feed("\n{}\n");
    while (auto e = s.next()) got.push_back(shown(*e));
    // Check: reported at the first chunk past the cap, then dropped.
    EXPECT_EQ(got, (lines{"1:too long 4096>1024", "2:{}"}));
    EXPECT_FALSE(s.finish());
}

TEST(line_splitter, a_line_from_several_chunks_is_padded_for_in_place_parsing) {
    line_splitter s(100, 8);
    s.feed("{\"a\":");
    EXPECT_FALSE(s.next());
    s.feed("1}\n");
    auto e = s.next();
    ASSERT_TRUE(e);
    const auto& l = std::get<line>(*e);
    EXPECT_EQ(l.text, "{\"a\":1}");
    for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(l.text.data()[l.text.size() + i], '\0') << i;
}

TEST(line_splitter, finish_starts_a_new_stream_and_misuse_is_a_bug) {
    line_splitter s(100);
    EXPECT_EQ(split_at(s, "a\nb", {}), (lines{"1:a", "2:b"}));
    EXPECT_EQ(split_at(s, "c\n", {}), (lines{"1:c"}));
    s.feed("x\ny\n");
    ASSERT_TRUE(s.next());
    EXPECT_THROW(s.feed("z"), std::logic_error);
    EXPECT_THROW((void)s.finish(), std::logic_error);
}

}  // namespace
