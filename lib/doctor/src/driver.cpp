// The two doctor runs: fetch what the server publishes, send at most one
// authorize request (never following its redirect), and hand everything to
// the pure checks. The transport's deadlines bound every request.
#include "headachemd/doctor/doctor.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>

namespace headachemd::doctor {

namespace {

namespace asio = boost::asio;

struct timed_fetch {
    fetched f;
    std::chrono::system_clock::time_point received{};
};

asio::awaitable<timed_fetch> get(http::transport& http, std::string url, std::string_view accept,
                                 const clock& clk) {
    http::request req;
    req.url = url;
    req.headers.push_back({"Accept", std::string(accept)});
    timed_fetch out;
    out.f.url = std::move(url);
    auto r = co_await http.send(std::move(req));
    out.received = clk.now();
    if (r)
        out.f.response = std::move(*r);
    else
        out.f.failure = r.err();
    co_return out;
}

struct fetched_server {
    server_facts facts;
    std::optional<std::string> date;
    std::chrono::system_clock::time_point received{};
};

asio::awaitable<fetched_server> fetch_server(http::transport& http, const std::string& fhir_base,
                                             const clock& clk, findings& out) {
    // Discovery is per tenant: {fhir_base}/.well-known/smart-configuration
    // (DESIGN.md, "EHR realities"); metadata gives the served types and the
    // oauth-uris fallback.
    auto wk = co_await get(http, fhir_base + "/.well-known/smart-configuration", "application/json", clk);
    auto md = co_await get(http, fhir_base + "/metadata", "application/fhir+json", clk);
    fetched_server s;
    s.facts = interpret_discovery(fhir_base, wk.f, &md.f, out);
    for (const timed_fetch* t : {&wk, &md}) {
        if (!t->f.response) continue;
        if (auto d = t->f.response->header("Date")) {
            s.date = std::string(*d);
            s.received = t->received;
            break;
        }
    }
    co_return s;
}

bool reached(const fetched_server& s) { return s.facts.smart.has_value() || s.facts.capability.has_value(); }

void clock_finding(const fetched_server& s, findings& out) {
    if (!reached(s)) return;
    check_clock(s.date ? std::optional<std::string_view>(*s.date) : std::nullopt, s.received, out);
}

std::string joined(const std::vector<std::string>& scopes) {
    std::string out;
    for (const auto& s : scopes) out += (out.empty() ? "" : " ") + s;
    return out;
}

asio::awaitable<void> probe(http::transport& http, const std::string& url, std::string_view redirect_uri,
                            server_kind kind, findings& out) {
    http::request req;
    req.url = url;
    req.headers.push_back({"Accept", "text/html,application/json"});
    auto r = co_await http.send(std::move(req));
    if (!r) {
        out.push_back({severity::error,
                       topic::authorize,
                       "the authorize endpoint could not be reached: " + r.err().message,
                       {},
                       "Check the network route to the authorization server."});
        co_return;
    }
    const findings earlier = out;
    interpret_authorize(*r, redirect_uri, earlier, kind, out);
}

// The files on this machine the registration depends on, in the order
// they are reported.
void check_local_files(const config_check& in, findings& out) {
    const auto& ehr = in.ehr;
    if (in.cfg && !in.cfg->file.empty()) check_config_file(inspect_file(in.cfg->file), out);
    using m = config::client_auth_method;
    if (ehr.client_auth == m::client_secret_basic || ehr.client_auth == m::client_secret_post) {
        if (ehr.client_secret_file)
            check_file(inspect_file(*ehr.client_secret_file), "client secret file", true, out);
        else
            out.push_back({severity::error,
                           topic::files,
                           "no client_secret_file for " + std::string(config::to_string(ehr.client_auth)),
                           {},
                           "Set client_secret_file in the [[ehr]] block."});
    }
    if (ehr.client_auth == m::private_key_jwt) {
        if (ehr.private_key_file)
            check_file(inspect_file(*ehr.private_key_file), "private key file", true, out);
        else
            out.push_back({severity::error,
                           topic::files,
                           "no private_key_file for private_key_jwt",
                           {},
                           "Set private_key_file (keygen writes one)."});
    }
    if (ehr.ca_file) check_file(inspect_file(*ehr.ca_file), "CA file", false, out);
    if (in.cfg) {
        // Where the daemon takes the key from: token_key_file, else the
        // systemd credential token.key (daemon/vault_commands.cpp).
        std::optional<std::filesystem::path> key = in.cfg->daemon.token_key_file;
        if (const char* creds = std::getenv("CREDENTIALS_DIRECTORY"); !key && creds && *creds)
            key = std::filesystem::path(creds) / "token.key";
        if (key) check_file(inspect_file(*key), "vault key file", true, out);
    }
}

// What the server's SMART configuration says about this registration.
void check_against_discovery(const config::ehr_settings& ehr, const server_facts& facts,
                             const std::vector<std::string>& scopes, server_kind kind, findings& out) {
    const auto& conf = *facts.smart;
    if (ehr.authorize_endpoint && *ehr.authorize_endpoint != conf.authorization_endpoint)
        out.push_back(
            {severity::warning, topic::discovery,
             "authorize_endpoint in the config differs from discovery (" + conf.authorization_endpoint + ")",
             "The config's value wins; discovery is what the server says today.",
             "Remove the override unless the vendor told you to set it."});
    if (ehr.token_endpoint && *ehr.token_endpoint != conf.token_endpoint)
        out.push_back({severity::warning, topic::discovery,
                       "token_endpoint in the config differs from discovery (" + conf.token_endpoint + ")",
                       "The config's value wins; discovery is what the server says today.",
                       "Remove the override unless the vendor told you to set it."});
    check_pkce_server(conf, out);
    out.push_back({severity::ok, topic::request, "enrollment sends a fresh PKCE S256 challenge", {}, {}});
    check_scopes(scopes, conf, facts.capability ? &*facts.capability : nullptr, kind, out);
    check_offline(scopes, conf, out);
    check_client_auth(ehr.client_auth, conf, kind, out);
}

// [ehr.bulk] jwks_url: what the EHR fetches to verify our assertions,
// fetched the same way (a plain GET, no token) and compared with the
// current key and, during a rotation, the next one.
asio::awaitable<void> check_jwks_url(http::transport& http, const config::bulk_settings& bulk,
                                     const smart::signing_key& current, findings& out) {
    std::vector<expected_jwk> keys{{bulk.key_id, current.public_jwk(bulk.key_id), "key_id"}};
    if (bulk.next_key) {
        auto next = smart::signing_key::from_file(bulk.next_key->private_key_file);
        if (next)
            keys.push_back({bulk.next_key->key_id, next->public_jwk(bulk.next_key->key_id), "next_key_id"});
        else
            out.push_back({severity::error, topic::bulk,
                           "next_private_key_file cannot be used: " + next.err().message,
                           "The daemon publishes the next key beside the current one and refuses to start "
                           "without it.",
                           "Point next_private_key_file at the PEM `headachemd-sync keygen --jwks` wrote."});
    }
    http::request req;
    req.url = *bulk.jwks_url;
    req.headers.push_back({"Accept", "application/json"});
    auto r = co_await http.send(std::move(req));
    if (!r) {
        out.push_back({severity::error, topic::bulk,
                       "the JWKS at " + *bulk.jwks_url + " could not be fetched: " + r.err().message,
                       "The EHR fetches it to verify every backend token request.",
                       "Check the name, the certificate and the proxy in front of the daemon; doctor fetches "
                       "from this machine, the EHR from the internet."});
        co_return;
    }
    interpret_published_jwks(*bulk.jwks_url, *r, keys, out);
}

// [ehr.bulk] (issue 15): the assertion algorithm against discovery, the
// export level against the CapabilityStatement, then one real SMART Backend
// Services token request with the configured key. The token it yields is
// dropped unused: doctor reads no data with it.
asio::awaitable<void> check_bulk(http::transport& http, const config::ehr_settings& ehr,
                                 const server_facts& facts, const clock& clk, findings& out) {
    const auto& bulk = *ehr.bulk;
    check_bulk_algorithm(bulk.algorithm, facts, out);
    check_bulk_export(bulk, facts.exports, out);

    const auto skipped = [&](std::string why, std::string fix) {
        out.push_back({severity::error,
                       topic::bulk,
                       "the backend token request was not sent: " + std::move(why),
                       {},
                       std::move(fix)});
    };
    const std::size_t before = out.size();
    check_file(inspect_file(bulk.private_key_file), "bulk private key file", true, out);
    const bool file_bad = std::any_of(out.begin() + static_cast<std::ptrdiff_t>(before), out.end(),
                                      [](const finding& f) { return f.level == severity::error; });
    if (file_bad) {
        skipped("the bulk private key file is unusable", "Fix the file as said above.");
        co_return;
    }
    auto key = smart::signing_key::from_file(bulk.private_key_file);
    if (!key) {
        skipped(key.err().message,
                "Point private_key_file at the PEM private key `headachemd-sync keygen --jwks` wrote.");
        co_return;
    }
    check_bulk_key_algorithm(bulk.algorithm, key->alg(), out);
    if (bulk.jwks_url) co_await check_jwks_url(http, bulk, *key, out);
    const std::string endpoint = ehr.token_endpoint
                                     ? *ehr.token_endpoint
                                     : (facts.smart ? facts.smart->token_endpoint : std::string());
    if (endpoint.empty()) {
        skipped("no token endpoint is known", "Fix discovery, or set token_endpoint.");
        co_return;
    }
    if (bulk.scopes.empty()) {
        skipped("[ehr.bulk] asks for no scope", "Set [ehr.bulk] types or scopes.");
        co_return;
    }

    smart::client_credentials creds;
    creds.client_id = bulk.client_id;
    creds.auth = smart::client_auth::private_key_jwt;
    creds.key = std::make_shared<const smart::signing_key>(std::move(*key));
    creds.key_id = bulk.key_id;
    // A fresh assertion (new jti, exp a few minutes ahead) made now.
    const auto tr = smart::make_backend_token_request(joined(bulk.scopes), creds, {endpoint, clk.now()});
    http::request req;
    req.method = boost::beast::http::verb::post;
    req.url = endpoint;
    for (const auto& [n, v] : tr.headers) req.headers.push_back({n, v});
    req.body = tr.body;
    auto r = co_await http.send(std::move(req));
    if (!r) {
        out.push_back({severity::error,
                       topic::bulk,
                       "the token endpoint could not be reached: " + r.err().message,
                       {},
                       "Check the network route to the authorization server."});
        co_return;
    }
    interpret_backend_token(*r, bulk.scopes, bulk, tr.secret_views(), out);
}

}  // namespace

server_kind kind_of(const config::ehr_settings& ehr) { return server_kind{ehr.profile == "eclinicalworks"}; }

asio::awaitable<report> check_registration(http::transport& http, const config_check& in, const clock& clk) {
    report rep;
    findings& out = rep.findings;
    const auto& ehr = in.ehr;
    const server_kind kind = kind_of(ehr);

    // Local files first: they need no server. The config itself first of
    // all: it says where the secrets below are sent.
    check_local_files(in, out);

    auto server = co_await fetch_server(http, ehr.fhir_base, clk, out);
    if (!reached(server)) {
        rep.unreachable = true;
        co_return rep;
    }
    clock_finding(server, out);

    // What enrollment will send as aud: the configured base, exactly.
    check_aud(ehr.fhir_base, ehr.fhir_base, out);
    check_base_against_server(ehr.fhir_base, server.facts, out);
    const auto scopes = enrollment_scopes(ehr);
    if (server.facts.smart) {
        check_against_discovery(ehr, server.facts, scopes, kind, out);
    }
    if (server.facts.capability) check_resources(ehr.resources, *server.facts.capability, kind, out);
    if (in.redirect_uri) {
        check_redirect_uri(*in.redirect_uri, out);
    } else {
        out.push_back(
            {severity::error, topic::request, "no redirect URI to check",
             "The redirect URI registered at the EHR is part of the registration; without it neither "
             "it nor the authorize request can be checked.",
             "Run doctor again with --redirect-uri set to the registered redirect URI."});
    }

    const std::string endpoint =
        ehr.authorize_endpoint
            ? *ehr.authorize_endpoint
            : (server.facts.smart ? server.facts.smart->authorization_endpoint : std::string());
    if (in.probe && in.redirect_uri && !endpoint.empty()) {
        // The request enrollment will send (issue 4: response_type=code,
        // client_id, redirect_uri, scope, state, aud, S256 challenge), with
        // a fresh state and verifier that are then thrown away.
        const auto pkce = smart::make_pkce();
        const std::string url =
            smart::authorize_url({endpoint, ehr.client_id, *in.redirect_uri, joined(scopes),
                                  smart::random_state(), ehr.fhir_base, pkce.challenge});
        co_await probe(http, url, *in.redirect_uri, kind, out);
    } else if (in.probe && endpoint.empty()) {
        out.push_back({severity::error,
                       topic::authorize,
                       "no authorization endpoint known; the probe was skipped",
                       {},
                       "Fix discovery, or set authorize_endpoint."});
    }
    // After the probe: its likely causes are the patient-facing app's
    // problems, which the backend registration's are not.
    if (ehr.bulk) co_await check_bulk(http, ehr, server.facts, clk, out);
    co_return rep;
}

asio::awaitable<report> check_authorize_url(http::transport& http, const url_check& in, const clock& clk) {
    report rep;
    findings& out = rep.findings;
    auto parsed = parse_authorize_url(in.authorize_url);
    if (!parsed) {
        out.push_back({severity::error,
                       topic::request,
                       parsed.err().message,
                       {},
                       "Pass the whole authorize URL, quoted for the shell."});
        co_return rep;
    }
    const auto& parts = *parsed;
    check_parameters(parts.query, out);
    const std::string* aud = parts.get("aud");
    std::string fhir_base;
    if (in.fhir_base) {
        fhir_base = *in.fhir_base;
    } else if (aud) {
        fhir_base = *aud;
        while (!fhir_base.empty() && fhir_base.back() == '/') fhir_base.pop_back();
    }
    if (fhir_base.empty()) {
        check_aud(std::nullopt, "{fhir_base}", out);
        out.push_back({severity::error,
                       topic::discovery,
                       "the FHIR base is unknown, so the server was not asked",
                       {},
                       "Pass --fhir-base, or name the [[ehr]] from the config."});
        co_return rep;
    }
    check_aud(aud ? std::optional<std::string_view>(*aud) : std::nullopt, fhir_base, out);
    if (in.client_id && parts.get("client_id") && *parts.get("client_id") != *in.client_id)
        out.push_back(
            {severity::warning, topic::request,
             "client_id " + *parts.get("client_id") + " is not the config's (" + *in.client_id + ")",
             "Each registration has its own client_id; a wrong one is refused without a redirect.",
             "Use the client_id of this registration."});
    check_pkce_request(parts.get("code_challenge"), parts.get("code_challenge_method"), out);
    check_state(parts.get("state"), out);
    check_redirect_uri(parts.get("redirect_uri") ? std::optional<std::string_view>(*parts.get("redirect_uri"))
                                                 : std::nullopt,
                       out);

    auto server = co_await fetch_server(http, fhir_base, clk, out);
    if (!reached(server)) {
        rep.unreachable = true;
        co_return rep;
    }
    clock_finding(server, out);
    const auto scopes = split_scopes(parts.get("scope") ? *parts.get("scope") : std::string());
    if (server.facts.smart) {
        const auto& conf = *server.facts.smart;
        if (!conf.authorization_endpoint.empty() && parts.endpoint != conf.authorization_endpoint)
            out.push_back(
                {severity::error, topic::request,
                 "the URL goes to " + parts.endpoint + ", but the server's authorization endpoint is " +
                     conf.authorization_endpoint,
                 "Discovery names the endpoint for this FHIR base; another endpoint belongs to another "
                 "server or tenant.",
                 "Build the URL on the authorization_endpoint from discovery."});
        check_pkce_server(conf, out);
        check_scopes(scopes, conf, server.facts.capability ? &*server.facts.capability : nullptr, in.kind,
                     out);
        check_offline(scopes, conf, out);
    }
    if (in.probe) {
        const std::string* redirect = parts.get("redirect_uri");
        co_await probe(http, in.authorize_url, redirect ? std::string_view(*redirect) : std::string_view(),
                       in.kind, out);
    }
    co_return rep;
}

}  // namespace headachemd::doctor
