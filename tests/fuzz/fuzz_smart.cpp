// libFuzzer target: the SMART parsers that read what an authorization
// server sends, plus the FHIR CapabilityStatement reader discovery uses.
// The first byte chooses the parser:
//   0: parse_token_response (the next two bytes choose the HTTP status)
//   1: parse_configuration (.well-known/smart-configuration)
//   2: parse_capability_oauth_uris (CapabilityStatement oauth-uris)
//   3: fhir::parse_capability_statement
// The rest of the input is the body, as received.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "fuzz_support.hpp"
#include "headachemd/fhir/fhir.hpp"
#include "headachemd/smart/smart.hpp"

namespace smart = headachemd::smart;
namespace hf = headachemd::fuzz;

namespace {

// The body with the value of every token field (access_token,
// refresh_token, id_token) replaced by a canary no fixed message contains,
// when the body is a JSON object; nullopt otherwise. Also says whether a
// field the server may echo into an error (error, error_description,
// token_type) already holds the canary.
constexpr std::string_view canary =
    "\x7f"
    "canary-token"
    "\x7f";

void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20) {
            out += "\\u00";
            out += hex[u >> 4];
            out += hex[u & 0xf];
        } else {
            out += c;
        }
    }
    out += '"';
}

std::optional<std::string> with_canaries(std::string_view body, bool& canary_echoed) {
    simdjson::dom::parser parser;
    simdjson::dom::object obj;
    if (parser.parse(body).get(obj)) return std::nullopt;
    std::string out = "{";
    bool has_token = false;
    for (auto [key, value] : obj) {
        if (out.size() > 1) out += ',';
        append_json_string(out, key);
        out += ':';
        std::string_view s;
        if ((key == "access_token" || key == "refresh_token" || key == "id_token") && !value.get(s)) {
            append_json_string(out, canary);
            has_token = true;
        } else {
            if ((key == "error" || key == "error_description" || key == "token_type") && !value.get(s))
                canary_echoed = canary_echoed || hf::contains(s, canary);
            out += simdjson::minify(value);
        }
    }
    out += '}';
    if (!has_token) return std::nullopt;
    return out;
}

void token_response(int status, std::string_view body) {
    auto r = smart::parse_token_response(status, body);
    if (r) {
        FUZZ_CHECK(status < 400, "a token accepted from an HTTP error answer");
        FUZZ_CHECK(!r->access_token.empty(), "a token response accepted without access_token");
        if (r->expires_in) FUZZ_CHECK(r->expires_in->count() >= 0, "a negative expires_in accepted");
        // Issue 12: what goes into a header or the vault is within its cap
        // and its grammar.
        FUZZ_CHECK(r->access_token.size() <= smart::token_caps::access_token, "an access token over its cap");
        for (const char c : r->access_token)
            FUZZ_CHECK(c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != ',',
                       "an access token byte an Authorization header must not carry");
        if (r->refresh_token) {
            FUZZ_CHECK(
                !r->refresh_token->empty() && r->refresh_token->size() <= smart::token_caps::refresh_token,
                "an empty or oversize refresh token accepted");
            for (const char c : *r->refresh_token)
                FUZZ_CHECK(c >= 0x20 && c < 0x7f, "a refresh token with a control or non-ASCII byte");
        }
        // What the sync engine does next with an accepted answer.
        const auto now = std::chrono::system_clock::time_point{std::chrono::seconds{1'800'000'000}};
        smart::access_token_state state;
        state.set(*r, now);
        FUZZ_CHECK(state.expires_at() >= now, "an access token that expired before it arrived");
        (void)state.usable(now);
        return;
    }
    FUZZ_CHECK(!to_string(r.err().code).empty() && !r.err().message.empty(),
               "an error without code or message");
    // Issue 12: server text is escaped and bounded before it reaches a
    // message (stored in sync_status, printed by status).
    for (const char c : r.err().message)
        FUZZ_CHECK(c >= 0x20 && c < 0x7f, "a control or non-ASCII byte in an error message");
    FUZZ_CHECK(r.err().message.size() < 600, "an unbounded error message");
    // The contract: error messages never contain token values. Run the
    // same answer again with canaries for the token values: no message
    // may show one, unless the server echoed it in a text of its own.
    bool echoed = false;
    if (const auto marked = with_canaries(body, echoed)) {
        auto again = smart::parse_token_response(status, *marked);
        if (!again && !echoed)
            FUZZ_CHECK(!hf::contains(again.err().message, canary), "a token value in an error message");
    }
}

void configuration(const headachemd::result<smart::configuration>& r) {
    if (r) {
        FUZZ_CHECK(!r->token_endpoint.empty(), "a configuration without token_endpoint accepted");
    } else {
        FUZZ_CHECK(!r.err().message.empty(), "an error without a message");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t selector = data[0] % 4;
    std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (selector) {
        case 0: {
            if (rest.size() < 2) return 0;
            // 100..599, and 200 and 400 most often (the answers that matter).
            const unsigned raw =
                static_cast<unsigned char>(rest[0]) << 8 | static_cast<unsigned char>(rest[1]);
            const int status = raw % 3 == 0 ? 200 : raw % 3 == 1 ? 400 : 100 + static_cast<int>(raw % 500);
            token_response(status, rest.substr(2));
            break;
        }
        case 1:
            configuration(smart::parse_configuration(rest));
            break;
        case 2:
            configuration(smart::parse_capability_oauth_uris(rest));
            break;
        case 3: {
            auto caps = headachemd::fhir::parse_capability_statement(rest);
            if (caps) {
                for (const auto& [type, params] : caps->search_params) {
                    FUZZ_CHECK(caps->serves(type), "a listed type not served");
                    for (const auto& p : params)
                        FUZZ_CHECK(caps->supports(type, p), "a listed param not supported");
                }
            }
            break;
        }
    }
    return 0;
}
