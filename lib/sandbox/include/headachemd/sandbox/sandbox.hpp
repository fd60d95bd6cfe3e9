// The sandbox EHR: a SMART on FHIR R4 server on loopback that generates
// deterministic synthetic headache patients from a seed. It backs `demo`,
// `headachemd-sync sandbox`, the integration tests and the benchmarks.
//
// It implements the server side on its own and shares no code with
// lib/smart, lib/fhir or lib/normalize (DESIGN "Testing"): if client and
// server shared code, a bug in that code would pass its own test.
//
// What it serves (paths relative to base_url()):
//   GET  /fhir/.well-known/smart-configuration   SMART App Launch discovery
//   GET  /fhir/metadata                           CapabilityStatement (oauth-uris); with a
//                                                 backend registration also the Bulk Data
//                                                 operations (export, patient-, group-export)
//   GET  /authorize                               auto-approve (302 with code+state),
//                                                 or an HTML consent page with prompt=consent.
//                                                 Errors: unknown client or unregistered
//                                                 redirect URI → 400 HTML page (RFC 6749
//                                                 §4.1.2.1: no redirect); missing/plain PKCE,
//                                                 bad aud or state → redirect with
//                                                 error=invalid_request; unsupported scope →
//                                                 error=invalid_scope (ecw_mode: see below)
//   Every response carries Date from options::now (so a test can skew it).
//   POST /authorize/approve                       the consent page's form
//   POST /token                                   authorization_code (PKCE S256) and
//                                                 refresh_token (rotation) grants;
//                                                 client_secret_basic/_post, or
//                                                 private_key_jwt (options::client_auth);
//                                                 client_credentials for the backend app
//                                                 (options::backend_client_id)
//   POST /revoke                                  RFC 7009 token revocation, the same client
//                                                 authentication; revokes the token's whole
//                                                 grant; 200 also for an unknown token
//   GET  /fhir/{Type}/{id}, GET /fhir/{Type}?…, POST /fhir/{Type}/_search
//        for Patient, Condition, MedicationRequest, Encounter, Observation,
//        Procedure and Appointment (not Appointment in ecw_mode).
//   Bulk Data export (Bulk Data Access IG v2.0.0, generic server; needs a
//   token of the client_credentials grant whose system/ scopes cover every
//   exported type; a patient token is 403):
//   GET  /fhir/Group/{bulk_group_id}/$export,     kick-off: Accept: application/fhir+json and
//        /fhir/Patient/$export, /fhir/$export     Prefer: respond-async required (400); _type
//                                                 (one comma list), _since (an instant),
//                                                 _outputFormat; another Group → 404. 202 with
//                                                 an absolute Content-Location status URL;
//                                                 the data is the clinic as of the kick-off
//   GET  /bulk/status/{job}                       202 with X-Progress (and Retry-After per
//                                                 options::bulk_poll_retry_after) for the first
//                                                 bulk_pending_polls polls, then 200 with the
//                                                 manifest: output[] per type with resources;
//                                                 error[] empty unless scripted
//                                                 (script_bulk_error_files); deleted[] with
//                                                 _since: one file of Bundles (one per type)
//                                                 of DELETE entries for the exported types'
//                                                 resources deleted after _since
//   DELETE /bulk/status/{job}                     cancels or releases the job (202); its
//                                                 status, file and capability URLs are 404
//                                                 from then on
//   GET  /bulk/files/{job}/{name}.ndjson          a file of the manifest, application/fhir+ndjson,
//                                                 one resource a line, rendered as the searches
//                                                 render it; or a 307 to the file origin when
//                                                 scripted (script_bulk_file_redirects)
//   GET  {file_origin_url}/files/{capability}     the second origin: the file, no bearer
//                                                 needed; anything else there is 404
//   Status polls can be scripted (script_bulk_polls): Retry-After in seconds
//   or as an HTTP-date, 429, a transient 500/503, a fatal 500.
//   In ecw_mode the export is eClinicalWorks' (Bulk Data v1.0.1, Group only):
//   /fhir/Patient/$export and /fhir/$export are 404 not-supported (and not in
//   the CapabilityStatement); the status URL is
//   {fhir_base}/$export-poll-location?job_id={job} (GET and DELETE; /bulk/status/
//   is 404); its 202s carry Retry-After: 120 by default; the manifest has the
//   v1.0.1 shape (no deleted[]).
//
// Threading: the server runs on the io_context it is given; that context may
// be run by any number of threads. Every public member function may be called
// from any thread, also while the context runs. Test controls take effect for
// the next request that the server handles.
//
// Errors: start() throws boost::system::system_error (a std::runtime_error)
// when it cannot bind, and std::runtime_error when OpenSSL cannot make the
// certificates. Data and OAuth controls throw std::invalid_argument for an
// unknown type, id or patient; the constructor throws it for an unusable
// client_jwks. Nothing else throws.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace headachemd::sandbox {

