// detail::content_decoder: gzip and identity decoded chunk by chunk, as the
// Bulk Data download will feed them (issue 15). The gzip inputs are made
// with zlib's deflate (gzip_support.hpp), then cut into chunks at every
// offset and damaged as a hostile server would.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "gzip_support.hpp"
#include "headachemd/http/detail/content_coding.hpp"

namespace {

using headachemd::errc;
using headachemd::error;
using headachemd::http::detail::content_coding;
using headachemd::http::detail::content_decoder;
using headachemd::http::detail::decoder_limits;
using headachemd::http::detail::make_content_decoder;
using headachemd::http::detail::make_gzip_decoder;
using headachemd::http::detail::make_identity_decoder;
using headachemd::test::gzip;
using headachemd::test::zeros_gzip;

std::string sample_ndjson() {
    std::string s;
    for (int i = 0; i < 2000; ++i)
        s += R"({"resourceType":"Observation","id":"o)" + std::to_string(i) +
             R"(","valueQuantity":{"value":)" + std::to_string(i * 7 % 101) + "}}\n";
    return s;
}

struct decoded {
    std::string out;
    std::size_t pieces = 0;
    std::size_t max_piece = 0;
    std::optional<error> err;  // the first error, from next() or finish()
};

// Feeds `in` in chunks of `chunk` bytes (the last may be shorter) and
// drains every piece, as a download loop would; keeps only `keep` bytes
// of output so a bomb's output is never held by the test either.
decoded run(content_decoder& d, std::string_view in, std::size_t chunk,
            std::size_t keep = std::string::npos) {
    decoded r;
    for (std::size_t at = 0; at < in.size() || (at == 0 && in.empty()); at += chunk) {
        d.feed(in.substr(at, chunk));
        for (;;) {
            auto piece = d.next();
            if (!piece) {
                r.err = piece.err();
                return r;
            }
            if (piece->empty()) break;
            ++r.pieces;
            r.max_piece = std::max(r.max_piece, piece->size());
            if (r.out.size() < keep) r.out.append(piece->substr(0, keep - r.out.size()));
        }
        if (in.empty()) break;
    }
    if (auto end = d.finish(); !end) r.err = end.err();
    return r;
}

std::string describe(const decoded& r) {
    return r.err ? to_string(r.err->code) + ": " + r.err->message
                 : "ok, " + std::to_string(r.out.size()) + " bytes";
}

TEST(gzip_decoder, every_chunk_size_gives_the_same_bytes_in_bounded_pieces) {
    // Setup
    const std::string body = sample_ndjson();
    const std::string gz = gzip(body);
    for (std::size_t chunk : {std::size_t(1), std::size_t(2), std::size_t(7), std::size_t(4096), gz.size()}) {
        auto d = make_gzip_decoder({.piece_bytes = 1000});
        // Run
        const decoded r = run(*d, gz, chunk);
        // Check
        ASSERT_FALSE(r.err) << "chunk " << chunk << ": " << describe(r);
        EXPECT_EQ(r.out, body) << "chunk " << chunk;
        EXPECT_LE(r.max_piece, 1000u) << "chunk " << chunk;
        EXPECT_GE(r.pieces, body.size() / 1000) << "chunk " << chunk;
    }
}

TEST(gzip_decoder, a_100_mb_bomb_never_gives_more_than_a_piece_at_a_time) {
    // Setup: 100 MiB of zeros deflate, streamed, to about 100 KiB.
    const std::string bomb = zeros_gzip(std::size_t(100) << 20);
    ASSERT_LT(bomb.size(), std::size_t(200) << 10);
    // Run: a small cap, then none, the bomb arriving in 4 KiB chunks.
    auto capped = make_gzip_decoder({.piece_bytes = 64 << 10, .max_bytes = 1 << 20});
    const decoded small = run(*capped, bomb, 4096, 0);
    auto uncapped = make_gzip_decoder({.piece_bytes = 64 << 10});
    const decoded all = run(*uncapped, bomb, 4096, 0);
    // Check: the cap is an error before a byte past it is given; without
    // a cap every byte comes out, never more than one piece at a time.
    ASSERT_TRUE(small.err);
    EXPECT_EQ(small.err->code, errc::body_too_large) << small.err->message;
    EXPECT_NE(small.err->message.find("1048576"), std::string::npos) << small.err->message;
    EXPECT_LE(small.max_piece, std::size_t(64) << 10);
    EXPECT_LE(small.pieces * small.max_piece, std::size_t(1) << 20);
    ASSERT_FALSE(all.err) << describe(all);
    EXPECT_LE(all.max_piece, std::size_t(64) << 10);
    EXPECT_GE(all.pieces, std::size_t(100) << 4);  // 100 MiB / 64 KiB
}

TEST(gzip_decoder, the_cap_is_exact) {
    const std::string gz = gzip(std::string(5000, 'a'));
    auto at = make_gzip_decoder({.piece_bytes = 64, .max_bytes = 5000});
    EXPECT_FALSE(run(*at, gz, 3).err);
    auto under = make_gzip_decoder({.piece_bytes = 64, .max_bytes = 4999});
    const decoded r = run(*under, gz, 3);
    ASSERT_TRUE(r.err);
    EXPECT_EQ(r.err->code, errc::body_too_large);
    EXPECT_LE(r.out.size(), 4999u);
}

