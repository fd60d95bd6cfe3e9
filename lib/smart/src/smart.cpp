#include "headachemd/smart/smart.hpp"

#include <algorithm>
#include <cctype>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <simdjson.h>

#include <array>
#include <stdexcept>

#include "headachemd/core/base64.hpp"
#include "headachemd/core/text.hpp"
#include "headachemd/http/url.hpp"
#include "headachemd/smart/enrollment.hpp"

namespace headachemd::smart {
namespace {

namespace od = simdjson::ondemand;

error bad(error_code code, std::string message) { return error{std::move(code), std::move(message)}; }

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
        return bad(errc::bad_discovery, "smart-configuration is not a JSON object");
    configuration c;
    for (auto field : obj) {
        std::string_view key;
        if (field.unescaped_key().get(key))
            return bad(errc::bad_discovery, "smart-configuration is malformed JSON");
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
        else if (key == "token_endpoint_auth_signing_alg_values_supported") {
            od::json_type type;
            if (!v.type().get(type) && type == od::json_type::array)
                read_string_array(v, c.token_endpoint_auth_signing_alg_values_supported.emplace());
        }
    }
    if (c.token_endpoint.empty())
        return bad(errc::bad_discovery,
                   "smart-configuration has no token_endpoint (SMART App Launch requires it)");
    return c;
}

result<configuration> parse_capability_oauth_uris(std::string_view json) {
    // CapabilityStatement.rest[].security.extension[oauth-uris].extension[]
    // {url: authorize|token|revoke, valueUri}. Read with the DOM API: the
    // document is small and its order is not fixed.
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(json).get(doc)) return bad(errc::bad_discovery, "CapabilityStatement is malformed JSON");
    configuration c;
    simdjson::dom::array rest;
    if (doc["rest"].get(rest)) return bad(errc::bad_discovery, "CapabilityStatement has no rest");
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
        return bad(errc::bad_discovery, "CapabilityStatement declares no oauth-uris token endpoint");
    return c;
}

namespace {

bool token_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '~' || c == '+' ||
           c == '/' || c == '=' || c == '-';
}

// A run of token characters that looks like a credential rather than a
// word: base64url, hex and JWT values are long and hold digits or capitals;
// OAuth error codes and English words are lower-case snake case.
bool token_shaped(std::string_view run) {
    if (run.size() < 20) return false;
    return std::any_of(run.begin(), run.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || c == '+' || c == '=';
    });
}

void replace_all(std::string& s, std::string_view what, std::string_view with) {
    if (what.empty()) return;
    for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + with.size()))
        s.replace(at, what.size(), with);
}

constexpr std::string_view redacted = "<redacted>";

// RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool b64token(std::string_view t) {
    std::size_t i = 0;
    while (i < t.size() && t[i] != '=' && token_char(t[i])) ++i;
    if (i == 0) return false;
    while (i < t.size() && t[i] == '=') ++i;
    return i == t.size();
}

// RFC 6749 Appendix A.17: refresh-token = 1*VSCHAR, VSCHAR = %x20-7E. A
// space at either end is refused too: " " is VSCHAR but no token, and a
// padded value is a server bug we do not guess around.
bool well_formed_refresh_token(std::string_view t) {
    if (t.empty() || t.size() > token_caps::refresh_token || t.front() == ' ' || t.back() == ' ')
        return false;
    return std::all_of(t.begin(), t.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

// RFC 6749 §3.3: scope-token = 1*NQCHAR separated by spaces; NQCHAR is
// %x21 / %x23-5B / %x5D-7E (no space, '"' or '\').
bool well_formed_scope(std::string_view s) {
    if (s.size() > token_caps::scope) return false;
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return c == ' ' || (c >= 0x21 && c <= 0x7e && c != '"' && c != '\\'); });
}

// A JWS or JWE compact serialization: base64url parts joined by dots.
bool well_formed_id_token(std::string_view t) {
    if (t.empty() || t.size() > token_caps::id_token) return false;
    return std::all_of(t.begin(), t.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '=';
    });
}

}  // namespace

