#include "headachemd/smart/smart.hpp"

#include <algorithm>
#include <cctype>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <simdjson.h>

#include <array>
#include <stdexcept>

#include "headachemd/http/url.hpp"

namespace headachemd::smart {
namespace {

namespace od = simdjson::ondemand;

error bad(std::string code, std::string message) { return error{std::move(code), std::move(message)}; }

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

void read_string_array(od::value v, std::vector<std::string>& out) {
    od::array arr;
    if (v.get_array().get(arr)) return;
    for (auto item : arr) {
        std::string_view s;
        if (!item.get_string().get(s)) out.emplace_back(s);
    }
}

// One value in application/x-www-form-urlencoded form: the encoder writes
// "name=", so encode the value as a name and drop the '='.
std::string form_component(std::string_view value) {
    std::string e = http::form_encode({{std::string(value), ""}});
    e.pop_back();
    return e;
}

}  // namespace

result<configuration> parse_configuration(std::string_view json) {
    simdjson::padded_string text(json);
    od::parser parser;
    od::document doc;
    od::object obj;
    if (parser.iterate(text).get(doc) || doc.get_object().get(obj))
        return bad("bad_discovery", "smart-configuration is not a JSON object");
    configuration c;
    for (auto field : obj) {
        std::string_view key;
        if (field.unescaped_key().get(key))
            return bad("bad_discovery", "smart-configuration is malformed JSON");
        od::value v = field.value();
        std::string_view s;
        if (key == "authorization_endpoint") {
            if (!v.get_string().get(s)) c.authorization_endpoint = s;
        } else if (key == "token_endpoint") {
            if (!v.get_string().get(s)) c.token_endpoint = s;
        } else if (key == "revocation_endpoint") {
            if (!v.get_string().get(s)) c.revocation_endpoint = std::string(s);
        } else if (key == "token_endpoint_auth_methods_supported")
            read_string_array(v, c.token_endpoint_auth_methods_supported);
        else if (key == "scopes_supported")
            read_string_array(v, c.scopes_supported);
        else if (key == "code_challenge_methods_supported")
            read_string_array(v, c.code_challenge_methods_supported);
        else if (key == "capabilities")
            read_string_array(v, c.capabilities);
    }
    if (c.token_endpoint.empty())
        return bad("bad_discovery",
                   "smart-configuration has no token_endpoint (SMART App Launch requires it)");
    return c;
}

result<configuration> parse_capability_oauth_uris(std::string_view json) {
    // CapabilityStatement.rest[].security.extension[oauth-uris].extension[]
    // {url: authorize|token|revoke, valueUri}. Read with the DOM API: the
    // document is small and its order is not fixed.
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(json).get(doc)) return bad("bad_discovery", "CapabilityStatement is malformed JSON");
    configuration c;
    simdjson::dom::array rest;
    if (doc["rest"].get(rest)) return bad("bad_discovery", "CapabilityStatement has no rest");
    for (auto r : rest) {
        simdjson::dom::array exts;
        if (r["security"]["extension"].get(exts)) continue;
        for (auto e : exts) {
            std::string_view url;
            if (e["url"].get(url) ||
                url != "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris")
                continue;
            simdjson::dom::array inner;
            if (e["extension"].get(inner)) continue;
            for (auto i : inner) {
                std::string_view name, value;
                if (i["url"].get(name) || i["valueUri"].get(value)) continue;
                if (name == "authorize")
                    c.authorization_endpoint = value;
                else if (name == "token")
                    c.token_endpoint = value;
                else if (name == "revoke")
                    c.revocation_endpoint = std::string(value);
            }
        }
    }
    if (c.token_endpoint.empty())
        return bad("bad_discovery", "CapabilityStatement declares no oauth-uris token endpoint");
    return c;
}

