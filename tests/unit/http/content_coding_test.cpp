// detail::parse_content_encoding, gunzip and check_transfer_encoding: the
// content codings of a response, without sockets. The gzip inputs are made
// here with zlib's deflate (the encoder, not the decoder under test) and
// then damaged byte by byte as a hostile server would.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <zlib.h>

#include "gzip_support.hpp"
#include "headachemd/http/detail/content_coding.hpp"

namespace {

using headachemd::errc;
using headachemd::http::detail::check_transfer_encoding;
using headachemd::http::detail::content_coding;
using headachemd::http::detail::gunzip;
using headachemd::http::detail::parse_content_encoding;
using headachemd::test::gzip;
using headachemd::test::zeros_gzip;

// A FHIR-like body big enough for several deflate blocks.
std::string sample_bundle() {
    std::string s = R"({"resourceType":"Bundle","type":"searchset","entry":[)";
    for (int i = 0; i < 3000; ++i) {
        if (i) s += ',';
        s += R"({"resource":{"resourceType":"Observation","id":"o)" + std::to_string(i) +
             R"(","status":"final","valueQuantity":{"value":)" + std::to_string(i * 7 % 101) + "}}}";
    }
    return s + "]}";
}

std::string describe(const headachemd::result<std::string>& r) {
    return r.ok() ? "ok, " + std::to_string(r->size()) + " bytes"
                  : to_string(r.err().code) + ": " + r.err().message;
}

// ---------------------------------------------------------------------------
// gunzip

TEST(gunzip, round_trip_of_a_multi_block_body) {
    // Setup
    const std::string body = sample_bundle();
    const std::string gz = gzip(body);
    ASSERT_LT(gz.size(), body.size() / 4);
    // Run
    auto r = gunzip(gz, 64 << 20);
    // Check
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(*r, body);
}

TEST(gunzip, the_gzip_of_nothing_is_an_empty_body) {
    const std::string gz = gzip("");
    ASSERT_EQ(gz.size(), 20u);  // 10-byte header, an empty final block, 8-byte trailer
    auto r = gunzip(gz, 1000);
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(*r, "");
}

TEST(gunzip, zero_bytes_are_not_gzip) {
    auto r = gunzip("", 1000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, errc::bad_encoding);
    EXPECT_NE(r.err().message.find("empty"), std::string::npos) << r.err().message;
}

TEST(gunzip, exactly_the_limit_passes_one_byte_more_is_too_large) {
    const std::string body(5000, 'a');
    const std::string gz = gzip(body);
    EXPECT_TRUE(gunzip(gz, 5000).ok());
    auto r = gunzip(gz, 4999);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, errc::body_too_large) << r.err().message;
    EXPECT_NE(r.err().message.find("4999"), std::string::npos) << r.err().message;
}

TEST(gunzip, a_bomb_of_100_mb_of_zeros_stops_at_the_cap) {
    // Setup: 100 MiB of zeros deflate to about 100 KiB.
    const std::string bomb = zeros_gzip(std::size_t(100) << 20);
    ASSERT_LT(bomb.size(), std::size_t(200) << 10);
    // Run: under the default 64 MiB cap, then a small one.
    auto big = gunzip(bomb, std::size_t(64) << 20);
    auto small = gunzip(bomb, 1 << 20);
    // Check: refused, and the message says the limit, not the data.
    ASSERT_FALSE(big.ok());
    EXPECT_EQ(big.err().code, errc::body_too_large);
    ASSERT_FALSE(small.ok());
    EXPECT_EQ(small.err().code, errc::body_too_large);
    EXPECT_NE(small.err().message.find("1048576"), std::string::npos) << small.err().message;
}

TEST(gunzip, truncated_data_is_an_error_at_every_cut) {
    const std::string gz = gzip(sample_bundle());
    // Inside the header, inside the deflate stream, inside the trailer.
    for (std::size_t cut :
         {std::size_t(1), std::size_t(5), std::size_t(10), gz.size() / 2, gz.size() - 8, gz.size() - 1}) {
        auto r = gunzip(std::string_view(gz).substr(0, cut), 64 << 20);
        ASSERT_FALSE(r.ok()) << "cut at " << cut;
        EXPECT_EQ(r.err().code, errc::bad_encoding) << "cut at " << cut;
        EXPECT_NE(r.err().message.find("cut short"), std::string::npos) << r.err().message;
    }
}

