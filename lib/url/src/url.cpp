// Pure URL and encoding helpers: see url.hpp for the contracts.
#include "headachemd/http/url.hpp"
#include "headachemd/core/text.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>

#include <boost/url/authority_view.hpp>
#include <boost/url/ipv4_address.hpp>
#include <boost/url/ipv6_address.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

namespace headachemd::http {

namespace urls = boost::urls;

namespace {

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

constexpr bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// RFC 3986 §2.3 unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
constexpr bool is_unreserved(char c) {
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

// A registered name we are willing to resolve: letters, digits, '-', '.',
// '_' after percent-decoding. Anything else (a decoded '/', NUL, or UTF-8
// that would need IDNA) is refused rather than handed to getaddrinfo.
bool is_plain_reg_name(std::string_view host) {
    if (host.empty()) return false;
    for (char c : host)
        if (!(is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_')) return false;
    return true;
}

// WHATWG URL §3.5 "ends in a number": the last label (a trailing dot
// ignored) is decimal digits, or "0x" with hex digits.
bool ends_in_a_number(std::string_view host) {
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    const auto dot = host.rfind('.');
    const std::string_view last = dot == std::string_view::npos ? host : host.substr(dot + 1);
    if (last.empty()) return false;
    if (std::all_of(last.begin(), last.end(), is_digit)) return true;
    if (last.size() >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X'))
        return std::all_of(last.begin() + 2, last.end(), [](char c) {
            return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        });
    return false;
}

bool is_loopback_v6(const urls::ipv6_address& a) {
    if (a.is_loopback()) return true;
    // ::ffff:127.x.y.z reaches the IPv4 loopback net.
    return a.is_v4_mapped() && a.to_bytes()[12] == 127;
}

void append_pct(std::string& out, unsigned char byte) {
    static constexpr char hex[] = "0123456789ABCDEF";
    out += '%';
    out += hex[byte >> 4];
    out += hex[byte & 0x0F];
}

// Form encoding of one name or value (space as '+').
void append_form(std::string& out, std::string_view s) {
    for (char c : s) {
        if (is_unreserved(c))
            out += c;
        else if (c == ' ')
            out += '+';
        else
            append_pct(out, static_cast<unsigned char>(c));
    }
}

// --- HTTP-date (RFC 9110 §5.6.7) -------------------------------------------

constexpr std::array<std::string_view, 7> day_names{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> day_names_long{"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                         "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> month_names{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

template <std::size_t N>
bool one_of(std::string_view s, const std::array<std::string_view, N>& names) {
    for (auto n : names)
        if (s == n) return true;
    return false;
}

std::optional<unsigned> parse_month(std::string_view s) {
    for (std::size_t i = 0; i < month_names.size(); ++i)
        if (s == month_names[i]) return static_cast<unsigned>(i + 1);
    return std::nullopt;
}

// Exactly s.size() digits.
std::optional<int> parse_digits(std::string_view s) {
    if (s.empty()) return std::nullopt;
    int v = 0;
    for (char c : s) {
        if (!is_digit(c)) return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v;
}

struct time_of_day {
    int h, m, s;
};

// "HH:MM:SS"; second 60 is a leap second.
std::optional<time_of_day> parse_time(std::string_view s) {
    if (s.size() != 8 || s[2] != ':' || s[5] != ':') return std::nullopt;
    auto h = parse_digits(s.substr(0, 2));
    auto m = parse_digits(s.substr(3, 2));
    auto sec = parse_digits(s.substr(6, 2));
    if (!h || !m || !sec || *h > 23 || *m > 59 || *sec > 60) return std::nullopt;
    return time_of_day{*h, *m, *sec};
}

// In whole seconds: system_clock counts nanoseconds and spans only the
// years 1678-2262, and a date such as "Sun, 06 Nov 5994 …" overflowed it
// (found by tests/fuzz/fuzz_url).
std::optional<std::chrono::sys_seconds> make_time(int year, unsigned month, int day, time_of_day t) {
    using namespace std::chrono;
    const year_month_day ymd{std::chrono::year{year}, std::chrono::month{month},
                             std::chrono::day{static_cast<unsigned>(day)}};
    if (!ymd.ok()) return std::nullopt;
    return sys_seconds{sys_days{ymd}} + hours{t.h} + minutes{t.m} + seconds{t.s};
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
std::optional<std::chrono::sys_seconds> parse_imf_fixdate(std::string_view v) {
    if (v.size() != 29 || v.substr(3, 2) != ", " || v[7] != ' ' || v[11] != ' ' || v[16] != ' ' ||
        v.substr(25) != " GMT")
        return std::nullopt;
    if (!one_of(v.substr(0, 3), day_names)) return std::nullopt;
    auto day = parse_digits(v.substr(5, 2));
    auto mon = parse_month(v.substr(8, 3));
    auto year = parse_digits(v.substr(12, 4));
    auto t = parse_time(v.substr(17, 8));
    if (!day || !mon || !year || !t) return std::nullopt;
    return make_time(*year, *mon, *day, *t);
}

// rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT". The two-digit year is the
// one not more than 50 years after `now` (RFC 9110 §5.6.7).
std::optional<std::chrono::sys_seconds> parse_rfc850(std::string_view v,
                                                     std::chrono::system_clock::time_point now) {
    const auto comma = v.find(',');
    if (comma == std::string_view::npos || !one_of(v.substr(0, comma), day_names_long)) return std::nullopt;
    v.remove_prefix(comma);
    // ", 06-Nov-94 08:49:37 GMT"
    if (v.size() != 24 || v.substr(0, 2) != ", " || v[4] != '-' || v[8] != '-' || v[11] != ' ' ||
        v.substr(20) != " GMT")
        return std::nullopt;
    auto day = parse_digits(v.substr(2, 2));
    auto mon = parse_month(v.substr(5, 3));
    auto yy = parse_digits(v.substr(9, 2));
    auto t = parse_time(v.substr(12, 8));
    if (!day || !mon || !yy || !t) return std::nullopt;
    const std::chrono::year_month_day today{std::chrono::floor<std::chrono::days>(now)};
    const int current = static_cast<int>(today.year());
    int year = current / 100 * 100 + *yy;
    if (year > current + 50)
        year -= 100;
    else if (year + 100 <= current + 50)
        year += 100;
    return make_time(year, *mon, *day, *t);
}

// asctime-date: "Sun Nov  6 08:49:37 1994"
std::optional<std::chrono::sys_seconds> parse_asctime(std::string_view v) {
    if (v.size() != 24 || v[3] != ' ' || v[7] != ' ' || v[10] != ' ' || v[19] != ' ') return std::nullopt;
    if (!one_of(v.substr(0, 3), day_names)) return std::nullopt;
    auto mon = parse_month(v.substr(4, 3));
    // date3 = month SP ( 2DIGIT / ( SP DIGIT ) )
    const auto day = v[8] == ' ' ? parse_digits(v.substr(9, 1)) : parse_digits(v.substr(8, 2));
    auto t = parse_time(v.substr(11, 8));
    auto year = parse_digits(v.substr(20, 4));
    if (!day || !mon || !year || !t) return std::nullopt;
    return make_time(*year, *mon, *day, *t);
}

}  // namespace

std::string origin::to_string() const {
    std::string out = scheme + "://";
    if (host.find(':') != std::string::npos)
        out += "[" + host + "]";
    else
        out += host;
    out += ':';
    out += std::to_string(port);
    return out;
}

std::optional<origin> origin_of(std::string_view url) {
    auto parsed = urls::parse_uri(url);
    if (!parsed) return std::nullopt;
    const urls::url_view& u = *parsed;
    origin o;
    o.scheme = lower(u.scheme());
    std::uint16_t default_port = 0;
    if (o.scheme == "https")
        default_port = 443;
    else if (o.scheme == "http")
        default_port = 80;
    else
        return std::nullopt;
    if (!u.has_authority()) return std::nullopt;
    // RFC 3986 §3.3: after an authority the path is empty or begins with
    // "/". Boost.URL 1.81 ends a host at a dotted-quad prefix and hands the
    // rest to the path: "https://127.0.0.1.evil.example:8443/" comes back as
    // host 127.0.0.1, no port, path ".evil.example:8443/". Such a parse is
    // refused rather than given an origin (and a loopback verdict) the URL
    // does not have.
    if (!u.encoded_path().empty() && u.encoded_path().front() != '/') return std::nullopt;

    switch (u.host_type()) {
        case urls::host_type::ipv4:
            o.host = u.host_ipv4_address().to_string();
            break;
        case urls::host_type::ipv6:
            // Canonical text, so "[0:0::1]" and "[::1]" are one origin.
            o.host = u.host_ipv6_address().to_string();
            break;
        case urls::host_type::name:
            o.host = lower(u.host_address());
            if (!is_plain_reg_name(o.host)) return std::nullopt;
            // A name whose last label is a number ("127.1", or "127%2E0.0.1"
            // once decoded): WHATWG URL §3.5 reads such a host as IPv4 or
            // refuses it, and getaddrinfo reads "127.1" as 127.0.0.1. Taken
            // as the address it spells, or refused, so the loopback verdict
            // and the origin's own text agree with where it would connect.
            if (ends_in_a_number(o.host)) {
                auto v4 = urls::parse_ipv4_address(o.host);
                if (!v4) return std::nullopt;
                o.host = v4->to_string();
                break;
            }
            // And one that, written plainly, the parser above would read as
            // something else ("1.27.0.0s1" becomes 1.27.0.0 and a path):
            // refused, so an origin's text always parses back to it.
            if (auto plain = urls::parse_authority(o.host);
                !plain || plain->host_type() != urls::host_type::name || plain->encoded_host() != o.host)
                return std::nullopt;
            break;
        default:  // none, ipvfuture
            return std::nullopt;
    }

    o.port = default_port;
    if (u.has_port() && !u.port().empty()) {
        const auto p = u.port();
        if (p.size() > 5) return std::nullopt;
        auto n = parse_digits(p);
        if (!n || *n < 1 || *n > 65535) return std::nullopt;
        o.port = static_cast<std::uint16_t>(*n);
    }
    return o;
}

bool same_origin(std::string_view a, std::string_view b) {
    auto oa = origin_of(a);
    auto ob = origin_of(b);
    return oa && ob && *oa == *ob;
}

bool is_loopback_host(std::string_view host) {
    if (iequals(host, "localhost")) return true;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (auto v4 = urls::parse_ipv4_address(host)) return v4->is_loopback();
    if (auto v6 = urls::parse_ipv6_address(host)) return is_loopback_v6(*v6);
    return false;
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
    // A field value carries no leading or trailing OWS (RFC 9110 §5.5), but
    // be forgiving about it.
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (value.empty()) return std::nullopt;

    if (is_digit(value.front())) {
        // delta-seconds = 1*DIGIT; anything past 2^31 is taken as 2^31
        // (RFC 9111 §1.2.2).
        constexpr long long cap = 2147483648LL;
        long long v = 0;
        for (char c : value) {
            if (!is_digit(c)) return std::nullopt;
            v = v * 10 + (c - '0');
            if (v > cap) v = cap;
        }
        return std::chrono::seconds{v};
    }

    auto when = parse_imf_fixdate(value);
    if (!when) when = parse_rfc850(value, now);
    if (!when) when = parse_asctime(value);
    if (!when) return std::nullopt;
    // The wait rounded up to whole seconds is `when` minus `now` rounded
    // down; a date more than 2^31 s ahead is clamped like delta-seconds.
    const auto wait = *when - std::chrono::floor<std::chrono::seconds>(now);
    if (wait <= std::chrono::seconds{0}) return std::chrono::seconds{0};
    return std::min(wait, std::chrono::seconds{std::int64_t{1} << 31});
}

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields) {
    std::string out;
    for (const auto& [name, value] : fields) {
        if (!out.empty()) out += '&';
        append_form(out, name);
        out += '=';
        append_form(out, value);
    }
    return out;
}

std::string percent_encode(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (char c : bytes) {
        if (is_unreserved(c))
            out += c;
        else
            append_pct(out, static_cast<unsigned char>(c));
    }
    return out;
}

std::string url_with_query(std::string_view base,
                           const std::vector<std::pair<std::string, std::string>>& params) {
    if (params.empty()) return std::string(base);
    std::string_view fragment;
    if (auto hash = base.find('#'); hash != std::string_view::npos) {
        fragment = base.substr(hash);
        base = base.substr(0, hash);
    }
    std::string out(base);
    if (base.find('?') == std::string_view::npos)
        out += '?';
    else if (out.back() != '?' && out.back() != '&')
        out += '&';
    out += form_encode(params);
    out += fragment;
    return out;
}

}  // namespace headachemd::http
