// A throwaway PKI made in memory for each test: an EC P-256 CA and leaf
// certificates it signs (OpenSSL 3 EVP and X509 APIs). No key ever touches
// the disk; only the CA certificate is written out, because the client
// takes CA files.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace headachemd::test {

struct pkey_deleter {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct x509_deleter {
    void operator()(X509* p) const { X509_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;
using x509_ptr = std::unique_ptr<X509, x509_deleter>;

struct key_and_cert {
    pkey_ptr key;
    x509_ptr cert;
};

inline void openssl_check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("test PKI: ") + what);
}

inline pkey_ptr make_ec_key() {
    pkey_ptr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    openssl_check(k != nullptr, "EVP_PKEY_Q_keygen");
    return k;
}

inline void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    openssl_check(ext != nullptr, "X509V3_EXT_conf_nid");
    const int added = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    openssl_check(added == 1, "X509_add_ext");
}

// A certificate for `key` named `cn`. With `issuer` null it is a
// self-signed CA; otherwise a server certificate with subjectAltName `san`
// ("DNS:localhost,IP:127.0.0.1"), signed by the issuer. Valid from
// `not_before` to `not_after`, in seconds from now.
inline x509_ptr make_certificate(EVP_PKEY* key, const std::string& cn, const key_and_cert* issuer,
                                 const std::string& san, long not_before = -3600,
                                 long not_after = 24 * 3600) {
    static long serial = 1;
    x509_ptr cert(X509_new());
    openssl_check(cert != nullptr, "X509_new");
    X509* x = cert.get();
    openssl_check(X509_set_version(x, X509_VERSION_3) == 1, "X509_set_version");
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), not_before);
    X509_gmtime_adj(X509_getm_notAfter(x), not_after);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()),
                               -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert.get()) : name);
    openssl_check(X509_set_pubkey(x, key) == 1, "X509_set_pubkey");

    X509* issuer_cert = issuer ? issuer->cert.get() : x;
    add_extension(x, issuer_cert, NID_subject_key_identifier, "hash");
    if (!issuer) {
        add_extension(x, issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
        add_extension(x, issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_extension(x, issuer_cert, NID_authority_key_identifier, "keyid:always");
        add_extension(x, issuer_cert, NID_basic_constraints, "critical,CA:FALSE");
        add_extension(x, issuer_cert, NID_key_usage, "critical,digitalSignature");
        add_extension(x, issuer_cert, NID_ext_key_usage, "serverAuth");
        add_extension(x, issuer_cert, NID_subject_alt_name, san.c_str());
    }
    EVP_PKEY* signer = issuer ? issuer->key.get() : key;
    openssl_check(X509_sign(x, signer, EVP_sha256()) > 0, "X509_sign");
    return cert;
}

inline key_and_cert make_ca(const std::string& cn) {
    key_and_cert ca;
    ca.key = make_ec_key();
    ca.cert = make_certificate(ca.key.get(), cn, nullptr, "");
    return ca;
}

inline key_and_cert make_leaf(const key_and_cert& ca, const std::string& san, long not_before = -3600,
                              long not_after = 24 * 3600) {
    key_and_cert leaf;
    leaf.key = make_ec_key();
    leaf.cert = make_certificate(leaf.key.get(), "headachemd test server", &ca, san, not_before, not_after);
    return leaf;
}

inline std::string to_pem(X509* cert) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    openssl_check(bio && PEM_write_bio_X509(bio.get(), cert) == 1, "PEM_write_bio_X509");
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace headachemd::test
