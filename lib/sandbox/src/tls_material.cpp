#include "tls_material.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>

namespace headachemd::sandbox::detail {

namespace {

struct pkey_free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct x509_free {
    void operator()(X509* p) const { X509_free(p); }
};
struct bio_free {
    void operator()(BIO* p) const { BIO_free(p); }
};
struct ext_free {
    void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;
using ext_ptr = std::unique_ptr<X509_EXTENSION, ext_free>;

[[noreturn]] void fail(const char* what) {
    const unsigned long e = ERR_get_error();
    char buf[256] = {};
    if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    throw std::runtime_error(std::string("sandbox TLS: ") + what + " failed" +
                             (e != 0 ? std::string(": ") + buf : ""));
}

void check(int rc, const char* what) {
    if (rc <= 0) fail(what);
}

pkey_ptr make_key() {
    // EC P-256: generating it takes microseconds, unlike RSA, so every
    // sandbox (and every test) can afford fresh keys.
    pkey_ptr key{EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")};
    if (!key) fail("EVP_PKEY_Q_keygen(EC P-256)");
    return key;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    ext_ptr ext{X509V3_EXT_conf_nid(nullptr, &ctx, nid, value)};
    if (!ext) fail("X509V3_EXT_conf_nid");
    check(X509_add_ext(cert, ext.get(), -1), "X509_add_ext");
}

// Validity in seconds from now.
struct validity {
    long from = -3600;  // backdated an hour against clock skew between client and server
    long to = 30L * 24 * 3600;
};

x509_ptr make_cert(EVP_PKEY* subject_key, const char* cn, X509* issuer_cert, validity valid = {}) {
    x509_ptr cert{X509_new()};
    if (!cert) fail("X509_new");
    check(X509_set_version(cert.get(), 2), "X509_set_version");  // v3

    // RFC 5280 §4.1.2.2: positive, unique per issuer; 64 random bits do it.
    unsigned char serial[8];
    check(RAND_bytes(serial, sizeof serial), "RAND_bytes");
    serial[0] &= 0x7F;
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    if (!bn) fail("BN_bin2bn");
    ASN1_INTEGER* sn = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
    BN_free(bn);
    if (!sn) fail("BN_to_ASN1_INTEGER");

    if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), valid.from)) fail("X509_gmtime_adj");
    if (!X509_gmtime_adj(X509_getm_notAfter(cert.get()), valid.to)) fail("X509_gmtime_adj");
    check(X509_set_pubkey(cert.get(), subject_key), "X509_set_pubkey");

    X509_NAME* name = X509_get_subject_name(cert.get());
    check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>("HeadacheMD Sandbox"), -1, -1, 0),
          "X509_NAME_add_entry_by_txt");
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1,
                                     -1, 0),
          "X509_NAME_add_entry_by_txt");
    X509* issuer = issuer_cert ? issuer_cert : cert.get();
    check(X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)), "X509_set_issuer_name");
    return cert;
}

std::string to_pem(X509* cert) {
    bio_ptr bio{BIO_new(BIO_s_mem())};
    if (!bio) fail("BIO_new");
    check(PEM_write_bio_X509(bio.get(), cert), "PEM_write_bio_X509");
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string to_pem(EVP_PKEY* key) {
    bio_ptr bio{BIO_new(BIO_s_mem())};
    if (!bio) fail("BIO_new");
    check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
          "PEM_write_bio_PrivateKey");
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

tls_material make_tls_material(const std::string& host, const std::string& only_name, bool expired) {
    const pkey_ptr ca_key = make_key();
    const x509_ptr ca = make_cert(ca_key.get(), "HeadacheMD Sandbox CA", nullptr);
    add_ext(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_ext(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
    add_ext(ca.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
    check(X509_sign(ca.get(), ca_key.get(), EVP_sha256()), "X509_sign(CA)");

    const pkey_ptr key = make_key();
    constexpr long day = 24 * 3600;
    const validity valid = expired ? validity{-31 * day, -day} : validity{};
    const x509_ptr cert =
        make_cert(key.get(), only_name.empty() ? "127.0.0.1" : only_name.c_str(), ca.get(), valid);
    std::string san = "IP:127.0.0.1,DNS:localhost";
    if (!only_name.empty()) {
        const bool is_ip = only_name.find_first_not_of("0123456789.:") == std::string::npos;
        san = (is_ip ? "IP:" : "DNS:") + only_name;
    } else if (!host.empty() && host != "127.0.0.1" && host != "localhost") {
        const bool is_ip = host.find_first_not_of("0123456789.:") == std::string::npos;
        san += (is_ip ? ",IP:" : ",DNS:") + host;
    }
    add_ext(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
    add_ext(cert.get(), ca.get(), NID_ext_key_usage, "serverAuth");
    add_ext(cert.get(), ca.get(), NID_subject_alt_name, san.c_str());
    add_ext(cert.get(), ca.get(), NID_subject_key_identifier, "hash");
    add_ext(cert.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
    check(X509_sign(cert.get(), ca_key.get(), EVP_sha256()), "X509_sign(server)");

    return tls_material{to_pem(ca.get()), to_pem(cert.get()), to_pem(key.get())};
}

}  // namespace headachemd::sandbox::detail