// Resource types the sandbox serves, in CapabilityStatement order.
// AllergyIntolerance is served (none generated; add_resource makes them) so
// a materialized view over a type HeadacheMD does not normalize can be synced.
inline constexpr std::string_view resource_types[] = {"Patient",     "Condition",         "MedicationRequest",
                                                      "Encounter",   "Observation",       "Procedure",
                                                      "Appointment", "AllergyIntolerance"};

// What a secret_observer is told about (options::secret_observer).
enum class secret_kind {
    client_secret,       // the registered client's secret
    authorization_code,  // each code /authorize hands out
    access_token,        // each access token /token issues
    refresh_token,       // each refresh token, from /token or issue_refresh_token()
    patient_name,        // each Patient's name.text and name.family
    patient_mrn,         // each Patient's identifier value (the MRN)
    patient_phone,       // each Patient's telecom value, after every update too
    bulk_capability,     // each capability token of a file-origin URL (script_bulk_file_redirects)
};
// "client_secret", "authorization_code", …: the enumerator's name.
std::string_view secret_kind_name(secret_kind k);

struct options {
    bool tls = true;  // false: plain http (the client allows that on loopback only)
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;  // 0: an ephemeral port, see server::port()
    std::uint64_t seed = 1;  // data and fault decisions derive from it
    int patients = 25;

    // eClinicalWorks/healow behaviour (DESIGN "EHR realities"): no
    // `_lastUpdated` (declared for no type; a sent one is ignored), no
    // `_count` (ignored; a fixed page of default_page_size and a `page`
    // parameter instead), no Appointment (404 and no scope), only
    // per-type scopes (no patient/*.read), every /authorize error (unknown
    // client, unregistered redirect URI, missing PKCE, unsupported scope, …)
    // answered as eCW does: HTTP 403 with exactly
    // {"error":"403","error_description":"invalid_request"}, no redirect
    // and no hint which parameter was wrong, and a
    // budget of requests_per_minute per fixed minute window (every request
    // counts, discovery, /authorize and /token included); over it, 429 with
    // no Retry-After. retry_after_on_429 is forced off.
    bool ecw_mode = false;
    int requests_per_minute = 250;  // enforced only in ecw_mode

    // Faults, drawn from an RNG seeded by `seed`, on FHIR data requests
    // (read, search, next pages; never discovery, /authorize or /token).
    // One uniform draw per request: [0, rate_429) → 429, then 500, then a
    // connection reset mid-response, then a truncated body (Content-Length
    // larger than the bytes sent, then close). Latency delays every response.
    std::chrono::milliseconds latency{0};
    double rate_429 = 0, rate_500 = 0, rate_reset = 0, rate_truncated = 0;
    bool retry_after_on_429 = true;  // `Retry-After: 1`; ecw_mode forces false

    // Issue 15: a response to a request whose Accept-Encoding allows gzip
    // (gzip, x-gzip or *, q not 0) goes out with Content-Encoding: gzip,
    // whatever the route; Vary: Accept-Encoding is then on every answer
    // (RFC 9110 §12.5.5). Not applied to an answer whose framing a fault
    // changes (reset, truncation, stall, a lying Content-Length) or that a
    // scripted gzip fault already encoded. Off: identity, as before.
    bool gzip = false;

    std::chrono::seconds access_token_lifetime{3600};
    int default_page_size = 20;  // searches without _count, and every ecw_mode page
    int max_page_size = 500;     // a larger _count is clamped to this
    // Off (the default, as eCW and node-oidc-provider): a reused, already
    // rotated refresh token is invalid_grant and revokes its whole grant.
    // On: a reuse within 60 s of the rotation returns the same new pair.
    bool refresh_reuse_grace = false;

