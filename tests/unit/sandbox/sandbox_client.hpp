// Test support for the sandbox: the sandbox running on its own thread with a
// clock the test drives, and a minimal raw HTTPS client (Beast over OpenSSL,
// written here and independent of lib/http) that verifies the sandbox's CA
// and host name. Beast stays in sandbox_client.cpp.
#pragma once

#include <boost/json/value.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "headachemd/sandbox/sandbox.hpp"

namespace headachemd::sandbox::test {

using time_point = std::chrono::system_clock::time_point;

// 2024-07-01T00:00:10Z: a month after the default data anchor, ten seconds
// into a minute window (the eCW budget test needs to know where it is).
inline const time_point default_test_now = time_point{std::chrono::seconds{1719792010}};

// A clock the test moves; the sandbox thread reads it.
class test_clock {
public:
    explicit test_clock(time_point start = default_test_now) : ns_(start.time_since_epoch().count()) {}
    time_point now() const { return time_point{time_point::duration{ns_.load()}}; }
    void set(time_point t) { ns_ = t.time_since_epoch().count(); }
    void advance(std::chrono::nanoseconds d) {
        ns_ += std::chrono::duration_cast<time_point::duration>(d).count();
    }

private:
    std::atomic<time_point::duration::rep> ns_;
};

struct reply {
    std::string error;  // empty when a whole response was read; else what failed
    int status = 0;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;

    bool ok() const { return error.empty(); }
    bool has_header(const std::string& name) const { return headers.count(name) != 0; }
    std::string header(const std::string& name) const;
    boost::json::value json() const;  // throws if the body is not JSON
};

// One keep-alive connection to a sandbox; reconnects when the previous
// exchange closed it. Every operation has a 10 s deadline. No retries: an
// error is reported as it happened.
class client {
public:
    // `ca_pem` empty: plain http.
    client(std::uint16_t port, std::string ca_pem);
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    // `target` is an origin-form path or an absolute URL on this sandbox.
    reply get(const std::string& target, const std::string& bearer = {});
    reply post_form(const std::string& target, const std::string& body,
                    std::vector<std::pair<std::string, std::string>> headers = {});
    reply request(const std::string& method, const std::string& target,
                  const std::vector<std::pair<std::string, std::string>>& headers, const std::string& body);
    // The deadline for reading a response (default 10 s): a test of a
    // server that stalls on purpose need not wait the default out.
    void set_read_deadline(std::chrono::milliseconds d);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// The sandbox on its own io_context and thread, with a test_clock.
class running_sandbox {
public:
    explicit running_sandbox(options opts = {});
    ~running_sandbox();

    server& srv() { return *server_; }
    test_clock& clock() { return *clock_; }
    std::unique_ptr<client> make_client();

private:
    struct runner;
    std::shared_ptr<test_clock> clock_;
    std::unique_ptr<runner> runner_;
    server* server_ = nullptr;
};

// Form encoding for test requests (RFC 3986 unreserved kept).
std::string form_encode(const std::string& s);
std::string form(const std::vector<std::pair<std::string, std::string>>& fields);
std::string basic_auth(const std::string& id, const std::string& secret);
// The query parameter `name` of a URL (decoded), or "".
std::string query_param(const std::string& url, const std::string& name);

// Exchanges a refresh token at /token (client_secret_post); returns the reply.
reply refresh(client& c, const options& o, const std::string& refresh_token);
// A fresh access token for the patient through issue_refresh_token + /token.
std::string access_token_for(running_sandbox& s, client& c, const std::string& patient_id,
                             const std::string& scope = {});
// The Bundle's next link, or "".
std::string next_link(const reply& r);
// Follows next links from `first`, collecting entry resource ids; fails the
// test (ADD_FAILURE) on a non-200 page.
struct walk_result {
    std::vector<std::string> ids;
    std::size_t pages = 0;
    std::size_t total = 0;  // Bundle.total of the first page
    std::vector<std::string> bodies;
};
walk_result walk(client& c, const std::string& first, const std::string& bearer);

}  // namespace headachemd::sandbox::test