TEST(gunzip, a_wrong_crc_is_named) {
    std::string gz = gzip("{\"resourceType\":\"Patient\",\"id\":\"secret-id\"}");
    gz[gz.size() - 8] ^= 0x01;  // the trailer's CRC-32 (RFC 1952 §2.3.1), little-endian
    auto r = gunzip(gz, 1000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, errc::bad_encoding);
    EXPECT_NE(r.err().message.find("CRC-32"), std::string::npos) << r.err().message;
    EXPECT_EQ(r.err().message.find("secret-id"), std::string::npos) << r.err().message;
}

TEST(gunzip, a_wrong_length_is_named) {
    std::string gz = gzip("hello, world");
    gz[gz.size() - 4] ^= 0x01;  // ISIZE
    auto r = gunzip(gz, 1000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, errc::bad_encoding);
    EXPECT_NE(r.err().message.find("length"), std::string::npos) << r.err().message;
}

TEST(gunzip, corrupt_deflate_data_is_an_error) {
    std::string gz = gzip(sample_bundle());
    for (std::size_t i = 12; i < 40; ++i) gz[i] = static_cast<char>(0xff);
    auto r = gunzip(gz, 64 << 20);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, errc::bad_encoding);
    EXPECT_NE(r.err().message.find("corrupt"), std::string::npos) << r.err().message;
}

TEST(gunzip, not_a_gzip_header_is_an_error) {
    // Plain JSON, a zlib (RFC 1950) stream and a gzip member with another CM.
    const std::string json = R"({"resourceType":"Bundle"})";
    std::array<unsigned char, 64> zbuf{};
    uLongf zlen = zbuf.size();
    ASSERT_EQ(compress(zbuf.data(), &zlen, reinterpret_cast<const Bytef*>(json.data()), json.size()), Z_OK);
    std::string other_method = gzip(json);
    other_method[2] = 7;  // CM: only 8 (deflate) is defined
    for (const std::string& in :
         {json, std::string(reinterpret_cast<const char*>(zbuf.data()), zlen), other_method}) {
        auto r = gunzip(in, 1000);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.err().code, errc::bad_encoding);
        EXPECT_NE(r.err().message.find("not gzip"), std::string::npos) << r.err().message;
        EXPECT_EQ(r.err().message.find("Bundle"), std::string::npos) << r.err().message;
    }
}

TEST(gunzip, trailing_bytes_after_the_member_are_an_error) {
    const std::string gz = gzip("hello");
    for (const std::string& tail : {std::string(1, '\0'), std::string("\n"), std::string(8, '\0'),
                                    std::string("\x1f", 1), std::string("garbage")}) {
        auto r = gunzip(gz + tail, 1000);
        ASSERT_FALSE(r.ok()) << "tail of " << tail.size();
        EXPECT_EQ(r.err().code, errc::bad_encoding);
        EXPECT_NE(r.err().message.find(std::to_string(tail.size()) + " bytes after"), std::string::npos)
            << r.err().message;
    }
}

TEST(gunzip, concatenated_members_decode_to_the_concatenation) {
    // RFC 1952 §2.2: a gzip file is a series of members (gzip -d joins them).
    const std::string body = sample_bundle();
    const std::string gz = gzip(body.substr(0, 1000)) + gzip("") + gzip(body.substr(1000));
    auto r = gunzip(gz, 64 << 20);
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(*r, body);
}

TEST(gunzip, the_cap_counts_every_member) {
    const std::string gz = gzip(std::string(600, 'a')) + gzip(std::string(600, 'b'));
    auto r = gunzip(gz, 1000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, errc::body_too_large);
}