TEST(gzip_decoder, data_that_stops_inside_a_member_is_cut_short_at_finish) {
    const std::string gz = gzip(sample_ndjson());
    // Inside the header, the deflate stream and the trailer; in one chunk and byte by byte.
    for (std::size_t cut : {std::size_t(1), std::size_t(9), gz.size() / 2, gz.size() - 8, gz.size() - 1}) {
        for (std::size_t chunk : {std::size_t(1), gz.size()}) {
            auto d = make_gzip_decoder({.piece_bytes = 512});
            const decoded r = run(*d, std::string_view(gz).substr(0, cut), chunk);
            ASSERT_TRUE(r.err) << "cut " << cut << " chunk " << chunk;
            EXPECT_EQ(r.err->code, errc::bad_encoding);
            EXPECT_NE(r.err->message.find("cut short"), std::string::npos) << r.err->message;
        }
    }
    auto nothing = make_gzip_decoder();
    const decoded r = run(*nothing, "", 1);
    ASSERT_TRUE(r.err);
    EXPECT_NE(r.err->message.find("empty"), std::string::npos) << r.err->message;
}

TEST(gzip_decoder, corrupt_data_and_wrong_crc_or_length_are_named_and_final) {
    const std::string body = "{\"resourceType\":\"Patient\",\"id\":\"secret-id\"}\n";
    std::string crc = gzip(body), length = gzip(body), corrupt = gzip(sample_ndjson());
    crc[crc.size() - 8] ^= 0x01;        // CRC-32, RFC 1952 §2.3.1
    length[length.size() - 4] ^= 0x01;  // ISIZE
    for (std::size_t i = 12; i < 40; ++i) corrupt[i] = static_cast<char>(0xff);
    struct damaged {
        const std::string& gz;
        std::string_view says;
    };
    for (const damaged& c :
         {damaged{crc, "CRC-32"}, damaged{length, "length"}, damaged{corrupt, "corrupt"}}) {
        auto d = make_gzip_decoder({.piece_bytes = 16});
        const decoded r = run(*d, c.gz, 5);
        ASSERT_TRUE(r.err) << c.says;
        EXPECT_EQ(r.err->code, errc::bad_encoding);
        EXPECT_NE(r.err->message.find(c.says), std::string::npos) << r.err->message;
        EXPECT_EQ(r.err->message.find("secret-id"), std::string::npos) << r.err->message;
        // The error stands: a later call repeats it instead of decoding on.
        auto again = d->next();
        ASSERT_FALSE(again.ok());
        EXPECT_EQ(again.err().message, r.err->message);
    }
}

TEST(gzip_decoder, concatenated_members_decode_as_gzip_d_does_at_any_split) {
    // RFC 1952 §2.2: a gzip file is a series of members.
    const std::string gz = gzip("hello ") + gzip("") + gzip("world\n");
    for (std::size_t chunk = 1; chunk <= gz.size(); ++chunk) {
        auto d = make_gzip_decoder({.piece_bytes = 4});
        const decoded r = run(*d, gz, chunk);
        ASSERT_FALSE(r.err) << "chunk " << chunk << ": " << describe(r);
        EXPECT_EQ(r.out, "hello world\n") << "chunk " << chunk;
    }
}

TEST(gzip_decoder, bytes_after_a_member_that_start_no_member_are_refused_at_any_split) {
    const std::string gz = gzip("hello");
    // A lone 1f (the ID1 of a member that never came), 1f then not 8b, and garbage.
    for (const std::string& tail :
         {std::string("\x1f", 1), std::string("\x1f\x00", 2), std::string("\n"), std::string("garbage")}) {
        for (std::size_t chunk = 1; chunk <= gz.size() + tail.size(); ++chunk) {
            auto d = make_gzip_decoder();
            const decoded r = run(*d, gz + tail, chunk);
            ASSERT_TRUE(r.err) << "tail " << tail.size() << " chunk " << chunk;
            EXPECT_EQ(r.err->code, errc::bad_encoding);
            EXPECT_NE(r.err->message.find("after the end of member 1"), std::string::npos) << r.err->message;
            EXPECT_EQ(r.out, "hello");
        }
    }
}

TEST(identity_decoder, hands_the_bytes_back_in_bounded_pieces_under_the_cap) {
    const std::string body = sample_ndjson();
    auto d = make_identity_decoder({.piece_bytes = 1000});
    const decoded r = run(*d, body, 4096);
    ASSERT_FALSE(r.err) << describe(r);
    EXPECT_EQ(r.out, body);
    EXPECT_LE(r.max_piece, 1000u);

    auto empty = make_identity_decoder();
    EXPECT_FALSE(run(*empty, "", 1).err);

    auto capped = make_identity_decoder({.piece_bytes = 1000, .max_bytes = 2500});
    const decoded over = run(*capped, body, 4096);
    ASSERT_TRUE(over.err);
    EXPECT_EQ(over.err->code, errc::body_too_large);
    EXPECT_EQ(over.out, body.substr(0, 2000));
    // The error stands through a later chunk and at the end.
    capped->feed("more");
    EXPECT_EQ(capped->next().err().code, errc::body_too_large);
    EXPECT_EQ(capped->finish().err().code, errc::body_too_large);
}

TEST(content_decoder, the_coding_picks_the_decoder_behind_one_interface) {
    const std::string body = "{\"resourceType\":\"Patient\"}\n";
    auto gz = make_content_decoder(content_coding::gzip);
    auto id = make_content_decoder(content_coding::identity);
    EXPECT_EQ(run(*gz, gzip(body), 3).out, body);
    EXPECT_EQ(run(*id, body, 3).out, body);
}

TEST(content_decoder, feeding_before_the_chunk_is_used_up_is_a_bug) {
    auto d = make_identity_decoder({.piece_bytes = 2});
    d->feed("abcd");
    ASSERT_TRUE(d->next().ok());
    EXPECT_THROW(d->feed("more"), std::logic_error);
    EXPECT_THROW((void)d->finish(), std::logic_error);
    EXPECT_THROW(make_gzip_decoder({.piece_bytes = 0}), std::invalid_argument);
}

}  // namespace
