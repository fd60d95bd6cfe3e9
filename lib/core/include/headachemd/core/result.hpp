// result<T>: a value or an expected error, for failures that are part of
// normal operation (a timeout, an HTTP 503, invalid_grant). Bugs throw.
//
// std::expected is C++23; GCC 12 in C++20 mode does not have it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace headachemd {

// Every expected failure the code tells apart. An enumerator's name is its
// text, byte for byte: that text is what the audit log's outcome column,
// `status`, `--json`, metrics labels and log lines show, so renaming an
// enumerator changes a user-visible string (and is a defect, issue 14).
// The list is an X-macro so that the enum, to_string and from_string are
// written from one table and cannot drift apart.
//
// Two codes carry more than their name (see error_code): http_status (the
// text is "http_<status>") and oauth_other (the text is the token
// endpoint's own RFC 6749 §5.2 code).
#define HEADACHEMD_ERRC_LIST(X)                                                    \
    /* transport, lib/http */                                                      \
    X(invalid_url)                                                                 \
    X(insecure_scheme)                                                             \
    X(resolve)                                                                     \
    X(connect)                                                                     \
    X(tls)                                                                         \
    X(tls_verify)                                                                  \
    X(timeout)                                                                     \
    X(cancelled)                                                                   \
    X(body_too_large)                                                              \
    X(reset)                                                                       \
    X(truncated)                                                                   \
    X(protocol)                                                                    \
    X(bad_encoding)                                                                \
    X(bad_address)                                                                 \
    X(listen)                                                                      \
    /* an HTTP status that is a failure; the number travels in error_code */       \
    X(http_status)                                                                 \
    /* OAuth 2.0 error codes: RFC 6749 §4.1.2.1 and §5.2, RFC 7009 §2.2.1 */    \
    X(invalid_request)                                                             \
    X(invalid_client)                                                              \
    X(invalid_grant)                                                               \
    X(unauthorized_client)                                                         \
    X(unsupported_grant_type)                                                      \
    X(invalid_scope)                                                               \
    X(access_denied)                                                               \
    X(unsupported_response_type)                                                   \
    X(server_error)                                                                \
    X(temporarily_unavailable)                                                     \
    X(unsupported_token_type)                                                      \
    /* any other code the server sent; the sanitized text travels in error_code */ \
    X(oauth_other)                                                                 \
    /* the server's code was not a safe identifier, so it is not repeated */       \
    X(invalid_error_code)                                                          \
    /* SMART and FHIR answers, lib/smart and lib/fhir */                           \
    X(bad_discovery)                                                               \
    X(bad_token_response)                                                          \
    X(bad_key)                                                                     \
    X(bad_callback)                                                                \
    X(bad_json)                                                                    \
    X(bad_capability)                                                              \
    /* the sync engine and workflows, lib/sync */                                  \
    X(stopped)                                                                     \
    X(rate_limited)                                                                \
    X(bad_endpoint)                                                                \
    X(discovery_failed)                                                            \
    X(no_redirect_uri)                                                             \
    X(refresh_lock_failed)                                                         \
    X(refresh_busy)                                                                \
    X(refresh_raced)                                                               \
    X(vault_failed)                                                                \
    X(vault_row_unopenable)                                                        \
    X(not_enrolled)                                                                \
    X(needs_reauth)                                                                \
    X(unknown_ehr)                                                                 \
    X(token_patient_mismatch)                                                      \
    X(foreign_origin)                                                              \
    X(unauthorized)                                                                \
    X(paging_loop)                                                                 \
    X(page_limit)                                                                  \
    X(resource_limit)                                                              \
    X(bad_page)                                                                    \
    X(wrong_patient)                                                               \
    X(store_failed)                                                                \
    X(internal_error)                                                              \
    /* Bulk Data export (issue 15), lib/sync/bulk_data and bulk_job */             \
    X(bad_export_request)                                                          \
    X(bad_status_url)                                                              \
    X(bad_manifest)                                                                \
    X(export_failed)                                                               \
    X(deadline_exceeded)                                                           \
    /* the sandbox EHR's scripted sign-in, daemon/ */                              \
    X(authorize_failed)                                                            \
    /* a local directory that cannot be made (the demo's --dir) */                 \
    X(cannot_create)

// The enumerators, in the order of the table above.
enum class errc : std::uint8_t {
#define HEADACHEMD_ERRC_ENUMERATOR(name) name,
    HEADACHEMD_ERRC_LIST(HEADACHEMD_ERRC_ENUMERATOR)
#undef HEADACHEMD_ERRC_ENUMERATOR
};

