// The pure checks of `doctor`. Each appends findings; nothing here does I/O
// except inspect_file().
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include <simdjson.h>
#include <boost/url/parse.hpp>

#include "headachemd/doctor/doctor.hpp"
#include "headachemd/files/protected_file.hpp"
#include "headachemd/http/url.hpp"
#include "headachemd/smart/enrollment.hpp"

namespace headachemd::doctor {

namespace {

using namespace std::chrono_literals;

void add(findings& out, severity level, topic area, std::string what, std::string why = {},
         std::string fix = {}) {
    out.push_back({level, area, std::move(what), std::move(why), std::move(fix)});
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

std::string join(const std::vector<std::string>& v, std::string_view sep = ", ") {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : std::string(sep)) + s;
    return out;
}

// The resource type of a SMART scope ("patient/Observation.read" →
// "Observation"), or "" for other scopes (openid, launch/patient, …).
std::string scope_resource_type(std::string_view s) {
    for (std::string_view prefix : {"patient/", "user/", "system/"}) {
        if (s.substr(0, prefix.size()) != prefix) continue;
        const std::string_view rest = s.substr(prefix.size());
        const auto dot = rest.find('.');
        if (dot == std::string_view::npos) return {};
        return std::string(rest.substr(0, dot));
    }
    return {};
}

// Why Appointment is special on eClinicalWorks (DESIGN.md, "EHR realities").
constexpr std::string_view healow_scheduling =
    "On eClinicalWorks/healow, Appointment is not served by the clinical FHIR API at all: it lives in the "
    "separate healow Scheduling API, which has its own base URL and its own registration.";

}  // namespace

std::string_view to_string(severity s) {
    switch (s) {
        case severity::ok:
            return "ok";
        case severity::info:
            return "info";
        case severity::warning:
            return "warning";
        case severity::error:
            return "error";
    }
    return "error";
}

std::string_view to_string(topic t) {
    switch (t) {
        case topic::discovery:
            return "discovery";
        case topic::server:
            return "what the server supports";
        case topic::request:
            return "the authorize request";
        case topic::client:
            return "client authentication";
        case topic::files:
            return "secret and key files";
        case topic::clock:
            return "clock";
        case topic::authorize:
            return "authorize probe";
        case topic::bulk:
            return "bulk export (SMART Backend Services)";
    }
    return "other";
}

std::size_t report::count(severity s) const {
    return static_cast<std::size_t>(
        std::count_if(findings.begin(), findings.end(), [s](const finding& f) { return f.level == s; }));
}

std::vector<std::string> split_scopes(std::string_view scope) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < scope.size()) {
        while (i < scope.size() && scope[i] == ' ') ++i;
        const std::size_t j = std::min(scope.find(' ', i), scope.size());
        if (j > i) out.emplace_back(scope.substr(i, j - i));
        i = j;
    }
    return out;
}

std::vector<std::string> enrollment_scopes(const config::ehr_settings& ehr) {
    // The same list `enroll` sends, from the one function that builds it.
    return split_scopes(smart::enrollment_scope(ehr.scopes));
}

// ---- discovery --------------------------------------------------------------

server_facts interpret_discovery(std::string_view fhir_base, const fetched& well_known,
                                 const fetched* metadata, findings& out) {
    server_facts facts;
    facts.fhir_base = std::string(fhir_base);
    const auto describe = [](const fetched& f) -> std::string {
        if (f.failure) return f.failure->message;
        if (f.response) return "HTTP " + std::to_string(f.response->status);
        return "not fetched";
    };
    std::string well_known_problem;
    if (well_known.response && well_known.response->status == 200) {
        auto conf = smart::parse_configuration(well_known.response->body);
        if (conf) {
            facts.signing_algs = conf->token_endpoint_auth_signing_alg_values_supported;
            facts.smart = std::move(*conf);
            facts.smart_source = well_known.url;
            facts.from_well_known = true;
        } else {
            well_known_problem = conf.err().message;
        }
    } else {
        well_known_problem = describe(well_known);
    }
    if (metadata && metadata->response && metadata->response->status == 200) {
        if (auto cap = fhir::parse_capability_statement(metadata->response->body)) {
            facts.capability = *cap;
            facts.exports = parse_export_operations(metadata->response->body);
        }
        simdjson::dom::parser parser;
        simdjson::dom::element doc;
        std::string_view url;
        if (!parser.parse(metadata->response->body).get(doc) && !doc["implementation"]["url"].get(url))
            facts.implementation_url = std::string(url);
        if (!facts.smart) {
            if (auto conf = smart::parse_capability_oauth_uris(metadata->response->body)) {
                facts.smart = std::move(*conf);
                facts.smart_source = metadata->url;
            }
        }
    }
    if (facts.from_well_known) {
        add(out, severity::ok, topic::discovery, "smart-configuration found at " + well_known.url);
    } else if (facts.smart) {
        add(out, severity::warning, topic::discovery,
            "no usable smart-configuration at " + well_known.url + " (" + well_known_problem +
                "); the CapabilityStatement's oauth-uris were used instead",
            "SMART App Launch 2.x servers publish {fhir_base}/.well-known/smart-configuration; the "
            "oauth-uris fallback names only the endpoints, so the supported scopes, PKCE methods and "
            "client authentication methods cannot be checked.",
            "Check that fhir_base is the practice's own (per-tenant) FHIR base URL.");
    } else {
        const bool reached = (well_known.response.has_value()) || (metadata && metadata->response);
        add(out, severity::error, topic::discovery,
            "no SMART configuration: " + well_known.url + " (" + well_known_problem + ")" +
                (metadata ? "; " + metadata->url + " (" + describe(*metadata) + ")" : std::string()),
            reached ? "The server answered, but with neither a smart-configuration nor a CapabilityStatement "
                      "naming its OAuth endpoints. Discovery is per practice: "
                      "{fhir_base}/.well-known/smart-configuration."
                    : "The server could not be reached, so nothing about the registration can be checked.",
            reached ? "Check fhir_base: it must be the practice's FHIR base URL exactly as the EHR vendor "
                      "gives it (no trailing slash)."
                    : "Check the host name, the network route and, for a private CA, ca_file.");
    }
    if (metadata && !facts.capability) {
        add(out, severity::warning, topic::discovery,
            "no CapabilityStatement at " + metadata->url + " (" + describe(*metadata) + ")",
            "Without it doctor cannot tell which resource types the server serves.");
    }
    return facts;
}

// ---- aud --------------------------------------------------------------------

