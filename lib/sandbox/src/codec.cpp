#include "codec.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <cstdio>
#include <stdexcept>

namespace headachemd::sandbox::detail {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool is_unreserved(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

constexpr char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64(std::string_view bytes, const char* alphabet, bool pad) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    const auto byte = [&](std::size_t k) {
        return static_cast<unsigned>(static_cast<unsigned char>(bytes[k]));
    };
    for (; i + 3 <= bytes.size(); i += 3) {
        const unsigned v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
        out.push_back(alphabet[v >> 18 & 63]);
        out.push_back(alphabet[v >> 12 & 63]);
        out.push_back(alphabet[v >> 6 & 63]);
        out.push_back(alphabet[v & 63]);
    }
    const std::size_t rest = bytes.size() - i;
    if (rest == 1) {
        const unsigned v = byte(i) << 16;
        out.push_back(alphabet[v >> 18 & 63]);
        out.push_back(alphabet[v >> 12 & 63]);
        if (pad) out += "==";
    } else if (rest == 2) {
        const unsigned v = byte(i) << 16 | byte(i + 1) << 8;
        out.push_back(alphabet[v >> 18 & 63]);
        out.push_back(alphabet[v >> 12 & 63]);
        out.push_back(alphabet[v >> 6 & 63]);
        if (pad) out.push_back('=');
    }
    return out;
}

// Days since 1970-01-01 → civil date, via the C++20 calendar types.
std::chrono::year_month_day to_ymd(time_point t) {
    return std::chrono::year_month_day{std::chrono::floor<std::chrono::days>(t)};
}

std::string two(unsigned v) {
    std::string s(2, '0');
    s[0] = static_cast<char>('0' + v / 10 % 10);
    s[1] = static_cast<char>('0' + v % 10);
    return s;
}

std::string date_part(time_point t) {
    const auto ymd = to_ymd(t);
    std::string y = std::to_string(static_cast<int>(ymd.year()));
    while (y.size() < 4) y.insert(y.begin(), '0');
    return y + "-" + two(static_cast<unsigned>(ymd.month())) + "-" + two(static_cast<unsigned>(ymd.day()));
}

std::string time_part(time_point t) {
    const auto day = std::chrono::floor<std::chrono::days>(t);
    const std::chrono::hh_mm_ss hms{std::chrono::floor<std::chrono::seconds>(t - day)};
    return two(static_cast<unsigned>(hms.hours().count())) + ":" +
           two(static_cast<unsigned>(hms.minutes().count())) + ":" +
           two(static_cast<unsigned>(hms.seconds().count()));
}

// Reads exactly n digits at s[pos], advancing pos.
std::optional<int> digits(std::string_view s, std::size_t& pos, std::size_t n) {
    if (pos + n > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t k = 0; k < n; ++k) {
        const char c = s[pos + k];
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    pos += n;
    return v;
}

}  // namespace

std::optional<std::string> form_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c == '%') {
            if (i + 2 >= s.size()) return std::nullopt;
            const int hi = hex_value(s[i + 1]);
            const int lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::string url_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (const char c : s) {
        if (is_unreserved(c)) {
            out.push_back(c);
        } else {
            const auto u = static_cast<unsigned char>(c);
            out.push_back('%');
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 15]);
        }
    }
    return out;
}

std::optional<params> parse_form(std::string_view s) {
    params out;
    while (!s.empty()) {
        const auto amp = s.find('&');
        const std::string_view part = s.substr(0, amp);
        s = amp == std::string_view::npos ? std::string_view{} : s.substr(amp + 1);
        if (part.empty()) continue;
        const auto eq = part.find('=');
        auto name = form_decode(part.substr(0, eq));
        auto value = form_decode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1));
        if (!name || !value) return std::nullopt;
        out.emplace_back(std::move(*name), std::move(*value));
    }
    return out;
}

const std::string* find_param(const params& p, std::string_view name) {
    for (const auto& [k, v] : p)
        if (k == name) return &v;
    return nullptr;
}

std::size_t count_param(const params& p, std::string_view name) {
    std::size_t n = 0;
    for (const auto& kv : p)
        if (kv.first == name) ++n;
    return n;
}

std::string encode_params(const params& p) {
    std::string out;
    for (const auto& [k, v] : p) {
        if (!out.empty()) out.push_back('&');
        out += url_encode(k);
        out.push_back('=');
        out += url_encode(v);
    }
    return out;
}

std::string base64_encode(std::string_view bytes) { return b64(bytes, b64_std, true); }

std::string base64url_encode(std::string_view bytes) { return b64(bytes, b64_url, false); }

std::optional<std::string> base64_decode(std::string_view text) {
    while (!text.empty() && text.back() == '=') text.remove_suffix(1);
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    unsigned acc = 0;
    int bits = 0;
    for (const char c : text) {
        int v = -1;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+')
            v = 62;
        else if (c == '/')
            v = 63;
        if (v < 0) return std::nullopt;
        acc = (acc << 6 | static_cast<unsigned>(v)) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>(acc >> bits & 0xFF));
        }
    }
    return out;
}

std::string sha256(std::string_view bytes) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), md.data(), &len, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("sandbox: EVP_Digest(SHA-256) failed");
    return std::string(reinterpret_cast<const char*>(md.data()), len);
}

std::string pkce_s256(std::string_view verifier) { return base64url_encode(sha256(verifier)); }

