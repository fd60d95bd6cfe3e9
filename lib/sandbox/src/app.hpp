// The sandbox's request handling with no sockets: an HTTP request in, the
// response (and what the transport should do to it: delay, reset, truncate)
// out. The server's sessions only move bytes and call handle(). Every member
// locks one mutex, so controls may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "bulk_export.hpp"
#include "client_assertion.hpp"
#include "codec.hpp"
#include "data.hpp"
#include "headachemd/sandbox/sandbox.hpp"

namespace headachemd::sandbox::detail {

class json_writer;

struct http_request {
    std::string method;  // "GET", "POST"
    std::string target;  // origin-form: path and query
    std::string authorization;
    std::string accept_encoding;
    std::string accept;  // Accept and Prefer: the bulk export kick-off checks them
    std::string prefer;
    std::string body;
    bool file_origin = false;  // arrived at the second (file) origin, not base_url()
};

// What the transport does with a response, beyond sending it.
enum class transport_fault {
    none,
    reset,           // send part of the bytes, then close with RST (SO_LINGER 0)
    truncate,        // send the head and part of the body (Content-Length says more), then close
    reset_mid_body,  // send the head and half the body, then close with RST
    stall,           // send the head, then a body byte every `interval` (0: none), never all of it
    interim_flood,   // send 102 Processing every `interval`, never the response
};

struct http_response {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;  // Content-Length is added when serialized
    std::string body;
    transport_fault fault = transport_fault::none;
    std::chrono::milliseconds delay{0};
    std::chrono::milliseconds interval{0};       // transport_fault::stall and interim_flood
    bool scripted = false;                       // a scripted status: no automatic Retry-After
    std::optional<std::size_t> declared_length;  // a lying Content-Length; default body.size()
    bool encoded = false;                        // a scripted gzip fault set Content-Encoding itself
};

// The options as the server applies them: ecw_mode forces
// retry_after_on_429 off, page sizes are at least 1, `now` is set.
options normalized(options o);

// The status line, the headers, Content-Length and Connection.
std::string serialize_head(const http_response& r, bool keep_alive);

class app {
public:
    explicit app(options opts);

    // The origin the server listens on, once it is bound ("https://127.0.0.1:PORT").
    void set_base_url(std::string base_url);
    std::string base_url() const;
    std::string fhir_base() const;
    // The second origin, serving bulk files by capability URL only.
    void set_file_origin_url(std::string url);
    std::string file_origin_url() const;
    const options& config() const { return opts_; }

    http_response handle(const http_request& req);

    // Controls; see sandbox.hpp for their contracts.
    std::string issue_refresh_token(const std::string& patient_id, std::string scope);
    void revoke_patient_grants(const std::string& patient_id);
    void expire_access_tokens();
    void set_authorize_patient(const std::string& patient_id);
    void set_refresh_reuse_grace(bool on);
    void set_fault_rates(double rate_429, double rate_500, double rate_reset, double rate_truncated);
    void set_latency(std::chrono::milliseconds latency);
    void set_gzip(bool on);
    void set_next_link_override(std::string url);
    void set_bad_json_page(int n);
    void add_scripted_fault(scripted_fault f);
    void clear_scripted_faults();
    void script_bulk_polls(bulk_poll_fault f);
    void script_bulk_file_redirects(int count);
    void script_bulk_error_files(int count);
    void fail_token_requests(int status, std::string error, int count);
    void echo_token_requests(int status, std::string error, int count);
    void fail_revocations(int status, int count);
    counters stats() const;
    void reset_counters();
    std::vector<std::string> issued_tokens() const;
    server::refresh_token_state refresh_token_state_of(const std::string& token) const;
    std::string last_refresh_patient() const;
    void note_reset_or_truncation(transport_fault f);  // and the start of a stall or interim flood
    void note_handshake(bool ok);

