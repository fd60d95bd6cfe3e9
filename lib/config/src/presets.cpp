// Profile presets: what each EHR family needs, so that an [[ehr]] block
// states only its registration. Every value here can be overridden by an
// explicit key (DESIGN.md, "EHR realities": per-EHR settings, not branches
// in the code).
#include <string>
#include <utility>
#include <vector>

#include "headachemd/config/config.hpp"
#include "headachemd/logging/escape.hpp"

namespace headachemd::config {

namespace {

using namespace std::chrono_literals;

std::vector<resource_setting> resources_of(std::initializer_list<std::string_view> types) {
    std::vector<resource_setting> out;
    for (auto type : types) out.push_back({std::string(type), {}});
    return out;
}

// SMART v1 scopes: what eCW lists; Epic and most servers accept them too.
std::vector<std::string> scopes_for(const std::vector<resource_setting>& resources) {
    // launch/patient: a patient context in standalone launch. openid fhirUser:
    // the patient id can come from the id_token when the token response has no
    // `patient`. offline_access: the refresh token the daemon lives on.
    std::vector<std::string> scopes{"launch/patient", "openid", "fhirUser", "offline_access"};
    for (const auto& r : resources) scopes.push_back("patient/" + r.type + ".read");
    return scopes;
}

ehr_settings eclinicalworks(ehr_settings s) {
    // Appointment is left out: eCW's clinical FHIR facade does not serve it
    // (it lives in the separate healow Scheduling API, with its own base
    // URL), and asking for patient/Appointment.read is a likely cause of a
    // 403 invalid_request at /authorize.
    s.resources =
        resources_of({"Patient", "Condition", "MedicationRequest", "Encounter", "Observation", "Procedure"});
    s.scopes = scopes_for(s.resources);
    // 250 calls a minute per practice base, /authorize and /token included.
    s.requests_per_minute = 250;
    s.max_concurrent = 4;
    // The facade declares _lastUpdated for no type: full pull and hash diff.
    s.use_last_updated = false;
    // No _count; a non-standard `page` parameter instead.
    s.page_size = std::nullopt;
    s.page_param = "page";
    // Single-use refresh tokens that live 90 days.
    s.refresh_token_lifetime = std::chrono::hours{24 * 90};
    s.refresh_token_rotates = true;
    // Its budget is counted per wall-clock minute, and its 429 carries no
    // Retry-After: the limiter and the wait after a 429 follow the minute.
    s.rate_window_fixed_minute = true;
    s.bare_429_waits_for_minute = true;
    // Client assertions in RS384 only, and refresh tokens for confidential
    // clients only (eCW's developer guide, "Backend Services" and "Refresh
    // Token").
    s.assertion_rs384_only = true;
    s.refresh_needs_confidential_client = true;
    return s;
}

ehr_settings epic(ehr_settings s) {
    s.resources = resources_of({"Patient", "Condition", "MedicationRequest", "Appointment", "Encounter",
                                "Observation", "Procedure"});
    // Epic refuses an Observation search without a category; a comma ORs
    // the categories we normalize (vitals, labs, questionnaire scores).
    for (auto& r : s.resources) {
        if (r.type == "Observation") r.params = {{"category", "vital-signs,laboratory,survey"}};
    }
    s.scopes = scopes_for(s.resources);
    s.requests_per_minute = 120;
    s.max_concurrent = 4;
    s.use_last_updated = true;
    s.page_size = 100;
    s.refresh_token_lifetime = 0s;  // set per app registration at Epic: unknown here
    s.refresh_token_rotates = false;
    return s;
}

ehr_settings generic(ehr_settings s) {
    s.resources = resources_of({"Patient", "Condition", "MedicationRequest", "Appointment", "Encounter",
                                "Observation", "Procedure"});
    s.scopes = scopes_for(s.resources);
    s.requests_per_minute = 600;
    s.max_concurrent = 4;
    s.use_last_updated = true;
    s.page_size = 100;
    s.refresh_token_lifetime = 0s;
    s.refresh_token_rotates = false;
    return s;
}

// SMART Backend Services scopes, v1 form (system/Type.read): the form eCW
// documents; Epic and SMART v2 servers accept it too (v2's .rs is an
// explicit `scopes`).
std::vector<std::string> system_scopes_for(const std::vector<std::string>& types) {
    std::vector<std::string> scopes;
    for (const auto& t : types) scopes.push_back("system/" + t + ".read");
    return scopes;
}

}  // namespace

std::optional<bulk_settings> bulk_preset(std::string_view profile,
                                         const std::vector<resource_setting>& resources) {
    bulk_settings b;
    for (const auto& r : resources) b.types.push_back(r.type);
    b.scopes = system_scopes_for(b.types);
    if (profile == "eclinicalworks") {
        // eCW's Bulk FHIR guide: Bulk Data v1.0.1, Group export only (the
        // Group is a Registry the practice enables for the app), RS384
        // assertions only, system/Group.read in every bulk token request;
        // exports are kept about 30 days, and Retry-After: 120 is usual.
        b.group_only = true;
        b.rs384_only = true;
        b.required_scopes = {"system/Group.read"};
        b.scopes.push_back("system/Group.read");
        return b;
    }
    if (profile == "epic") {
        // Epic exports a Group built from a registry, one export at a time
        // per client and Group; exports are slow, so a day between them.
        b.group_only = true;
        return b;
    }
    if (profile == "generic") return b;
    return std::nullopt;
}

std::string_view to_string(bulk_level level) {
    switch (level) {
        case bulk_level::group:
            return "group";
        case bulk_level::patient:
            return "patient";
        case bulk_level::system:
            return "system";
    }
    return "group";
}

std::string_view to_string(bulk_algorithm alg) { return alg == bulk_algorithm::es384 ? "ES384" : "RS384"; }

std::optional<ehr_settings> profile_preset(std::string_view profile, std::chrono::seconds default_interval) {
    ehr_settings base;
    base.profile = std::string(profile);
    base.interval = default_interval;
    if (profile == "eclinicalworks") return eclinicalworks(std::move(base));
    if (profile == "epic") return epic(std::move(base));
    if (profile == "generic") return generic(std::move(base));
    return std::nullopt;
}

std::string_view to_string(client_auth_method method) {
    switch (method) {
        case client_auth_method::client_secret_basic:
            return "client_secret_basic";
        case client_auth_method::client_secret_post:
            return "client_secret_post";
        case client_auth_method::private_key_jwt:
            return "private_key_jwt";
        case client_auth_method::none:
            return "none";
    }
    return "client_secret_basic";
}

const ehr_settings* config::find_ehr(std::string_view name) const {
    for (const auto& e : ehrs) {
        if (e.name == name) return &e;
    }
    return nullptr;
}

std::string config_error::to_string() const {
    // One error, one line, and nothing a terminal acts on: a message may
    // quote a config value back ("got \"…\"") and the file name comes from
    // the command line, so CR, LF, ESC, the other C0 controls, DEL and C1
    // controls are shown as escapes (lib/logging's line escaping) rather
    // than forging a line or recolouring the admin's terminal.
    std::string out;
    logging::append_line_escaped(out, file);
    if (line > 0) {
        out += ':' + std::to_string(line) + ':' + std::to_string(column);
    }
    out += ": ";
    logging::append_line_escaped(out, message);
    return out;
}

}  // namespace headachemd::config