result<token_response> parse_token_response(int http_status, std::string_view body) {
    simdjson::padded_string text(body);
    od::parser parser;
    od::document doc;
    od::object obj;
    const bool is_object = !parser.iterate(text).get(doc) && !doc.get_object().get(obj);
    if (!is_object) {
        return bad(http_status >= 500 ? "http_" + std::to_string(http_status) : "bad_token_response",
                   "token endpoint answered HTTP " + std::to_string(http_status) + " without a JSON object");
    }
    token_response t;
    std::string oauth_error, description;
    for (auto field : obj) {
        std::string_view key;
        if (field.unescaped_key().get(key))
            return bad("bad_token_response", "token response is malformed JSON");
        od::value v = field.value();
        std::string_view s;
        if (key == "access_token") {
            if (!v.get_string().get(s)) t.access_token = s;
        } else if (key == "token_type") {
            if (!v.get_string().get(s)) t.token_type = s;
        } else if (key == "refresh_token") {
            if (!v.get_string().get(s)) t.refresh_token = std::string(s);
        } else if (key == "scope") {
            if (!v.get_string().get(s)) t.scope = s;
        } else if (key == "patient") {
            if (!v.get_string().get(s)) t.patient = std::string(s);
        } else if (key == "id_token") {
            if (!v.get_string().get(s)) t.id_token = std::string(s);
        } else if (key == "error") {
            if (!v.get_string().get(s)) oauth_error = s;
        } else if (key == "error_description") {
            if (!v.get_string().get(s)) description = s;
        } else if (key == "expires_in") {
            // RFC 6749 says a number; some servers send it as a string. A
            // negative value is ignored (as if absent), and a huge one is
            // clamped to 2^31 s, as HTTP clamps delta-seconds (RFC 9111
            // §1.2.2): unclamped, "now + expires_in" overflowed (found by
            // tests/fuzz/fuzz_smart).
            constexpr std::int64_t cap = std::int64_t{1} << 31;
            std::int64_t n = 0;
            std::string_view str;
            if (!v.get_int64().get(n)) {
                if (n >= 0) t.expires_in = std::chrono::seconds(std::min(n, cap));
            } else if (!v.get_string().get(str)) {
                std::int64_t parsed = 0;
                bool digits = !str.empty();
                for (char ch : str) {
                    if (ch < '0' || ch > '9') {
                        digits = false;
                        break;
                    }
                    parsed = std::min(parsed * 10 + (ch - '0'), cap);
                }
                if (digits) t.expires_in = std::chrono::seconds(parsed);
            }
        }
    }
    if (!oauth_error.empty() || http_status >= 400) {
        const std::string code = oauth_error.empty() ? "http_" + std::to_string(http_status) : oauth_error;
        return bad(code, "token endpoint refused the request: " + code +
                             (description.empty() ? "" : " (" + description + ")") + ", HTTP " +
                             std::to_string(http_status));
    }
    if (t.access_token.empty()) return bad("bad_token_response", "token response has no access_token");
    if (!iequals(t.token_type, "bearer"))
        return bad("bad_token_response", "token_type is \"" + t.token_type + "\", expected Bearer");
    return t;
}

namespace {

std::string random_base64url(std::size_t bytes) {
    std::vector<unsigned char> buf(bytes);
    if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1)
        throw std::runtime_error("the OS random generator failed");
    return http::base64url_encode(buf);
}

void add_client_auth(token_request& r, std::vector<std::pair<std::string, std::string>>& form,
                     const client_credentials& creds, const token_call& call) {
    switch (creds.auth) {
        case client_auth::client_secret_basic: {
            const std::string user =
                form_component(creds.client_id) + ":" + form_component(creds.client_secret);
            r.headers.emplace_back("Authorization", "Basic " + http::base64_encode(user));
            break;
        }
        case client_auth::client_secret_post:
            form.emplace_back("client_id", creds.client_id);
            form.emplace_back("client_secret", creds.client_secret);
            break;
        case client_auth::none:
            form.emplace_back("client_id", creds.client_id);
            break;
        case client_auth::private_key_jwt: {
            // RFC 7523 §2.2 and SMART App Launch "asymmetric": a new
            // assertion per call, since the server remembers each jti until
            // its exp and refuses it a second time. client_id is optional
            // there (RFC 6749 §4.1.3 asks it of unauthenticated clients
            // only) but eClinicalWorks and Epic expect it.
            if (!creds.key) throw std::invalid_argument("private_key_jwt needs a signing key");
            if (call.token_endpoint.empty())
                throw std::invalid_argument("private_key_jwt needs the token endpoint (the assertion's aud)");
            form.emplace_back("client_id", creds.client_id);
            form.emplace_back("client_assertion_type", std::string(jwt_bearer_assertion_type));
            form.emplace_back(
                "client_assertion",
                make_client_assertion(*creds.key, creds.key_id,
                                      {creds.client_id, std::string(call.token_endpoint), call.now}));
            break;
        }
    }
}

}  // namespace