    std::vector<std::string> patient_ids() const;
    std::map<std::string, std::size_t> count_by_type() const;
    std::size_t count_for(const std::string& patient_id, const std::string& type) const;
    std::vector<std::string> ids_of(const std::string& type, const std::string& patient_id) const;
    void update_resource(const std::string& type, const std::string& id);
    void delete_resource(const std::string& type, const std::string& id);
    std::string add_resource(const std::string& type, const std::string& patient_id);

private:
    struct grant {
        std::string patient_id;
        std::string scope;
        bool revoked = false;
    };
    struct access_token {
        std::uint64_t grant = 0;
        time_point expires{};
        std::string scope;
    };
    struct refresh_token {
        std::uint64_t grant = 0;
        time_point expires{};
        std::string scope;
        bool rotated = false;
        time_point rotated_at{};
        std::string next_access, next_refresh;  // the pair its rotation issued (reuse grace)
    };
    struct auth_code {
        std::string client_id, redirect_uri, scope, patient_id, challenge;
        time_point expires{};
        bool used = false;
        std::uint64_t grant = 0;  // set once exchanged, to revoke on a replay
    };

    // Routes; each runs with mu_ held.
    http_response route(const http_request& req, std::string_view path, const params& query, time_point now);
    http_response smart_configuration() const;
    http_response capability_statement(time_point now) const;
    http_response authorize(const params& p, bool consented, time_point now);
    http_response consent_page(const params& p) const;
    http_response token(const http_request& req, time_point now);
    http_response revoke(const http_request& req, time_point now);
    // Client authentication of /token and /revoke (RFC 6749 §2.3.1, or
    // private_key_jwt): the client_id, or the 401/400 response.
    std::variant<std::string, http_response> authenticate_client(const http_request& req, const params& form,
                                                                 time_point now);
    // private_key_jwt of one registration (the patient-facing client with
    // options::client_jwks, or the backend app with backend_jwks): the
    // client_id the assertion proves, or the 401 invalid_client response.
    std::variant<std::string, http_response> authenticate_assertion(const params& form,
                                                                    assertion_verifier& keys,
                                                                    const std::string& client_id,
                                                                    time_point now);
    http_response token_grant(const params& form, const std::string& client_id, time_point now);
    // grant_type=client_credentials: the backend app of options::backend_client_id.
    http_response token_client_credentials(const http_request& req, const params& form, time_point now);
    // Empty when every word of `scope` is a system scope the backend may ask for; else why not.
    std::string backend_scope_problem(const std::string& scope) const;
    http_response token_authorization_code(const params& form, const std::string& client_id, time_point now);
    http_response token_refresh(const params& form, time_point now);
    http_response fhir(const http_request& req, std::string_view path, const params& query, time_point now);
    http_response search(rtype t, const params& p, const std::string& patient_id, std::string_view path,
                         time_point now, std::optional<scripted_fault>& script);
    // The searchset's self and next links (and the scripted next-link faults).
    void write_search_links(json_writer& w, const params& p, std::string_view path, std::size_t size,
                            std::size_t first, std::size_t last, bool has_next,
                            const std::optional<scripted_fault>& script);
    // The matches [first, last) as Bundle entries; fresh: under never-served ids.
    void write_search_entries(json_writer& w, const std::vector<const record*>& matches, std::size_t first,
                              std::size_t last, rtype entry_type, bool fresh) const;
    // The first unspent scripted fault matching (type, page), spent by one.
    std::optional<scripted_fault> take_script(rtype t, int page);
    // The first unspent scripted fault for /token, spent by one.
    std::optional<scripted_fault> take_token_script();
    static void apply_script(http_response& r, const scripted_fault& f);
    // options::gzip: encodes r when the request allows gzip (see sandbox.hpp).
    void encode_content(http_response& r, const http_request& req, const std::string& path);
    http_response read(rtype t, const std::string& id, const std::string& patient_id) const;
    // RFC 6750: the request's bearer token when it is known, unexpired and
    // its grant not revoked; else nullptr, and `refusal` is the 401.
    const access_token* bearer(const http_request& req, time_point now, http_response& refusal) const;

