// Content codings of a response (RFC 9110 §8.4), with no sockets: which
// coding the Content-Encoding fields name, and gzip decoding under a size
// cap. The client (client.cpp) calls these on a whole body it has read; a
// server controls every byte given here, so every failure is a value.
#pragma once

#include <cstddef>
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

// Decodes a gzip body (RFC 1952). Several members one after another are
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
