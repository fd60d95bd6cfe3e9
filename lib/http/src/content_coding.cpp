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

namespace {

error too_large(std::string_view what, std::size_t max_bytes, std::size_t received) {
    return error{errc::body_too_large, std::string(what) + "the body exceeds the limit of " +
                                           std::to_string(max_bytes) + " bytes (" + std::to_string(received) +
                                           " bytes received)"};
}

// Misuse of the feed/next/finish protocol is a bug in the caller, not
// something a server can cause.
void require_drained(bool drained, const char* call) {
    if (!drained)
        throw std::logic_error(std::string("content_decoder::") + call +
                               " before next() gave the empty piece that ends the previous chunk");
}

std::size_t checked_piece_bytes(const decoder_limits& limits) {
    if (limits.piece_bytes == 0)
        throw std::invalid_argument("content_decoder: piece_bytes must be at least 1");
    return limits.piece_bytes;
}

class gzip_decoder final : public content_decoder {
public:
    explicit gzip_decoder(decoder_limits limits) : limits_(limits), piece_(checked_piece_bytes(limits)) {}

    void feed(std::string_view chunk) override {
        require_drained(drained_, "feed");
        if (failed_) return;  // the error stands; next() repeats it
        in_ = chunk;
        fed_ = 0;
        total_in_ += chunk.size();
        drained_ = chunk.empty();
    }

    result<std::string_view> next() override {
        if (failed_) return *failed_;
        z_stream& z = inf_.z;
        for (;;) {
            refill();
            if (between_members_) {
                if (z.avail_in == 0) return used_up();
                // RFC 1952 §2.3.1: every member starts with ID1 ID2 = 1f 8b;
                // anything else after a member is trailing garbage, which
                // `gzip -d` also refuses. A lone 1f at a chunk's end is held
                // until the next byte says which it is.
                if (!held_id1_) {
                    if (z.next_in[0] != 0x1f) return fail(trailing());
                    held_id1_ = true;
                    ++z.next_in;
                    --z.avail_in;
                    continue;
                }
                if (z.next_in[0] != 0x8b) return fail(trailing());
                start_member();
                continue;
            }
            z.next_out = piece_.data();
            z.avail_out = static_cast<uInt>(std::min<std::size_t>(piece_.size(), UINT_MAX));
            const int rc = inflate(&z, Z_NO_FLUSH);
            const std::size_t produced = std::min<std::size_t>(piece_.size(), UINT_MAX) - z.avail_out;
            // The cap is checked before the piece is given: a bomb costs one
            // piece, never its decoded size.
            if (produced > limits_.max_bytes - total_out_)
                return fail(too_large("gzip data: decoded, ", limits_.max_bytes, total_in_));
            total_out_ += produced;
            const std::string_view piece(reinterpret_cast<const char*>(piece_.data()), produced);
            switch (rc) {
                case Z_OK:
                    if (produced > 0) return piece;
                    continue;  // a header or block boundary consumed; go on
                case Z_STREAM_END:
                    between_members_ = true;
                    if (produced > 0) return piece;
                    continue;
                case Z_BUF_ERROR:
                    // No progress with room to write: the chunk is used up
                    // (zlib's inflate docs: not fatal, more input may follow).
                    return used_up();
                case Z_DATA_ERROR:
                case Z_NEED_DICT:  // a gzip member has no preset dictionary
                    return fail(bad(data_error(z.msg)));
                case Z_MEM_ERROR:
                    throw std::bad_alloc();
                default:
                    throw std::logic_error("zlib inflate failed: " + std::to_string(rc));
            }
        }
    }

    result<ok_t> finish() override {
        require_drained(drained_, "finish");
        if (failed_) return *failed_;
        if (total_in_ == 0) return fail(bad("gzip data: the body is empty, not even a gzip header"));
        if (held_id1_) return fail(trailing());
        if (!between_members_)
            return fail(bad("gzip data: cut short inside member " + std::to_string(members_) + " after " +
                            std::to_string(total_in_) + " bytes (no end of stream or no trailer)"));
        return ok_v;
    }

private:
    // Hands zlib the next part of the chunk (avail_in is 32 bits).
    void refill() {
        z_stream& z = inf_.z;
        if (z.avail_in != 0 || fed_ == in_.size()) return;
        const std::size_t n = std::min<std::size_t>(in_.size() - fed_, UINT_MAX);
        // zlib does not write through next_in.
        z.next_in = const_cast<unsigned char*>(reinterpret_cast<const unsigned char*>(in_.data() + fed_));
        z.avail_in = static_cast<uInt>(n);
        fed_ += n;
    }

