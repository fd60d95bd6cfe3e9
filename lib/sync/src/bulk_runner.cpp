#include "headachemd/sync/bulk_runner.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <system_error>
#include <utility>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include "headachemd/http/url.hpp"
#include "headachemd/store/database.hpp"
#include "headachemd/sync/bulk_store.hpp"

namespace headachemd::sync {

namespace asio = boost::asio;
using kind = bulk_action::kind;
using namespace std::chrono_literals;

// ---- pacing --------------------------------------------------------------------

asio::awaitable<void> bulk_pacing::wait(std::chrono::nanoseconds d) const {
    if (d <= std::chrono::nanoseconds::zero()) co_return;
    if (on_wait) {
        on_wait(d);
        co_return;
    }
    // In slices of a second, so that `stopping` is seen within one.
    asio::steady_timer timer(co_await asio::this_coro::executor);
    const auto end = std::chrono::steady_clock::now() + d;
    for (auto left = d; left > std::chrono::nanoseconds::zero();
         left = end - std::chrono::steady_clock::now()) {
        if (stopping && stopping()) co_return;
        timer.expires_after(std::min<std::chrono::nanoseconds>(left, 1s));
        co_await timer.async_wait(asio::use_awaitable);
    }
}

asio::awaitable<void> bulk_pacing::wait_until(sys_time t) const { co_await wait(t - clk.now()); }

asio::awaitable<void> bulk_pacing::before_call() const {
    if (limiter) co_await wait(limiter->acquire(clk.now()));
}

// ---- tokens --------------------------------------------------------------------

backend_token_source::backend_token_source(http::transport& http, const bulk_pacing& pacing,
                                           smart::client_credentials creds, std::string token_endpoint,
                                           std::string scope, std::chrono::milliseconds timeout)
    : http_(http),
      pacing_(pacing),
      creds_(std::move(creds)),
      endpoint_(std::move(token_endpoint)),
      scope_(std::move(scope)),
      timeout_(timeout) {}

asio::awaitable<result<std::string>> backend_token_source::get(bool fresh) {
    if (token_ && !fresh && pacing_.clk.now() < renew_at_) co_return *token_;
    token_.reset();
    co_await pacing_.before_call();
    // A fresh assertion (new jti, exp minutes ahead) for every request:
    // SMART Backend Services and eCW refuse a reused jti.
    const auto tr = smart::make_backend_token_request(scope_, creds_, {endpoint_, pacing_.clk.now()});
    http::request req;
    req.method = boost::beast::http::verb::post;
    req.url = endpoint_;
    for (const auto& [n, v] : tr.headers) req.headers.push_back({n, v});
    req.body = tr.body;
    req.timeout = timeout_;
    ++requests_;
    auto r = co_await http_.send(std::move(req));
    if (!r) co_return error{r.err().code, "the backend token request failed: " + r.err().message};
    auto t = smart::parse_token_response(r->status, r->body, tr.secret_views());
    if (!t) co_return error{t.err().code, "the backend token request was refused: " + t.err().message};
    // Backend Services tokens last about five minutes; renew a little
    // before the end (a quarter of the lifetime, at most 30 s), so a token
    // does not expire between this check and the server's.
    const std::chrono::seconds life = t->expires_in.value_or(std::chrono::seconds(300));
    renew_at_ = pacing_.clk.now() + life - std::min<std::chrono::seconds>(30s, life / 4);
    token_ = std::move(t->access_token);
    co_return *token_;
}

namespace {

// ---- the spool file --------------------------------------------------------------

// One file's download, kept until applied. 0600 and O_NOFOLLOW: the
// directory is the daemon's own, and the bytes are patients' records.
class spool_file final : public http::body_sink {
public:
    spool_file(std::filesystem::path path, std::function<bool()> stopping)
        : path_(std::move(path)), stopping_(std::move(stopping)) {
        fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd_ < 0) open_error_ = errno;
    }
    ~spool_file() override {
        if (fd_ >= 0) ::close(fd_);
    }
    spool_file(const spool_file&) = delete;
    spool_file& operator=(const spool_file&) = delete;

