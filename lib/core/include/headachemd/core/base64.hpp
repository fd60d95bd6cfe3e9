// base64 and base64url (RFC 4648 §4 and §5), one copy for every layer
// (issue 14, item 4: the encoder lived in lib/http, the decoders in
// lib/smart and the sandbox). Pure functions over bytes; nothing throws but
// bad_alloc.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace headachemd {

namespace detail {

inline constexpr char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
inline constexpr char base64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

inline std::string base64_with(std::span<const unsigned char> in, const char* alphabet, bool pad) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        const unsigned v = (unsigned{in[i]} << 16) | (unsigned{in[i + 1]} << 8) | unsigned{in[i + 2]};
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    const std::size_t rest = in.size() - i;
    if (rest == 1) {
        const unsigned v = unsigned{in[i]} << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        if (pad) out += "==";
    } else if (rest == 2) {
        const unsigned v = (unsigned{in[i]} << 16) | (unsigned{in[i + 1]} << 8);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        if (pad) out += '=';
    }
    return out;
}

// The value of one character of `alphabet`, or -1.
constexpr int base64_value(char c, const char* alphabet) {
    for (int i = 0; i < 64; ++i)
        if (alphabet[i] == c) return i;
    return -1;
}

// Up to two trailing '=' are accepted and ignored (padding is optional);
// any other character outside `alphabet`, or a length that leaves a single
// character over (RFC 4648 §4: 6 bits cannot make a byte), is refused.
inline std::optional<std::string> base64_decode_with(std::string_view text, const char* alphabet) {
    for (int i = 0; i < 2 && !text.empty() && text.back() == '='; ++i) text.remove_suffix(1);
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() / 4 * 3 + 2);
    unsigned acc = 0;
    int bits = 0;
    for (const char c : text) {
        const int v = base64_value(c, alphabet);
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

inline std::span<const unsigned char> as_bytes(std::string_view s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

}  // namespace detail

// RFC 4648 §4 base64 with '=' padding (HTTP Basic credentials, RFC 7617).
inline std::string base64_encode(std::span<const unsigned char> bytes) {
    return detail::base64_with(bytes, detail::base64_alphabet, true);
}
inline std::string base64_encode(std::string_view bytes) { return base64_encode(detail::as_bytes(bytes)); }

// RFC 4648 §5 base64url without padding (JWS, RFC 7515 §2; PKCE, RFC 7636
// §3).
inline std::string base64url_encode(std::span<const unsigned char> bytes) {
    return detail::base64_with(bytes, detail::base64url_alphabet, false);
}
inline std::string base64url_encode(std::string_view bytes) {
    return base64url_encode(detail::as_bytes(bytes));
}

// The bytes of RFC 4648 §4 base64; padding optional. nullopt for a
// character outside the alphabet or an impossible length.
inline std::optional<std::string> base64_decode(std::string_view text) {
    return detail::base64_decode_with(text, detail::base64_alphabet);
}

// The bytes of RFC 4648 §5 base64url; padding optional (RFC 7515 §2 has
// none, some servers add it). nullopt for a character outside the alphabet
// ('+' and '/' included) or an impossible length.
inline std::optional<std::string> base64url_decode(std::string_view text) {
    return detail::base64_decode_with(text, detail::base64url_alphabet);
}

}  // namespace headachemd