    result<std::string_view> used_up() {
        drained_ = true;
        return std::string_view();
    }

    // The held 1f and the 8b at next_in begin member members_ + 1; zlib
    // reads its header itself, so the held byte is given to it first.
    void start_member() {
        z_stream& z = inf_.z;
        ++members_;
        between_members_ = false;
        held_id1_ = false;
        if (inflateReset(&z) != Z_OK) throw std::logic_error("zlib inflateReset failed");
        static constexpr unsigned char id1 = 0x1f;
        unsigned char* const rest = z.next_in;
        const uInt rest_n = z.avail_in;
        unsigned char sink = 0;
        z.next_in = const_cast<unsigned char*>(&id1);
        z.avail_in = 1;
        z.next_out = &sink;
        z.avail_out = 1;
        const int rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK || z.avail_in != 0)
            throw std::logic_error("zlib refused a gzip ID1 byte: " + std::to_string(rc));
        z.next_in = rest;
        z.avail_in = rest_n;
    }

    // Counts what is left of the chunk: for a whole body, every byte after
    // the member.
    error trailing() const {
        const std::size_t rest = (held_id1_ ? 1 : 0) + inf_.z.avail_in + (in_.size() - fed_);
        return bad("gzip data: " + std::to_string(rest) + " bytes after the end of member " +
                   std::to_string(members_) + " do not start another gzip member");
    }

    error fail(error e) {
        failed_ = e;
        drained_ = true;  // nothing more is read from the chunk
        return e;
    }

    decoder_limits limits_;
    inflater inf_;
    std::vector<unsigned char> piece_;
    std::string_view in_;
    std::size_t fed_ = 0;        // bytes of in_ handed to zlib
    std::size_t total_in_ = 0;   // every byte fed, for messages
    std::size_t total_out_ = 0;  // every byte given, against max_bytes
    int members_ = 1;
    bool between_members_ = false;
    bool held_id1_ = false;  // a 1f after a member, its 8b not yet seen
    bool drained_ = true;
    std::optional<error> failed_;
};

class identity_decoder final : public content_decoder {
public:
    explicit identity_decoder(decoder_limits limits) : limits_(limits) { checked_piece_bytes(limits); }

    void feed(std::string_view chunk) override {
        require_drained(drained_, "feed");
        if (failed_) return;  // the error stands; next() repeats it
        in_ = chunk;
        total_in_ += chunk.size();
        drained_ = chunk.empty();
    }

    result<std::string_view> next() override {
        if (failed_) return *failed_;
        const std::size_t n = std::min(in_.size(), limits_.piece_bytes);
        if (n == 0) {
            drained_ = true;
            return std::string_view();
        }
        if (n > limits_.max_bytes - total_out_) {
            failed_ = too_large("", limits_.max_bytes, total_in_);
            drained_ = true;
            return *failed_;
        }
        total_out_ += n;
        const std::string_view piece = in_.substr(0, n);
        in_.remove_prefix(n);
        return piece;
    }

    result<ok_t> finish() override {
        require_drained(drained_, "finish");
        if (failed_) return *failed_;
        return ok_v;
    }

private:
    decoder_limits limits_;
    std::string_view in_;
    std::size_t total_in_ = 0;
    std::size_t total_out_ = 0;
    bool drained_ = true;
    std::optional<error> failed_;
};

}  // namespace

std::unique_ptr<content_decoder> make_gzip_decoder(decoder_limits limits) {
    return std::make_unique<gzip_decoder>(limits);
}

std::unique_ptr<content_decoder> make_identity_decoder(decoder_limits limits) {
    return std::make_unique<identity_decoder>(limits);
}

std::unique_ptr<content_decoder> make_content_decoder(content_coding coding, decoder_limits limits) {
    return coding == content_coding::gzip ? make_gzip_decoder(limits) : make_identity_decoder(limits);
}

result<std::string> gunzip(std::string_view in, std::size_t max_bytes) {
    gzip_decoder d({chunk_bytes, max_bytes});
    d.feed(in);
    std::string out;
    for (;;) {
        auto piece = d.next();
        if (!piece) return piece.err();
        if (piece->empty()) break;
        out.append(*piece);
    }
    if (auto end = d.finish(); !end) return end.err();
    return out;
}

}  // namespace headachemd::http::detail