void check_aud(std::optional<std::string_view> aud, std::string_view fhir_base, findings& out) {
    if (!aud || aud->empty()) {
        add(out, severity::error, topic::request, "aud is missing",
            "SMART App Launch requires aud: the FHIR base the token will be used at, so a token cannot be "
            "phished for another server. Servers refuse a request without it.",
            "Send aud=" + std::string(fhir_base) + ".");
        return;
    }
    if (*aud == fhir_base) {
        add(out, severity::ok, topic::request,
            "aud is exactly the FHIR base (" + std::string(fhir_base) + ")");
        return;
    }
    std::string why = "The server compares aud with its FHIR base character for character.";
    if (*aud == std::string(fhir_base) + "/") {
        add(out, severity::error, topic::request, "aud has a trailing slash: " + std::string(*aud), why,
            "Send aud=" + std::string(fhir_base) + " (no trailing slash).");
        return;
    }
    const bool same_ignoring_case =
        aud->size() == fhir_base.size() &&
        std::equal(aud->begin(), aud->end(), fhir_base.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        });
    add(out, severity::error, topic::request,
        "aud " + std::string(*aud) + " is not the FHIR base " + std::string(fhir_base) +
            (same_ignoring_case ? " (they differ in letter case)" : ""),
        why, "Send aud=" + std::string(fhir_base) + ".");
}

void check_base_against_server(std::string_view fhir_base, const server_facts& facts, findings& out) {
    if (!facts.implementation_url || *facts.implementation_url == fhir_base) return;
    add(out, severity::warning, topic::request,
        "the server names its FHIR base " + *facts.implementation_url + ", but aud will be " +
            std::string(fhir_base),
        "CapabilityStatement.implementation.url is where the server says it lives; SMART servers compare aud "
        "with their base exactly. Some servers report an internal address here, so this is a hint, not "
        "proof.",
        "If the vendor gave " + *facts.implementation_url +
            " as the practice's FHIR base, use it as fhir_base.");
}

// ---- PKCE -------------------------------------------------------------------

void check_pkce_server(const smart::configuration& conf, findings& out) {
    const auto& m = conf.code_challenge_methods_supported;
    if (m.empty()) {
        add(out, severity::warning, topic::server,
            "the server does not declare code_challenge_methods_supported",
            "SMART App Launch 2.x requires it (with S256). HeadacheMD always sends an S256 challenge, which "
            "a server without PKCE ignores; this server may predate SMART 2.");
        return;
    }
    if (!contains(m, "S256")) {
        add(out, severity::error, topic::server,
            "the server does not support PKCE S256 (it lists: " + join(m) + ")",
            "SMART App Launch 2.x requires S256; HeadacheMD sends nothing weaker.",
            "Ask the EHR vendor for SMART App Launch 2.x support.");
        return;
    }
    add(out, severity::ok, topic::server, "PKCE S256 is supported");
    if (contains(m, "plain"))
        add(out, severity::info, topic::server, "the server also accepts PKCE method plain",
            "SMART App Launch 2.x says servers SHALL NOT support plain. HeadacheMD never uses it, so this "
            "does not affect us.");
}

void check_pkce_request(const std::string* challenge, const std::string* method, findings& out) {
    if (!challenge) {
        add(out, severity::error, topic::request, "no PKCE: the request has no code_challenge",
            "SMART App Launch 2.x requires PKCE with S256 for every authorization code request, and "
            "eClinicalWorks enforces it: a request without code_challenge is refused with 403 "
            "invalid_request, without saying why.",
            "Make a random code_verifier (43–128 characters), send "
            "code_challenge=BASE64URL(SHA-256(verifier)) and code_challenge_method=S256, and send the "
            "verifier with the code at the token endpoint (RFC 7636).");
        return;
    }
    if (!method) {
        add(out, severity::error, topic::request, "code_challenge_method is missing",
            "Without it the method defaults to plain (RFC 7636 §4.3), which SMART App Launch 2.x servers "
            "SHALL NOT accept.",
            "Send code_challenge_method=S256.");
        return;
    }
    if (*method != "S256") {
        add(out, severity::error, topic::request, "code_challenge_method is " + *method + ", not S256",
            "SMART App Launch 2.x allows only S256; plain exposes the verifier to anyone who sees the "
            "authorize URL.",
            "Send code_challenge=BASE64URL(SHA-256(verifier)) with code_challenge_method=S256.");
        return;
    }
    const bool well_formed =
        challenge->size() == 43 && std::all_of(challenge->begin(), challenge->end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
        });
    if (!well_formed) {
        add(out, severity::error, topic::request, "code_challenge is not a 43-character base64url S256 value",
            "An S256 challenge is the unpadded base64url of a SHA-256 digest: exactly 43 characters of "
            "A–Z a–z 0–9 - _ (RFC 7636 §4.2).",
            "Encode the digest with base64url and no '=' padding.");
        return;
    }
    add(out, severity::ok, topic::request, "PKCE S256 challenge present");
}

// ---- scopes -----------------------------------------------------------------

void check_scopes(const std::vector<std::string>& requested, const smart::configuration& conf,
                  const fhir::capabilities* capability, server_kind kind, findings& out) {
    if (requested.empty()) {
        add(out, severity::error, topic::request, "no scope requested", "Without scopes no data can be read.",
            "Request launch/patient, offline_access and "
            "patient/<Type>.read for each resource type.");
        return;
    }
    if (!contains(requested, "launch/patient"))
        add(out, severity::warning, topic::request, "launch/patient is not requested",
            "In a standalone launch it asks the server for a patient context; without it the token "
            "response does not name the patient.",
            "Add launch/patient to the scope.");
    if (!contains(requested, "fhirUser") && contains(requested, "openid"))
        add(out, severity::info, topic::request, "openid is requested without fhirUser",
            "The id_token names the FHIR user (the patient) only when fhirUser is requested; it is the "
            "fallback when the token response carries no patient field.");
    if (contains(requested, "profile"))
        add(out, severity::info, topic::request, "the OpenID Connect scope profile is requested",
            "It asks for the user's name and other profile claims. SMART App Launch identifies the user "
            "with fhirUser; HeadacheMD needs no name and stores none ([privacy] identifiers).",
            "Request fhirUser instead of profile.");
    const auto& supported = conf.scopes_supported;
    if (supported.empty()) {
        add(out, severity::warning, topic::server, "the server does not publish scopes_supported",
            "The requested scopes cannot be checked before the authorize request.");
        return;
    }
    std::size_t offered = 0;
    for (const auto& s : requested) {
        if (contains(supported, s)) {
            ++offered;
            continue;
        }
        const std::string type = scope_resource_type(s);
        const bool not_served = !type.empty() && type != "*" && capability && !capability->serves(type);
        std::string why;
        std::string fix = "Remove " + s + " from the requested scopes.";
        if (not_served)
            why = "The server's CapabilityStatement does not list " + type +
                  " at all, so no scope can grant it.";
        else
            why = "It is not in the server's scopes_supported.";
        if (type == "Appointment") {
            why += std::string(" ") + std::string(healow_scheduling);
            fix += " Appointment data needs a separate healow Scheduling API registration.";
        }
        severity level = severity::warning;
        if (not_served || kind.eclinicalworks) {
            level = severity::error;
            why +=
                " eClinicalWorks refuses a request with a scope it does not offer with HTTP 403 "
                "invalid_request at /authorize, naming no parameter.";
        } else {
            why +=
                " SMART allows scopes_supported to be incomplete, so the server may still accept it; if the "
                "authorize request fails with invalid_scope, this is why.";
        }
        add(out, level, topic::request, "scope " + s + " is not offered by the server", why, fix);
    }
    if (offered > 0)
        add(out, severity::ok, topic::request,
            std::to_string(offered) + " of " + std::to_string(requested.size()) +
                " requested scopes are offered by the server");
}

