// Content codings: see headachemd/http/detail/content_coding.hpp.
#include "headachemd/http/detail/content_coding.hpp"

#include <algorithm>
#include <climits>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <vector>

#include <zlib.h>

#include "headachemd/core/text.hpp"

namespace headachemd::http::detail {

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
        if (!ok) return false;
    }
    return true;
}

namespace {

// A coding as a message may show it: a server's text, so only a short
// plain token is repeated.
std::string shown(std::string_view coding) {
    if (is_token(coding) && coding.size() <= 32) return "'" + std::string(coding) + "'";
    return "a malformed coding";
}

// RFC 9110 §5.6.1: list elements are separated by "," with optional
// whitespace (SP, HTAB) around them; empty elements are allowed and skipped.
template <class F>
void for_each_element(std::span<const std::string_view> values, F&& f) {
    for (std::string_view v : values) {
        while (!v.empty()) {
            const std::size_t comma = v.find(',');
            std::string_view e = v.substr(0, comma);
            v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
            const std::size_t first = e.find_first_not_of(" \t");
            if (first == std::string_view::npos) continue;
            e = e.substr(first, e.find_last_not_of(" \t") - first + 1);
            f(e);
        }
    }
}

// Reads and decodes at most this much at a time: the most held beyond the cap.
constexpr std::size_t chunk_bytes = 64 * 1024;

error bad(std::string message) { return error{errc::bad_encoding, std::move(message)}; }

// zlib's own text for a Z_DATA_ERROR, which is one of its constant strings
// (inflate.c), never input bytes, put in words that say what was wrong.
std::string data_error(const char* zmsg) {
    const std::string_view m = zmsg ? zmsg : "";
    if (m == "incorrect data check")
        return "gzip data: the CRC-32 in a member's trailer does not match its data";
    if (m == "incorrect length check")
        return "gzip data: the length in a member's trailer does not match its data";
    if (m == "incorrect header check" || m == "unknown compression method" ||
        m == "unknown header flags set" || m == "header crc mismatch")
        return "not gzip data: the member header is not an RFC 1952 gzip header (zlib: " + std::string(m) +
               ")";
    return "gzip data: the deflate stream is corrupt (zlib: " + std::string(m.empty() ? "no detail" : m) +
           ")";
}

struct inflater {
    z_stream z{};
    inflater() {
        // 16 + MAX_WBITS: the gzip wrapper only (zlib's inflateInit2 docs);
        // a zlib-wrapped or raw deflate stream is refused, as `deflate`
        // would be in Content-Encoding.
        const int rc = inflateInit2(&z, 16 + MAX_WBITS);
        if (rc == Z_MEM_ERROR) throw std::bad_alloc();
        if (rc != Z_OK) throw std::runtime_error("zlib inflateInit2 failed: " + std::to_string(rc));
    }
    ~inflater() { inflateEnd(&z); }
    inflater(const inflater&) = delete;
    inflater& operator=(const inflater&) = delete;
};

}  // namespace

result<content_coding> parse_content_encoding(std::span<const std::string_view> values) {
    int gzips = 0;
    std::optional<std::string> refused;
    for_each_element(values, [&](std::string_view e) {
        if (refused) return;
        if (iequals(e, "identity")) return;
        if (iequals(e, "gzip") || iequals(e, "x-gzip")) {
            ++gzips;
            return;
        }
        refused = shown(e);
    });
    if (refused)
        return bad("Content-Encoding " + *refused +
                   " is not supported (gzip and identity only; we ask for gzip)");
    if (gzips > 1)
        return bad("Content-Encoding applies gzip " + std::to_string(gzips) +
                   " times; only a single gzip is decoded");
    return gzips == 1 ? content_coding::gzip : content_coding::identity;
}

result<ok_t> check_transfer_encoding(std::span<const std::string_view> values) {
    std::optional<std::string> refused;
    for_each_element(values, [&](std::string_view e) {
        if (!refused && !iequals(e, "chunked")) refused = shown(e);
    });
    if (refused)
        return error{errc::protocol, "Transfer-Encoding " + *refused +
                                         " was not asked for (no TE field was sent; only chunked is "
                                         "accepted, RFC 9112 §6.1)"};
    return ok_v;
}

result<std::string> gunzip(std::string_view in, std::size_t max_bytes) {
    if (in.empty()) return bad("gzip data: the body is empty, not even a gzip header");
    inflater inf;
    z_stream& z = inf.z;
    const auto* bytes = reinterpret_cast<const unsigned char*>(in.data());
    std::size_t fed = 0;  // bytes handed to zlib so far (avail_in is 32 bits)
    const auto consumed = [&] { return fed - z.avail_in; };
    std::vector<unsigned char> chunk(chunk_bytes);
    std::string out;
    int members = 1;

    for (;;) {
        if (z.avail_in == 0 && fed < in.size()) {
            const std::size_t n = std::min<std::size_t>(in.size() - fed, UINT_MAX);
            z.next_in = const_cast<unsigned char*>(bytes + fed);  // zlib does not write through it
            z.avail_in = static_cast<uInt>(n);
            fed += n;
        }
        z.next_out = chunk.data();
        z.avail_out = static_cast<uInt>(chunk.size());
        const int rc = inflate(&z, Z_NO_FLUSH);
        const std::size_t produced = chunk.size() - z.avail_out;
        // The cap is checked before the chunk is kept: a bomb costs one
        // chunk beyond the cap, never its decoded size.
        if (produced > max_bytes - out.size())
            return error{errc::body_too_large, "gzip data: decoded, the body exceeds the limit of " +
                                                   std::to_string(max_bytes) + " bytes (" +
                                                   std::to_string(in.size()) + " bytes received)"};
        out.append(reinterpret_cast<const char*>(chunk.data()), produced);

        switch (rc) {
            case Z_OK:
                continue;
            case Z_STREAM_END: {
                const std::size_t rest = in.size() - consumed();
                if (rest == 0) return out;
                // RFC 1952 §2.3.1: every member starts with ID1 ID2 = 1f 8b.
                if (rest >= 2 && bytes[consumed()] == 0x1f && bytes[consumed() + 1] == 0x8b) {
                    ++members;
                    if (inflateReset(&z) != Z_OK) throw std::logic_error("zlib inflateReset failed");
                    continue;
                }
                return bad("gzip data: " + std::to_string(rest) + " bytes after the end of member " +
                           std::to_string(members) + " do not start another gzip member");
            }
            case Z_BUF_ERROR:
                // No progress with room to write: the input is used up
                // before the member (deflate stream, trailer) ended.
                return bad("gzip data: cut short inside member " + std::to_string(members) + " after " +
                           std::to_string(in.size()) + " bytes (no end of stream or no trailer)");
            case Z_DATA_ERROR:
            case Z_NEED_DICT:  // a gzip member has no preset dictionary
                return bad(data_error(z.msg));
            case Z_MEM_ERROR:
                throw std::bad_alloc();
            default:
                throw std::logic_error("zlib inflate failed: " + std::to_string(rc));
        }
    }
}

}  // namespace headachemd::http::detail
