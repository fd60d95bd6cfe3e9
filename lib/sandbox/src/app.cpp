#include "app.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>

#include "gzip.hpp"
#include "headachemd/core/html.hpp"
#include "json_writer.hpp"

namespace headachemd::sandbox::detail {

namespace {

using namespace std::chrono_literals;

constexpr std::string_view fhir_json = "application/fhir+json;charset=utf-8";
constexpr std::string_view plain_json = "application/json;charset=utf-8";
constexpr std::string_view html = "text/html;charset=utf-8";
constexpr auto code_lifetime = 60s;          // SMART App Launch: short-lived, single use
constexpr auto refresh_lifetime = 90 * 24h;  // eCW: 90 days
constexpr auto reuse_grace_window = 60s;

std::string_view reason_phrase(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 302:
            return "Found";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 410:
            return "Gone";
        case 413:
            return "Payload Too Large";
        case 429:
            return "Too Many Requests";
        case 500:
            return "Internal Server Error";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        default:
            return "Unknown";
    }
}

http_response make(int status, std::string_view content_type, std::string body) {
    http_response r;
    r.status = status;
    r.headers.emplace_back("Content-Type", std::string(content_type));
    r.body = std::move(body);
    return r;
}

// FHIR R4 OperationOutcome: the error body of every FHIR endpoint.
http_response outcome(int status, std::string_view code, std::string_view diagnostics) {
    return make(status, fhir_json, operation_outcome_json("error", code, diagnostics));
}

// RFC 6749 §5.2 error body; token responses are never cached (§5.1).
http_response oauth_error(int status, std::string_view error, std::string_view description) {
    json_writer w;
    w.begin_object().member("error", error).member("error_description", description).end_object();
    http_response r = make(status, plain_json, w.take());
    r.headers.emplace_back("Cache-Control", "no-store");
    r.headers.emplace_back("Pragma", "no-cache");
    return r;
}

// What eClinicalWorks answers at /authorize for every problem it finds
// (unknown or inactive client, unregistered redirect URI, missing PKCE, a
// scope it does not offer), byte for byte as observed by the HeadacheMD
// team (issue 4): HTTP 403, no redirect, and an "error" that is the status
// code rather than an RFC 6749 error code.
http_response ecw_authorize_refusal() {
    http_response r = make(403, plain_json, R"({"error":"403","error_description":"invalid_request"})");
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
}

http_response html_page(int status, std::string_view title, std::string_view body_html) {
    std::string page = "<!doctype html><html><head><meta charset=\"utf-8\"><title>" + html_escape(title) +
                       "</title></head><body><h1>" + html_escape(title) + "</h1>" + std::string(body_html) +
                       "</body></html>";
    return make(status, html, std::move(page));
}

std::vector<std::string> split_spaces(std::string_view s) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && s[i] == ' ') ++i;
        const std::size_t j = std::min(s.find(' ', i), s.size());
        if (j > i) out.emplace_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

bool has_scope(const std::string& scope, std::string_view want) {
    for (const auto& s : split_spaces(scope))
        if (s == want) return true;
    return false;
}

// Secrets are compared without an early exit on the first difference.
bool same_secret(std::string_view a, std::string_view b) {
    if (a.size() != b.size() || b.empty()) return false;
    unsigned diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

std::optional<long> parse_long(std::string_view s) {
    long v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) return std::nullopt;
    return v;
}

// A reference search value: "X", "Patient/X" or ".../Patient/X". Empty if
// it names another type.
std::string patient_of_reference(std::string_view v) {
    const auto slash = v.rfind('/');
    if (slash == std::string_view::npos) return std::string(v);
    const std::string_view head = v.substr(0, slash);
    if (head != "Patient" && !(head.size() > 8 && head.substr(head.size() - 8) == "/Patient")) return {};
    return std::string(v.substr(slash + 1));
}

}  // namespace

std::string serialize_head(const http_response& r, bool keep_alive) {
    std::string out =
        "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(reason_phrase(r.status)) + "\r\n";
    out += "Server: headachemd-sandbox\r\n";
    for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
    out += "Content-Length: " + std::to_string(r.declared_length.value_or(r.body.size())) + "\r\n";
    out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    out += "\r\n";
    return out;
}

options normalized(options o) {
    // eCW sends no Retry-After with its 429 (DESIGN "EHR realities").
    if (o.ecw_mode) o.retry_after_on_429 = false;
    if (o.default_page_size < 1) o.default_page_size = 1;
    if (o.max_page_size < o.default_page_size) o.max_page_size = o.default_page_size;
    if (o.patients < 1) o.patients = 1;
    // eClinicalWorks has been seen to ask for 120 s between polls (issue 15).
    if (!o.bulk_poll_retry_after) o.bulk_poll_retry_after = std::chrono::seconds(o.ecw_mode ? 120 : 0);
    if (o.bulk_poll_retry_after->count() < 0) o.bulk_poll_retry_after = std::chrono::seconds(0);
    if (!o.now) o.now = [] { return std::chrono::system_clock::now(); };
    return o;
}

app::app(options opts)
    : opts_(normalized(std::move(opts))),
      data_(opts_.seed, opts_.patients, opts_.data_anchor),
      faults_(mix_seed(opts_.seed, 0xFA17ULL)) {
    if (opts_.client_auth == options::client_auth_kind::private_key_jwt)
        assertions_.emplace(parse_jwks(opts_.client_jwks), opts_.ecw_mode);  // eCW: RS384 only
    if (!opts_.backend_client_id.empty())
        backend_assertions_.emplace(parse_jwks(opts_.backend_jwks), opts_.ecw_mode);
    if (!opts_.client_secret.empty()) report(secret_kind::client_secret, opts_.client_secret);
    for (const auto& id : data_.patient_ids()) report_patient(id);
}

void app::report(secret_kind k, std::string_view value) const {
    if (opts_.secret_observer && !value.empty()) opts_.secret_observer(k, value);
}

void app::report_patient(const std::string& patient_id) const {
    if (!opts_.secret_observer) return;
    const auto id = data_.identifiers(patient_id);
    if (!id) return;
    report(secret_kind::patient_name, id->name_text);
    report(secret_kind::patient_name, id->family);
    report(secret_kind::patient_mrn, id->mrn);
    report(secret_kind::patient_phone, id->phone);
}

void app::set_base_url(std::string base_url) {
    std::lock_guard lock(mu_);
    base_url_ = std::move(base_url);
}

std::string app::base_url() const {
    std::lock_guard lock(mu_);
    return base_url_;
}

std::string app::fhir_base() const {
    std::lock_guard lock(mu_);
    return base_url_ + "/fhir";
}

void app::set_file_origin_url(std::string url) {
    std::lock_guard lock(mu_);
    file_origin_url_ = std::move(url);
}

std::string app::file_origin_url() const {
    std::lock_guard lock(mu_);
    return file_origin_url_;
}

// ---- routing ----------------------------------------------------------------

http_response app::handle(const http_request& req) {
    std::lock_guard lock(mu_);
    const time_point now = opts_.now();
    const auto qmark = req.target.find('?');
    const std::string path = req.target.substr(0, qmark);
    ++stats_.requests;
    if (req.file_origin) {
        // The file origin is another server in all but process: no eCW
        // budget, no FHIR routes. Its paths hold capability tokens, so they
        // stay out of by_path (and accepts_gzip_by_path).
        http_response r = file_origin(req, path);
        r.delay = std::max(r.delay, opts_.latency);
        r.headers.emplace_back("Date", format_http_date(now));
        ++stats_.by_status[r.status];
        encode_content(r, req, "/files");
        return r;
    }
    ++stats_.by_path[path];

    http_response r;
    const auto query = parse_form(
        qmark == std::string::npos ? std::string_view{} : std::string_view(req.target).substr(qmark + 1));
    // eCW: 250 calls a minute per practice base, counted per fixed minute
    // window; over it, 429 with no Retry-After, so the client must wait for
    // the next minute boundary (DESIGN "EHR realities").
    bool over_budget = false;
    if (opts_.ecw_mode) {
        const auto window = std::chrono::floor<std::chrono::minutes>(now.time_since_epoch()).count();
        if (window != budget_window_) {
            budget_window_ = window;
            budget_used_ = 0;
        }
        over_budget = ++budget_used_ > opts_.requests_per_minute;
    }
    if (over_budget) {
        r = outcome(
            429, "throttled",
            "Rate limit exceeded: " + std::to_string(opts_.requests_per_minute) + " requests per minute");
    } else if (!query) {
        r = outcome(400, "invalid", "Malformed percent-encoding in the query string");
    } else {
        r = route(req, path, *query, now);
    }
    r.delay = std::max(r.delay, opts_.latency);
    // RFC 9110 §6.6.1: a server with a clock sends Date. It reads the
    // injected clock, so a test can skew it (doctor's clock check).
    r.headers.emplace_back("Date", format_http_date(now));
    if (r.fault != transport_fault::reset && r.fault != transport_fault::reset_mid_body)
        ++stats_.by_status[r.status];
    if (r.status == 429) {
        ++stats_.responses_429;
        if (opts_.retry_after_on_429 && !over_budget && !r.scripted)
            r.headers.emplace_back("Retry-After", "1");
    }
    encode_content(r, req, path);
    return r;
}

void app::encode_content(http_response& r, const http_request& req, const std::string& path) {
    const bool asked = accepts_gzip(req.accept_encoding);
    if (asked) ++stats_.accepts_gzip_by_path[path];
    if (!opts_.gzip) return;
    // RFC 9110 §12.5.5: the answer depends on Accept-Encoding.
    r.headers.emplace_back("Vary", "Accept-Encoding");
    if (!asked || r.encoded || r.body.empty() || r.status == 204 || r.status == 304) return;
    // A fault's framing (half the body, a lying length, a trickle) is
    // computed from the identity body: left as it is.
    if (r.fault != transport_fault::none || r.declared_length) return;
    r.body = gzip_encode(r.body);
    r.headers.emplace_back("Content-Encoding", "gzip");
    ++stats_.gzip_responses;
}