    std::optional<error> open_failure() const {
        if (fd_ >= 0) return std::nullopt;
        return error{errc::store_failed, "cannot create the spool file " + path_.string() + ": " +
                                             std::generic_category().message(open_error_)};
    }

    result<ok_t> on_data(std::string_view piece) override {
        // A stopping daemon ends the transfer (the connection is closed);
        // the resumed job downloads the file again.
        if (stopping_ && stopping_()) return error{errc::stopped, "stopping"};
        while (!piece.empty()) {
            const ssize_t n = ::write(fd_, piece.data(), piece.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0)
                return error{errc::store_failed, "cannot write the spool file " + path_.string() + ": " +
                                                     std::generic_category().message(errno)};
            piece.remove_prefix(static_cast<std::size_t>(n));
        }
        return ok_t{};
    }

private:
    std::filesystem::path path_;
    std::function<bool()> stopping_;
    int fd_ = -1;
    int open_error_ = 0;
};

std::filesystem::path spool_path(const bulk_run_options& o) {
    return o.spool_dir / ("bulk-" + o.ehr + ".ndjson.part");
}

// The spool file through one bulk_file_apply, in pieces (memory: one
// piece plus the applier's batch).
bulk_apply_report apply_spool(bulk_applier& applier, std::size_t index, const bulk_file& file,
                              const std::filesystem::path& path, const std::string& now) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        throw store::store_error("cannot read the spool file " + path.string() + ": " +
                                 std::generic_category().message(errno));
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } c{fd};
    bulk_file_apply fa(applier, index, file, now);
    std::array<char, 256 * 1024> buf{};
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            throw store::store_error("cannot read the spool file " + path.string() + ": " +
                                     std::generic_category().message(errno));
        if (n == 0) break;
        fa.feed(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    }
    return fa.finish();
}

std::string describe(const bulk_action& a) {
    switch (a.what) {
        case kind::send_kickoff:
            return "kick-off";
        case kind::poll:
            return "status poll";
        case kind::download:
            return "file " + std::to_string(a.file);
        case kind::release:
            return "release";
        default:
            return "request";
    }
}

// A redirect's target, resolved against the URL that answered; nullopt
// when there is none or it is not a URL.
std::optional<std::string> redirect_target(const std::string& from, const http::response& r) {
    const auto loc = r.header("Location");
    if (!loc || loc->empty() || loc->size() > 8192) return std::nullopt;
    const auto base = boost::urls::parse_uri(from);
    const auto ref = boost::urls::parse_uri_reference(*loc);
    if (!base || !ref) return std::nullopt;
    boost::urls::url dest;
    if (!boost::urls::resolve(*base, *ref, dest)) return std::nullopt;
    dest.remove_fragment();
    return std::string(dest.buffer());
}