bool valid_pkce_string(std::string_view s) {
    if (s.size() < 43 || s.size() > 128) return false;
    for (const char c : s)
        if (!is_unreserved(c)) return false;
    return true;
}

std::string random_token(std::size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
        throw std::runtime_error("sandbox: RAND_bytes failed");
    return base64url_encode(raw);
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

std::string format_date(time_point t) { return date_part(t); }

std::string format_date_time(time_point t) { return date_part(t) + "T" + time_part(t) + "Z"; }

std::string format_http_date(time_point t) {
    using namespace std::chrono;
    static constexpr const char* weekdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const auto day = floor<std::chrono::days>(t);
    const year_month_day ymd{day};
    const weekday wd{day};
    const auto secs = duration_cast<seconds>(t - day).count();
    char buf[128];  // roomy: at -O0 GCC cannot bound the fields and warns
    std::snprintf(buf, sizeof buf, "%s, %02u %s %04d %02lld:%02lld:%02lld GMT", weekdays[wd.c_encoding()],
                  static_cast<unsigned>(ymd.day()), months[static_cast<unsigned>(ymd.month()) - 1],
                  static_cast<int>(ymd.year()), static_cast<long long>(secs / 3600),
                  static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60));
    return buf;
}

std::string format_instant(time_point t) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(t - std::chrono::floor<std::chrono::seconds>(t))
            .count();
    std::string frac = std::to_string(ms);
    while (frac.size() < 3) frac.insert(frac.begin(), '0');
    return date_part(t) + "T" + time_part(t) + "." + frac + "Z";
}

std::optional<std::pair<time_point, time_point>> parse_fhir_date_range(std::string_view s) {
    using namespace std::chrono;
    std::size_t pos = 0;
    const auto y = digits(s, pos, 4);
    if (!y) return std::nullopt;
    const auto make = [](int yy, unsigned mm, unsigned dd) -> std::optional<time_point> {
        const year_month_day ymd{year{yy}, month{mm}, day{dd}};
        if (!ymd.ok()) return std::nullopt;
        return time_point{sys_days{ymd}};
    };
    if (pos == s.size()) {
        const auto lo = make(*y, 1, 1);
        const auto hi = make(*y + 1, 1, 1);
        return std::pair{*lo, *hi};
    }
    if (s[pos++] != '-') return std::nullopt;
    const auto mo = digits(s, pos, 2);
    if (!mo || *mo < 1 || *mo > 12) return std::nullopt;
    if (pos == s.size()) {
        const auto lo = make(*y, static_cast<unsigned>(*mo), 1);
        const auto hi = *mo == 12 ? make(*y + 1, 1, 1) : make(*y, static_cast<unsigned>(*mo + 1), 1);
        return std::pair{*lo, *hi};
    }
    if (s[pos++] != '-') return std::nullopt;
    const auto d = digits(s, pos, 2);
    if (!d) return std::nullopt;
    const auto day_start = make(*y, static_cast<unsigned>(*mo), static_cast<unsigned>(*d));
    if (!day_start) return std::nullopt;
    if (pos == s.size()) return std::pair{*day_start, *day_start + days{1}};
    if (s[pos++] != 'T') return std::nullopt;
    const auto hh = digits(s, pos, 2);
    if (!hh || pos >= s.size() || s[pos++] != ':') return std::nullopt;
    const auto mi = digits(s, pos, 2);
    if (!mi || *hh > 23 || *mi > 59) return std::nullopt;
    time_point t = *day_start + hours{*hh} + minutes{*mi};
    nanoseconds precision = minutes{1};
    if (pos < s.size() && s[pos] == ':') {
        ++pos;
        const auto ss = digits(s, pos, 2);
        if (!ss || *ss > 60) return std::nullopt;
        t += seconds{*ss};
        precision = seconds{1};
        if (pos < s.size() && s[pos] == '.') {
            ++pos;
            std::int64_t frac = 0;
            std::int64_t scale = 1'000'000'000;
            const std::size_t start = pos;
            while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
                if (scale > 1) {
                    scale /= 10;
                    frac += (s[pos] - '0') * scale;
                }
                ++pos;
            }
            if (pos == start) return std::nullopt;
            t += nanoseconds{frac};
            // The range of "10:00:00.5" is that tenth of a second.
            std::int64_t p = 1'000'000'000;
            for (std::size_t k = start; k < pos && p > 1; ++k) p /= 10;
            precision = nanoseconds{p};
        }
    }
    // A time needs a zone (FHIR R4 dateTime); a search value without one is
    // read as UTC, as HAPI does.
    if (pos < s.size()) {
        if (s[pos] == 'Z') {
            ++pos;
        } else if (s[pos] == '+' || s[pos] == '-') {
            const bool minus = s[pos] == '-';
            ++pos;
            const auto oh = digits(s, pos, 2);
            if (!oh || pos >= s.size() || s[pos++] != ':') return std::nullopt;
            const auto om = digits(s, pos, 2);
            if (!om) return std::nullopt;
            const auto offset = hours{*oh} + minutes{*om};
            // Local time = UTC + offset, so UTC = local − offset.
            t = minus ? t + offset : t - offset;
        } else {
            return std::nullopt;
        }
    }
    if (pos != s.size()) return std::nullopt;
    const auto lo = time_point_cast<system_clock::duration>(t);
    return std::pair{lo, lo + duration_cast<system_clock::duration>(precision)};
}

}  // namespace headachemd::sandbox::detail
