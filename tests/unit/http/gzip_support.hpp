// gzip test inputs for the http tests, made with zlib's deflate: the
// encoder, never the decoder under test.
#pragma once

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <zlib.h>

namespace headachemd::test {

// One gzip member of `n` bytes from `fill` (called for each block of
// input), streamed through deflate so a 100 MB input is never held.
template <class Fill>
std::string gzip_stream(std::size_t n, Fill fill, int level = Z_DEFAULT_COMPRESSION) {
    z_stream z{};
    if (deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2");
    std::vector<unsigned char> in(1 << 16), out(1 << 16);
    std::string gz;
    std::size_t left = n;
    int flush = Z_NO_FLUSH;
    do {
        const std::size_t take = std::min(left, in.size());
        fill(in.data(), take);
        left -= take;
        flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
        z.next_in = in.data();
        z.avail_in = static_cast<uInt>(take);
        do {
            z.next_out = out.data();
            z.avail_out = static_cast<uInt>(out.size());
            deflate(&z, flush);
            gz.append(reinterpret_cast<const char*>(out.data()), out.size() - z.avail_out);
        } while (z.avail_out == 0);
    } while (flush != Z_FINISH);
    deflateEnd(&z);
    return gz;
}

inline std::string gzip(std::string_view data) {
    std::size_t at = 0;
    return gzip_stream(data.size(), [&](unsigned char* p, std::size_t n) {
        std::copy_n(data.data() + at, n, p);
        at += n;
    });
}

inline std::string zeros_gzip(std::size_t n) {
    return gzip_stream(
        n, [](unsigned char* p, std::size_t k) { std::fill_n(p, k, 0); }, Z_BEST_COMPRESSION);
}

}  // namespace headachemd::test