void check_offline(const std::vector<std::string>& requested, const smart::configuration& conf,
                   findings& out) {
    if (!contains(requested, "offline_access")) {
        add(out, severity::error, topic::request, "offline_access is not requested",
            "Without it the server issues no refresh token, and the daemon can sync only until the first "
            "access token expires (often one hour).",
            "Add offline_access to the scope.");
    } else {
        add(out, severity::ok, topic::request, "offline_access is requested (refresh tokens)");
    }
    if (contains(requested, "online_access"))
        add(out, severity::warning, topic::request, "online_access is requested",
            "An online refresh token stops working when the user logs out of the EHR; the daemon needs "
            "offline_access.",
            "Remove online_access.");
    if (conf.capabilities.empty()) {
        add(out, severity::warning, topic::server, "the server publishes no SMART capabilities",
            "SMART App Launch requires the capabilities array; without it refresh-token support "
            "(permission-offline) cannot be checked.");
    } else if (!contains(conf.capabilities, "permission-offline")) {
        add(out, severity::error, topic::server, "the server lacks the permission-offline capability",
            "permission-offline means it issues refresh tokens for offline_access. Without refresh tokens "
            "the daemon cannot keep syncing.",
            "Ask the EHR vendor whether refresh tokens are available for this app type (often only to "
            "confidential clients).");
    } else {
        add(out, severity::ok, topic::server, "the server issues refresh tokens (permission-offline)");
    }
}

// ---- client authentication --------------------------------------------------

void check_client_auth(config::client_auth_method method, const smart::configuration& conf, server_kind kind,
                       findings& out) {
    const std::string name(config::to_string(method));
    if (method == config::client_auth_method::none) {
        add(out, kind.eclinicalworks ? severity::error : severity::warning, topic::client,
            "the client is public (client_auth = \"none\")",
            kind.eclinicalworks ? "eClinicalWorks issues refresh tokens to confidential clients only, so a "
                                  "public client cannot keep syncing."
                                : "Many servers issue refresh tokens only to confidential clients.",
            "Register HeadacheMD as a confidential client and set client_auth to client_secret_basic or "
            "private_key_jwt.");
        return;
    }
    const auto& methods = conf.token_endpoint_auth_methods_supported;
    if (methods.empty()) {
        // RFC 8414 §2: an omitted token_endpoint_auth_methods_supported means client_secret_basic.
        if (method == config::client_auth_method::client_secret_basic)
            add(out, severity::ok, topic::client,
                "client_secret_basic (the server lists no methods; RFC 8414's default is "
                "client_secret_basic)");
        else
            add(out, severity::warning, topic::client,
                "the server does not list token_endpoint_auth_methods_supported; " + name +
                    " cannot be checked",
                "RFC 8414 takes an omitted list to mean client_secret_basic only.");
    } else if (!contains(methods, name)) {
        add(out, severity::error, topic::client, name + " is not accepted by the token endpoint",
            "The server lists: " + join(methods) + ". The token request would fail with invalid_client.",
            "Set client_auth to one of the listed methods that matches the registration.");
        return;
    } else {
        add(out, severity::ok, topic::client, name + " is accepted by the token endpoint");
    }
    if (conf.capabilities.empty()) return;
    const bool asymmetric = method == config::client_auth_method::private_key_jwt;
    const char* capability = asymmetric ? "client-confidential-asymmetric" : "client-confidential-symmetric";
    if (!contains(conf.capabilities, capability))
        add(out, severity::warning, topic::client,
            std::string("the server lacks the ") + capability + " capability",
            std::string("SMART servers declare ") + capability + " when they support " +
                (asymmetric ? "private_key_jwt" : "a client secret") + " for confidential clients.");
    if (asymmetric && kind.eclinicalworks)
        add(out, severity::info, topic::client, "eClinicalWorks accepts RS384 client assertions only",
            "Register an RSA key (keygen --jwks), not an EC key.");
}

// ---- redirect URI -----------------------------------------------------------

void check_redirect_uri(std::optional<std::string_view> redirect_uri, findings& out) {
    if (!redirect_uri || redirect_uri->empty()) {
        add(out, severity::error, topic::request, "redirect_uri is missing",
            "The server needs it to send the person back; it must match the registered one exactly.",
            "Send the redirect URI registered with the EHR.");
        return;
    }
    const std::string uri(*redirect_uri);
    auto parsed = boost::urls::parse_absolute_uri(uri);
    if (!parsed) {
        add(out, severity::error, topic::request, "redirect_uri is not an absolute URI: " + uri,
            "RFC 6749 §3.1.2 requires an absolute URI.",
            "Use the full https:// URL registered with the EHR.");
        return;
    }
    if (parsed->has_fragment()) {
        add(out, severity::error, topic::request, "redirect_uri has a fragment (#…)",
            "RFC 6749 §3.1.2 forbids a fragment in a redirect URI.", "Remove the fragment.");
        return;
    }
    const std::string scheme(parsed->scheme());
    const std::string host(parsed->host_address());
    if (scheme == "https") {
        add(out, severity::ok, topic::request, "redirect_uri is https (" + uri + ")");
    } else if (scheme == "http" && http::is_loopback_host(host)) {
        add(out, severity::ok, topic::request, "redirect_uri is http on loopback (" + uri + ")",
            "Allowed for a listener on this machine (RFC 8252 §7.3).");
    } else {
        add(out, severity::error, topic::request, "redirect_uri is not https: " + uri,
            "The authorization code travels in it; OAuth 2.0 Security BCP and SMART require TLS except "
            "for a loopback listener, and EHRs refuse to register anything else.",
            "Register and use an https:// redirect URI (the clinic's reverse proxy), or http://127.0.0.1.");
    }
}

// ---- state ------------------------------------------------------------------