http_response app::route(const http_request& req, std::string_view path, const params& query,
                         time_point now) {
    const bool get = req.method == "GET";
    const bool post = req.method == "POST";
    const auto method_not_allowed = [](std::string_view allow) {
        http_response r = outcome(405, "not-supported", "Method not allowed");
        r.headers.emplace_back("Allow", std::string(allow));
        return r;
    };
    if (path == "/fhir/.well-known/smart-configuration" || path == "/.well-known/smart-configuration") {
        ++stats_.discovery_calls;
        return get ? smart_configuration() : method_not_allowed("GET");
    }
    if (path == "/fhir/metadata") {
        ++stats_.discovery_calls;
        return get ? capability_statement(now) : method_not_allowed("GET");
    }
    if (path == "/authorize") {
        ++stats_.authorize_calls;
        if (!get) return method_not_allowed("GET");
        return authorize(query, false, now);
    }
    if (path == "/authorize/approve") {
        ++stats_.authorize_calls;
        if (!post) return method_not_allowed("POST");
        const auto form = parse_form(req.body);
        if (!form) return html_page(400, "Bad request", "<p>Malformed form body.</p>");
        const std::string* decision = find_param(*form, "decision");
        if (decision && *decision == "deny") {
            // The user said no: RFC 6749 §4.1.2.1 access_denied, to a
            // redirect URI we validate first.
            const std::string* redirect = find_param(*form, "redirect_uri");
            const std::string* client = find_param(*form, "client_id");
            if (!client || *client != opts_.client_id || !redirect ||
                std::find(opts_.redirect_uris.begin(), opts_.redirect_uris.end(), *redirect) ==
                    opts_.redirect_uris.end())
                return html_page(400, "Bad request", "<p>Unknown client or redirect URI.</p>");
            params out{{"error", "access_denied"}};
            if (const std::string* state = find_param(*form, "state")) out.emplace_back("state", *state);
            http_response r = make(302, html, "");
            r.headers.emplace_back(
                "Location",
                *redirect + (redirect->find('?') == std::string::npos ? "?" : "&") + encode_params(out));
            return r;
        }
        return authorize(*form, true, now);
    }
    if (path == "/token") {
        ++stats_.token_calls;
        if (!post) return method_not_allowed("POST");
        http_response r = token(req, now);
        // Issue 18: the grant has been processed (a refresh token spent and
        // rotated) when the answer is lost, the window in which a client
        // must not send the same refresh token again.
        if (auto f = take_token_script()) apply_script(r, *f);
        return r;
    }
    if (path == "/revoke") {
        ++stats_.revocation_calls;
        if (!post) return method_not_allowed("POST");
        return revoke(req, now);
    }
    if (const auto target = parse_export_path(path)) {
        ++stats_.bulk_kickoffs;
        if (!get) return method_not_allowed("GET");
        // eClinicalWorks offers Group export only. 404, not 400: FHIR R4
        // http.html gives 404 for "not a FHIR end-point", and the request
        // itself is well formed; nothing about it can be fixed and resent,
        // the endpoint just is not there (nor in the CapabilityStatement).
        if (opts_.ecw_mode && target->level != export_level::group)
            return outcome(404, "not-supported", "This server offers Group/[id]/$export only");
        return export_kickoff(req, *target, query, now);
    }
    // The status URL: eClinicalWorks' [base]/$export-poll-location?job_id=…,
    // else the sandbox's own /bulk/status/{job}; each mode serves only its own.
    std::optional<std::string> status_job;
    if (opts_.ecw_mode && path == "/fhir/$export-poll-location") {
        const std::string* job = find_param(query, "job_id");
        status_job = job ? *job : std::string();
    } else if (!opts_.ecw_mode && path.substr(0, 13) == "/bulk/status/") {
        status_job = std::string(path.substr(13));
    }
    if (status_job) {
        if (get) ++stats_.bulk_status_polls;
        if (req.method == "DELETE") ++stats_.bulk_deletes;
        if (!get && req.method != "DELETE") return method_not_allowed("GET, DELETE");
        return export_status(req, *status_job, now);
    }
    if (path.substr(0, 12) == "/bulk/files/") {
        ++stats_.bulk_file_downloads;
        if (!get) return method_not_allowed("GET");
        return export_file(req, path.substr(12), now);
    }
    if (path.substr(0, 6) == "/fhir/") return fhir(req, path, query, now);
    return outcome(404, "not-found", "No such endpoint");
}

// ---- discovery --------------------------------------------------------------

std::vector<std::string> app::supported_scopes() const {
    // SMART App Launch v1 scopes, and v2 (.rs) outside eCW mode. eCW lists
    // only per-type scopes, and no Appointment (its healow Scheduling API
    // has its own base URL), so asking for patient/Appointment.read there
    // fails at /authorize.
    std::vector<std::string> s = {"openid", "fhirUser", "launch/patient", "offline_access", "online_access"};
    if (!opts_.ecw_mode) {
        s.emplace_back("patient/*.read");
        s.emplace_back("patient/*.rs");
    }
    for (int i = 0; i < rtype_count; ++i) {
        const auto t = static_cast<rtype>(i);
        if (!served(t)) continue;
        s.push_back("patient/" + std::string(rtype_name(t)) + ".read");
        if (!opts_.ecw_mode) s.push_back("patient/" + std::string(rtype_name(t)) + ".rs");
    }
    return s;
}

std::string app::default_scope() const {
    std::string scope = "launch/patient offline_access";
    for (int i = 0; i < rtype_count; ++i) {
        const auto t = static_cast<rtype>(i);
        if (served(t)) scope += " patient/" + std::string(rtype_name(t)) + ".read";
    }
    return scope;
}

bool app::scope_allows_read(const std::string& scope, rtype t) const {
    return scope_reads(scope, "patient", t) || scope_reads(scope, "user", t);
}

http_response app::smart_configuration() const {
    json_writer w;
    w.begin_object();
    w.member("authorization_endpoint", base_url_ + "/authorize");
    w.member("token_endpoint", base_url_ + "/token");
    // RFC 8414 / SMART App Launch 2.x: where a client revokes a token (RFC 7009).
    w.member("revocation_endpoint", base_url_ + "/revoke");
    w.key("token_endpoint_auth_methods_supported")
        .begin_array()
        .value("client_secret_basic")
        .value("client_secret_post");
    if (assertions_ || backend_assertions_) w.value("private_key_jwt");
    w.end_array();
    if (assertions_ || backend_assertions_) {
        // SMART App Launch asymmetric client auth: RS384 and ES384; eCW RS384 only.
        w.key("token_endpoint_auth_signing_alg_values_supported").begin_array().value("RS384");
        if (!opts_.ecw_mode) w.value("ES384");
        w.end_array();
    }
    w.key("grant_types_supported").begin_array().value("authorization_code").value("refresh_token");
    if (backend_assertions_) w.value("client_credentials");
    w.end_array();
    w.key("scopes_supported").begin_array();
    for (const auto& s : supported_scopes()) w.value(s);
    w.end_array();
    w.key("response_types_supported").begin_array().value("code").end_array();
    w.key("capabilities").begin_array();
    for (const char* c : {"launch-standalone", "client-confidential-symmetric", "context-standalone-patient",
                          "permission-offline", "permission-patient", "permission-v1"})
        w.value(c);
    if (assertions_) w.value("client-confidential-asymmetric");
    if (!opts_.ecw_mode) w.value("permission-v2");
    w.end_array();
    // SMART App Launch 2.x: S256 is required and servers SHALL NOT support plain.
    w.key("code_challenge_methods_supported").begin_array().value("S256").end_array();
    w.end_object();
    return make(200, plain_json, w.take());
}

http_response app::capability_statement(time_point now) const {
    json_writer w;
    w.begin_object();
    w.member("resourceType", "CapabilityStatement");
    w.member("status", "active");
    w.member("date", format_date_time(now));
    w.member("kind", "instance");
    w.key("software")
        .begin_object()
        .member("name", "HeadacheMD Sandbox EHR")
        .member("version", "0.1.0")
        .end_object();
    w.key("implementation").begin_object();
    w.member("description", opts_.ecw_mode ? "Sandbox EHR (eClinicalWorks mode)" : "Sandbox EHR");
    w.member("url", base_url_ + "/fhir").end_object();
    w.member("fhirVersion", "4.0.1");
    // Bulk Data IG v2.0.0 "Server Capability Documentation": a server that
    // exports instantiates the bulk-data CapabilityStatement and names its
    // operations (system export here, patient-export on Patient,
    // group-export on Group). Only with a backend registration: without
    // one no token can export.
    const bool bulk = backend_assertions_.has_value();
    constexpr std::string_view bulk_defs = "http://hl7.org/fhir/uv/bulkdata/";
    const auto operation = [&](std::string_view name, std::string_view def) {
        w.key("operation").begin_array().begin_object();
        w.member("name", name)
            .member("definition", std::string(bulk_defs) + "OperationDefinition/" + std::string(def));
        w.end_object().end_array();
    };
    if (bulk)
        w.key("instantiates")
            .begin_array()
            .value(std::string(bulk_defs) + "CapabilityStatement/bulk-data")
            .end_array();
    w.key("format").begin_array().value("json").value("application/fhir+json").end_array();
    w.key("rest").begin_array().begin_object();
    w.member("mode", "server");
    // SMART App Launch: the oauth-uris extension is the fallback discovery.
    w.key("security").begin_object();
    w.key("extension").begin_array().begin_object();
    w.member("url", "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris");
    w.key("extension").begin_array();
    w.begin_object().member("url", "authorize").member("valueUri", base_url_ + "/authorize").end_object();
    w.begin_object().member("url", "token").member("valueUri", base_url_ + "/token").end_object();
    w.begin_object().member("url", "revoke").member("valueUri", base_url_ + "/revoke").end_object();
    w.end_array().end_object().end_array();
    w.key("service").begin_array().begin_object().key("coding").begin_array().begin_object();
    w.member("system", "http://terminology.hl7.org/CodeSystem/restful-security-service")
        .member("code", "SMART-on-FHIR");
    w.end_object().end_array().end_object().end_array();
    w.end_object();
    w.key("resource").begin_array();
    for (int i = 0; i < rtype_count; ++i) {
        const auto t = static_cast<rtype>(i);
        if (!served(t)) continue;
        w.begin_object().member("type", rtype_name(t));
        // eCW's facade: read and search-type only, no history.
        w.key("interaction").begin_array();
        w.begin_object().member("code", "read").end_object();
        w.begin_object().member("code", "search-type").end_object();
        w.end_array();
        w.key("searchParam").begin_array();
        const auto param = [&](std::string_view name, std::string_view type) {
            w.begin_object().member("name", name).member("type", type).end_object();
        };
        if (t == rtype::patient) {
            param("_id", "token");
        } else if (t == rtype::appointment) {
            param("patient", "reference");
            param("actor", "reference");
        } else {
            param("patient", "reference");
            param("subject", "reference");
        }
        // eCW declares _lastUpdated for no type (DESIGN "Sync semantics").
        if (!opts_.ecw_mode) param("_lastUpdated", "date");
        w.end_array();
        // eClinicalWorks exports Groups only.
        if (bulk && !opts_.ecw_mode && t == rtype::patient) operation("export", "patient-export");
        w.end_object();
    }
    // Group: only its export (a read of the Group is not served).
    if (bulk) {
        w.begin_object().member("type", "Group");
        operation("export", "group-export");
        w.end_object();
    }
    w.end_array();
    if (bulk && !opts_.ecw_mode) operation("export", "export");
    w.end_object().end_array();
    w.end_object();
    return make(200, fhir_json, w.take());
}