    std::string client_id = "headachemd-sandbox";
    // Empty: a random secret is made for this server (read it back from
    // config()), so no fixed secret ships in the code.
    std::string client_secret;
    std::vector<std::string> redirect_uris = {"http://127.0.0.1/callback"};

    // How the registered client authenticates at /token. client_secret:
    // client_secret_basic or client_secret_post with client_secret.
    // private_key_jwt (SMART App Launch "asymmetric", RFC 7523): a signed
    // client_assertion whose kid is in client_jwks; a secret is refused.
    // Checked: client_assertion_type, alg RS384 or ES384 (RS384 only in
    // ecw_mode), kid, signature, iss = sub = client_id, aud = the token URL,
    // exp in the future and at most 5 minutes ahead, jti never seen before
    // (remembered until its exp). A failure is 401 invalid_client whose
    // error_description names the check.
    enum class client_auth_kind { client_secret, private_key_jwt };
    client_auth_kind client_auth = client_auth_kind::client_secret;
    // The client's public keys as a JWK Set (RFC 7517 §5) JSON text, as
    // registered with the EHR (`headachemd-sync keygen --jwks` prints one).
    // Required for private_key_jwt; a malformed set makes the server's
    // constructor throw std::invalid_argument.
    std::string client_jwks;

    // SMART Backend Services (issue 15): a second registration, the bulk
    // export's backend app, separate from the patient-facing client above.
    // Empty backend_client_id: grant_type=client_credentials is refused as
    // unsupported. Otherwise POST /token with client_credentials must carry
    // a private_key_jwt assertion (checked as above, iss = sub =
    // backend_client_id, a kid of backend_jwks; RS384 only in ecw_mode) and
    // a scope of system/<Type>.read (and .rs outside ecw_mode) words, where
    // Type is a served type, Group or *; ecw_mode also requires
    // system/Group.read in every request, as eClinicalWorks does. The answer
    // is an access token of backend_token_lifetime with no refresh token and
    // no patient; it reads nothing through the patient-facing searches (their
    // scope check knows only patient/ and user/ scopes).
    std::string backend_client_id;
    std::string backend_jwks;  // required with backend_client_id; malformed: the constructor throws
    std::chrono::seconds backend_token_lifetime{300};

    // Bulk Data export (issue 15): the one Group the sandbox serves, whose
    // members are every generated patient, and how many status polls of a
    // job answer 202 (in progress) before the manifest. Polls, not time:
    // a test drives a job to completion without sleeping.
    std::string bulk_group_id = "headachemd-clinic";
    int bulk_pending_polls = 1;
    // At most this many resources per output file: a type's resources are
    // split over files "Type", "Type-2", … as large servers split them.
    // 0: one file per type.
    int bulk_resources_per_file = 0;
    // Retry-After (delta seconds) on each in-progress (202) status poll.
    // nullopt: the mode's default, none for the generic server and 120 in
    // ecw_mode (seen from eClinicalWorks, issue 15); 0: none. Only a hint:
    // the sandbox answers an earlier poll all the same.
    std::optional<std::chrono::seconds> bulk_poll_retry_after;
    // Benchmarks only (bench/bulk's peak RSS with a 1 GB file): with one
    // file per type, the Observation file is filled up to at least this
    // many bytes with copies of the clinic's observations under new ids
    // ("{id}-c{N}", same patient), so that a file of any size needs no
    // more generated patients. 0: off. The file is built at the kick-off
    // and held in memory (as every export file of the sandbox).
    std::size_t bulk_fill_bytes = 0;

    // Every time decision (token and code expiry, rate windows, meta.lastUpdated
    // of changed resources) reads this clock, so tests can drive it.
    std::function<std::chrono::system_clock::time_point()> now = [] {
        return std::chrono::system_clock::now();
    };
    // The generated history ends here; every generated resource has
    // meta.lastUpdated at or before it, so the same seed gives the same bytes
    // whenever it runs. Changes made through the controls carry now(), which
    // must therefore be later than the anchor. Default 2024-06-01T00:00:00Z.
    std::chrono::system_clock::time_point data_anchor =
        std::chrono::system_clock::time_point{std::chrono::seconds{1717200000}};

    // Non-empty: the server certificate names this host alone (SAN), not
    // 127.0.0.1 or localhost, so a client that connects to the address it
    // listens on must refuse it (a certificate for the wrong host).
    std::string certificate_host;
    // The server certificate's validity ended a day ago (the CA's has not),
    // so a client that checks dates must refuse it.
    bool certificate_expired = false;