void check_state(const std::string* state, findings& out) {
    if (!state || state->empty()) {
        add(out, severity::error, topic::request, "state is missing",
            "SMART App Launch requires state; it ties the callback to this request and stops a forged "
            "callback (CSRF).",
            "Send a fresh random state (32 random bytes, base64url) and check it on the callback.");
        return;
    }
    // One sample cannot show entropy; its alphabet and length bound it from
    // above. Below 122 bits even that bound fails SMART's requirement.
    const auto all = [&](auto pred) { return std::all_of(state->begin(), state->end(), pred); };
    double bits_per_char = 6.0;  // base64url
    std::size_t counted = state->size();
    if (all([](char c) { return c >= '0' && c <= '9'; })) {
        bits_per_char = std::log2(10.0);
    } else if (all([](char c) { return std::isxdigit(static_cast<unsigned char>(c)) || c == '-'; })) {
        bits_per_char = 4.0;  // hex, or a UUID: its hyphens carry nothing
        counted = static_cast<std::size_t>(std::count_if(state->begin(), state->end(), [](char c) {
            return std::isxdigit(static_cast<unsigned char>(c));
        }));
    }
    const int bits = static_cast<int>(bits_per_char * static_cast<double>(counted));
    if (bits < 122) {
        add(out, severity::error, topic::request,
            "state is too short: " + std::to_string(state->size()) + " characters carry at most " +
                std::to_string(bits) + " bits",
            "SMART App Launch 2.x: state SHALL have at least 122 bits of entropy, so that it cannot be "
            "guessed (a forged callback could otherwise be accepted). Servers do not check this.",
            "Use 32 random bytes as base64url (43 characters), or a random UUID.");
        out.back().server_visible = false;
        return;
    }
    add(out, severity::ok, topic::request, "state is present and long enough");
}

// ---- other parameters -------------------------------------------------------

void check_parameters(const params& p, findings& out) {
    static const std::set<std::string, std::less<>> smart_oauth = {
        "response_type", "client_id",      "redirect_uri",          "scope", "state",
        "aud",           "code_challenge", "code_challenge_method", "launch"};
    static const std::set<std::string, std::less<>> oidc = {
        "nonce",         "prompt",  "max_age",     "login_hint",     "id_token_hint",
        "ui_locales",    "display", "claims",      "claims_locales", "acr_values",
        "response_mode", "request", "request_uri", "registration"};
    std::set<std::string> seen, duplicates;
    for (const auto& [k, v] : p)
        if (!seen.insert(k).second) duplicates.insert(k);
    for (const auto& k : duplicates)
        add(out, severity::error, topic::request, "parameter " + k + " appears more than once",
            "RFC 6749 §3.1: request parameters MUST NOT be included more than once; servers reject it.",
            "Send " + k + " once.");
    const auto get = [&](std::string_view name) -> const std::string* {
        for (const auto& [k, v] : p)
            if (k == name) return &v;
        return nullptr;
    };
    const std::string* response_type = get("response_type");
    if (!response_type)
        add(out, severity::error, topic::request, "response_type is missing", "SMART uses the code flow.",
            "Send response_type=code.");
    else if (*response_type != "code")
        add(out, severity::error, topic::request, "response_type is " + *response_type + ", not code",
            "SMART App Launch uses the authorization code flow only.", "Send response_type=code.");
    if (!get("client_id"))
        add(out, severity::error, topic::request, "client_id is missing", {},
            "Send the registered client_id.");
    if (!get("scope"))
        add(out, severity::error, topic::request, "scope is missing", {}, "Send the scopes the app needs.");
    const std::string* scope = get("scope");
    const bool openid = scope && contains(split_scopes(*scope), "openid");
    for (const auto& k : seen) {
        if (smart_oauth.count(k)) {
            if (k == "launch")
                add(out, severity::info, topic::request, "launch is sent (an EHR launch)",
                    "The daemon enrolls by standalone launch; a launch token from the EHR is single-use.");
            continue;
        }
        if (k == "nonce") {
            if (openid)
                add(out, severity::info, topic::request,
                    "nonce is an OpenID Connect parameter, not a SMART one",
                    "With the openid scope it is legitimate (OpenID Connect Core §3.1.2.1): it binds the "
                    "id_token to this request, and the id_token's nonce claim must then be checked. SMART "
                    "does not define it and does not need it (PKCE and state already protect the flow); it "
                    "is an unlikely cause of a rejection.");
            else
                add(out, severity::warning, topic::request, "nonce is sent without the openid scope",
                    "nonce only has a meaning for an OpenID Connect id_token; without openid no id_token is "
                    "issued, and a strict server may reject a parameter it does not expect.",
                    "Drop nonce, or request openid fhirUser and check the id_token's nonce.");
            continue;
        }
        if (oidc.count(k)) {
            add(out, severity::info, topic::request,
                k + " is an OpenID Connect parameter, not defined by SMART",
                "Servers that implement OpenID Connect accept it; others should ignore it.");
            continue;
        }
        if (k == "resource") {
            add(out, severity::info, topic::request, "resource (RFC 8707) is sent",
                "SMART uses aud for the same purpose; most SMART servers ignore resource.");
            continue;
        }
        add(out, severity::warning, topic::request, "parameter " + k + " is not defined by SMART or OAuth",
            "RFC 6749 §3.1 tells servers to ignore unknown parameters, but a strict server may refuse the "
            "request.",
            "Remove " + k + " unless the EHR vendor documents it.");
    }
}

// ---- resource types ---------------------------------------------------------

void check_resources(const std::vector<config::resource_setting>& resources,
                     const fhir::capabilities& capability,
                     server_kind /*kind: every unserved type fails, whoever the vendor*/, findings& out) {
    std::vector<std::string> missing;
    for (const auto& r : resources)
        if (!capability.serves(r.type)) missing.push_back(r.type);
    for (const auto& type : missing) {
        std::string why =
            "The server's CapabilityStatement does not list " + type + "; every search for it fails.";
        if (type == "Appointment") why += " " + std::string(healow_scheduling);
        add(out, severity::error, topic::server,
            type + " is in [[ehr]] resources but the server does not serve it", why,
            "Remove " + type + " from resources (and its scope).");
    }
    if (missing.empty() && !resources.empty())
        add(out, severity::ok, topic::server, "every configured resource type is served");
}

// ---- files ------------------------------------------------------------------

file_facts inspect_file(const std::filesystem::path& path) {
    file_facts f;
    f.path = path;
    f.process_uid = static_cast<unsigned>(::geteuid());
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return f;
    f.exists = true;
    f.regular = S_ISREG(st.st_mode);
    f.file_type = static_cast<unsigned>(st.st_mode & S_IFMT);
    f.mode = static_cast<unsigned>(st.st_mode & 07777);
    f.owner = static_cast<unsigned>(st.st_uid);
    f.size = st.st_size > 0 ? static_cast<std::uintmax_t>(st.st_size) : 0;
    f.empty = st.st_size == 0;
    // A trial open, not access(): it answers for our effective ids, as the
    // daemon's own open would. Nothing is read. Regular files only: opening
    // a FIFO would wait for a writer.
    if (f.regular) {
        std::ifstream in(path, std::ios::binary);
        f.readable = in.is_open();
    }
    return f;
}