std::string pkce_challenge(std::string_view verifier) {
    std::array<unsigned char, 32> digest{};
    unsigned int len = 0;
    if (EVP_Digest(verifier.data(), verifier.size(), digest.data(), &len, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("OpenSSL SHA-256 failed");
    return http::base64url_encode(digest);
}

pkce_pair make_pkce() {
    pkce_pair p;
    p.verifier = random_base64url(32);
    p.challenge = pkce_challenge(p.verifier);
    return p;
}

std::string random_state() { return random_base64url(32); }

std::string authorize_url(const authorize_request& r) {
    return http::url_with_query(r.authorization_endpoint, {{"response_type", "code"},
                                                           {"client_id", r.client_id},
                                                           {"redirect_uri", r.redirect_uri},
                                                           {"scope", r.scope},
                                                           {"state", r.state},
                                                           {"aud", r.aud},
                                                           {"code_challenge", r.code_challenge},
                                                           {"code_challenge_method", "S256"}});
}

token_request make_code_exchange_request(std::string_view code, std::string_view redirect_uri,
                                         std::string_view code_verifier, const client_credentials& creds,
                                         const token_call& call) {
    token_request r;
    std::vector<std::pair<std::string, std::string>> form = {{"grant_type", "authorization_code"},
                                                             {"code", std::string(code)},
                                                             {"redirect_uri", std::string(redirect_uri)},
                                                             {"code_verifier", std::string(code_verifier)}};
    r.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    r.headers.emplace_back("Accept", "application/json");
    add_client_auth(r, form, creds, call);
    r.body = http::form_encode(form);
    return r;
}

token_request make_refresh_request(std::string_view refresh_token, const client_credentials& creds,
                                   const token_call& call) {
    token_request r;
    std::vector<std::pair<std::string, std::string>> form = {{"grant_type", "refresh_token"},
                                                             {"refresh_token", std::string(refresh_token)}};
    r.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    r.headers.emplace_back("Accept", "application/json");
    // RFC 6749 §2.3.1: for client_secret_basic the id and the secret are
    // form-encoded before base64, so a ':' or '%' in either survives.
    add_client_auth(r, form, creds, call);
    r.body = http::form_encode(form);
    return r;
}

token_request make_revocation_request(std::string_view refresh_token, const client_credentials& creds,
                                      const token_call& call) {
    token_request r;
    // RFC 7009 §2.1: the hint lets the server look in the right table first.
    std::vector<std::pair<std::string, std::string>> form = {{"token", std::string(refresh_token)},
                                                             {"token_type_hint", "refresh_token"}};
    r.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    r.headers.emplace_back("Accept", "application/json");
    add_client_auth(r, form, creds, call);
    r.body = http::form_encode(form);
    return r;
}

result<ok_t> parse_revocation_response(int http_status, std::string_view body) {
    // RFC 7009 §2.2: "The content of the response body is ignored by the client".
    if (http_status == 200) return ok_v;
    // §2.2.1: an error answer is RFC 6749 §5.2 JSON; the token parser reads
    // those fields (it never takes a status >= 400 for a success).
    if (http_status >= 400) {
        auto parsed = parse_token_response(http_status, body);
        if (!parsed) {
            error e = parsed.err();
            if (e.code == "bad_token_response") e.code = "http_" + std::to_string(http_status);
            e.message = "revocation endpoint refused the request: " + e.code + ", HTTP " +
                        std::to_string(http_status);
            return e;
        }
    }
    return error{"http_" + std::to_string(http_status),
                 "revocation endpoint answered HTTP " + std::to_string(http_status) + ", expected 200"};
}

bool access_token_state::usable(std::chrono::system_clock::time_point now) const {
    return !token_.empty() && now + refresh_margin < expires_at_;
}

void access_token_state::set(const token_response& t, std::chrono::system_clock::time_point now) {
    token_ = t.access_token;
    // No expires_in: assume the common one hour, and the first 401 tells us
    // otherwise.
    expires_at_ = now + t.expires_in.value_or(std::chrono::seconds(3600));
}

}  // namespace headachemd::smart