// ---- /authorize -------------------------------------------------------------

http_response app::authorize(const params& p, bool consented, time_point now) {
    const std::string* client_id = find_param(p, "client_id");
    const std::string* redirect_uri = find_param(p, "redirect_uri");
    // RFC 6749 §4.1.2.1: with a bad client or redirect URI the server must
    // not redirect (an open redirector); it tells the user instead.
    if (!client_id || *client_id != opts_.client_id) {
        if (opts_.ecw_mode) return ecw_authorize_refusal();
        return html_page(400, "Authorization failed", "<p>Unknown client_id.</p>");
    }
    if (!redirect_uri || std::find(opts_.redirect_uris.begin(), opts_.redirect_uris.end(), *redirect_uri) ==
                             opts_.redirect_uris.end()) {
        if (opts_.ecw_mode) return ecw_authorize_refusal();
        return html_page(400, "Authorization failed",
                         "<p>The redirect_uri is not registered for this client.</p>");
    }
    const std::string* state = find_param(p, "state");
    const auto redirect = [&](params out) {
        if (state) out.emplace_back("state", *state);
        http_response r = make(302, html, "");
        r.headers.emplace_back(
            "Location",
            *redirect_uri + (redirect_uri->find('?') == std::string::npos ? "?" : "&") + encode_params(out));
        r.headers.emplace_back("Cache-Control", "no-store");
        return r;
    };
    const auto fail = [&](std::string_view error, std::string_view description) {
        // eCW answers these with the same 403 as an unknown client: no
        // redirect, no hint which parameter was wrong.
        if (opts_.ecw_mode) return ecw_authorize_refusal();
        return redirect({{"error", std::string(error)}, {"error_description", std::string(description)}});
    };

    const std::string* response_type = find_param(p, "response_type");
    if (!response_type || *response_type != "code")
        return fail("unsupported_response_type", "response_type must be code");
    if (!state || state->empty()) return fail("invalid_request", "state is required (SMART App Launch)");
    // SMART App Launch: aud must be the FHIR base the app will call, exactly,
    // so a token cannot be phished for another server.
    const std::string* aud = find_param(p, "aud");
    if (!aud || *aud != base_url_ + "/fhir")
        return fail("invalid_request", "aud must equal the FHIR base URL");
    const std::string* method = find_param(p, "code_challenge_method");
    const std::string* challenge = find_param(p, "code_challenge");
    if (!challenge || !method)
        return fail("invalid_request", "PKCE is required: code_challenge and code_challenge_method=S256");
    // SMART App Launch 2.x: servers SHALL NOT support the plain method.
    if (*method != "S256")
        return fail("invalid_request", "code_challenge_method must be S256; plain is not supported");
    // RFC 7636 §4.2: an S256 challenge is 43 base64url characters.
    if (challenge->size() != 43 || !valid_pkce_string(*challenge))
        return fail("invalid_request", "code_challenge is malformed");
    const std::string* scope = find_param(p, "scope");
    const auto scopes = split_spaces(scope ? *scope : std::string{});
    if (scopes.empty()) return fail("invalid_scope", "scope is required");
    const auto supported = supported_scopes();
    for (const auto& s : scopes)
        if (std::find(supported.begin(), supported.end(), s) == supported.end())
            return fail("invalid_scope", "scope not supported: " + s);

    std::string patient = authorize_patient_.empty() ? data_.patient_ids().front() : authorize_patient_;
    if (const std::string* chosen = find_param(p, "patient")) patient = *chosen;
    if (!data_.has_patient(patient)) return fail("invalid_request", "unknown patient");

    const std::string* prompt = find_param(p, "prompt");
    if (!consented && prompt && *prompt == "consent") return consent_page(p);

    std::string joined;
    for (const auto& s : scopes) joined += (joined.empty() ? "" : " ") + s;
    const std::string code = random_token(24);
    report(secret_kind::authorization_code, code);
    codes_[code] =
        auth_code{*client_id, *redirect_uri, joined, patient, *challenge, now + code_lifetime, false, 0};
    return redirect({{"code", code}});
}

http_response app::consent_page(const params& p) const {
    std::string form = "<p>The application <b>" + html_escape(opts_.client_id) +
                       "</b> asks to read this synthetic patient's record:</p><p><code>";
    if (const std::string* scope = find_param(p, "scope")) form += html_escape(*scope);
    form += "</code></p><form method=\"post\" action=\"/authorize/approve\">";
    for (const auto& [k, v] : p) {
        if (k == "prompt" || k == "decision") continue;
        form += "<input type=\"hidden\" name=\"" + html_escape(k) + "\" value=\"" + html_escape(v) + "\">";
    }
    form +=
        "<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button> "
        "<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>";
    return html_page(200, "HeadacheMD Sandbox: authorize access", form);
}

// ---- /token -----------------------------------------------------------------

http_response app::token(const http_request& req, time_point now) {
    if (token_fail_count_ > 0) {
        // A scripted failure: answered before anything is looked at, so no
        // token is rotated or spent.
        --token_fail_count_;
        return oauth_error(token_fail_status_, token_fail_error_, "Scripted token endpoint failure");
    }
    if (token_echo_count_ > 0) {
        // A careless server (issue 12): the description repeats the request
        // as received, its decoded values and the client's credentials.
        --token_echo_count_;
        std::string echo = "cannot process " + req.body;
        if (const auto values = parse_form(req.body))
            for (const auto& [k, v] : *values) echo += " " + k + "=" + v;
        if (!req.authorization.empty()) echo += "\r\nAuthorization: " + req.authorization;
        return oauth_error(token_echo_status_, token_echo_error_, echo);
    }
    const auto form = parse_form(req.body);
    if (!form) return oauth_error(400, "invalid_request", "Malformed application/x-www-form-urlencoded body");
    // The backend app is another registration with its own keys: its
    // requests never authenticate as the patient-facing client.
    if (const std::string* grant_type = find_param(*form, "grant_type");
        grant_type && *grant_type == "client_credentials")
        return token_client_credentials(req, *form, now);
    auto who = authenticate_client(req, *form, now);
    if (auto* refused = std::get_if<http_response>(&who)) return std::move(*refused);
    return token_grant(*form, std::get<std::string>(who), now);
}

// SMART App Launch 2.x "SMART Backend Services": client_credentials with a
// private_key_jwt assertion, system scopes, no refresh token (RFC 6749
// §4.4.3: "A refresh token SHOULD NOT be included").
http_response app::token_client_credentials(const http_request& req, const params& form, time_point now) {
    if (!backend_assertions_)
        return oauth_error(400, "unsupported_grant_type", "No backend client is registered");
    const auto refuse = [this](std::string_view description) {
        ++stats_.client_assertions_rejected;
        return oauth_error(401, "invalid_client", description);
    };
    if (!req.authorization.empty() || find_param(form, "client_secret"))
        return refuse("A backend client authenticates with private_key_jwt only");
    auto who = authenticate_assertion(form, *backend_assertions_, opts_.backend_client_id, now);
    if (auto* refused = std::get_if<http_response>(&who)) return std::move(*refused);

    const std::string* scope = find_param(form, "scope");
    if (!scope || count_param(form, "scope") != 1 || scope->empty())
        return oauth_error(400, "invalid_scope", "Exactly one scope of system scopes is required");
    if (const std::string problem = backend_scope_problem(*scope); !problem.empty())
        return oauth_error(400, "invalid_scope", problem);

    const std::uint64_t gid = next_grant_++;
    grants_[gid] = grant{std::string(), *scope, false};
    const auto tokens = issue_tokens(gid, *scope, now, false);
    access_tokens_.at(tokens.first).expires = now + opts_.backend_token_lifetime;
    ++stats_.backend_tokens_issued;
    return token_response(tokens.first, std::string(), now);
}

std::string app::backend_scope_problem(const std::string& scope) const {
    bool group_read = false;
    for (const auto& word : split_spaces(scope)) {
        const auto dot = word.find('.');
        if (word.rfind("system/", 0) != 0 || dot == std::string::npos)
            return "Only system/<Type>.<access> scopes are granted to a backend client";
        const std::string_view type = std::string_view(word).substr(7, dot - 7);
        const std::string_view access = std::string_view(word).substr(dot + 1);
        const bool v1 = access == "read";
        // SMART 2.0 §3.2: a cruds string; reading needs r or s.
        const bool v2 = !access.empty() && access.find_first_not_of("rs") == std::string_view::npos;
        if (!v1 && !(v2 && !opts_.ecw_mode))
            return opts_.ecw_mode ? "Only .read (SMART v1) system scopes are granted here"
                                  : "Only read access (.read, .rs) is granted to a backend client";
        const auto t = parse_rtype(type);
        if (type != "*" && type != "Group" && !(t && served(*t)))
            return "No such resource type is served: " + std::string(type);
        group_read = group_read || (type == "Group" && v1);
    }
    if (opts_.ecw_mode && !group_read) return "system/Group.read is required in every bulk token request";
    return {};
}