namespace detail {
inline constexpr std::array errc_names = {
#define HEADACHEMD_ERRC_NAME(name) std::string_view(#name),
    HEADACHEMD_ERRC_LIST(HEADACHEMD_ERRC_NAME)
#undef HEADACHEMD_ERRC_NAME
};
}  // namespace detail

// Every enumerator, for tests and for from_string.
inline constexpr std::size_t errc_count = detail::errc_names.size();
constexpr errc errc_at(std::size_t i) { return static_cast<errc>(i); }

// The enumerator's name. For http_status and oauth_other this is the
// enumerator's own name; the text a user sees for an error is
// to_string(const error_code&).
constexpr std::string_view to_string(errc c) { return detail::errc_names[static_cast<std::size_t>(c)]; }

// The enumerator whose name is `text`; nullopt for anything else (an
// unknown or newer code read back from a file or a database).
constexpr std::optional<errc> errc_from_string(std::string_view text) {
    for (std::size_t i = 0; i < errc_count; ++i)
        if (detail::errc_names[i] == text) return errc_at(i);
    return std::nullopt;
}

// The code of one error: an enumerator, plus the HTTP status for
// errc::http_status or the server's own code for errc::oauth_other.
// Compare with an enumerator (`e.code == errc::timeout`); show with
// to_string(e.code).
class error_code {
public:
    // Implicit, so that `error{errc::timeout, "…"}` reads as the code it is.
    error_code(errc c) : value_(c) {}  // NOLINT(google-explicit-constructor)

    // A failing HTTP status: to_string gives "http_<status>".
    static error_code http(int status) {
        error_code c(errc::http_status);
        c.status_ = status;
        return c;
    }

    // The `error` member of an OAuth error answer (RFC 6749 §5.2, RFC 7009
    // §2.2.1). The registered codes become their enumerators, so that a
    // decision such as "invalid_grant: the patient must re-authorize" is a
    // comparison with errc::invalid_grant; any other code is kept as text.
    // The caller has already checked that `server_code` is a safe identifier
    // (lib/smart: printable, bounded, not token-shaped).
    static error_code oauth(std::string_view server_code) {
        for (auto c = errc::invalid_request; c <= errc::unsupported_token_type;
             c = errc_at(static_cast<std::size_t>(c) + 1))
            if (to_string(c) == server_code) return c;
        error_code other(errc::oauth_other);
        other.text_ = server_code;
        return other;
    }

    errc value() const { return value_; }
    int http_status() const { return status_; }  // 0 unless value() is errc::http_status

    friend bool operator==(const error_code& a, errc b) { return a.value_ == b; }
    friend bool operator==(const error_code&, const error_code&) = default;

private:
    errc value_;
    int status_ = 0;    // errc::http_status
    std::string text_;  // errc::oauth_other
    friend std::string to_string(const error_code& c);
};

// The text users see: the enumerator's name, "http_503", or the server's
// OAuth code.
inline std::string to_string(const error_code& c) {
    if (c.value_ == errc::http_status) return "http_" + std::to_string(c.status_);
    if (c.value_ == errc::oauth_other) return c.text_;
    return std::string(to_string(c.value_));
}

// The inverse of to_string(const error_code&): "http_<digits>" is an HTTP
// status, an enumerator's name is that enumerator, and any other text
// (a code written by a newer version, a server's OAuth code) is kept as
// errc::oauth_other with its text, so it shows as it was written.
inline error_code error_code_from_string(std::string_view text) {
    constexpr std::string_view http_prefix = "http_";
    if (text.size() > http_prefix.size() && text.size() <= http_prefix.size() + 3 &&
        text.substr(0, http_prefix.size()) == http_prefix) {
        int status = 0;
        bool digits = true;
        for (char ch : text.substr(http_prefix.size())) {
            digits = digits && ch >= '0' && ch <= '9';
            status = status * 10 + (ch - '0');
        }
        if (digits) return error_code::http(status);
    }
    const auto known = errc_from_string(text);
    if (known && *known != errc::http_status && *known != errc::oauth_other) return *known;
    return error_code::oauth(text);
}

// An expected failure: a machine-readable code and a message for a person.
// The message never contains a token, a secret or a FHIR payload.
struct error {
    error_code code;      // errc::timeout, error_code::http(503), errc::invalid_grant, …
    std::string message;  // what happened and where, for logs and `status`
};

template <class T>
class [[nodiscard]] result {
public:
    result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    result(error e) : v_(std::in_place_index<1>, std::move(e)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const error& err() const { return std::get<1>(v_); }

private:
    std::variant<T, error> v_;
};

// For operations with no value.
struct ok_t {};
inline constexpr ok_t ok_v{};

}  // namespace headachemd
