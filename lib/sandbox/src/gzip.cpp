// gzip for the sandbox: see gzip.hpp.
#include "gzip.hpp"

#include <algorithm>
#include <climits>
#include <new>
#include <stdexcept>
#include <vector>

#include <zlib.h>

#include "codec.hpp"

namespace headachemd::sandbox::detail {

namespace {

// Deflates what `fill` supplies (n bytes in all, a block at a time) into
// one gzip member.
template <class Fill>
std::string deflate_member(std::size_t n, Fill fill, int level) {
    z_stream z{};
    // 16 + MAX_WBITS: the gzip wrapper (zlib's deflateInit2 docs).
    const int rc = deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    if (rc != Z_OK) throw std::runtime_error("sandbox: zlib deflateInit2 failed");
    std::vector<unsigned char> in(64 * 1024), out(64 * 1024);
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

}  // namespace

std::string gzip_encode(std::string_view data) {
    std::size_t at = 0;
    auto fill = [&](unsigned char* p, std::size_t k) {
        std::copy_n(data.data() + at, k, p);
        at += k;
    };
    return deflate_member(data.size(), fill, Z_DEFAULT_COMPRESSION);
}

std::string gzip_zeros(std::size_t n) {
    return deflate_member(
        n, [](unsigned char* p, std::size_t k) { std::fill_n(p, k, 0); }, Z_BEST_COMPRESSION);
}

bool accepts_gzip(std::string_view accept_encoding) {
    std::string_view rest = accept_encoding;
    while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        std::string_view element = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        const std::size_t semi = element.find(';');
        std::string_view coding = element.substr(0, semi);
        const auto trim = [](std::string_view s) {
            const std::size_t b = s.find_first_not_of(" \t");
            if (b == std::string_view::npos) return std::string_view();
            return s.substr(b, s.find_last_not_of(" \t") - b + 1);
        };
        coding = trim(coding);
        if (!iequals(coding, "gzip") && !iequals(coding, "x-gzip") && coding != "*") continue;
        // RFC 9110 §12.4.2: "q=0" (or 0.0, 0.00, 0.000) means "not acceptable".
        bool refused = false;
        if (semi != std::string_view::npos) {
            const std::string_view param = trim(element.substr(semi + 1));
            if (param.size() >= 3 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=')
                refused = param.substr(2).find_first_not_of("0.") == std::string_view::npos;
        }
        if (!refused) return true;
    }
    return false;
}

}  // namespace headachemd::sandbox::detail