// RFC 7009 §2: the client authenticates as at the token endpoint; the
// token's whole grant is revoked (§2.1: revoking a refresh token SHOULD
// also invalidate the access tokens of the same grant, and eCW and
// node-oidc-provider do so). An unknown or already revoked token is 200
// too (§2.2): the client's goal, an unusable token, is met.
http_response app::revoke(const http_request& req, time_point now) {
    if (revoke_fail_count_ > 0) {
        --revoke_fail_count_;
        return oauth_error(revoke_fail_status_, "temporarily_unavailable", "Scripted revocation failure");
    }
    const auto form = parse_form(req.body);
    if (!form) return oauth_error(400, "invalid_request", "Malformed application/x-www-form-urlencoded body");
    auto who = authenticate_client(req, *form, now);
    if (auto* refused = std::get_if<http_response>(&who)) return std::move(*refused);
    const std::string* token = find_param(*form, "token");
    if (!token || count_param(*form, "token") != 1)
        return oauth_error(400, "invalid_request", "exactly one token is required");
    // token_type_hint is a hint (§2.1): both kinds are looked up whatever it says.
    if (const auto rt = refresh_tokens_.find(*token); rt != refresh_tokens_.end()) {
        ++stats_.revocations;
        revoke_grant(rt->second.grant);
    } else if (const auto at = access_tokens_.find(*token); at != access_tokens_.end()) {
        ++stats_.revocations;
        revoke_grant(at->second.grant);
    }
    http_response r = make(200, plain_json, "");
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
}

std::variant<std::string, http_response> app::authenticate_client(const http_request& req, const params& form,
                                                                  time_point now) {
    if (assertions_ || find_param(form, "client_assertion") || find_param(form, "client_assertion_type")) {
        if (!assertions_) {
            ++stats_.client_assertions_rejected;
            return oauth_error(
                401, "invalid_client",
                "client_assertion is not accepted: this client is registered for client_secret");
        }
        if (!req.authorization.empty()) {
            if (find_param(form, "client_assertion"))
                return oauth_error(400, "invalid_request", "Use one client authentication method, not two");
            ++stats_.client_assertions_rejected;
            return oauth_error(401, "invalid_client",
                               "This client authenticates with private_key_jwt, not HTTP Basic");
        }
        return authenticate_assertion(form, *assertions_, opts_.client_id, now);
    }

    // Client authentication (RFC 6749 §2.3.1): HTTP Basic with the
    // form-encoded id and secret, or both in the body; never both at once.
    std::string id, secret;
    bool basic = false;
    const std::string_view auth = req.authorization;
    if (auth.size() > 6 && iequals(auth.substr(0, 6), "Basic ")) {
        basic = true;
        const auto decoded = base64_decode(auth.substr(6));
        const auto colon = decoded ? decoded->find(':') : std::string::npos;
        if (colon == std::string::npos)
            return oauth_error(401, "invalid_client", "Malformed Basic credentials");
        const auto did = form_decode(std::string_view(*decoded).substr(0, colon));
        const auto dsecret = form_decode(std::string_view(*decoded).substr(colon + 1));
        if (!did || !dsecret) return oauth_error(401, "invalid_client", "Malformed Basic credentials");
        id = *did;
        secret = *dsecret;
        if (find_param(form, "client_secret"))
            return oauth_error(400, "invalid_request", "Use one client authentication method, not two");
        if (const std::string* body_id = find_param(form, "client_id"); body_id && *body_id != id)
            return oauth_error(400, "invalid_request",
                               "client_id in the body differs from the Basic credentials");
    } else {
        const std::string* body_id = find_param(form, "client_id");
        const std::string* body_secret = find_param(form, "client_secret");
        if (!body_id || !body_secret) {
            http_response r = oauth_error(401, "invalid_client", "Client authentication is required");
            r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"headachemd-sandbox\"");
            return r;
        }
        id = *body_id;
        secret = *body_secret;
    }
    if (id != opts_.client_id || !same_secret(secret, opts_.client_secret)) {
        http_response r = oauth_error(401, "invalid_client", "Client authentication failed");
        if (basic) r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"headachemd-sandbox\"");
        return r;
    }
    return id;
}

http_response app::token_grant(const params& form, const std::string& client_id, time_point now) {
    const std::string* grant_type = find_param(form, "grant_type");
    if (!grant_type) return oauth_error(400, "invalid_request", "grant_type is required");
    if (*grant_type == "authorization_code") return token_authorization_code(form, client_id, now);
    if (*grant_type == "refresh_token") return token_refresh(form, now);
    return oauth_error(400, "unsupported_grant_type", "Supported: authorization_code, refresh_token");
}