std::string sanitize_server_text(std::string_view text, const known_secrets& secrets, std::size_t max) {
    std::string s(text);
    // The request went out form-encoded, so an echo may show a secret in
    // either spelling. Longest first: a secret inside another goes with it.
    std::vector<std::string> forms;
    for (const auto sec : secrets) {
        if (sec.empty()) continue;
        forms.emplace_back(sec);
        forms.push_back(form_component(sec));
        forms.push_back(http::percent_encode(sec));
    }
    std::sort(forms.begin(), forms.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    for (const auto& f : forms) replace_all(s, f, redacted);

    std::string shaped;
    shaped.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        if (!token_char(s[i])) {
            shaped.push_back(s[i++]);
            continue;
        }
        std::size_t j = i;
        while (j < s.size() && token_char(s[j])) ++j;
        const std::string_view run(s.data() + i, j - i);
        if (token_shaped(run))
            shaped += redacted;
        else
            shaped += run;
        i = j;
    }

    std::string out;
    static constexpr char hex[] = "0123456789abcdef";
    for (const char c : shaped) {
        const auto u = static_cast<unsigned char>(c);
        std::string piece;
        if (c == '\\')
            piece = "\\\\";
        else if (u < 0x20 || u > 0x7e)
            piece = {'\\', 'x', hex[u >> 4], hex[u & 0xf]};
        else
            piece = std::string(1, c);
        if (out.size() + piece.size() > max) {
            out += "...";
            break;
        }
        out += piece;
    }
    return out;
}

bool valid_oauth_error_code(std::string_view code) {
    if (code.empty() || code.size() > token_caps::error_code) return false;
    // NQSCHAR = %x20-21 / %x23-5B / %x5D-7E; a space is allowed there but
    // no registered code has one, and the code becomes an identifier here.
    const bool chars = std::all_of(code.begin(), code.end(),
                                   [](char c) { return c >= 0x21 && c <= 0x7e && c != '"' && c != '\\'; });
    if (!chars) return false;
    for (std::size_t i = 0; i < code.size();) {
        if (!token_char(code[i])) {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < code.size() && token_char(code[j])) ++j;
        if (token_shaped(code.substr(i, j - i))) return false;
        i = j;
    }
    return true;
}

namespace {

// RFC 6749 says a number; some servers send it as a string. A negative
// value is ignored (as if absent), and a huge one is clamped to 2^31 s, as
// HTTP clamps delta-seconds (RFC 9111 §1.2.2): unclamped, "now +
// expires_in" overflowed (found by tests/fuzz/fuzz_smart).
std::optional<std::chrono::seconds> read_expires_in(od::value v) {
    constexpr std::int64_t cap = std::int64_t{1} << 31;
    std::int64_t n = 0;
    std::string_view str;
    if (!v.get_int64().get(n)) {
        if (n >= 0) return std::chrono::seconds(std::min(n, cap));
    } else if (!v.get_string().get(str)) {
        std::int64_t parsed = 0;
        for (char ch : str) {
            if (ch < '0' || ch > '9') return std::nullopt;
            parsed = std::min(parsed * 10 + (ch - '0'), cap);
        }
        if (!str.empty()) return std::chrono::seconds(parsed);
    }
    return std::nullopt;
}

// A success answer's fields checked against their caps and grammars. The
// messages name the field and what is wrong, never its value.
std::optional<error> refuse_token_fields(const token_response& t, const known_secrets& secrets) {
    const auto refuse = [](std::string message) {
        return error{errc::bad_token_response, std::move(message)};
    };
    if (t.access_token.empty()) return refuse("token response has no access_token");
    if (t.access_token.size() > token_caps::access_token)
        return refuse("token response's access_token is " + std::to_string(t.access_token.size()) +
                      " bytes, over the cap of " + std::to_string(token_caps::access_token) + "; not used");
    if (!b64token(t.access_token))
        return refuse(
            "token response's access_token is not an RFC 6750 b64token (a space, control or other "
            "character not allowed in an Authorization header); not used");
    if (!iequals(t.token_type, "bearer"))
        return refuse("token_type is \"" + sanitize_server_text(t.token_type, secrets, 40) +
                      "\", expected Bearer");
    if (t.patient && !valid_fhir_id(*t.patient))
        return refuse("token response's patient is not a FHIR id (at most " +
                      std::to_string(token_caps::patient) + " of A-Z a-z 0-9 - .)");
    if (!well_formed_scope(t.scope))
        return refuse("token response's scope is over " + std::to_string(token_caps::scope) +
                      " bytes or not RFC 6749 section 3.3 scope characters");
    if (t.id_token && !well_formed_id_token(*t.id_token))
        return refuse("token response's id_token is over " + std::to_string(token_caps::id_token) +
                      " bytes or not a compact JWT");
    return std::nullopt;
}

}  // namespace

