// Content codings of a response (RFC 9110 §8.4), with no sockets: which
// coding the Content-Encoding fields name, and gzip decoding under a size
// cap, whole or incrementally. The client (client.cpp) calls gunzip on a
// whole body it has read; the Bulk Data download (issue 15) feeds a
// content_decoder chunk by chunk. A server controls every byte given
// here, so every failure is a value.
#pragma once

#include <cstddef>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "headachemd/core/result.hpp"

namespace headachemd::http::detail {

enum class content_coding { identity, gzip };

// RFC 9110 §5.6.2: token = 1*tchar.
bool is_token(std::string_view s);

// The coding the Content-Encoding field values apply, given every field of
// that name in the order received (RFC 9110 §5.3: several fields are one
// comma-separated list). Codings compare case-insensitively (§8.4.1);
// empty list elements are skipped (§5.6.1); "identity" adds nothing; and
// "x-gzip" is gzip (§8.4.1.3: "A recipient SHOULD consider x-gzip to be
// equivalent to gzip"). No field, or only identity: identity.
//
// errc::bad_encoding for any other coding (br, deflate, compress, zstd, a
// malformed element) and for gzip applied more than once ("gzip, gzip"):
// we ask for gzip alone, and decoding twice would multiply a bomb's
// ratio. The message quotes the coding when it is a plain token of at most
// 32 characters, else says it is malformed; nothing else of the value.
result<content_coding> parse_content_encoding(std::span<const std::string_view> values);

// Decodes a body chunk by chunk with bounded memory: compressed (or
// identity) bytes go in as they arrive, decoded bytes come out in pieces
// of at most `piece_bytes`, so a gzip bomb never has its output allocated;
// the caller decides what to keep. One interface for gzip and identity, so
// a caller does not branch on the coding (make_content_decoder).
//
// Use: feed(chunk), then call next() until it gives an empty piece (the
// chunk is used up), then feed the next chunk; after the last one,
// finish(). `chunk` must stay valid until next() has given that empty
// piece (identity hands out views into it). A piece is valid until the
// next call on the decoder. The first error is final: every later next()
// and finish() returns it again. Calling feed() or finish() before the
// previous chunk is used up is a bug (std::logic_error).
struct decoder_limits {
    std::size_t piece_bytes = 64 * 1024;  // the largest piece next() gives; at least 1
    // The total decoded size allowed: errc::body_too_large once the next
    // piece would pass it (that piece is not given).
    std::size_t max_bytes = std::numeric_limits<std::size_t>::max();
};

class content_decoder {
public:
    virtual ~content_decoder() = default;
    virtual void feed(std::string_view chunk) = 0;
    // The next decoded piece; empty when the chunk fed is used up.
    virtual result<std::string_view> next() = 0;
    // The body has ended. For gzip: errc::bad_encoding when it ended
    // inside a member ("cut short"), after a lone byte that may have begun
    // another member, or with no bytes at all.
    virtual result<ok_t> finish() = 0;
};

// gzip (RFC 1952) as gunzip below describes, member after member, with
// the same errors. Throws std::bad_alloc when zlib cannot allocate its
// state (about 7 KiB plus a 32 KiB window) and the piece buffer.
std::unique_ptr<content_decoder> make_gzip_decoder(decoder_limits limits = {});
// Hands the fed bytes back unchanged, in pieces of at most piece_bytes
// (views into the chunk, no copy), under the same max_bytes.
std::unique_ptr<content_decoder> make_identity_decoder(decoder_limits limits = {});
std::unique_ptr<content_decoder> make_content_decoder(content_coding coding, decoder_limits limits = {});

// Decodes a gzip body (RFC 1952) whole, with make_gzip_decoder. Several members one after another are
// decoded into one output, as `gzip -d` does (§2.2: a gzip file "consists
// of a series of members"; storage services that compose objects produce
// them). Each member's CRC-32 and length (ISIZE) are checked.
//
// Errors (the message names the defect and byte counts, never data):
//   body_too_large  the decoded data would exceed `max_bytes`. Decoding
//                   stops there: at most max_bytes plus one 64 KiB chunk
//                   is ever held, whatever the ratio (a gzip bomb).
//   bad_encoding    no data at all; not a gzip header; corrupt deflate
//                   data; a CRC-32 or length mismatch; data cut short
//                   (inside a member); or bytes after a member that do not
//                   start another one (trailing garbage).
// Throws std::bad_alloc when zlib cannot allocate its state.
result<std::string> gunzip(std::string_view in, std::size_t max_bytes);

// RFC 9112 §6.1: a server "MUST NOT send a response containing
// Transfer-Encoding unless the corresponding request indicates HTTP/1.1"
// and a client that sent no TE field has accepted no transfer coding but
// chunked. Beast removes chunked framing and would hand any other coding
// (`Transfer-Encoding: gzip, chunked`) through as if it were the
// content. errc::protocol for any coding but chunked, naming it as
// parse_content_encoding does.
result<ok_t> check_transfer_encoding(std::span<const std::string_view> values);

}  // namespace headachemd::http::detail