std::variant<std::string, http_response> app::authenticate_assertion(const params& form,
                                                                     assertion_verifier& keys,
                                                                     const std::string& client_id,
                                                                     time_point now) {
    const auto refuse = [this](std::string_view description) {
        ++stats_.client_assertions_rejected;
        return oauth_error(401, "invalid_client", description);
    };
    if (find_param(form, "client_secret"))
        return refuse("This client authenticates with private_key_jwt, not a secret");
    // RFC 7523 §2.2: exactly this type, and one assertion.
    const std::string* type = find_param(form, "client_assertion_type");
    if (!type || *type != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        return refuse("client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    const std::string* assertion = find_param(form, "client_assertion");
    if (!assertion || count_param(form, "client_assertion") != 1)
        return refuse("exactly one client_assertion is required (private_key_jwt)");
    // The client is the one registered; a client_id in the body, when sent,
    // must name it too.
    const std::string* body_id = find_param(form, "client_id");
    if (body_id && *body_id != client_id) return refuse("client_id is not the registered client");
    if (auto failed = keys.verify(*assertion, client_id, base_url_ + "/token", now)) return refuse(*failed);
    ++stats_.client_assertions_accepted;
    return client_id;
}

std::pair<std::string, std::string> app::issue_tokens(std::uint64_t grant_id, const std::string& scope,
                                                      time_point now, bool with_refresh) {
    // A long-running sandbox (the CLI, a benchmark) would otherwise keep
    // every token it ever issued. Expired access tokens and codes go; spent
    // refresh tokens stay, or a reuse could not be recognised.
    if (++issued_since_purge_ >= 4096) {
        issued_since_purge_ = 0;
        std::erase_if(access_tokens_,
                      [&](const auto& kv) { return kv.second.expires + std::chrono::hours{1} < now; });
        std::erase_if(codes_,
                      [&](const auto& kv) { return kv.second.expires + std::chrono::hours{1} < now; });
    }
    std::string access = random_token();
    report(secret_kind::access_token, access);
    access_tokens_[access] = access_token{grant_id, now + opts_.access_token_lifetime, scope};
    std::string refresh;
    if (with_refresh) {
        refresh = random_token();
        report(secret_kind::refresh_token, refresh);
        refresh_tokens_[refresh] = refresh_token{grant_id, now + refresh_lifetime, scope, false, {}, {}, {}};
    }
    return {std::move(access), std::move(refresh)};
}

http_response app::token_response(const std::string& access, const std::string& refresh,
                                  time_point now) const {
    const access_token& a = access_tokens_.at(access);
    const grant& g = grants_.at(a.grant);
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(a.expires - now).count();
    json_writer w;
    w.begin_object();
    w.member("access_token", access);
    w.member("token_type", "Bearer");
    w.member("expires_in", static_cast<std::int64_t>(std::max<std::int64_t>(left, 0)));
    w.member("scope", a.scope);
    if (!refresh.empty()) w.member("refresh_token", refresh);
    // SMART App Launch: the patient in context comes back beside the token.
    // A backend (client_credentials) grant has none.
    if (!g.patient_id.empty()) w.member("patient", g.patient_id);
    w.end_object();
    http_response r = make(200, plain_json, w.take());
    r.headers.emplace_back("Cache-Control", "no-store");
    r.headers.emplace_back("Pragma", "no-cache");
    return r;
}

void app::revoke_grant(std::uint64_t grant_id) {
    const auto it = grants_.find(grant_id);
    if (it != grants_.end()) it->second.revoked = true;
}

http_response app::token_authorization_code(const params& form, const std::string& client_id,
                                            time_point now) {
    const std::string* code = find_param(form, "code");
    const std::string* redirect_uri = find_param(form, "redirect_uri");
    const std::string* verifier = find_param(form, "code_verifier");
    if (!code) return oauth_error(400, "invalid_request", "code is required");
    const auto it = codes_.find(*code);
    if (it == codes_.end()) return oauth_error(400, "invalid_grant", "Unknown authorization code");
    auth_code& c = it->second;
    if (c.used) {
        // RFC 6749 §4.1.2: a code used twice is refused, and the tokens
        // issued for it are revoked.
        if (c.grant != 0) revoke_grant(c.grant);
        return oauth_error(400, "invalid_grant", "Authorization code already used");
    }
    if (now >= c.expires) return oauth_error(400, "invalid_grant", "Authorization code expired");
    if (c.client_id != client_id)
        return oauth_error(400, "invalid_grant", "Code was issued to another client");
    // RFC 6749 §4.1.3: the same redirect_uri as in the authorization request.
    if (!redirect_uri || *redirect_uri != c.redirect_uri)
        return oauth_error(400, "invalid_grant", "redirect_uri does not match");
    if (!verifier) return oauth_error(400, "invalid_request", "code_verifier is required (PKCE)");
    // RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) must equal the challenge.
    if (!valid_pkce_string(*verifier) || pkce_s256(*verifier) != c.challenge)
        return oauth_error(400, "invalid_grant", "PKCE verification failed");
    c.used = true;
    const std::uint64_t gid = next_grant_++;
    grants_[gid] = grant{c.patient_id, c.scope, false};
    c.grant = gid;
    // Refresh tokens only where offline_access (or online_access) was granted.
    const bool with_refresh = has_scope(c.scope, "offline_access") || has_scope(c.scope, "online_access");
    const auto [access, refresh] = issue_tokens(gid, c.scope, now, with_refresh);
    return token_response(access, refresh, now);
}

http_response app::token_refresh(const params& form, time_point now) {
    const std::string* presented = find_param(form, "refresh_token");
    if (!presented) return oauth_error(400, "invalid_request", "refresh_token is required");
    const auto it = refresh_tokens_.find(*presented);
    if (it == refresh_tokens_.end()) return oauth_error(400, "invalid_grant", "Unknown refresh token");
    refresh_token& rt = it->second;
    grant& g = grants_.at(rt.grant);
    last_refresh_patient_ = g.patient_id;
    if (g.revoked) return oauth_error(400, "invalid_grant", "The grant was revoked");
    if (now >= rt.expires) return oauth_error(400, "invalid_grant", "Refresh token expired");
    if (rt.rotated) {
        // Reuse of a rotated token (OAuth 2.0 Security BCP §4.14.2): either
        // a lost response (grace: hand back the same pair) or a theft (revoke
        // the whole grant, as eCW and node-oidc-provider do).
        if (opts_.refresh_reuse_grace && now - rt.rotated_at <= reuse_grace_window &&
            access_tokens_.count(rt.next_access) != 0)
            return token_response(rt.next_access, rt.next_refresh, now);
        revoke_grant(rt.grant);
        return oauth_error(400, "invalid_grant", "Refresh token was already used; the grant is revoked");
    }
    std::string scope = rt.scope;
    if (const std::string* asked = find_param(form, "scope")) {
        // RFC 6749 §6: a narrower scope may be asked for, never a wider one.
        for (const auto& s : split_spaces(*asked))
            if (!has_scope(rt.scope, s))
                return oauth_error(400, "invalid_scope", "Scope exceeds the original grant: " + s);
        if (!split_spaces(*asked).empty()) scope = *asked;
    }
    const auto grant_id = rt.grant;
    // Rotation: every refresh issues a new refresh token; the old one is spent.
    auto [access, refresh] = issue_tokens(grant_id, scope, now, true);
    refresh_token& old = refresh_tokens_.at(*presented);  // issue_tokens may rehash
    old.rotated = true;
    old.rotated_at = now;
    old.next_access = access;
    old.next_refresh = refresh;
    return token_response(access, refresh, now);
}

// ---- FHIR -------------------------------------------------------------------

http_response app::fhir(const http_request& req, std::string_view path, const params& query, time_point now) {
    // /fhir/{Type}, /fhir/{Type}/_search, /fhir/{Type}/{id}
    std::string_view rest = path.substr(6);
    const auto slash = rest.find('/');
    const std::string_view type_name = rest.substr(0, slash);
    const std::string_view tail =
        slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    const auto t = parse_rtype(type_name);
    if (!t || !served(*t) || tail.find('/') != std::string_view::npos) {
        // eCW: Appointment lives in the healow Scheduling API, not here.
        return outcome(404, "not-supported", "Resource type not served: " + std::string(type_name));
    }
    ++stats_.fhir_calls;

    // Injected faults, one draw per data request (deterministic from the seed).
    transport_fault fault = transport_fault::none;
    {
        const double u = faults_.real();
        double edge = opts_.rate_429;
        if (u < edge) return outcome(429, "throttled", "Injected 429");
        edge += opts_.rate_500;
        if (u < edge) return outcome(500, "exception", "Injected 500");
        edge += opts_.rate_reset;
        if (u < edge) {
            fault = transport_fault::reset;
        } else if (u < edge + opts_.rate_truncated) {
            fault = transport_fault::truncate;
        }
    }

    http_response unauthorized;
    const access_token* tok = bearer(req, now, unauthorized);
    if (!tok) return unauthorized;
    const std::string patient = grants_.at(tok->grant).patient_id;
    if (!scope_allows_read(tok->scope, *t)) {
        http_response r =
            outcome(403, "forbidden", "The token's scope does not allow reading " + std::string(type_name));
        r.headers.emplace_back("WWW-Authenticate",
                               "Bearer realm=\"headachemd-sandbox\", error=\"insufficient_scope\"");
        return r;
    }

    http_response r;
    std::optional<scripted_fault> script;
    if (tail.empty() || tail == "_search") {
        params p = query;
        if (tail == "_search") {
            if (req.method != "POST") return outcome(405, "not-supported", "Use POST for _search");
            const auto form = parse_form(req.body);
            if (!form) return outcome(400, "invalid", "Malformed form body");
            p.insert(p.end(), form->begin(), form->end());
        } else if (req.method != "GET") {
            return outcome(405, "not-supported", "Method not allowed");
        }
        r = search(*t, p, patient, path.substr(0, 6 + type_name.size()), now, script);
    } else {
        if (req.method != "GET") return outcome(405, "not-supported", "Method not allowed");
        script = take_script(*t, 1);
        r = read(*t, std::string(tail), patient);
    }
    if (r.status == 200) r.fault = fault;
    if (script) apply_script(r, *script);
    return r;
}

const app::access_token* app::bearer(const http_request& req, time_point now, http_response& refusal) const {
    // RFC 6750: a bearer token that is valid, unexpired and not revoked.
    const std::string_view auth = req.authorization;
    const access_token* tok = nullptr;
    if (auth.size() > 7 && iequals(auth.substr(0, 7), "Bearer ")) {
        const auto it = access_tokens_.find(std::string(auth.substr(7)));
        if (it != access_tokens_.end()) tok = &it->second;
    }
    if (tok && now < tok->expires && !grants_.at(tok->grant).revoked) return tok;
    refusal = outcome(401, "login", "A valid bearer access token is required");
    refusal.headers.emplace_back(
        "WWW-Authenticate",
        auth.empty() ? std::string("Bearer realm=\"headachemd-sandbox\"")
                     : std::string("Bearer realm=\"headachemd-sandbox\", error=\"invalid_token\""));
    return nullptr;
}

http_response app::read(rtype t, const std::string& id, const std::string& patient_id) const {
    const record* rec = data_.find(t, id);
    if (!rec) return outcome(404, "not-found", std::string(rtype_name(t)) + "/" + id + " is not known");
    if (rec->patient_id != patient_id)
        return outcome(403, "forbidden", "The resource belongs to another patient");
    // FHIR R4 3.1.0.5: a read of a deleted resource is 410 Gone.
    if (rec->deleted) return outcome(410, "deleted", std::string(rtype_name(t)) + "/" + id + " was deleted");
    http_response r = make(200, fhir_json, data_.render(*rec));
    r.headers.emplace_back("ETag", "W/\"" + std::to_string(rec->version) + "\"");
    return r;
}

std::optional<scripted_fault> app::take_script(rtype t, int page) {
    for (auto& f : scripts_) {
        if (f.count <= 0 || f.token) continue;
        if (!f.type.empty() && f.type != rtype_name(t)) continue;
        if (f.page > 0 && f.page != page) continue;
        --f.count;
        return f;
    }
    return std::nullopt;
}

std::optional<scripted_fault> app::take_token_script() {
    for (auto& f : scripts_) {
        if (f.count <= 0 || !f.token) continue;
        --f.count;
        return f;
    }
    return std::nullopt;
}

void app::apply_script(http_response& r, const scripted_fault& f) {
    using k = scripted_fault::kind;
    switch (f.what) {
        case k::status:
            r = outcome(f.status, f.status == 429 ? "throttled" : "exception",
                        "Scripted HTTP " + std::to_string(f.status));
            r.scripted = true;
            if (!f.retry_after.empty()) r.headers.emplace_back("Retry-After", f.retry_after);
            break;
        case k::reset:
            r.fault = transport_fault::reset;
            break;
        case k::reset_mid_body:
            r.fault = transport_fault::reset_mid_body;
            break;
        case k::truncated_body:
            r.fault = transport_fault::truncate;
            break;
        case k::lying_length:
            // Content-Length is computed from the body when serialized, so
            // it matches the half: only the JSON can tell.
            r.fault = transport_fault::none;
            r.body.resize(r.body.size() / 2);
            break;
        case k::short_length:
            r.fault = transport_fault::none;
            r.declared_length = r.body.size() / 2;
            break;
        case k::slow:
            r.delay = f.delay;
            break;
        case k::stall_after_head:
            r.fault = transport_fault::stall;
            r.interval = f.delay;
            break;
        case k::interim_flood:
            r.fault = transport_fault::interim_flood;
            r.interval = std::max(f.delay, std::chrono::milliseconds(1));
            break;
        case k::malformed_json:
            r = make(200, fhir_json,
                     R"({"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":)");
            break;
        case k::operation_outcome:
            // Some servers answer a search they cannot run with 200 and an
            // OperationOutcome instead of a Bundle.
            r = outcome(200, "too-costly", "Scripted OperationOutcome with 200");
            break;
        case k::gzip_bomb: {
            // Made once: deflating 100 MiB takes a moment.
            static const std::string bomb = gzip_zeros(std::size_t(100) << 20);
            r = make(200, fhir_json, bomb);
            r.headers.emplace_back("Content-Encoding", "gzip");
            r.encoded = true;
            break;
        }
        case k::gzip_corrupt:
            r.body = gzip_encode(r.body);
            // RFC 1952 §2.3.1: the trailer's CRC-32 is the 8th byte from the end on.
            r.body[r.body.size() - 8] = static_cast<char>(r.body[r.body.size() - 8] ^ 0x5a);
            r.headers.emplace_back("Content-Encoding", "gzip");
            r.encoded = true;
            break;
        case k::unknown_encoding:
            r.headers.emplace_back("Content-Encoding", "br");
            r.encoded = true;
            break;
        case k::other_patient:
        case k::next_loop:
        case k::next_loop_new_url:
        case k::endless_fresh:
        case k::endless_empty:
        case k::wrong_type:
            break;  // applied while the search builds its Bundle
    }
}

namespace {

// The patient the search is about. A patient-level token may only read
// its own compartment (SMART patient/ scopes): another patient is 403.
std::optional<http_response> check_compartment(rtype t, const params& p, const std::string& patient_id) {
    std::vector<std::string_view> ref_params;
    if (t == rtype::patient)
        ref_params = {"_id"};
    else if (t == rtype::appointment)
        ref_params = {"patient", "actor"};
    else
        ref_params = {"patient", "subject"};
    for (const auto& [k, v] : p) {
        if (std::find(ref_params.begin(), ref_params.end(), k) == ref_params.end()) continue;
        std::string_view values = v;
        // A comma is OR (FHIR R4 search 3.1.1.5.2); every value must be ours.
        while (true) {
            const auto comma = values.find(',');
            const std::string_view one = values.substr(0, comma);
            const std::string who = k == "_id" ? std::string(one) : patient_of_reference(one);
            if (who.empty()) return outcome(400, "invalid", "Parameter " + k + " must reference a Patient");
            if (who != patient_id)
                return outcome(403, "forbidden", "The token is not authorized for that patient");
            if (comma == std::string_view::npos) break;
            values = values.substr(comma + 1);
        }
    }
    return std::nullopt;
}

struct page_window {
    std::size_t size = 0;
    std::size_t offset = 0;
};

// Paging. Normal mode: _count (clamped) and an opaque offset. eCW mode:
// _count is ignored, the page size is fixed, and a non-standard `page`
// parameter (1-based) selects the page.
std::variant<page_window, http_response> read_paging(const params& p, const options& opts) {
    std::size_t size = static_cast<std::size_t>(opts.default_page_size);
    std::size_t offset = 0;
    if (!opts.ecw_mode) {
        if (const std::string* count = find_param(p, "_count")) {
            const auto n = parse_long(*count);
            if (!n || *n < 0) return outcome(400, "invalid", "_count must be a non-negative integer");
            size = static_cast<std::size_t>(std::min<long>(*n, opts.max_page_size));
        }
        if (const std::string* off = find_param(p, "_getpagesoffset")) {
            const auto n = parse_long(*off);
            if (!n || *n < 0)
                return outcome(400, "invalid", "_getpagesoffset must be a non-negative integer");
            offset = static_cast<std::size_t>(*n);
        }
    } else if (const std::string* page = find_param(p, "page")) {
        const auto n = parse_long(*page);
        if (!n || *n < 1) return outcome(400, "invalid", "page must be a positive integer");
        offset = static_cast<std::size_t>(*n - 1) * size;
    }
    return page_window{size, offset};
}

// Each _lastUpdated value: its prefix and the instant's range.
using last_updated_filters = std::vector<std::pair<std::string, std::pair<time_point, time_point>>>;

// _lastUpdated (FHIR R4 search 3.1.1.4.6): prefixes gt, ge, lt, le, eq;
// several values are ANDed.
std::optional<http_response> read_last_updated(const params& p, last_updated_filters& since) {
    for (const auto& [k, v] : p) {
        if (k != "_lastUpdated") continue;
        std::string prefix = "eq";
        std::string_view value = v;
        if (value.size() >= 2 && std::isalpha(static_cast<unsigned char>(value[0])) &&
            std::isalpha(static_cast<unsigned char>(value[1]))) {
            prefix = std::string(value.substr(0, 2));
            value.remove_prefix(2);
        }
        const auto range = parse_fhir_date_range(value);
        if (!range ||
            (prefix != "gt" && prefix != "ge" && prefix != "lt" && prefix != "le" && prefix != "eq"))
            return outcome(400, "invalid", "_lastUpdated must be [gt|ge|lt|le|eq]<FHIR instant>");
        since.emplace_back(prefix, *range);
    }
    return std::nullopt;
}

bool last_updated_matches(time_point lu, const last_updated_filters& since) {
    bool keep = true;
    for (const auto& [prefix, range] : since) {
        if (prefix == "gt")
            keep = keep && lu >= range.second;
        else if (prefix == "ge")
            keep = keep && lu >= range.first;
        else if (prefix == "lt")
            keep = keep && lu < range.first;
        else if (prefix == "le")
            keep = keep && lu < range.second;
        else
            keep = keep && lu >= range.first && lu < range.second;
    }
    return keep;
}

}  // namespace

http_response app::search(rtype t, const params& p, const std::string& patient_id, std::string_view path,
                          time_point now, std::optional<scripted_fault>& script) {
    if (auto refused = check_compartment(t, p, patient_id)) return std::move(*refused);

    const auto paging = read_paging(p, opts_);
    if (const auto* bad = std::get_if<http_response>(&paging)) return *bad;
    const std::size_t size = std::get<page_window>(paging).size;
    const std::size_t offset = std::get<page_window>(paging).offset;

    // eCW mode ignores _lastUpdated, as eCW's facade has no _lastUpdated
    // (it declares it for no type).
    last_updated_filters since;
    if (!opts_.ecw_mode) {
        if (auto bad = read_last_updated(p, since)) return std::move(*bad);
    }
    script = take_script(t, size == 0 ? 1 : static_cast<int>(offset / size) + 1);
    // other_patient: a broken EHR (or proxy cache) hands out another
    // patient's resources under this patient's search.
    std::string data_patient = patient_id;
    if (script && script->what == scripted_fault::kind::other_patient) {
        for (const auto& other : data_.patient_ids()) {
            if (other != patient_id && !data_.of_patient(t, other).empty()) {
                data_patient = other;
                break;
            }
        }
    }
    // wrong_type: the entries of another type (Observation, or Condition
    // for an Observation search) stand in for the searched ones.
    const rtype entry_type = script && script->what == scripted_fault::kind::wrong_type
                                 ? (t == rtype::observation ? rtype::condition : rtype::observation)
                                 : t;
    std::vector<const record*> matches;
    for (const record* rec : data_.of_patient(entry_type, data_patient))
        if (last_updated_matches(rec->last_updated, since)) matches.push_back(rec);

    const std::size_t total = matches.size();
    const std::size_t first = std::min(offset, total);
    const std::size_t last = size == 0 ? first : std::min(first + size, total);
    const bool has_next = size > 0 && last < total;
    const int page_number = size == 0 ? 1 : static_cast<int>(offset / size) + 1;

    if (bad_json_page_ > 0 && page_number == bad_json_page_)
        return make(200, fhir_json,
                    R"({"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":)");

    json_writer w;
    w.begin_object();
    w.member("resourceType", "Bundle");
    w.key("meta").begin_object().member("lastUpdated", format_instant(now)).end_object();
    w.member("type", "searchset");
    w.member("total", total);
    write_search_links(w, p, path, size, first, last, has_next, script);
    const bool empty_page = script && script->what == scripted_fault::kind::endless_empty;
    if (last > first && !empty_page) {
        const bool fresh = script && script->what == scripted_fault::kind::endless_fresh;
        write_search_entries(w, matches, first, last, entry_type, fresh);
    }
    w.end_object();
    return make(200, fhir_json, w.take());
}

void app::write_search_links(json_writer& w, const params& p, std::string_view path, std::size_t size,
                             std::size_t first, std::size_t last, bool has_next,
                             const std::optional<scripted_fault>& script) {
    // Links keep every parameter the client sent, paging ones replaced.
    params kept;
    for (const auto& kv : p)
        if (kv.first != "_getpagesoffset" && kv.first != "page") kept.push_back(kv);
    const auto link_to = [&](std::size_t at) {
        params q = kept;
        if (opts_.ecw_mode) {
            if (at > 0) q.emplace_back("page", std::to_string(at / size + 1));
        } else if (at > 0) {
            q.emplace_back("_getpagesoffset", std::to_string(at));
        }
        const std::string qs = encode_params(q);
        return base_url_ + std::string(path) + (qs.empty() ? "" : "?" + qs);
    };

    w.key("link").begin_array();
    w.begin_object().member("relation", "self").member("url", link_to(first)).end_object();
    if (script && script->what == scripted_fault::kind::next_loop) {
        w.begin_object().member("relation", "next").member("url", link_to(0)).end_object();
    } else if (script && script->what == scripted_fault::kind::next_loop_new_url) {
        // The first page, with a new `_loop` value; the links of that page
        // keep it, so no URL of the loop ever repeats.
        params q;
        for (const auto& kv : kept)
            if (kv.first != "_loop") q.push_back(kv);
        q.emplace_back("_loop", std::to_string(++loop_serial_));
        const std::string url = base_url_ + std::string(path) + "?" + encode_params(q);
        w.begin_object().member("relation", "next").member("url", url).end_object();
    } else if (script && (script->what == scripted_fault::kind::endless_fresh ||
                          script->what == scripted_fault::kind::endless_empty)) {
        // A chain that never ends and never repeats a URL (nor, for
        // endless_fresh, a resource id).
        params q;
        for (const auto& kv : kept)
            if (kv.first != "_chain") q.push_back(kv);
        q.emplace_back("_chain", std::to_string(++loop_serial_));
        const std::string url = base_url_ + std::string(path) + "?" + encode_params(q);
        w.begin_object().member("relation", "next").member("url", url).end_object();
    } else if (has_next) {
        const std::string next = next_link_override_.empty() ? link_to(last) : next_link_override_;
        w.begin_object().member("relation", "next").member("url", next).end_object();
    }
    w.end_array();
}

void app::write_search_entries(json_writer& w, const std::vector<const record*>& matches, std::size_t first,
                               std::size_t last, rtype entry_type, bool fresh) const {
    w.key("entry").begin_array();
    for (std::size_t i = first; i < last; ++i) {
        const record& rec = *matches[i];
        std::string rendered = data_.render(rec);
        std::string id = rec.id;
        if (fresh) {
            // The same resource under an id never served before.
            id += "-chain-" + std::to_string(loop_serial_);
            const std::string from = "\"id\":\"" + rec.id + "\"";
            if (const auto at = rendered.find(from); at != std::string::npos)
                rendered.replace(at, from.size(), "\"id\":\"" + id + "\"");
        }
        w.begin_object();
        w.member("fullUrl", base_url_ + "/fhir/" + std::string(rtype_name(entry_type)) + "/" + id);
        w.key("resource").raw(rendered);
        w.key("search").begin_object().member("mode", "match").end_object();
        w.end_object();
    }
    w.end_array();
}

// ---- controls ---------------------------------------------------------------

std::string app::issue_refresh_token(const std::string& patient_id, std::string scope) {
    std::lock_guard lock(mu_);
    if (!data_.has_patient(patient_id)) throw std::invalid_argument("sandbox: unknown patient " + patient_id);
    if (scope.empty()) scope = default_scope();
    if (!has_scope(scope, "offline_access")) scope += " offline_access";
    const std::uint64_t gid = next_grant_++;
    grants_[gid] = grant{patient_id, scope, false};
    const time_point now = opts_.now();
    std::string refresh = random_token();
    report(secret_kind::refresh_token, refresh);
    refresh_tokens_[refresh] = refresh_token{gid, now + refresh_lifetime, scope, false, {}, {}, {}};
    return refresh;
}

void app::revoke_patient_grants(const std::string& patient_id) {
    std::lock_guard lock(mu_);
    for (auto& [id, g] : grants_)
        if (g.patient_id == patient_id) g.revoked = true;
}

void app::expire_access_tokens() {
    std::lock_guard lock(mu_);
    const time_point now = opts_.now();
    for (auto& [tok, a] : access_tokens_) a.expires = std::min(a.expires, now);
}

void app::set_authorize_patient(const std::string& patient_id) {
    std::lock_guard lock(mu_);
    if (!data_.has_patient(patient_id)) throw std::invalid_argument("sandbox: unknown patient " + patient_id);
    authorize_patient_ = patient_id;
}

void app::set_refresh_reuse_grace(bool on) {
    std::lock_guard lock(mu_);
    opts_.refresh_reuse_grace = on;
}

void app::set_fault_rates(double rate_429, double rate_500, double rate_reset, double rate_truncated) {
    std::lock_guard lock(mu_);
    opts_.rate_429 = rate_429;
    opts_.rate_500 = rate_500;
    opts_.rate_reset = rate_reset;
    opts_.rate_truncated = rate_truncated;
}

void app::set_latency(std::chrono::milliseconds latency) {
    std::lock_guard lock(mu_);
    opts_.latency = latency;
}

void app::set_gzip(bool on) {
    std::lock_guard lock(mu_);
    opts_.gzip = on;
}

void app::set_next_link_override(std::string url) {
    std::lock_guard lock(mu_);
    next_link_override_ = std::move(url);
}

void app::set_bad_json_page(int n) {
    std::lock_guard lock(mu_);
    bad_json_page_ = n;
}

std::vector<std::string> app::issued_tokens() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    out.reserve(refresh_tokens_.size() + access_tokens_.size());
    for (const auto& [token, _] : refresh_tokens_) out.push_back(token);
    for (const auto& [token, _] : access_tokens_) out.push_back(token);
    return out;
}

std::string app::last_refresh_patient() const {
    std::lock_guard lock(mu_);
    return last_refresh_patient_;
}

server::refresh_token_state app::refresh_token_state_of(const std::string& token) const {
    std::lock_guard lock(mu_);
    const time_point now = opts_.now();
    const auto it = refresh_tokens_.find(token);
    if (it == refresh_tokens_.end()) return server::refresh_token_state::unknown;
    // The same order of checks as token_refresh: a revoked grant first.
    if (grants_.at(it->second.grant).revoked) return server::refresh_token_state::revoked;
    if (now >= it->second.expires) return server::refresh_token_state::expired;
    if (it->second.rotated) return server::refresh_token_state::spent;
    return server::refresh_token_state::live;
}

void app::add_scripted_fault(scripted_fault f) {
    std::lock_guard lock(mu_);
    scripts_.push_back(std::move(f));
}

void app::clear_scripted_faults() {
    std::lock_guard lock(mu_);
    scripts_.clear();
    bulk_poll_scripts_.clear();
}

void app::script_bulk_polls(bulk_poll_fault f) {
    std::lock_guard lock(mu_);
    bulk_poll_scripts_.push_back(std::move(f));
}

void app::script_bulk_file_redirects(int count) {
    std::lock_guard lock(mu_);
    bulk_redirects_left_ = std::max(count, 0);
}

void app::script_bulk_error_files(int count) {
    std::lock_guard lock(mu_);
    bulk_error_files_left_ = std::max(count, 0);
}

void app::fail_token_requests(int status, std::string error, int count) {
    std::lock_guard lock(mu_);
    token_fail_status_ = status;
    token_fail_error_ = std::move(error);
    token_fail_count_ = count;
}

void app::echo_token_requests(int status, std::string error, int count) {
    std::lock_guard lock(mu_);
    token_echo_status_ = status;
    token_echo_error_ = std::move(error);
    token_echo_count_ = count;
}

void app::fail_revocations(int status, int count) {
    std::lock_guard lock(mu_);
    revoke_fail_status_ = status;
    revoke_fail_count_ = count;
}

counters app::stats() const {
    std::lock_guard lock(mu_);
    return stats_;
}

void app::reset_counters() {
    std::lock_guard lock(mu_);
    stats_ = counters{};
}

void app::note_reset_or_truncation(transport_fault f) {
    std::lock_guard lock(mu_);
    if (f == transport_fault::reset) ++stats_.resets;
    if (f == transport_fault::truncate) ++stats_.truncations;
    if (f == transport_fault::stall || f == transport_fault::interim_flood) ++stats_.stalls;
}

void app::note_handshake(bool ok) {
    std::lock_guard lock(mu_);
    ++stats_.tls_handshakes;
    if (!ok) ++stats_.tls_handshake_failures;
}

std::vector<std::string> app::patient_ids() const {
    std::lock_guard lock(mu_);
    return data_.patient_ids();
}

std::map<std::string, std::size_t> app::count_by_type() const {
    std::lock_guard lock(mu_);
    std::map<std::string, std::size_t> out;
    for (int i = 0; i < rtype_count; ++i) {
        const auto t = static_cast<rtype>(i);
        if (served(t)) out[std::string(rtype_name(t))] = data_.count(t);
    }
    return out;
}

namespace {
rtype checked_type(std::string_view type) {
    const auto t = parse_rtype(type);
    if (!t) throw std::invalid_argument("sandbox: unknown resource type " + std::string(type));
    return *t;
}
}  // namespace

std::size_t app::count_for(const std::string& patient_id, const std::string& type) const {
    const rtype t = checked_type(type);
    std::lock_guard lock(mu_);
    if (!data_.has_patient(patient_id)) throw std::invalid_argument("sandbox: unknown patient " + patient_id);
    return served(t) ? data_.of_patient(t, patient_id).size() : 0;
}

std::vector<std::string> app::ids_of(const std::string& type, const std::string& patient_id) const {
    const rtype t = checked_type(type);
    std::lock_guard lock(mu_);
    if (!data_.has_patient(patient_id)) throw std::invalid_argument("sandbox: unknown patient " + patient_id);
    std::vector<std::string> out;
    for (const record* r : data_.of_patient(t, patient_id)) out.push_back(r->id);
    return out;
}

void app::update_resource(const std::string& type, const std::string& id) {
    const rtype t = checked_type(type);
    std::lock_guard lock(mu_);
    if (!data_.update(t, id, opts_.now())) throw std::invalid_argument("sandbox: no live " + type + "/" + id);
    if (t == rtype::patient) report_patient(id);  // the phone changes with each revision
}

void app::delete_resource(const std::string& type, const std::string& id) {
    const rtype t = checked_type(type);
    std::lock_guard lock(mu_);
    if (!data_.remove(t, id, opts_.now())) throw std::invalid_argument("sandbox: no live " + type + "/" + id);
}

std::string app::add_resource(const std::string& type, const std::string& patient_id) {
    const rtype t = checked_type(type);
    if (t == rtype::patient) throw std::invalid_argument("sandbox: add_resource cannot add a Patient");
    std::lock_guard lock(mu_);
    std::string id = data_.add(t, patient_id, opts_.now());
    if (id.empty()) throw std::invalid_argument("sandbox: unknown patient " + patient_id);
    return id;
}

// ---- Bulk Data export (Bulk Data Access IG v2.0.0) --------------------------

std::optional<http_response> app::refuse_non_system(const http_request& req, time_point now,
                                                    const access_token*& tok) const {
    http_response unauthorized;
    tok = bearer(req, now, unauthorized);
    if (!tok) return unauthorized;
    // SMART Backend Services: a bulk export is a system-level read. A
    // patient's token (its grant has a patient) exports nothing, whatever
    // its scopes say.
    if (!grants_.at(tok->grant).patient_id.empty()) {
        http_response r = outcome(403, "forbidden", "Bulk export needs a backend (system) access token");
        r.headers.emplace_back("WWW-Authenticate",
                               "Bearer realm=\"headachemd-sandbox\", error=\"insufficient_scope\"");
        return r;
    }
    return std::nullopt;
}

std::string app::export_status_url(const std::string& job_id) const {
    // IG v2.0.0 "Response - Success": Content-Location is an absolute URL.
    // eClinicalWorks documents a `$export-poll-location?job_id=` URL on the
    // FHIR base; a client must poll exactly what it was given. Job ids are
    // "job-N", nothing to percent-encode.
    if (opts_.ecw_mode) return base_url_ + "/fhir/$export-poll-location?job_id=" + job_id;
    return base_url_ + "/bulk/status/" + job_id;
}

std::string app::export_file_url(const std::string& job_id, std::string_view type) const {
    return base_url_ + "/bulk/files/" + job_id + "/" + std::string(type) + ".ndjson";
}

http_response app::export_kickoff(const http_request& req, const export_target& target, const params& query,
                                  time_point now) {
    const access_token* tok = nullptr;
    if (auto refused = refuse_non_system(req, now, tok)) return std::move(*refused);
    // One Group, the whole clinic (eCW: a Registry query the practice
    // enables; Epic: a registry). Any other id is unknown (IG: 404 with an
    // OperationOutcome, as any read of a missing resource).
    if (target.level == export_level::group && target.group_id != opts_.bulk_group_id)
        return outcome(404, "not-found", "Group/" + target.group_id + " is not known");

    std::vector<rtype> served_types;
    for (int i = 0; i < rtype_count; ++i)
        if (served(static_cast<rtype>(i))) served_types.push_back(static_cast<rtype>(i));
    auto checked = check_kickoff(req.accept, req.prefer, query, served_types);
    if (auto* refusal = std::get_if<export_refusal>(&checked))
        return outcome(refusal->status, refusal->code, refusal->diagnostics);
    const export_params& p = std::get<export_params>(checked);

    // IG v2.0.0 "_type": without it, every type within the client's
    // authorization; with it, a type the token may not read is refused
    // (403, the scope is the client's problem, not the request's syntax).
    std::vector<rtype> types;
    if (p.types.empty()) {
        for (const rtype t : served_types)
            if (scope_reads(tok->scope, "system", t)) types.push_back(t);
        if (types.empty()) return outcome(403, "forbidden", "The token's scope allows exporting no type");
    } else {
        for (const rtype t : p.types)
            if (!scope_reads(tok->scope, "system", t))
                return outcome(403, "forbidden",
                               "The token's scope does not allow exporting " + std::string(rtype_name(t)));
        types = p.types;
    }

    // Every resource of the sandbox belongs to a patient, and the Group
    // holds every patient, so the three levels export the same records.
    const std::string job_id = "job-" + std::to_string(next_export_job_++);
    export_job job;
    job.transaction_time = now;
    job.request = base_url_ + req.target;
    job.pending_polls = std::max(opts_.bulk_pending_polls, 0);
    const std::size_t per_file = opts_.bulk_resources_per_file > 0
                                     ? static_cast<std::size_t>(opts_.bulk_resources_per_file)
                                     : SIZE_MAX;
    for (const rtype t : types) {
        const std::string type(rtype_name(t));
        std::string ndjson;
        std::size_t count = 0;
        int part = 0;
        // A full file goes out as "Type" (the first), "Type-2", … (IG: a
        // server may split a type's resources over several files).
        const auto flush = [&] {
            const std::string name = ++part == 1 ? type : type + "-" + std::to_string(part);
            job.output.push_back({type, export_file_url(job_id, name), count});
            stats_.bulk_output_resources[type] += count;
            job.files.emplace(name, std::move(ndjson));
            ndjson.clear();
            count = 0;
        };
        for (const auto& patient : data_.patient_ids()) {
            for (const record* rec : data_.of_patient(t, patient)) {
                // _since: resources "added or modified after" it (IG v2.0.0).
                if (p.since && rec->last_updated <= *p.since) continue;
                append_ndjson_line(ndjson, data_.render(*rec));
                if (++count == per_file) flush();
            }
        }
        if (t == rtype::observation && opts_.bulk_fill_bytes > 0 && per_file == SIZE_MAX) {
            const std::string originals = ndjson;
            append_copies(ndjson, count, originals, opts_.bulk_fill_bytes);
        }
        // IG v2.0.0: a type with no resources has no output entry.
        if (count > 0) flush();
    }
    // IG v2.0.0 deleted[]: with _since, the exported types' resources
    // deleted after it, as Bundles (type transaction) of DELETE requests,
    // here one Bundle per type in one file. Bulk v1.0.1 (eCW) has no
    // deleted[]: such a server's client learns of deletions another way.
    if (p.since && !opts_.ecw_mode) {
        std::string ndjson;
        std::size_t bundles = 0;
        for (const rtype t : types) {
            std::vector<std::string> ids;
            for (const auto& patient : data_.patient_ids())
                for (const record* rec : data_.deleted_of_patient(t, patient))
                    if (rec->last_updated > *p.since) ids.push_back(rec->id);
            if (ids.empty()) continue;
            append_ndjson_line(ndjson, delete_bundle(rtype_name(t), ids));
            ++bundles;
        }
        if (bundles > 0) {
            job.deleted.push_back({"Bundle", export_file_url(job_id, "deleted"), bundles});
            job.files.emplace("deleted", std::move(ndjson));
        }
    }
    // Scripted (script_bulk_error_files): an error[] file with a warning
    // and an error, the per-resource problems a real export reports.
    if (bulk_error_files_left_ > 0) {
        --bulk_error_files_left_;
        std::string ndjson;
        append_ndjson_line(ndjson, operation_outcome_json("warning", "informational",
                                                          "Scripted warning: a resource was exported "
                                                          "without an element the server could not render"));
        append_ndjson_line(ndjson,
                           operation_outcome_json("error", "processing",
                                                  "Scripted error: a resource could not be exported"));
        job.error.push_back({"OperationOutcome", export_file_url(job_id, "errors"), 2});
        job.files.emplace("errors", std::move(ndjson));
    }
    export_jobs_.emplace(job_id, std::move(job));

    http_response r;
    r.status = 202;
    r.headers.emplace_back("Content-Location", export_status_url(job_id));
    return r;
}

http_response app::export_status(const http_request& req, const std::string& job_id, time_point now) {
    const access_token* tok = nullptr;
    if (auto refused = refuse_non_system(req, now, tok)) return std::move(*refused);
    const auto it = export_jobs_.find(job_id);
    if (it == export_jobs_.end()) return outcome(404, "not-found", "No such export job");
    if (req.method == "DELETE") {
        // IG v2.0.0 "Delete a Bulk Data Request": 202, and the job's status
        // and files are gone (404) from then on, capability URLs included.
        export_jobs_.erase(it);
        std::erase_if(capabilities_, [&](const auto& c) { return c.second.job_id == job_id; });
        http_response r;
        r.status = 202;
        return r;
    }
    if (auto scripted = take_bulk_poll_script(now)) return std::move(*scripted);
    export_job& job = it->second;
    if (job.pending_polls > 0) {
        // IG v2.0.0 "Response - In-Progress Status": 202, X-Progress
        // optional. Retry-After only as options::bulk_poll_retry_after says:
        // the sandbox's jobs are counted in polls, not time, so a client
        // that polls early is answered all the same.
        const int poll = opts_.bulk_pending_polls - job.pending_polls + 1;
        --job.pending_polls;
        http_response r;
        r.status = 202;
        r.headers.emplace_back("X-Progress", "in progress, poll " + std::to_string(poll) + " of " +
                                                 std::to_string(opts_.bulk_pending_polls));
        if (opts_.bulk_poll_retry_after->count() > 0) {
            r.headers.emplace_back("Retry-After", std::to_string(opts_.bulk_poll_retry_after->count()));
            ++stats_.bulk_retry_after_seconds;
        }
        return r;
    }
    manifest m;
    m.transaction_time = job.transaction_time;
    m.request = job.request;
    m.output = job.output;
    m.error = job.error;
    m.deleted = job.deleted;
    m.form = opts_.ecw_mode ? manifest_form::v1_0_1 : manifest_form::v2;
    ++stats_.bulk_manifests;
    // The manifest is JSON, not a FHIR resource (Content-Type application/json).
    http_response r = make(200, plain_json, render_manifest(m));
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
}

http_response app::export_file(const http_request& req, std::string_view rest, time_point now) {
    const access_token* tok = nullptr;
    if (auto refused = refuse_non_system(req, now, tok)) return std::move(*refused);
    // {job}/{name}.ndjson, name a type, "errors" or "deleted"
    constexpr std::string_view suffix = ".ndjson";
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos || rest.size() < slash + 1 + suffix.size() ||
        rest.substr(rest.size() - suffix.size()) != suffix)
        return outcome(404, "not-found", "No such export file");
    const std::string job_id(rest.substr(0, slash));
    const auto job = export_jobs_.find(job_id);
    if (job == export_jobs_.end()) return outcome(404, "not-found", "No such export file");
    const std::string name(rest.substr(slash + 1, rest.size() - slash - 1 - suffix.size()));
    const auto file = job->second.files.find(name);
    if (file == job->second.files.end()) return outcome(404, "not-found", "No such export file");
    if (bulk_redirects_left_ > 0) {
        // Scripted: Oracle Health's file URLs answer 307 to another host
        // (issue 15). The target is a capability URL on the file origin,
        // which needs no bearer, so a client that forwards its
        // Authorization header there leaks it (file_origin counts them).
        --bulk_redirects_left_;
        ++stats_.bulk_file_redirects;
        const std::string capability = random_token(24);
        report(secret_kind::bulk_capability, capability);
        capabilities_.emplace(capability, capability_file{job_id, name});
        http_response r;
        r.status = 307;
        r.headers.emplace_back("Location", file_origin_url_ + "/files/" + capability);
        return r;
    }
    note_file_served(name);
    // IG v2.0.0 "Bulk Data Output File Request": application/fhir+ndjson.
    return make(200, "application/fhir+ndjson", file->second);
}

