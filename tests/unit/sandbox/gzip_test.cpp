// Issue 15: the sandbox answers gzip when asked and options::gzip is on,
// and its scripted hostile codings. Decoded here with zlib's inflate, so
// the test depends on neither lib/http nor the sandbox's encoder.
#include <gtest/gtest.h>

#include <vector>

#include <zlib.h>

#include "../../../lib/sandbox/src/gzip.hpp"
#include "sandbox_client.hpp"

namespace sbx = headachemd::sandbox;
using sbx::test::reply;
using sbx::test::running_sandbox;

namespace {

// The one gzip member in `gz`, or nullopt when zlib refuses it.
std::optional<std::string> inflate_gzip(const std::string& gz) {
    z_stream z{};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return std::nullopt;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
    z.avail_in = static_cast<uInt>(gz.size());
    std::string out;
    std::vector<unsigned char> chunk(1 << 16);
    int rc = Z_OK;
    while (rc == Z_OK) {
        z.next_out = chunk.data();
        z.avail_out = static_cast<uInt>(chunk.size());
        rc = inflate(&z, Z_NO_FLUSH);
        out.append(reinterpret_cast<const char*>(chunk.data()), chunk.size() - z.avail_out);
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END) return std::nullopt;
    return out;
}

struct gz_sandbox {
    explicit gz_sandbox(bool gzip)
        : s([gzip] {
              sbx::options o;
              o.gzip = gzip;
              return o;
          }()) {}
    running_sandbox s;
    std::unique_ptr<sbx::test::client> c = s.make_client();
    std::string id = s.srv().patient_ids().front();
    std::string token = sbx::test::access_token_for(s, *c, id);
    std::string url = "/fhir/Observation?patient=" + id + "&_count=10";

    reply get(const std::string& accept_encoding) {
        std::vector<std::pair<std::string, std::string>> h = {{"Authorization", "Bearer " + token}};
        if (!accept_encoding.empty()) h.emplace_back("Accept-Encoding", accept_encoding);
        return c->request("GET", url, h, "");
    }
};

}  // namespace

TEST(SandboxGzip, AcceptEncodingAllowsGzipUnlessItsQualityIsZero) {
    for (const char* yes : {"gzip", "GZIP", "x-gzip", "*", "br, gzip;q=0.5", " deflate , gzip ", "gzip;q=1"})
        EXPECT_TRUE(sbx::detail::accepts_gzip(yes)) << yes;
    for (const char* no : {"", "identity", "br", "deflate", "gzip;q=0", "gzip; q=0.000", "gzipx"})
        EXPECT_FALSE(sbx::detail::accepts_gzip(no)) << no;
}

TEST(SandboxGzip, AnswersGzipOnlyWhenAskedAndTheBodyDecodesToTheIdentityOne) {
    // Setup
    gz_sandbox g(true);
    // Run
    const reply plain = g.get("");
    const reply zipped = g.get("gzip");
    // Check
    ASSERT_EQ(plain.status, 200);
    ASSERT_EQ(zipped.status, 200);
    EXPECT_FALSE(plain.has_header("content-encoding"));
    EXPECT_EQ(zipped.header("content-encoding"), "gzip");
    EXPECT_EQ(zipped.header("vary"), "Accept-Encoding");
    EXPECT_LT(zipped.body.size(), plain.body.size());
    EXPECT_EQ(inflate_gzip(zipped.body), plain.body);
    EXPECT_EQ(g.s.srv().stats().gzip_responses, 1u);
    EXPECT_EQ(g.s.srv().stats().accepts_gzip_by_path.at("/fhir/Observation"), 1u);
}

TEST(SandboxGzip, OffByDefaultAndSwitchable) {
    gz_sandbox g(false);
    EXPECT_FALSE(g.get("gzip").has_header("content-encoding"));
    g.s.srv().set_gzip(true);
    EXPECT_EQ(g.get("gzip").header("content-encoding"), "gzip");
}

TEST(SandboxGzip, ScriptedHostileCodingsComeUnasked) {
    // Setup
    gz_sandbox g(false);
    const reply plain = g.get("");
    using k = sbx::scripted_fault::kind;
    for (k what : {k::gzip_corrupt, k::unknown_encoding, k::gzip_bomb}) {
        sbx::scripted_fault f;
        f.what = what;
        g.s.srv().add_scripted_fault(f);
    }
    // Run
    const reply corrupt = g.get("");
    const reply br = g.get("");
    const reply bomb = g.get("");
    // Check
    EXPECT_EQ(corrupt.header("content-encoding"), "gzip");
    EXPECT_FALSE(inflate_gzip(corrupt.body));  // the CRC-32 is wrong
    EXPECT_EQ(br.header("content-encoding"), "br");
    EXPECT_EQ(br.body, plain.body);
    EXPECT_EQ(bomb.header("content-encoding"), "gzip");
    EXPECT_LT(bomb.body.size(), 200u * 1024);
    const auto exploded = inflate_gzip(bomb.body);
    ASSERT_TRUE(exploded);
    EXPECT_EQ(exploded->size(), std::size_t(100) << 20);
}