namespace {

// Existence, type and readability, common to every file doctor looks at.
bool check_present(const file_facts& f, const std::string& name, findings& out) {
    if (!f.exists) {
        add(out, severity::error, topic::files, name + " does not exist", {},
            "Create it, or correct the path in the config.");
        return false;
    }
    if (!f.regular) {
        add(out, severity::error, topic::files,
            name + " is " + std::string(files::file_type_name(f.file_type)) + ", not a regular file", {},
            "Point the config at a regular file.");
        return false;
    }
    if (!f.readable) {
        add(out, severity::error, topic::files, name + " cannot be read by this user",
            "doctor runs as the current user; the daemon must be able to read it as its own user.",
            "Run doctor as the daemon's user (sudo -u headachemd …) or fix the owner.");
        return false;
    }
    return true;
}

std::string mode_text(unsigned mode) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", mode);
    return buf;
}

}  // namespace

void check_file(const file_facts& f, std::string_view role, bool secret, findings& out) {
    const std::string name = std::string(role) + " " + f.path.string();
    if (!check_present(f, name, out)) return;
    const std::string mode = mode_text(f.mode);
    if (secret && f.empty) {
        add(out, severity::error, topic::files, name + " is empty", {}, "Write the secret into it.");
        return;
    }
    if (secret && f.size > files::max_secret_bytes) {
        add(out, severity::error, topic::files,
            name + " is larger than " + std::to_string(files::max_secret_bytes) + " bytes", {},
            "Point the config at the right file.");
        return;
    }
    if (secret) {
        // The same rule the daemon applies when it reads the file (lib/files).
        if (auto p =
                files::mode_problem(files::file_kind::secret, f.mode, f.owner, f.process_uid, role, f.path)) {
            add(out, severity::error, topic::files, p->what,
                "Anyone who can read or replace it can act as HeadacheMD at the EHR (or read the token "
                "vault); "
                "the daemon refuses it.",
                p->fix + " (owner: root or the daemon's user).");
            return;
        }
    }
    add(out, severity::ok, topic::files, name + " is readable" + (secret ? ", mode " + mode : std::string()));
}

void check_config_file(const file_facts& f, findings& out) {
    const std::string name = "config file " + f.path.string();
    if (!check_present(f, name, out)) return;
    if (auto p = files::mode_problem(files::file_kind::config, f.mode, f.owner, f.process_uid, "config file",
                                     f.path)) {
        add(out, severity::error, topic::files, p->what,
            "Whoever can write the config can point token_endpoint at their own server and collect the "
            "client secret and refresh tokens; the daemon refuses it.",
            p->fix + ".");
        return;
    }
    add(out, severity::ok, topic::files, name + " is protected, mode " + mode_text(f.mode));
}

// ---- clock ------------------------------------------------------------------