void app::note_file_served(const std::string& name) {
    if (name == "errors") ++stats_.bulk_error_file_downloads;
    if (name == "deleted") ++stats_.bulk_deleted_file_downloads;
}

http_response app::file_origin(const http_request& req, const std::string& path) {
    ++stats_.file_origin_requests;
    if (!req.authorization.empty()) ++stats_.file_origin_authorization_headers;
    constexpr std::string_view prefix = "/files/";
    if (path.compare(0, prefix.size(), prefix) != 0) return outcome(404, "not-found", "No such file");
    if (req.method != "GET") {
        http_response r = outcome(405, "not-supported", "Method not allowed");
        r.headers.emplace_back("Allow", "GET");
        return r;
    }
    // No bearer check: holding the URL is the authorization, as for a
    // pre-signed storage URL.
    const auto cap = capabilities_.find(path.substr(prefix.size()));
    if (cap == capabilities_.end()) return outcome(404, "not-found", "No such file");
    const auto job = export_jobs_.find(cap->second.job_id);
    if (job == export_jobs_.end()) return outcome(404, "not-found", "No such file");
    const auto file = job->second.files.find(cap->second.file);
    if (file == job->second.files.end()) return outcome(404, "not-found", "No such file");
    ++stats_.file_origin_downloads;
    note_file_served(cap->second.file);
    return make(200, "application/fhir+ndjson", file->second);
}