    // Optional diagnostics (a failed handshake, an exception in a session).
    // Lines carry no token, secret, name or payload.
    std::function<void(std::string_view)> log;

    // Told every secret the server knows or issues and every identifying
    // value in its dataset, as each comes to exist (the client secret and
    // the patients' names, MRNs and phones during construction), so a test
    // can search logs and files for all of them. Called with the server's
    // lock held: it must not call back into the server.
    //
    // Besides this callback, when the environment variable
    // HEADACHEMD_SANDBOX_SECRET_LEDGER_DIR names a directory (created if
    // missing) the server appends the same facts to its own file there,
    // sandbox-<pid>-<n>.ledger, one "<kind name> <value in hex>" line each.
    // The integration tests set it (tests/support/log_capture.hpp), so
    // every sandbox they start, in-process or as `headachemd-sync sandbox`,
    // feeds the log scan without code in each test.
    std::function<void(secret_kind, std::string_view)> secret_observer;
};

// One scripted fault for the fault matrix: unlike the random rates, it hits
// exactly the requests it matches. It applies to FHIR data requests (read,
// search, next pages) that pass the bearer-token and scope checks, or, with
// `token` set, to POST /token (issue 18): the grant is processed first, so a
// refresh token is spent and rotated, and then its answer is lost in
// transit (reset, reset_mid_body, truncated_body, stall_after_head). That
// is the case where the client cannot tell whether its refresh arrived.
struct scripted_fault {
    enum class kind {
        status,          // answer `status` with an OperationOutcome (and Retry-After: retry_after when set)
        reset,           // part of the head, then a connection reset (RST): no response at all
        reset_mid_body,  // the head and half the body, then a connection reset (RST)
        truncated_body,  // Content-Length of the whole body, half of it sent, then close
        lying_length,    // half the body with a Content-Length of that half: the message looks complete
        short_length,    // the whole body with a Content-Length of half of it: the rest stays on the
                         // keep-alive connection, where the client reads its next response
        slow,            // the answer waits `delay` (a timer) before it is sent
        malformed_json,  // 200 with a Bundle cut off mid-entry
        operation_outcome,  // 200 with an OperationOutcome (severity error) instead of the Bundle
        other_patient,      // the page's entries belong to another patient (a search only)
        next_loop,          // the page's next link points back to the first page (a search only)
        next_loop_new_url,  // as next_loop, with a fresh `_loop` parameter each time: the URL never repeats
        // The head (200, Content-Length of the whole body) goes out at once;
        // then the body trickles, one byte every `delay` (0: not a byte
        // more), and never completes. The connection stays open until the
        // client hangs up or the server stops. A client with a deadline per
        // phase gets a fresh one for the body (issue 12, defect 7).
        stall_after_head,
        // An interim `102 Processing` every `delay` (at least 1 ms) and never
        // a final response (RFC 9110 §15.2: a client must accept any number
        // of 1xx). A client with a fresh deadline per 1xx never times out.
        interim_flood,
        // Issue 12, endless chains (a search only; give a large count):
        endless_fresh,  // the page's entries under fresh ids, and a next link to a new URL, forever
        endless_empty,  // a page with no entries and a next link to a new URL, forever
        wrong_type,     // the page's entries are the patient's resources of another type, search.mode "match"
        // Issue 15, a hostile server's content codings, sent whether or
        // not the request asked for gzip:
        gzip_bomb,         // 200, Content-Encoding: gzip, a gzip member of 100 MiB of zeros (~100 KiB sent)
        gzip_corrupt,      // the real answer gzipped, its CRC-32 wrong
        unknown_encoding,  // the real answer as it is, labelled Content-Encoding: br
    };
    kind what = kind::status;
    bool token = false;  // POST /token instead of FHIR data requests (type and page are then ignored)
    std::string type;    // only this resource type; empty: any
    int page = 0;        // only this page of a search (1-based; a read is page 1); 0: any
    int count = 1;       // how many matching requests get it; then it is spent
    int status = 500;
    std::string retry_after;  // kind::status: the Retry-After value; empty sends none, also on a 429
    std::chrono::milliseconds delay{0};
};