    // Bulk Data export (bulk_export.hpp). A job is made whole at kick-off:
    // its files are rendered then, so they hold the data as of
    // transactionTime however the data changes later, as the IG asks
    // (resources changed after transactionTime SHOULD NOT be included).
    struct export_job {
        time_point transaction_time{};
        std::string request;  // the kick-off URL, absolute
        std::vector<manifest_file> output;
        std::vector<manifest_file> error;          // scripted: script_bulk_error_files
        std::vector<manifest_file> deleted;        // v2, with _since: Bundles of DELETE entries
        std::map<std::string, std::string> files;  // file name (no .ndjson) → NDJSON
        int pending_polls = 0;                     // polls still answered 202
    };
    http_response export_kickoff(const http_request& req, const export_target& target, const params& query,
                                 time_point now);
    // GET (progress, then the manifest) and DELETE (cancel or release) of a job.
    http_response export_status(const http_request& req, const std::string& job_id, time_point now);
    http_response export_file(const http_request& req, std::string_view rest, time_point now);
    // A request that reached the file origin: GET /files/{capability} only,
    // with no bearer needed (the URL is the credential).
    http_response file_origin(const http_request& req, const std::string& path);
    // Counts an error[] or deleted[] file served (counters).
    void note_file_served(const std::string& name);
    // The scripted answer to a status poll (script_bulk_polls), if one is due.
    std::optional<http_response> take_bulk_poll_script(time_point now);
    // The bearer checks of every bulk request: a valid token of a backend
    // (system) grant, or the 401/403 to send.
    std::optional<http_response> refuse_non_system(const http_request& req, time_point now,
                                                   const access_token*& tok) const;
    std::string export_status_url(const std::string& job_id) const;
    std::string export_file_url(const std::string& job_id, std::string_view type) const;

    // The pair a grant issues, and its JSON (RFC 6749 §5.1 plus SMART's `patient`).
    std::pair<std::string, std::string> issue_tokens(std::uint64_t grant_id, const std::string& scope,
                                                     time_point now, bool with_refresh);
    http_response token_response(const std::string& access, const std::string& refresh, time_point now) const;
    void revoke_grant(std::uint64_t grant_id);
    std::vector<std::string> supported_scopes() const;
    // Tells options::secret_observer, when set (with mu_ held or during
    // construction).
    void report(secret_kind k, std::string_view value) const;
    void report_patient(const std::string& patient_id) const;
    bool scope_allows_read(const std::string& scope, rtype t) const;
    bool served(rtype t) const { return !(opts_.ecw_mode && t == rtype::appointment); }
    std::string default_scope() const;

    mutable std::mutex mu_;
    options opts_;
    std::string base_url_;
    data_store data_;
    rng faults_;
    counters stats_;
    std::int64_t budget_window_ = -1;
    int budget_used_ = 0;
    std::string authorize_patient_;
    std::string next_link_override_;
    int bad_json_page_ = 0;
    std::vector<scripted_fault> scripts_;
    std::uint64_t loop_serial_ = 0;  // next_loop_new_url
    int token_fail_status_ = 0, token_fail_count_ = 0;
    int revoke_fail_status_ = 0, revoke_fail_count_ = 0;
    std::string token_fail_error_;
    int token_echo_status_ = 0, token_echo_count_ = 0;
    std::string token_echo_error_;

    std::uint64_t next_grant_ = 1;
    std::string last_refresh_patient_;  // crash-test control: see server::last_refresh_patient
    std::uint64_t issued_since_purge_ = 0;
    std::unordered_map<std::uint64_t, grant> grants_;
    std::unordered_map<std::string, access_token> access_tokens_;
    std::unordered_map<std::string, refresh_token> refresh_tokens_;
    std::unordered_map<std::string, auth_code> codes_;
    std::optional<assertion_verifier> assertions_;          // set for private_key_jwt
    std::optional<assertion_verifier> backend_assertions_;  // set with options::backend_client_id
    std::map<std::string, export_job> export_jobs_;         // job id → job, until DELETE
    std::uint64_t next_export_job_ = 1;
    std::string file_origin_url_;
    std::vector<bulk_poll_fault> bulk_poll_scripts_;
    int bulk_redirects_left_ = 0;
    int bulk_error_files_left_ = 0;
    struct capability_file {
        std::string job_id, file;
    };
    std::unordered_map<std::string, capability_file> capabilities_;  // capability token → file, until DELETE
};

}  // namespace headachemd::sandbox::detail