std::optional<http_response> app::take_bulk_poll_script(time_point now) {
    for (auto& f : bulk_poll_scripts_) {
        if (f.count <= 0) continue;
        --f.count;
        using k = bulk_poll_fault::kind;
        http_response r;
        const auto seconds = std::max<std::int64_t>(f.retry_after.count(), 0);
        switch (f.what) {
            case k::retry_after_seconds:
            case k::retry_after_date:
                ++(f.what == k::retry_after_seconds ? stats_.bulk_retry_after_seconds
                                                    : stats_.bulk_retry_after_dates);
                r.status = 202;
                r.headers.emplace_back("X-Progress", "in progress (scripted)");
                // RFC 9110 §10.2.3: Retry-After = HTTP-date / delay-seconds.
                r.headers.emplace_back("Retry-After",
                                       f.what == k::retry_after_seconds
                                           ? std::to_string(seconds)
                                           : format_http_date(now + std::chrono::seconds(seconds)));
                break;
            case k::too_many_requests:
                ++stats_.bulk_poll_429s;
                r = outcome(429, "throttled", "Scripted: polling too fast");
                break;
            case k::transient:
                // IG v2.0.0 "Response - Error": a transient issue code means
                // the client should retry, not give the job up.
                ++stats_.bulk_poll_transient_errors;
                r = outcome(f.status, f.issue_code, "Scripted transient failure; poll again");
                break;
            case k::fatal:
                ++stats_.bulk_poll_fatal_errors;
                r = outcome(f.status, "exception", "Scripted: the export failed");
                break;
        }
        if ((f.what == k::too_many_requests || f.what == k::transient) && seconds > 0)
            r.headers.emplace_back("Retry-After", std::to_string(seconds));
        r.scripted = true;  // no automatic Retry-After: 1 on the 429
        return r;
    }
    return std::nullopt;
}

}  // namespace headachemd::sandbox::detail
