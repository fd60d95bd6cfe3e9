// The sandbox's side of `Content-Encoding: gzip` (issue 15): encoding with
// zlib's deflate, and reading a request's Accept-Encoding. The client
// decodes with its own code in lib/http; nothing here is shared with it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace headachemd::sandbox::detail {

// One gzip member (RFC 1952) holding `data`.
std::string gzip_encode(std::string_view data);

// One gzip member holding `n` zero bytes, deflated as it goes (the zeros
// are never held): 100 MiB come to about 100 KiB, a decompression bomb.
std::string gzip_zeros(std::size_t n);

// Whether an Accept-Encoding value (RFC 9110 §12.5.3) allows gzip: a
// gzip, x-gzip or "*" element whose qvalue is not 0. Empty: no.
bool accepts_gzip(std::string_view accept_encoding);

}  // namespace headachemd::sandbox::detail