std::optional<std::chrono::system_clock::time_point> parse_imf_fixdate(std::string_view v) {
    // "Sun, 06 Nov 1994 08:49:37 GMT": 29 characters.
    if (v.size() != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' || v[16] != ' ' ||
        v[19] != ':' || v[22] != ':' || v.substr(25) != " GMT")
        return std::nullopt;
    const auto num = [&](std::size_t pos, std::size_t len) -> int {
        int n = 0;
        for (std::size_t i = pos; i < pos + len; ++i) {
            if (v[i] < '0' || v[i] > '9') return -1;
            n = n * 10 + (v[i] - '0');
        }
        return n;
    };
    static constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    unsigned month = 0;
    for (unsigned i = 0; i < 12; ++i)
        if (v.substr(8, 3) == months[i]) month = i + 1;
    const int day = num(5, 2), year = num(12, 4), hh = num(17, 2), mm = num(20, 2), ss = num(23, 2);
    if (month == 0 || day < 1 || year < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
        return std::nullopt;
    const std::chrono::year_month_day ymd{std::chrono::year{year}, std::chrono::month{month},
                                          std::chrono::day{static_cast<unsigned>(day)}};
    if (!ymd.ok()) return std::nullopt;
    return std::chrono::sys_days{ymd} + std::chrono::hours{hh} + std::chrono::minutes{mm} +
           std::chrono::seconds{ss};
}

void check_clock(std::optional<std::string_view> date_header, std::chrono::system_clock::time_point local,
                 findings& out) {
    if (!date_header) {
        add(out, severity::warning, topic::clock, "the server sent no Date header; clock skew not checked",
            "RFC 9110 §6.6.1: a server with a clock must send Date.");
        return;
    }
    const auto server = parse_imf_fixdate(*date_header);
    if (!server) {
        add(out, severity::warning, topic::clock,
            "the server's Date header is not an HTTP date; skew not checked");
        return;
    }
    const auto skew = std::chrono::duration_cast<std::chrono::seconds>(*server - local);
    const long long s = skew.count();
    const long long a = s < 0 ? -s : s;
    const std::string what = a <= 1 ? std::string("this machine's clock agrees with the server's")
                                    : "this machine's clock is " + std::to_string(a) + " s " +
                                          (s > 0 ? "behind" : "ahead of") + " the server's";
    if (a <= 60) {
        add(out, severity::ok, topic::clock, what);
        return;
    }
    const std::string why =
        "Token expiry is computed from our clock, and a private_key_jwt client assertion is valid for at "
        "most 5 minutes from its iat: beyond that the server rejects it as expired or not yet valid.";
    add(out, a > 300 ? severity::error : severity::warning, topic::clock, what, why,
        "Synchronize the clock (systemd-timesyncd or chrony: timedatectl set-ntp true).");
}

// ---- the authorize answer ---------------------------------------------------

namespace {

// The query parameters of a URL (decoded), or empty.
params query_of(std::string_view url) {
    params out;
    auto u = boost::urls::parse_uri_reference(url);
    if (!u) return out;
    for (const auto& p : u->params()) out.emplace_back(p.key, p.value);
    return out;
}

const std::string* find(const params& p, std::string_view name) {
    for (const auto& [k, v] : p)
        if (k == name) return &v;
    return nullptr;
}

// scheme://host/path of a URL, without query or fragment: never a code.
std::string without_query(std::string_view url) {
    const auto cut = url.find_first_of("?#");
    return std::string(url.substr(0, cut));
}

// A printable excerpt of an error body: a short JSON object as is, an HTML
// page by its title; never more than 300 characters.
std::string body_excerpt(std::string_view body) {
    std::string_view b = body;
    while (!b.empty() && std::isspace(static_cast<unsigned char>(b.front()))) b.remove_prefix(1);
    std::string out;
    if (!b.empty() && b.front() == '{') {
        out = std::string(b.substr(0, 300));
    } else {
        const auto t = b.find("<title>");
        const auto e = b.find("</title>");
        if (t != std::string_view::npos && e != std::string_view::npos && e > t)
            out =
                "page titled \"" + std::string(b.substr(t + 7, std::min<std::size_t>(e - t - 7, 200))) + "\"";
    }
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    return out;
}

std::string explain_oauth_error(std::string_view error) {
    switch (error_code::oauth(error).value()) {
        case errc::invalid_scope:
            return "A requested scope is unknown to the server or not allowed for this app.";
        case errc::invalid_request:
            return "A parameter is missing, repeated or malformed (PKCE, aud, state, redirect_uri …).";
        case errc::unauthorized_client:
            return "This client may not use the authorization code flow (check the app type at the EHR).";
        case errc::access_denied:
            return "The user or the server's policy refused the request.";
        case errc::unsupported_response_type:
            return "The server does not accept response_type=code for this app.";
        case errc::server_error:
        case errc::temporarily_unavailable:
            return "The server failed; try again later.";
        default:
            return "The server refused the request.";
    }
}

}  // namespace

void interpret_authorize(const http::response& r, std::string_view redirect_uri, const findings& earlier,
                         server_kind kind, findings& out) {
    const auto location = r.header("Location");
    if (r.status >= 300 && r.status < 400 && location) {
        const std::string loc(*location);
        const bool to_client = !redirect_uri.empty() && loc.substr(0, redirect_uri.size()) == redirect_uri &&
                               (loc.size() == redirect_uri.size() || loc[redirect_uri.size()] == '?' ||
                                loc[redirect_uri.size()] == '&' || loc[redirect_uri.size()] == '#');
        if (!to_client) {
            add(out, severity::ok, topic::authorize,
                "accepted: HTTP " + std::to_string(r.status) + " to " + without_query(loc) +
                    " (the server's login page)",
                "The server checked client_id, redirect_uri, scope and PKCE and now asks the person to log "
                "in.");
            return;
        }
        const params q = query_of(loc);
        if (const std::string* err = find(q, "error")) {
            const std::string* desc = find(q, "error_description");
            add(out, severity::error, topic::authorize,
                "refused: redirected back with error=" + *err + (desc ? " (" + *desc + ")" : ""),
                explain_oauth_error(*err) +
                    " A redirect back to the client means client_id and redirect_uri were accepted.",
                "Fix the parameter named above and try again.");
            return;
        }
        if (find(q, "code")) {
            add(out, severity::ok, topic::authorize,
                "accepted: redirected straight back with an authorization code",
                "No login page was shown (a test server, or an existing session). The code was not used; it "
                "expires on its own.");
            return;
        }
        add(out, severity::warning, topic::authorize, "redirected back with neither a code nor an error");
        return;
    }
    if (r.status == 200) {
        add(out, severity::ok, topic::authorize, "accepted: the server answered with a page (HTTP 200)",
            "Usually its login or consent page. If a browser shows an error there instead, the page names "
            "it.");
        return;
    }
    if (r.status == 429) {
        add(out, severity::warning, topic::authorize, "rate limited at /authorize (HTTP 429)",
            "eClinicalWorks allows 250 calls a minute per practice, /authorize and /token included.",
            "Wait for the next minute and run doctor again.");
        return;
    }
    if (r.status >= 500) {
        add(out, severity::error, topic::authorize,
            "the authorize endpoint failed with HTTP " + std::to_string(r.status),
            "A server problem, not a registration problem.",
            "Try again later; if it persists, ask the EHR vendor.");
        return;
    }
    if (r.status >= 400) {
        std::vector<std::string> causes;
        for (const auto& f : earlier)
            if (f.level == severity::error && f.server_visible &&
                (f.area == topic::request || f.area == topic::server))
                causes.push_back(f.what + " (found above)");
        const bool found_some = !causes.empty();
        causes.push_back(
            "client_id is unknown to this server, or the app is not activated for this practice: registering "
            "at the vendor's developer portal is not enough, the practice's administrator must enable the "
            "app");
        causes.push_back(
            "redirect_uri is not registered exactly as sent (scheme, host, port, path and trailing slash all "
            "count)");
        if (!found_some && (kind.eclinicalworks || r.status == 403))
            causes.push_back(
                "a scope the server accepts for other apps but not for this registration (ask which scopes "
                "the registration was approved for)");
        std::string why =
            "The server rejected the request without redirecting back. RFC 6749 §4.1.2.1 does that when "
            "client_id or redirect_uri is not trusted; eClinicalWorks answers every problem this way (403 "
            "invalid_request) and names none. Likely causes, most likely first:";
        for (std::size_t i = 0; i < causes.size(); ++i)
            why += "\n  " + std::to_string(i + 1) + ". " + causes[i];
        const std::string excerpt = body_excerpt(r.body);
        add(out, severity::error, topic::authorize,
            "rejected at /authorize: HTTP " + std::to_string(r.status) + " without a redirect" +
                (excerpt.empty() ? "" : ": " + excerpt),
            why,
            "Fix the causes found above first. Then compare client_id and redirect_uri with the registration "
            "character for character, and ask the practice to confirm the app is activated.");
        return;
    }
    add(out, severity::warning, topic::authorize,
        "unexpected answer at /authorize: HTTP " + std::to_string(r.status));
}

// ---- bulk export registration -------------------------------------------------

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// An operation that kicks off an export: R4 names it without the '$'
// ("export"); a few servers write "$export".
bool is_export(std::string_view name) { return name == "export" || name == "$export"; }

// The operations of one operation[] array, with the resource type they are
// declared on ("" for rest.operation).
void read_operations(simdjson::dom::element holder, std::string_view type, export_operations& ops) {
    simdjson::dom::array list;
    if (holder["operation"].get_array().get(list)) return;
    for (auto op : list) {
        std::string_view name, definition;
        if (op["name"].get_string().get(name) || !is_export(name)) continue;
        if (op["definition"].get_string().get(definition)) definition = {};
        const std::string def = lower(definition);
        // On a resource the type says which kick-off it is. On rest itself
        // the definition does (the IG's group-export, patient-export, or
        // export for the system level).
        if (type == "Group" || (type.empty() && def.find("group") != std::string::npos))
            ops.group = true;
        else if (type == "Patient" || (type.empty() && def.find("patient") != std::string::npos))
            ops.patient = true;
        else if (type.empty())
            ops.system = true;
    }
}

std::string kickoff_path(const config::bulk_settings& bulk) {
    switch (bulk.level) {
        case config::bulk_level::group:
            return "Group/" + (bulk.group_id.empty() ? std::string("[id]") : bulk.group_id) + "/$export";
        case config::bulk_level::patient:
            return "Patient/$export";
        case config::bulk_level::system:
            return "$export";
    }
    return "$export";
}

}  // namespace