TEST(gunzip, a_second_member_cut_short_is_an_error) {
    const std::string second = gzip("world");
    auto r = gunzip(gzip("hello") + second.substr(0, second.size() - 3), 1000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, errc::bad_encoding);
    EXPECT_NE(r.err().message.find("member 2"), std::string::npos) << r.err().message;
}

// ---------------------------------------------------------------------------
// parse_content_encoding

content_coding coding_of(std::initializer_list<std::string_view> values) {
    const std::vector<std::string_view> v(values);
    auto r = parse_content_encoding(v);
    if (!r) throw std::runtime_error(r.err().message);
    return *r;
}

std::string refusal_of(std::initializer_list<std::string_view> values) {
    const std::vector<std::string_view> v(values);
    auto r = parse_content_encoding(v);
    if (r) return "accepted";
    EXPECT_EQ(r.err().code, errc::bad_encoding);
    return r.err().message;
}

TEST(content_encoding, absent_empty_and_identity_are_identity) {
    EXPECT_EQ(coding_of({}), content_coding::identity);
    EXPECT_EQ(coding_of({""}), content_coding::identity);
    EXPECT_EQ(coding_of({"identity"}), content_coding::identity);
    EXPECT_EQ(coding_of({" , IDENTITY ,"}), content_coding::identity);
}

TEST(content_encoding, gzip_and_x_gzip_in_any_case_are_gzip) {
    EXPECT_EQ(coding_of({"gzip"}), content_coding::gzip);
    EXPECT_EQ(coding_of({"GZip"}), content_coding::gzip);
    EXPECT_EQ(coding_of({"x-gzip"}), content_coding::gzip);  // RFC 9110 §8.4.1.3
    EXPECT_EQ(coding_of({" gzip\t"}), content_coding::gzip);
    EXPECT_EQ(coding_of({"identity", "gzip"}), content_coding::gzip);
    EXPECT_EQ(coding_of({"gzip, identity"}), content_coding::gzip);
}

TEST(content_encoding, other_codings_are_refused_by_name) {
    for (std::string_view c : {"br", "deflate", "compress", "zstd", "x-compress"}) {
        const std::string m = refusal_of({c});
        EXPECT_NE(m.find("'" + std::string(c) + "'"), std::string::npos) << m;
    }
    // In a list, and in a second field.
    EXPECT_NE(refusal_of({"gzip, br"}).find("'br'"), std::string::npos);
    EXPECT_NE(refusal_of({"gzip", "deflate"}).find("'deflate'"), std::string::npos);
}

TEST(content_encoding, gzip_twice_is_refused) {
    EXPECT_NE(refusal_of({"gzip, gzip"}).find("2 times"), std::string::npos);
    EXPECT_NE(refusal_of({"gzip", "x-gzip"}).find("2 times"), std::string::npos);
}

TEST(content_encoding, a_malformed_or_long_coding_is_not_repeated) {
    const std::string m1 = refusal_of({"gzip;q=1"});
    EXPECT_NE(m1.find("malformed"), std::string::npos) << m1;
    EXPECT_EQ(m1.find("q=1"), std::string::npos) << m1;
    const std::string long_name(40, 'z');
    const std::string m2 = refusal_of({long_name});
    EXPECT_EQ(m2.find(long_name), std::string::npos) << m2;
    const std::string m3 = refusal_of({"gz\x01ip"});
    EXPECT_NE(m3.find("malformed"), std::string::npos) << m3;
}

// ---------------------------------------------------------------------------
// check_transfer_encoding

TEST(transfer_encoding, only_chunked_is_accepted) {
    const std::vector<std::string_view> none, chunked{"Chunked"}, gz{"gzip, chunked"}, two{"gzip", "chunked"};
    EXPECT_TRUE(check_transfer_encoding(none).ok());
    EXPECT_TRUE(check_transfer_encoding(chunked).ok());
    for (const auto* v : {&gz, &two}) {
        auto r = check_transfer_encoding(*v);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.err().code, errc::protocol);
        EXPECT_NE(r.err().message.find("'gzip'"), std::string::npos) << r.err().message;
    }
}

}  // namespace