// Issue 15: a scripted answer to a GET of a bulk status URL, given instead
// of what the job would answer (the job does not advance: its in-progress
// polls are counted only on unscripted polls). script_bulk_polls queues
// them; the first unspent one applies, `count` times.
struct bulk_poll_fault {
    enum class kind {
        // 202 in progress with Retry-After as delta seconds: retry_after.
        retry_after_seconds,
        // 202 in progress with Retry-After as an HTTP-date (RFC 9110
        // §10.2.3, IMF-fixdate): options::now + retry_after. A client that
        // reads it as a number re-polls at once.
        retry_after_date,
        // 429 (polling too fast), OperationOutcome code throttled, and
        // Retry-After: retry_after (delta seconds) when it is above 0.
        too_many_requests,
        // `status` (500 or 503) with an OperationOutcome whose issue code is
        // `issue_code` (transient or throttled): IG v2.0.0 "Response -
        // Error", a transient code means retry, not failed. Retry-After as
        // for too_many_requests.
        transient,
        // `status` (500) with an OperationOutcome code exception: the job
        // has failed, a client must not go on polling.
        fatal,
    };
    kind what = kind::transient;
    int count = 1;
    int status = 500;  // transient and fatal
    std::chrono::seconds retry_after{0};
    std::string issue_code = "transient";  // transient only
};

// Request counters since start (or reset_counters()).
struct counters {
    std::uint64_t requests = 0;                    // every request read
    std::uint64_t authorize_calls = 0;             // /authorize and /authorize/approve
    std::uint64_t token_calls = 0;                 // POST /token
    std::uint64_t revocation_calls = 0;            // POST /revoke (RFC 7009)
    std::uint64_t revocations = 0;                 // … that revoked a known grant
    std::uint64_t discovery_calls = 0;             // smart-configuration and metadata
    std::uint64_t fhir_calls = 0;                  // FHIR reads and searches, next pages included
    std::uint64_t responses_429 = 0;               // budget and injected, both
    std::uint64_t resets = 0;                      // injected connection resets
    std::uint64_t truncations = 0;                 // injected truncated bodies
    std::uint64_t client_assertions_accepted = 0;  // private_key_jwt assertions that passed every check
    std::uint64_t client_assertions_rejected = 0;  // … and that failed one (401 invalid_client)
    std::uint64_t backend_tokens_issued = 0;       // client_credentials grants answered with a token
    std::uint64_t bulk_kickoffs = 0;               // $export requests, refused ones included
    std::uint64_t bulk_status_polls = 0;           // GET of a status URL
    std::uint64_t bulk_file_downloads = 0;         // GET of an output file URL
    std::uint64_t bulk_deletes = 0;                // DELETE of a status URL
    std::map<int, std::uint64_t> by_status;        // status sent → count (resets excluded)
    std::map<std::string, std::uint64_t> by_path;  // request path, no query → count
    // type → resources listed in the output[] of every job kicked off
    std::map<std::string, std::uint64_t> bulk_output_resources;

    // Issue 12: stall_after_head and interim_flood faults begun, and TLS
    // handshakes (a client that refuses our certificate fails one).
    std::uint64_t stalls = 0;
    std::uint64_t tls_handshakes = 0;
    std::uint64_t tls_handshake_failures = 0;

    // Issue 15: answers sent gzip-encoded (options::gzip), and requests
    // whose Accept-Encoding allowed gzip, by path (no query).
    std::uint64_t gzip_responses = 0;
    std::map<std::string, std::uint64_t> accepts_gzip_by_path;

    // Issue 15: requests that reached the file origin (file_origin_url()),
    // and how many of them carried an Authorization header, of any scheme.
    // A client following a 307 there must send none: the bearer is for the
    // FHIR server's origin only.
    std::uint64_t file_origin_requests = 0;
    std::uint64_t file_origin_authorization_headers = 0;
    // … and the files it served (200).
    std::uint64_t file_origin_downloads = 0;
    // Issue 15, what bulk clients were told, for integration tests to
    // assert on: 202 polls with Retry-After as delta seconds (ecw_mode's
    // default, options::bulk_poll_retry_after, scripted) and as an
    // HTTP-date (scripted); the scripted 429s, transient and fatal errors
    // on polls; manifests (200) sent; 307s from file URLs to the file
    // origin; and error[] and deleted[] files served (200, either origin).
    std::uint64_t bulk_retry_after_seconds = 0;
    std::uint64_t bulk_retry_after_dates = 0;
    std::uint64_t bulk_poll_429s = 0;
    std::uint64_t bulk_poll_transient_errors = 0;
    std::uint64_t bulk_poll_fatal_errors = 0;
    std::uint64_t bulk_manifests = 0;
    std::uint64_t bulk_file_redirects = 0;
    std::uint64_t bulk_error_file_downloads = 0;
    std::uint64_t bulk_deleted_file_downloads = 0;
};