bool is_redirect(int status) {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

http_answer answer_of(const http::response& r) {
    http_answer a;
    a.status = r.status;
    auto copy = [&](std::string_view name, std::optional<std::string>& out) {
        if (auto v = r.header(name)) out = std::string(*v);
    };
    copy("Content-Location", a.content_location);
    copy("Retry-After", a.retry_after);
    copy("X-Progress", a.x_progress);
    a.body = r.body;
    return a;
}

struct runner {
    bulk_run_deps& d;
    const bulk_run_options& o;
    bulk_run_result out;

    void log_info(const std::string& text) const {
        if (d.log) d.log->info("bulk export of EHR '{}': {}", o.ehr, text);
    }
    void log_warn(const std::string& text) const {
        if (d.log) d.log->warn("bulk export of EHR '{}': {}", o.ehr, text);
    }

    // One request, redirects followed (polls and files only), with the
    // bearer while the hops stay on the origin it was first sent to.
    // `sink`: a file download (send_streaming), else send().
    asio::awaitable<bulk_event> request(const bulk_action& a, http::body_sink* sink) {
        std::string url = a.url;
        bool bearer = a.bearer;
        const auto first_origin = http::origin_of(url);
        std::size_t* counter = a.what == kind::send_kickoff ? &out.calls.kickoff
                               : a.what == kind::poll       ? &out.calls.poll
                               : a.what == kind::download   ? &out.calls.download
                                                            : &out.calls.release;
        const bool follows = a.what == kind::poll || a.what == kind::download;
        for (int hop = 0;; ++hop) {
            http::request req;
            req.method =
                a.what == kind::release ? boost::beast::http::verb::delete_ : boost::beast::http::verb::get;
            req.url = url;
            req.timeout = o.http_timeout;
            if (a.what == kind::send_kickoff) {
                // Bulk Data IG, kick-off request: both headers required.
                req.headers.push_back({"Accept", "application/fhir+json"});
                req.headers.push_back({"Prefer", "respond-async"});
            } else if (a.what == kind::download) {
                req.headers.push_back({"Accept", "application/fhir+ndjson"});
            } else {
                req.headers.push_back({"Accept", "application/json"});
            }
            if (bearer) {
                auto token = co_await d.tokens.get(a.fresh_token && hop == 0);
                if (!token) co_return transport_failed{token.err()};
                req.headers.push_back({"Authorization", "Bearer " + *token});
            }
            co_await d.pacing.before_call();
            ++*counter;
            // Not a conditional expression with two co_awaits: GCC 12 destroys
            // the wrong temporary there (free(): invalid pointer, seen here).
            result<http::response> r = error{errc::internal_error, "not sent"};
            if (sink != nullptr)
                r = co_await d.http.send_streaming(std::move(req), *sink);
            else
                r = co_await d.http.send(std::move(req));
            if (!r) co_return transport_failed{r.err()};
            if (sink != nullptr && r->status >= 200 && r->status < 300) co_return file_downloaded{a.file};
            if (!follows || !is_redirect(r->status)) co_return answer_of(*r);
            if (hop + 1 > o.max_redirects)
                co_return transport_failed{
                    error{errc::protocol,
                          describe(a) + ": more than " + std::to_string(o.max_redirects) + " redirects"}};
            auto next = redirect_target(url, *r);
            if (!next)
                co_return transport_failed{
                    error{errc::protocol, describe(a) + ": a redirect without a usable Location"}};
            const auto there = http::origin_of(*next);
            // The token stays with the origin it was sent to; once dropped it
            // does not come back, even if a later hop returns there.
            if (!there || !first_origin || !(*there == *first_origin)) bearer = false;
            url = std::move(*next);
        }
    }

    asio::awaitable<bulk_event> perform(const bulk_action& a) {
        const std::string now = store::utc_timestamp(d.pacing.clk.now());
        switch (a.what) {
            case kind::persist:
                try {
                    save_bulk_job(d.vault.sql(), o.ehr, job_->record(), d.pacing.clk.now());
                    co_return persisted{};
                } catch (const std::exception& e) {
                    co_return persist_failed{error{errc::vault_failed, e.what()}};
                }
            case kind::store_since:
                // A failure here is not an event the job knows: the vault
                // refused a write, which is the caller's to report.
                store_bulk_since(d.vault.sql(), o.ehr, a.since, d.pacing.clk.now());
                log_info("transactionTime stored as the next _since");
                co_return since_stored{};
            case kind::apply: {
                const auto& file = job_->record().manifest->files.at(a.file);
                try {
                    auto report = apply_spool(d.applier, a.file, file, spool_path(o), now);
                    mark_bulk_file_applied(d.vault.sql(), o.ehr, a.file);
                    std::error_code ec;
                    std::filesystem::remove(spool_path(o), ec);
                    log_info("file " + std::to_string(a.file) + " (" + std::string(to_string(file.kind)) +
                             ", " + file.type + ") applied: " + std::to_string(report.lines) + " lines, " +
                             std::to_string(report.upserted()) + " rows written, " +
                             std::to_string(report.line_error_count) + " line errors");
                    out.files.push_back(std::move(report));
                    co_return file_applied{a.file};
                } catch (const std::exception& e) {
                    co_return apply_failed{a.file, error{errc::store_failed, e.what()}};
                }
            }
            case kind::download: {
                // 0700: the directory holds patients' records between
                // download and apply; an existing one keeps its mode.
                if (::mkdir(o.spool_dir.c_str(), 0700) != 0 && errno != EEXIST)
                    co_return transport_failed{error{
                        errc::store_failed, "cannot create the spool directory " + o.spool_dir.string() +
                                                ": " + std::generic_category().message(errno)}};
                spool_file spool(spool_path(o), d.pacing.stopping);
                if (auto bad = spool.open_failure()) co_return transport_failed{*bad};
                co_return co_await request(a, &spool);
            }
            default:
                co_return co_await request(a, nullptr);
        }
    }

    std::unique_ptr<bulk_job> job_;

    asio::awaitable<void> run(std::string kickoff_url) {
        auto rec = load_bulk_job(d.vault.sql(), o.ehr);
        const bool unfinished = rec && !ended(rec->phase);
        out.resumed = unfinished;
        job_ = std::make_unique<bulk_job>(
            o.job,
            unfinished ? std::move(*rec) : new_bulk_record(std::move(kickoff_url), d.pacing.clk.now()));
        log_info(unfinished ? "resuming the job (phase " + std::string(to_string(job_->phase())) + ")"
                            : "starting a new job");
        bulk_action a = job_->start(d.pacing.clk.now());
        bulk_phase last_phase = job_->phase();
        while (a.what != kind::done && a.what != kind::failed && a.what != kind::cancelled) {
            if (d.stopping && d.stopping()) {
                out.stopped = true;
                out.end = a;
                out.record = job_->record();
                log_info("stopped in phase " + std::string(to_string(job_->phase())) +
                         "; resumes at the next run");
                co_return;
            }
            co_await d.pacing.wait_until(a.at);
            bulk_event e = co_await perform(a);
            if (const auto* f = std::get_if<transport_failed>(&e))
                log_warn(describe(a) + " failed: " + std::string(to_string(f->failure.code)));
            else if (const auto* h = std::get_if<http_answer>(&e);
                     h && (h->status < 200 || h->status >= 300) && h->status != 202)
                log_warn(describe(a) + " answered HTTP " + std::to_string(h->status));
            a = job_->next(e, d.pacing.clk.now());
            if (job_->phase() != last_phase) {
                last_phase = job_->phase();
                log_info("phase " + std::string(to_string(last_phase)));
            }
            if (d.on_progress) d.on_progress(job_->record());
        }
        std::error_code ec;
        std::filesystem::remove(spool_path(o), ec);
        // The end, recorded: the next run starts a new job, status shows this one.
        save_bulk_job(d.vault.sql(), o.ehr, job_->record(), d.pacing.clk.now());
        out.end = a;
        out.record = job_->record();
        if (a.what == kind::failed)
            log_warn("failed: " + std::string(to_string(a.failure->code)) +
                     (a.released ? " (the server's export was released)" : ""));
        else
            log_info(std::string(a.what == kind::done ? "done" : "cancelled") +
                     (a.released ? ", the server's export released" : ""));
    }
};

}  // namespace

asio::awaitable<bulk_run_result> run_bulk_export(bulk_run_deps deps, bulk_run_options opts,
                                                 std::string kickoff_url) {
    runner r{deps, opts, {}, nullptr};
    co_await r.run(std::move(kickoff_url));
    r.out.calls.token = deps.tokens.requests();
    co_return std::move(r.out);
}

}  // namespace headachemd::sync
