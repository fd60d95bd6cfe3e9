// The key that seals the secrets in vault.db, and the sealing itself.
//
// Sealing is AES-256-GCM (NIST SP 800-38D) through OpenSSL EVP with a fresh
// 96-bit random nonce per seal. A sealed value ("box") is
//
//     format (1 byte, 0x01) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)
//
// and the associated data the caller passes (the row's identity: patient
// key and EHR, or a secret's name) is authenticated but not stored in the
// box, so a box copied onto another row fails to open. The format byte is
// part of the associated data too, so a box cannot be replayed under a
// later format.
//
// Key file format: 64 hexadecimal digits (the 32 key bytes), optionally
// followed by one newline; nothing else. The file must not grant any
// permission to group or other (mode 0600 or 0400): a key that others can
// read protects nothing.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "headachemd/store/database.hpp"

namespace headachemd::store {

// A missing, unreadable, malformed or wrong key, or a row that does not
// open. A person must act (restart does not help), so the daemon exits with
// EX_CONFIG on it. The message never contains key or token bytes.
class key_error : public store_error {
public:
    using store_error::store_error;
};

// 32 bytes of AES-256 key material. Movable and copyable (the vault keeps
// one); the bytes are wiped when an object dies. Never printed: id() is
// what logs and rows carry.
class token_key {
public:
    static constexpr std::size_t size = 32;

    // From the OS random generator. Throws store_error when it fails.
    static token_key generate();
    // Exactly 32 bytes.
    explicit token_key(const std::array<std::uint8_t, size>& bytes);
    token_key(const token_key&) = default;
    token_key& operator=(const token_key&) = default;
    ~token_key();

    const std::array<std::uint8_t, size>& bytes() const { return bytes_; }
    // A fingerprint that names the key without revealing it: the first 8
    // bytes of HMAC-SHA256(key, "headachemd token key id v1") in hex. Stored
    // beside each sealed row so a wrong key is recognised before any open.
    const std::string& id() const { return id_; }

private:
    std::array<std::uint8_t, size> bytes_{};
    std::string id_;
};

// Reads a key file (format above). Throws key_error naming the file: it is
// missing or unreadable, grants group/other access (with the chmod fix), or
// is not 64 hex digits.
token_key load_token_key(const std::filesystem::path& path);

// Writes a new random key to `path` with mode 0600, creating the file
// exclusively (an existing file is never overwritten: the tokens sealed
// with it would be lost), fsyncs the file and its directory, and returns
// the key. Throws key_error on any failure, leaving no partial file.
token_key write_new_token_key(const std::filesystem::path& path);

// AES-256-GCM seal of `plaintext` with `associated_data` (see the format
// above). Throws store_error only when libcrypto itself fails.
std::string seal(const token_key& key, std::string_view associated_data, std::string_view plaintext);
// The plaintext, or nullopt when the box does not authenticate under this
// key and associated data (wrong key, tampered or moved box, unknown format).
std::optional<std::string> open_sealed(const token_key& key, std::string_view associated_data,
                                       std::string_view box);

}  // namespace headachemd::store
