#include "headachemd/store/token_key.hpp"

#include "headachemd/core/text.hpp"
#include "headachemd/files/protected_file.hpp"
#include "headachemd/files/write_file.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace headachemd::store {
namespace {

namespace fs = std::filesystem;

constexpr unsigned char box_format_v1 = 0x01;
constexpr std::size_t nonce_size = 12;  // 96 bits: GCM's native IV length (SP 800-38D §8.2)
constexpr std::size_t tag_size = 16;

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string key_id_of(const std::array<std::uint8_t, token_key::size>& key) {
    static constexpr std::string_view label = "headachemd token key id v1";
    unsigned char mac[32];
    std::size_t len = 0;
    if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                  reinterpret_cast<const unsigned char*>(label.data()), label.size(), mac, sizeof mac,
                  &len) == nullptr ||
        len != sizeof mac)
        throw store_error("OpenSSL HMAC-SHA256 failed while naming the token key");
    return to_hex(mac, 8);
}

struct cipher_ctx_free {
    void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using cipher_ctx = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_free>;

// The associated data as GCM sees it: the format byte first, then the caller's.
std::string full_ad(std::string_view associated_data) {
    std::string ad;
    ad.reserve(1 + associated_data.size());
    ad.push_back(static_cast<char>(box_format_v1));
    ad.append(associated_data);
    return ad;
}

}  // namespace

token_key token_key::generate() {
    std::array<std::uint8_t, size> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
        throw store_error("the OS random generator failed; cannot create a token key");
    token_key k(bytes);
    OPENSSL_cleanse(bytes.data(), bytes.size());
    return k;
}

token_key::token_key(const std::array<std::uint8_t, size>& bytes) : bytes_(bytes), id_(key_id_of(bytes)) {}

token_key::~token_key() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

token_key load_token_key(const fs::path& path) {
    // One rule for every secret file (lib/files): a regular file, owned by
    // root or us, no access for others and no group write (a systemd
    // credential is root-owned 0440 through its ACL), read with a cap.
    // 64 hex digits and a newline; the cap leaves room to notice trailing junk.
    constexpr std::size_t max_key_file_bytes = 80;
    auto read =
        files::read_protected_file(path, files::file_kind::secret, "token key file", max_key_file_bytes);
    if (read.problem) throw key_error(read.problem->message());
    std::string& buf = *read.content;
    const std::size_t n = buf.size();
    std::size_t len = n;
    if (len > 0 && buf[len - 1] == '\n') --len;
    if (len > 0 && buf[len - 1] == '\r') --len;
    std::array<std::uint8_t, token_key::size> bytes{};
    bool ok = len == 2 * token_key::size;
    for (std::size_t i = 0; ok && i < token_key::size; ++i) {
        const int hi = hex_value(buf[2 * i]), lo = hex_value(buf[2 * i + 1]);
        if (hi < 0 || lo < 0) ok = false;
        bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    files::wipe(buf);
    if (!ok) {
        OPENSSL_cleanse(bytes.data(), bytes.size());
        throw key_error("the token key file " + quoted(path) +
                        " does not hold a token key (expected 64 hexadecimal digits and a newline, as "
                        "`headachemd-sync keygen --token-key PATH` writes)");
    }
    token_key key(bytes);
    OPENSSL_cleanse(bytes.data(), bytes.size());
    return key;
}

token_key write_new_token_key(const fs::path& path) {
    token_key key = token_key::generate();
    // Never replaces a key (the tokens sealed with it would be lost), never
    // writes through a planted symlink, and fsyncs the directory entry too:
    // a crash must not leave a vault sealed with a key whose file vanished.
    std::string text = to_hex(key.bytes().data(), key.bytes().size()) + "\n";
    const auto failed = files::write_new_private_file(path, text);
    OPENSSL_cleanse(text.data(), text.size());
    if (failed && failed->already_exists)
        throw key_error(quoted(path) +
                        " already exists; refusing to overwrite a key (the tokens sealed with it "
                        "would be lost). Choose another path or move the old file away first");
    if (failed)
        throw key_error(
            (failed->opened ? "cannot write the token key file " : "cannot create the token key file ") +
            quoted(path) + ": " + failed->reason);
    return key;
}

std::string seal(const token_key& key, std::string_view associated_data, std::string_view plaintext) {
    std::string box(1 + nonce_size + plaintext.size() + tag_size, '\0');
    auto* out = reinterpret_cast<unsigned char*>(box.data());
    out[0] = box_format_v1;
    unsigned char* nonce = out + 1;
    // A fresh random nonce per seal: with 96-bit random nonces GCM stays
    // within its 2^-32 collision bound for 2^32 seals per key (SP 800-38D §8.3).
    if (RAND_bytes(nonce, static_cast<int>(nonce_size)) != 1)
        throw store_error("the OS random generator failed while sealing a vault value");
    const std::string ad = full_ad(associated_data);
    cipher_ctx ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    unsigned char* ct = nonce + nonce_size;
    const bool ok =
        ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce_size), nullptr) == 1 &&
        EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.bytes().data(), nonce) == 1 &&
        EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(ad.data()),
                          static_cast<int>(ad.size())) == 1 &&
        EVP_EncryptUpdate(ctx.get(), ct, &len, reinterpret_cast<const unsigned char*>(plaintext.data()),
                          static_cast<int>(plaintext.size())) == 1 &&
        EVP_EncryptFinal_ex(ctx.get(), ct + len, &len) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag_size),
                            ct + plaintext.size()) == 1;
    if (!ok) throw store_error("OpenSSL AES-256-GCM failed while sealing a vault value");
    return box;
}

std::optional<std::string> open_sealed(const token_key& key, std::string_view associated_data,
                                       std::string_view box) {
    if (box.size() < 1 + nonce_size + tag_size || static_cast<unsigned char>(box[0]) != box_format_v1)
        return std::nullopt;
    const auto* in = reinterpret_cast<const unsigned char*>(box.data());
    const unsigned char* nonce = in + 1;
    const unsigned char* ct = nonce + nonce_size;
    const std::size_t ct_len = box.size() - 1 - nonce_size - tag_size;
    std::array<unsigned char, tag_size> tag{};
    std::memcpy(tag.data(), ct + ct_len, tag_size);
    const std::string ad = full_ad(associated_data);
    std::string plain(ct_len, '\0');
    cipher_ctx ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    const bool ok =
        ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce_size), nullptr) == 1 &&
        EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.bytes().data(), nonce) == 1 &&
        EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(ad.data()),
                          static_cast<int>(ad.size())) == 1 &&
        EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len, ct,
                          static_cast<int>(ct_len)) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_size), tag.data()) == 1 &&
        // The tag is checked here; nothing of `plain` may be used before.
        EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + len, &len) == 1;
    if (!ok) {
        OPENSSL_cleanse(plain.data(), plain.size());
        return std::nullopt;
    }
    return plain;
}

}  // namespace headachemd::store
