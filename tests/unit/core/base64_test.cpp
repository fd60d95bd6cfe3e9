// base64 and base64url (core/base64.hpp), against RFC 4648 §10's test
// vectors and the RFC 7636 appendix B PKCE example.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "headachemd/core/base64.hpp"

namespace {

using headachemd::base64_decode;
using headachemd::base64_encode;
using headachemd::base64url_decode;
using headachemd::base64url_encode;

struct vector {
    const char* bytes;
    const char* padded;    // RFC 4648 §10
    const char* unpadded;  // the same without '=' (base64url, §5 + §3.2)
};
constexpr std::array<vector, 7> rfc4648_vectors{{{"", "", ""},
                                                 {"f", "Zg==", "Zg"},
                                                 {"fo", "Zm8=", "Zm8"},
                                                 {"foo", "Zm9v", "Zm9v"},
                                                 {"foob", "Zm9vYg==", "Zm9vYg"},
                                                 {"fooba", "Zm9vYmE=", "Zm9vYmE"},
                                                 {"foobar", "Zm9vYmFy", "Zm9vYmFy"}}};

TEST(base64, rfc4648_vectors_encode_and_decode) {
    for (const auto& v : rfc4648_vectors) {
        EXPECT_EQ(base64_encode(std::string(v.bytes)), v.padded);
        EXPECT_EQ(base64_decode(v.padded), v.bytes) << v.padded;
        EXPECT_EQ(base64_decode(v.unpadded), v.bytes) << v.unpadded;
    }
    EXPECT_EQ(base64_encode(std::string("Aladdin:open sesame")), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");  // RFC 7617
}

TEST(base64url, rfc4648_vectors_have_no_padding) {
    for (const auto& v : rfc4648_vectors) {
        EXPECT_EQ(base64url_encode(std::string(v.bytes)), v.unpadded);
        EXPECT_EQ(base64url_decode(v.unpadded), v.bytes) << v.unpadded;
        // A server that pads anyway is read the same.
        EXPECT_EQ(base64url_decode(v.padded), v.bytes) << v.padded;
    }
}

TEST(base64url, uses_the_url_safe_alphabet) {
    // Setup: bytes whose base64 needs the last two characters.
    const std::string high("\xfb\xff\xbf", 3);

    // Run / Check
    EXPECT_EQ(base64_encode(high), "+/+/");
    EXPECT_EQ(base64url_encode(high), "-_-_");
    EXPECT_EQ(base64url_decode("-_-_"), high);
    EXPECT_EQ(base64_decode("+/+/"), high);
}

TEST(base64url, pkce_s256_example_of_rfc7636) {
    // RFC 7636 appendix B: the SHA-256 of the verifier, as bytes.
    constexpr std::array<unsigned char, 32> digest{19, 211, 30,  150, 26,  26,  216, 236, 47,  22,  177,
                                                   12, 76,  152, 46,  8,   118, 168, 120, 173, 109, 241,
                                                   68, 86,  110, 225, 137, 74,  203, 112, 249, 195};
    EXPECT_EQ(base64url_encode(std::span<const unsigned char>(digest)),
              "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

TEST(base64url, invalid_input_is_refused) {
    EXPECT_FALSE(base64url_decode("Zm9v+g"));   // '+' is base64, not base64url
    EXPECT_FALSE(base64url_decode("Zm9v/g"));   // '/' likewise
    EXPECT_FALSE(base64_decode("Zm9v-g"));      // and the reverse
    EXPECT_FALSE(base64url_decode("Zm9v!"));    // not in any alphabet
    EXPECT_FALSE(base64url_decode("Zm9vY"));    // 6 bits left over: no byte
    EXPECT_FALSE(base64url_decode("Zm=9v"));    // '=' only at the end
    EXPECT_FALSE(base64url_decode("Zg==="));    // at most two '='
    EXPECT_FALSE(base64url_decode("Zm9v Zg"));  // no white space
}

// The vectors of lib/http's encoder, which this replaced (tests/unit/url until issue 14).
TEST(base64, encodes_as_lib_http_did) {
    EXPECT_EQ(headachemd::base64_encode(""), "");
    EXPECT_EQ(headachemd::base64_encode("f"), "Zg==");
    EXPECT_EQ(headachemd::base64_encode("fo"), "Zm8=");
    EXPECT_EQ(headachemd::base64_encode("foo"), "Zm9v");
    EXPECT_EQ(headachemd::base64_encode("foob"), "Zm9vYg==");
    EXPECT_EQ(headachemd::base64_encode("fooba"), "Zm9vYmE=");
    EXPECT_EQ(headachemd::base64_encode("foobar"), "Zm9vYmFy");
    // RFC 7617 §2's Basic credentials example.
    EXPECT_EQ(headachemd::base64_encode("Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
}

TEST(base64url, encodes_as_lib_http_did) {
    const std::vector<unsigned char> high{0xFB, 0xFF};
    EXPECT_EQ(headachemd::base64url_encode(high), "-_8");
    const std::vector<unsigned char> one{'f'};
    EXPECT_EQ(headachemd::base64url_encode(one), "Zg");
    EXPECT_EQ(headachemd::base64url_encode(std::span<const unsigned char>{}), "");
    // RFC 7636 appendix B: the code_verifier octets and their encoding.
    const std::vector<unsigned char> verifier{116, 24,  223, 180, 151, 153, 224, 37,  79,  250, 96,
                                              125, 216, 173, 187, 186, 22,  212, 37,  77,  105, 214,
                                              191, 240, 91,  88,  5,   88,  83,  132, 141, 121};
    EXPECT_EQ(headachemd::base64url_encode(verifier), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
}

}  // namespace