result<token_response> parse_token_response(int http_status, std::string_view body,
                                            const known_secrets& secrets) {
    simdjson::padded_string text(body);
    od::parser parser;
    od::document doc;
    od::object obj;
    const bool is_object = !parser.iterate(text).get(doc) && !doc.get_object().get(obj);
    if (!is_object) {
        return bad(http_status >= 500 ? error_code::http(http_status) : error_code(errc::bad_token_response),
                   "token endpoint answered HTTP " + std::to_string(http_status) + " without a JSON object");
    }
    token_response t;
    std::string oauth_error, description;
    bool has_error = false;
    for (auto field : obj) {
        std::string_view key;
        if (field.unescaped_key().get(key))
            return bad(errc::bad_token_response, "token response is malformed JSON");
        od::value v = field.value();
        std::string_view s;
        if (key == "access_token") {
            if (!v.get_string().get(s)) t.access_token = s;
        } else if (key == "token_type") {
            if (!v.get_string().get(s)) t.token_type = s;
        } else if (key == "refresh_token") {
            // Absent (not malformed) only when the field is absent or null;
            // a number or an object is a malformed token.
            od::json_type type{};
            if (v.type().get(type) || type != od::json_type::null)
                t.refresh_token = !v.get_string().get(s) ? std::string(s) : std::string();
        } else if (key == "scope") {
            if (!v.get_string().get(s)) t.scope = s;
        } else if (key == "patient") {
            // "" is no launch context, as if absent.
            if (!v.get_string().get(s) && !s.empty()) t.patient = std::string(s);
        } else if (key == "id_token") {
            if (!v.get_string().get(s)) t.id_token = std::string(s);
        } else if (key == "error") {
            // Some frameworks write "error": null into a success; any other
            // value is an error answer, a malformed code included.
            od::json_type type{};
            has_error = v.type().get(type) || type != od::json_type::null;
            if (has_error && !v.get_string().get(s)) oauth_error = s;
        } else if (key == "error_description") {
            if (!v.get_string().get(s)) description = s;
        } else if (key == "expires_in") {
            if (auto n = read_expires_in(v)) t.expires_in = *n;
        }
    }
    if (has_error || http_status >= 400) {
        // RFC 6749 §5.2: the code is the part we act on; the description is
        // free text and may echo the request (secrets included), so it is
        // never kept as sent.
        error_code code = error_code::http(http_status);
        if (has_error)
            code = valid_oauth_error_code(oauth_error) ? error_code::oauth(oauth_error)
                                                       : errc::invalid_error_code;
        const std::string desc = sanitize_server_text(description, secrets);
        return bad(code, "token endpoint refused the request: " + to_string(code) +
                             (desc.empty() ? "" : " (" + desc + ")") + ", HTTP " +
                             std::to_string(http_status));
    }
    if (auto refused = refuse_token_fields(t, secrets)) return *refused;
    if (t.refresh_token && !well_formed_refresh_token(*t.refresh_token)) {
        t.refresh_token.reset();
        t.refresh_token_malformed = true;
    }
    return t;
}

