#include "headachemd/smart/enrollment.hpp"

#include "headachemd/core/base64.hpp"

#include <openssl/crypto.h>
#include <simdjson.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

namespace headachemd::smart {
namespace {

std::vector<std::string> split_spaces(std::string_view s) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && s[i] == ' ') ++i;
        std::size_t j = i;
        while (j < s.size() && s[j] != ' ') ++j;
        if (j > i) out.emplace_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

std::string_view trim_paste(std::string_view s) {
    const auto junk = [](char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '"' || c == '\'';
    };
    while (!s.empty() && junk(s.front())) s.remove_prefix(1);
    while (!s.empty() && junk(s.back())) s.remove_suffix(1);
    return s;
}

}  // namespace

result<callback_params> parse_callback(std::string_view url_or_query) {
    const std::string_view text = trim_paste(url_or_query);
    if (text.empty()) return error{errc::bad_callback, "nothing was pasted"};
    std::string_view query = text;
    if (const auto q = text.find('?'); q != std::string_view::npos) {
        query = text.substr(q + 1);
    } else if (text.find('=') == std::string_view::npos) {
        return error{errc::bad_callback, "the redirect URL has no query (expected ?code=…&state=…)"};
    }
    // A fragment is not part of the query (RFC 3986 §3.5); the code flow
    // never puts parameters there.
    if (const auto h = query.find('#'); h != std::string_view::npos) query = query.substr(0, h);
    const std::string target = "/?" + std::string(query);
    auto parsed = boost::urls::parse_origin_form(target);
    if (!parsed) return error{errc::bad_callback, "the redirect URL's query is malformed"};
    callback_params out;
    for (auto p : parsed->params()) {
        std::optional<std::string>* slot = nullptr;
        if (p.key == "code")
            slot = &out.code;
        else if (p.key == "state")
            slot = &out.state;
        else if (p.key == "error")
            slot = &out.error;
        else if (p.key == "error_description")
            slot = &out.error_description;
        if (!slot) continue;  // iss, session_state and the like are not ours to check
        if (*slot)
            return error{errc::bad_callback, "the parameter '" + std::string(p.key) + "' appears twice"};
        *slot = std::string(p.value);
    }
    if (!out.code && !out.error)
        return error{errc::bad_callback, "the redirect URL has neither a code nor an error parameter"};
    return out;
}

std::string path_of(std::string_view url_or_target) {
    std::string_view s = url_or_target;
    if (const auto scheme = s.find("://"); scheme != std::string_view::npos) {
        s = s.substr(scheme + 3);
        const auto slash = s.find_first_of("/?#");
        s = slash == std::string_view::npos ? std::string_view{} : s.substr(slash);
    }
    const auto end = s.find_first_of("?#");
    std::string path(s.substr(0, end));
    return path.empty() ? "/" : path;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
    // The length of a state is not secret (it is fixed by us); only the
    // content comparison must not exit early.
    if (a.size() != b.size()) return false;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string enrollment_scope(const std::vector<std::string>& configured) {
    std::vector<std::string> all;
    const auto add = [&](std::string_view s) {
        if (!s.empty() && std::find(all.begin(), all.end(), s) == all.end()) all.emplace_back(s);
    };
    for (const auto& s : configured)
        for (const auto& one : split_spaces(s)) add(one);
    for (std::string_view needed : {"launch/patient", "openid", "fhirUser", "offline_access"}) add(needed);
    std::string out;
    for (const auto& s : all) out += (out.empty() ? "" : " ") + s;
    return out;
}

std::vector<std::string> missing_scopes(std::string_view requested, std::string_view granted) {
    std::vector<std::string> out;
    if (granted.empty()) return out;
    const auto have = split_spaces(granted);
    for (auto& s : split_spaces(requested))
        if (std::find(have.begin(), have.end(), s) == have.end()) out.push_back(std::move(s));
    return out;
}

bool valid_fhir_id(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    return std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
    });
}

std::optional<std::string> patient_from_id_token(std::string_view id_token) {
    const auto first = id_token.find('.');
    if (first == std::string_view::npos) return std::nullopt;
    const auto second = id_token.find('.', first + 1);
    if (second == std::string_view::npos) return std::nullopt;
    auto payload = base64url_decode(id_token.substr(first + 1, second - first - 1));
    if (!payload) return std::nullopt;
    simdjson::padded_string text(*payload);
    simdjson::ondemand::parser parser;
    simdjson::ondemand::document doc;
    std::string_view fhir_user;
    if (parser.iterate(text).get(doc) || doc.find_field_unordered("fhirUser").get_string().get(fhir_user))
        return std::nullopt;
    // "Patient/123", "https://ehr/fhir/Patient/123" or ".../Patient/123/_history/2".
    if (const auto h = fhir_user.find("/_history/"); h != std::string_view::npos)
        fhir_user = fhir_user.substr(0, h);
    const auto at = fhir_user.rfind("Patient/");
    if (at == std::string_view::npos || (at > 0 && fhir_user[at - 1] != '/')) return std::nullopt;
    std::string id(fhir_user.substr(at + 8));
    if (!valid_fhir_id(id)) return std::nullopt;
    return id;
}

std::string explain_oauth_error(const error_code& code) {
    // RFC 6749 §4.1.2.1 (authorization endpoint) and §5.2 (token endpoint).
    switch (code.value()) {
        case errc::access_denied:
            return "The person declined, or closed the sign-in without approving. Nothing was stored; run "
                   "enroll "
                   "again when they are ready.";
        case errc::invalid_request:
            return "The EHR rejected the request itself: a missing or unsupported parameter, a PKCE "
                   "challenge it "
                   "did not accept, an unregistered redirect URI, or an app not activated for this practice. "
                   "Run "
                   "`headachemd-sync doctor` to check the registration.";
        case errc::invalid_scope:
            return "The EHR does not offer one of the requested scopes. Run `headachemd-sync doctor` to see "
                   "which, "
                   "and remove it from `scopes` in the config.";
        case errc::unauthorized_client:
            return "This client is not allowed to use the authorization code grant at this EHR. Check the "
                   "app "
                   "registration (grant types) with the EHR vendor.";
        case errc::unsupported_response_type:
            return "The EHR does not support response_type=code for this client. Check the app registration.";
        case errc::server_error:
        case errc::temporarily_unavailable:
            return "The EHR had a problem of its own. Try again in a few minutes.";
        case errc::invalid_grant:
            return "The EHR refused the authorization code: it expired (codes live about a minute), was "
                   "already "
                   "used, or the PKCE verifier or redirect URI did not match. Run enroll again.";
        case errc::invalid_client:
            return "The EHR did not accept this app's credentials: check client_id, the client secret file, "
                   "or "
                   "for private_key_jwt the registered public key (kid) and the server's clock.";
        case errc::unsupported_grant_type:
            return "The EHR does not allow this grant type for this client. Check the app registration.";
        default:
            return "The EHR answered with an error this program does not know. The raw value is shown below.";
    }
}

std::string explain_oauth_error(std::string_view code) {
    return explain_oauth_error(error_code::oauth(code));
}

}  // namespace headachemd::smart