std::optional<export_operations> parse_export_operations(std::string_view json) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::string_view type;
    if (parser.parse(json).get(doc) || doc["resourceType"].get_string().get(type) ||
        type != "CapabilityStatement")
        return std::nullopt;
    export_operations ops;
    simdjson::dom::array rest;
    if (doc["rest"].get_array().get(rest)) return ops;
    for (auto r : rest) {
        read_operations(r, {}, ops);
        simdjson::dom::array resources;
        if (r["resource"].get_array().get(resources)) continue;
        for (auto res : resources) {
            std::string_view rtype;
            if (!res["type"].get_string().get(rtype)) read_operations(res, rtype, ops);
        }
    }
    return ops;
}

namespace {

// The members that make a JWK's key what it is (RFC 7518 §6.2.1, §6.3.1);
// kid, alg, use and key_ops may differ in spelling or order.
std::optional<std::vector<std::string>> key_material(simdjson::dom::element jwk) {
    std::string_view kty;
    if (jwk["kty"].get_string().get(kty)) return std::nullopt;
    std::vector<const char*> names;
    if (kty == "RSA")
        names = {"n", "e"};
    else if (kty == "EC")
        names = {"crv", "x", "y"};
    else
        return std::nullopt;
    std::vector<std::string> out{std::string(kty)};
    for (const char* n : names) {
        std::string_view v;
        if (jwk[n].get_string().get(v)) return std::nullopt;
        out.emplace_back(v);
    }
    return out;
}

// A member that only a private JWK has (RFC 7518 §6.2.2, §6.3.2).
bool has_private_member(simdjson::dom::object jwk) {
    for (const char* n : {"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
        if (jwk[n].error() != simdjson::NO_SUCH_FIELD) return true;
    return false;
}

}  // namespace

void interpret_published_jwks(std::string_view url, const http::response& r,
                              const std::vector<expected_jwk>& keys, findings& out) {
    const std::string where = "the JWKS at " + std::string(url);
    const std::string why_all =
        "The EHR verifies every backend token request with the public key it fetches from the registered "
        "JWKS URL; without it every export fails at its token request.";
    const std::string proxy_fix =
        "Check the reverse proxy's rule that forwards /.well-known/jwks.json to the daemon's metrics_listen, "
        "and that the daemon runs with [ehr.bulk] (docs/admin/configuration.md, \"The JWKS URL\").";
    if (r.status != 200) {
        add(out, severity::error, topic::bulk, where + " answered HTTP " + std::to_string(r.status), why_all,
            proxy_fix);
        return;
    }
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    simdjson::dom::array listed;
    if (parser.parse(r.body).get(doc) || doc["keys"].get_array().get(listed)) {
        add(out, severity::error, topic::bulk, where + " is not a JWK Set (a JSON object with a keys array)",
            why_all, proxy_fix + " The URL must answer the JSON itself, not a login or error page.");
        return;
    }
    for (auto k : listed) {
        simdjson::dom::object o;
        if (!k.get_object().get(o) && has_private_member(o)) {
            add(out, severity::error, topic::bulk, where + " publishes a private key member",
                "A JWK with \"d\" (or the RSA CRT members) is the private key itself: anyone who read the "
                "page can sign as this backend app and export the whole clinic.",
                "Take the page down now, make a new key pair (`headachemd-sync keygen --jwks`), register it, "
                "and publish only what the daemon serves at /.well-known/jwks.json (public members only).");
            return;
        }
    }
    for (const auto& want : keys) {
        simdjson::dom::parser local;
        simdjson::dom::element mine;
        std::optional<std::vector<std::string>> wanted;
        if (!local.parse(want.public_jwk).get(mine)) wanted = key_material(mine);
        bool listed_kid = false, same = false;
        for (auto k : listed) {
            std::string_view kid;
            if (k["kid"].get_string().get(kid) || kid != want.kid) continue;
            listed_kid = true;
            if (wanted && key_material(k) == wanted) same = true;
        }
        const std::string name = want.config_key + " " + want.kid;
        const bool current = want.config_key == "key_id";
        if (same) {
            add(out, severity::ok, topic::bulk, where + " publishes " + name + " with the key of its file");
        } else if (listed_kid) {
            add(out, severity::error, topic::bulk, where + " lists " + name + " with another public key",
                current ? "The EHR checks each assertion with the published key: one signed with the key "
                          "file's key fails."
                        : "When this key starts to sign, the EHR will check it against the published key "
                          "and refuse it.",
                "The key file and the published set differ (a regenerated key, or a stale copy behind "
                "the proxy). Publish what the daemon serves at /.well-known/jwks.json, or point the "
                "config at the key that was registered.");
        } else {
            add(out, current ? severity::error : severity::warning, topic::bulk,
                where + " does not list " + name,
                current ? why_all
                        : "During a rotation the next key must be published before it signs, so that the EHR "
                          "has fetched it by then.",
                proxy_fix);
        }
    }
}

void check_bulk_algorithm(config::bulk_algorithm alg, const server_facts& facts, findings& out) {
    const std::string name(config::to_string(alg));
    if (!facts.signing_algs) {
        add(out, severity::warning, topic::bulk,
            "whether the server accepts " + name +
                " client assertions is unknown: its smart-configuration has no "
                "token_endpoint_auth_signing_alg_values_supported",
            "SMART App Launch 2.x servers that accept private_key_jwt list the JWS algorithms they verify "
            "there. Without the list the algorithm is unchecked, not wrong; the backend token request below "
            "shows whether the server accepts it.");
        return;
    }
    if (!contains(*facts.signing_algs, name)) {
        add(out, severity::error, topic::bulk,
            "the server does not accept " + name + " client assertions (it lists: " +
                (facts.signing_algs->empty() ? std::string("none") : join(*facts.signing_algs)) + ")",
            "token_endpoint_auth_signing_alg_values_supported names the algorithms the token endpoint "
            "verifies a client assertion with; every bulk token request signed with " +
                name + " would fail with invalid_client. eClinicalWorks verifies RS384 only.",
            "Make a key for a listed algorithm (`headachemd-sync keygen --jwks --alg RS384` for RS384), "
            "register its JWKS with the backend app at the EHR, and set algorithm, private_key_file and "
            "key_id in [ehr.bulk] to match.");
        return;
    }
    add(out, severity::ok, topic::bulk, "the server accepts " + name + " client assertions");
}

void check_bulk_key_algorithm(config::bulk_algorithm configured, smart::jws_alg key, findings& out) {
    const std::string want(config::to_string(configured));
    const std::string have(smart::to_string(key));
    if (want == have) return;
    add(out, severity::error, topic::bulk,
        "[ehr.bulk] algorithm is " + want + ", but the private key signs " + have,
        "The assertion is signed with the key's own algorithm (an RSA key signs RS384, an EC P-384 key "
        "ES384), so the EHR would not get the algorithm the registration says.",
        "Set algorithm = \"" + have +
            "\", or point private_key_file at a key made with `headachemd-sync "
            "keygen --jwks --alg " +
            want + "` (and register its JWKS).");
}

void check_bulk_export(const config::bulk_settings& bulk, const std::optional<export_operations>& ops,
                       findings& out) {
    const std::string kickoff = kickoff_path(bulk);
    if (!ops) {
        add(out, severity::warning, topic::bulk,
            "no CapabilityStatement, so whether the server offers " + kickoff + " is unknown");
        return;
    }
    bool offered = false;
    std::string where, definition;
    switch (bulk.level) {
        case config::bulk_level::group:
            offered = ops->group;
            where = "on the Group resource";
            definition = "group-export";
            break;
        case config::bulk_level::patient:
            offered = ops->patient;
            where = "on the Patient resource";
            definition = "patient-export";
            break;
        case config::bulk_level::system:
            offered = ops->system;
            where = "on rest itself";
            definition = "export";
            break;
    }
    if (offered) {
        add(out, severity::ok, topic::bulk, "the CapabilityStatement offers " + kickoff);
        return;
    }
    std::vector<std::string> others;
    if (ops->group && bulk.level != config::bulk_level::group) others.emplace_back("level = \"group\"");
    if (ops->patient && bulk.level != config::bulk_level::patient) others.emplace_back("level = \"patient\"");
    if (ops->system && bulk.level != config::bulk_level::system) others.emplace_back("level = \"system\"");
    std::string fix =
        "Ask the EHR vendor to enable Bulk Data export for this practice and the backend app, and check that "
        "fhir_base is the practice's own FHIR base.";
    if (!others.empty())
        fix += " The server does offer " + join(others, " and ") + " in [ehr.bulk]" +
               (bulk.group_only ? ", but this EHR exports a Group only." : ".");
    add(out, severity::error, topic::bulk, "the CapabilityStatement does not offer " + kickoff,
        "[ehr.bulk] level = \"" + std::string(config::to_string(bulk.level)) +
            "\" kicks off GET {fhir_base}/" + kickoff +
            ". A server that exports names that operation in its CapabilityStatement (Bulk Data Access IG: "
            "operation \"export\" " +
            where + ", definition http://hl7.org/fhir/uv/bulkdata/OperationDefinition/" + definition +
            "); this one does not, so the kick-off would be refused.",
        fix);
}

void interpret_backend_token(const http::response& r, const std::vector<std::string>& requested,
                             const config::bulk_settings& bulk, const smart::known_secrets& secrets,
                             findings& out) {
    // The access token stays inside `t` and dies with it: no finding names
    // it, and nothing here logs.
    auto t = smart::parse_token_response(r.status, r.body, secrets);
    if (!t) {
        const auto& code = t.err().code;
        const std::string what = "the backend token request was refused: " + t.err().message;
        if (code == errc::invalid_client) {
            add(out, severity::error, topic::bulk, what,
                "invalid_client: the EHR does not know this key/kid. It could not match the client assertion "
                "to a public key registered for client_id " +
                    bulk.client_id +
                    ", or the signature did not verify with it. Likely causes: the JWKS is not registered "
                    "with the backend app, or the EHR cannot reach its JWKS URL; the kid (key_id = \"" +
                    bulk.key_id +
                    "\") is not the kid of a key in that JWKS; the private key is not the pair of the "
                    "registered public key; client_id is not the backend app's (a separate registration "
                    "from the patient-facing app); or the algorithm is not accepted.",
                "Compare key_id with the kid in the registered JWKS (`headachemd-sync keygen --jwks` prints "
                "the JWKS of the key), check that the EHR can fetch the JWKS URL from outside the clinic's "
                "network, and that client_id is the backend registration's.");
        } else if (code == errc::invalid_scope) {
            add(out, severity::error, topic::bulk, what,
                "The server refused the scopes asked for (" + join(requested, " ") +
                    "). A backend app is approved for particular system/ scopes; eClinicalWorks also "
                    "requires system/Group.read in every bulk token request.",
                "Ask the EHR which system scopes the backend app is approved for, and set [ehr.bulk] scopes "
                "(or types) to those.");
        } else if (code == errc::unauthorized_client || code == errc::unsupported_grant_type) {
            add(out, severity::error, topic::bulk, what,
                "The server does not allow the client_credentials grant (SMART Backend Services) for this "
                "client_id.",
                "Check that client_id in [ehr.bulk] is the backend app's registration and that the app is "
                "activated for Bulk Data at the practice.");
        } else {
            add(out, severity::error, topic::bulk, what, {},
                "Check the token endpoint and the backend app's registration at the EHR.");
        }
        return;
    }
    add(out, severity::ok, topic::bulk,
        "the backend token request with key_id " + bulk.key_id + " succeeded (the token is not shown)");
    if (t->scope.empty()) {
        // RFC 6749 §5.1: scope may be left out when it is the one requested.
        add(out, severity::info, topic::bulk, "the token answer names no scope",
            "RFC 6749 §5.1 lets a server omit it when it granted exactly what was asked.");
        return;
    }
    const auto granted = split_scopes(t->scope);
    std::vector<std::string> missing;
    for (const auto& s : requested)
        if (!contains(granted, s)) missing.push_back(s);
    if (missing.empty()) {
        add(out, severity::ok, topic::bulk, "the token grants every scope asked for (" + t->scope + ")");
        return;
    }
    add(out, severity::error, topic::bulk,
        "the token lacks scopes that were asked for: " + join(missing, " "),
        "The server granted only " + t->scope +
            ". An export of the types those scopes cover would be refused (403); eClinicalWorks needs "
            "system/Group.read in every bulk token.",
        "Ask the EHR to approve these system scopes for the backend app, or remove their types from "
        "[ehr.bulk] types.");
}

// ---- authorize URLs ---------------------------------------------------------

const std::string* authorize_url_parts::get(std::string_view name) const { return find(query, name); }

result<authorize_url_parts> parse_authorize_url(std::string_view url) {
    auto u = boost::urls::parse_absolute_uri(url);
    if (!u) return error{errc::invalid_url, "the authorize URL is not an absolute URL"};
    if (u->scheme() != "https" && u->scheme() != "http")
        return error{errc::invalid_url, "the authorize URL is not http(s)"};
    authorize_url_parts parts;
    parts.endpoint = std::string(u->scheme()) + "://" + std::string(u->encoded_authority()) +
                     std::string(u->encoded_path());
    for (const auto& p : u->params()) parts.query.emplace_back(p.key, p.value);
    return parts;
}

}  // namespace headachemd::doctor