std::optional<std::string> rotated_refresh_token(int http_status, std::string_view body) {
    if (http_status < 200 || http_status > 299) return std::nullopt;
    simdjson::padded_string text(body);
    od::parser parser;
    od::document doc;
    od::object obj;
    if (parser.iterate(text).get(doc) || doc.get_object().get(obj)) return std::nullopt;
    std::optional<std::string> rt;
    for (auto field : obj) {
        std::string_view key, s;
        if (field.unescaped_key().get(key)) return std::nullopt;
        od::value v = field.value();
        od::json_type type{};
        if (key == "error" && (v.type().get(type) || type != od::json_type::null)) return std::nullopt;
        if (key == "refresh_token" && !v.get_string().get(s)) rt = std::string(s);
    }
    if (rt && !well_formed_refresh_token(*rt)) return std::nullopt;
    return rt;
}

namespace {

std::string random_base64url(std::size_t bytes) {
    std::vector<unsigned char> buf(bytes);
    if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1)
        throw std::runtime_error("the OS random generator failed");
    return base64url_encode(buf);
}

void add_client_auth(token_request& r, std::vector<std::pair<std::string, std::string>>& form,
                     const client_credentials& creds, const token_call& call) {
    switch (creds.auth) {
        case client_auth::client_secret_basic: {
            const std::string user =
                form_component(creds.client_id) + ":" + form_component(creds.client_secret);
            r.headers.emplace_back("Authorization", "Basic " + base64_encode(user));
            r.secrets.push_back(creds.client_secret);
            r.secrets.push_back(r.headers.back().second.substr(6));
            break;
        }
        case client_auth::client_secret_post:
            form.emplace_back("client_id", creds.client_id);
            form.emplace_back("client_secret", creds.client_secret);
            r.secrets.push_back(creds.client_secret);
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
            r.secrets.push_back(form.back().second);
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
    return base64url_encode(digest);
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
    r.secrets = {std::string(code), std::string(code_verifier)};
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
    r.secrets = {std::string(refresh_token)};
    // RFC 6749 §2.3.1: for client_secret_basic the id and the secret are
    // form-encoded before base64, so a ':' or '%' in either survives.
    add_client_auth(r, form, creds, call);
    r.body = http::form_encode(form);
    return r;
}

token_request make_backend_token_request(std::string_view scope, const client_credentials& creds,
                                         const token_call& call) {
    if (creds.auth != client_auth::private_key_jwt)
        throw std::invalid_argument("SMART Backend Services authenticates with private_key_jwt only");
    if (scope.empty()) throw std::invalid_argument("a backend token request needs its system scopes");
    token_request r;
    std::vector<std::pair<std::string, std::string>> form = {{"grant_type", "client_credentials"},
                                                             {"scope", std::string(scope)}};
    r.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    r.headers.emplace_back("Accept", "application/json");
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
    r.secrets = {std::string(refresh_token)};
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
            if (e.code == errc::bad_token_response) e.code = error_code::http(http_status);
            e.message = "revocation endpoint refused the request: " + to_string(e.code) + ", HTTP " +
                        std::to_string(http_status);
            return e;
        }
    }
    return error{error_code::http(http_status),
                 "revocation endpoint answered HTTP " + std::to_string(http_status) + ", expected 200"};
}

bool access_token_state::usable(std::chrono::system_clock::time_point now) const {
    return !token_.empty() && now + margin_ < expires_at_;
}

void access_token_state::set(const token_response& t, std::chrono::system_clock::time_point now) {
    token_ = t.access_token;
    // No expires_in: assume the common one hour, and the first 401 tells us
    // otherwise.
    const std::chrono::seconds lifetime = t.expires_in.value_or(std::chrono::seconds(3600));
    expires_at_ = now + lifetime;
    margin_ = std::min<std::chrono::system_clock::duration>(refresh_margin, lifetime / 2);
}

void access_token_state::restore(std::string token, std::chrono::system_clock::time_point expires_at) {
    token_ = std::move(token);
    expires_at_ = expires_at;
    margin_ = refresh_margin;
}

}  // namespace headachemd::smart