class server {
public:
    server(boost::asio::io_context& ioc, options opts);
    // Stops (as stop()) if still running. Destroy the server before its
    // io_context (as for any Asio I/O object); connections still open are
    // released when the context runs them to completion or is destroyed.
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Generates the CA and server certificate (tls), binds and listens (the
    // port is known when this returns), and starts accepting on the context.
    // Call once; a second call does nothing. Throws as described above, and
    // may then be called again.
    void start();
    // Closes the listener and every connection (a response in flight is cut
    // off, a latency timer cancelled), so a thread running only this server
    // returns from run(). Idempotent; the server cannot be started again.
    void stop();

    std::uint16_t port() const;
    std::string base_url() const;   // "https://127.0.0.1:PORT" (http:// without tls)
    std::string fhir_base() const;  // base_url() + "/fhir"; the exact `aud`
    // The second loopback origin ("https://127.0.0.1:PORT2", another port,
    // the same certificate): it serves only bulk files, by capability URL
    // (script_bulk_file_redirects). Empty before start().
    std::string file_origin_url() const;
    // PEM of the throwaway CA that signed the server certificate (SAN
    // IP:127.0.0.1 and DNS:localhost); empty without tls or before start().
    std::string ca_certificate_pem() const;
    // Writes ca_certificate_pem() to `path` (mode 0644). Throws
    // std::runtime_error on an I/O error.
    void write_ca_pem(const std::filesystem::path& path) const;
    // The options in force at start: as given, with ecw_mode having forced
    // retry_after_on_429 off. Runtime setters do not change them.
    const options& config() const;

    // ---- OAuth controls --------------------------------------------------
    // A headless shortcut for tests and `demo`: a valid refresh token for the
    // patient, as if it had completed /authorize and /token. An empty scope
    // means every read scope the server lists; offline_access is always
    // added. The first use of the token rotates it as any other.
    std::string issue_refresh_token(const std::string& patient_id, std::string scope = {});
    // Revokes every grant of the patient: its refresh tokens answer
    // invalid_grant and its access tokens 401.
    void revoke_patient_grants(const std::string& patient_id);
    // Every access token issued so far answers 401 from now on.
    void expire_access_tokens();
    // The patient a headless /authorize approves (default: the first one).
    // An explicit `patient` query parameter on /authorize wins.
    void set_authorize_patient(const std::string& patient_id);
    void set_refresh_reuse_grace(bool on);

    // ---- Fault controls --------------------------------------------------
    void set_fault_rates(double rate_429, double rate_500, double rate_reset, double rate_truncated);
    void set_latency(std::chrono::milliseconds latency);
    // options::gzip, from the next request on.
    void set_gzip(bool on);
    // Non-empty: every searchset Bundle that has a next page links to this
    // URL instead (to test that a client refuses another origin).
    void set_next_link_override(std::string url);
    // n > 0: page n (1-based) of every search answers 200 with malformed JSON.
    void set_bad_json_page(int n);
    // Adds a scripted fault; the first unspent one that matches a request
    // applies. clear_scripted_faults() removes them all.
    void add_scripted_fault(scripted_fault f);
    void clear_scripted_faults();
    // Bulk Data export (issue 15). Queues a scripted status-poll answer
    // (bulk_poll_fault); clear_scripted_faults() drops the queue too.
    void script_bulk_polls(bulk_poll_fault f);
    // The next `count` GETs of a bulk file URL (with a valid system bearer)
    // answer 307 Temporary Redirect to the same file on file_origin_url(),
    // at a capability URL: /files/{random token}, which serves the file to
    // anyone holding the URL, with no bearer, until the job is DELETEd (as
    // a pre-signed storage URL does). count 0 clears.
    void script_bulk_file_redirects(int count);
    // The next `count` kick-offs make jobs whose manifest lists an error[]
    // file: OperationOutcome NDJSON, one line with a warning issue and one
    // with an error issue (IG: per-resource problems; a warning is not a
    // failure). count 0 clears.
    void script_bulk_error_files(int count);
    // The next `count` POST /token requests answer `status` with the OAuth
    // error `error` (RFC 6749 §5.2) and change no token. count 0 clears.
    void fail_token_requests(int status, std::string error, int count);
    // As fail_token_requests, but the error_description echoes the request
    // as a careless server does (issue 12): the form body as received, its
    // decoded values (the refresh token or code, a client_secret or
    // client_assertion) and the Authorization header, after a CR LF.
    void echo_token_requests(int status, std::string error, int count);
    // The next `count` POST /revoke requests answer `status` (a 5xx: the
    // revocation endpoint is down) and revoke nothing. count 0 clears.
    void fail_revocations(int status, int count);

    counters stats() const;
    void reset_counters();
    // Blocks until every connection has ended (the peer closed or died and
    // the server has read, answered and released all it sent), or `timeout`
    // passes; false then. The crash test uses it to see every request a
    // killed client had already sent.
    bool wait_until_no_connections(std::chrono::milliseconds timeout);
    // Every refresh token issued so far (rotated and spent ones included)
    // and every access token not yet purged: for tests that search files
    // and logs for a token that must not be there.
    std::vector<std::string> issued_tokens() const;
    // What a refresh grant with `token` would meet now. A crash test reads
    // it for the token a killed client left in its vault: `spent` means the
    // server rotated it in an exchange whose answer the client never stored,
    // so the next refresh replays it (a strict server then revokes the grant).
    enum class refresh_token_state { unknown, live, spent, revoked, expired };
    refresh_token_state refresh_token_state_of(const std::string& token) const;
    // The patient whose refresh token the latest refresh grant presented
    // (known tokens only; empty before the first). With one client exchange
    // at a time, it names whose exchange a kill inside /token interrupted.
    std::string last_refresh_patient() const;

    // ---- Crash-test control ----------------------------------------------
    // Called on a server thread at two moments of every exchange: once the
    // request is read, before it is handled (received), and once its whole
    // response is written to the socket (sent; not for an injected reset or
    // truncation). `path` has no query. A crash test SIGKILLs its client
    // from here at an exact point (e.g. just after a /token answer, before
    // the client can store the rotated token) instead of sleeping and
    // hoping. The call is made with no server lock held. Empty: none.
    enum class exchange_phase { received, sent };
    using exchange_observer = std::function<void(std::string_view path, exchange_phase phase)>;
    void set_exchange_observer(exchange_observer observer);

    // ---- Data controls ---------------------------------------------------
    std::vector<std::string> patient_ids() const;  // generation order
    // Non-deleted resources per type (Appointment absent in ecw_mode).
    std::map<std::string, std::size_t> count_by_type() const;
    // Non-deleted resources of one type for one patient (0 for Appointment
    // in ecw_mode): what a complete search with the patient parameter returns.
    std::size_t count_for(const std::string& patient_id, const std::string& type) const;
    // Non-deleted ids in search order.
    std::vector<std::string> ids_of(const std::string& type, const std::string& patient_id) const;
    // Bumps meta.versionId, sets meta.lastUpdated to now() and changes a
    // clinical field (a status, a value or a note).
    void update_resource(const std::string& type, const std::string& id);
    // Removes it from searches; a read answers 410 Gone (FHIR R4 3.1.0.5).
    void delete_resource(const std::string& type, const std::string& id);
    // Adds a generated resource of `type` (not Patient) for the patient, with
    // meta.lastUpdated = now(); returns its id.
    std::string add_resource(const std::string& type, const std::string& patient_id);

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

// A server on its own io_context and thread, as a real EHR is its own
// process: for `demo`, tests and benchmarks, whose client side then runs
// the real network path over loopback. Starts in the constructor (throws
// what server::start throws); stops and joins in the destructor.
class background_server {
public:
    explicit background_server(options opts);
    ~background_server();
    background_server(const background_server&) = delete;
    background_server& operator=(const background_server&) = delete;

    server& operator*() { return *server_; }
    server* operator->() { return server_.get(); }

private:
    std::unique_ptr<boost::asio::io_context> io_;
    std::unique_ptr<server> server_;
    std::unique_ptr<std::thread> thread_;
};

}  // namespace headachemd::sandbox
