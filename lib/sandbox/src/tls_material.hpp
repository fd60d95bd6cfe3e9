// A throwaway certificate authority and a server certificate it signs, made
// in memory with the OpenSSL 3 EVP APIs each time a sandbox starts. Nothing
// is written to disk; the CLI writes the CA certificate (never a key) for the
// client's `ca_file`.
#pragma once

#include <string>

namespace headachemd::sandbox::detail {

struct tls_material {
    std::string ca_cert_pem;
    std::string server_cert_pem;
    std::string server_key_pem;  // PKCS#8, unencrypted, in memory only
};

// P-256 keys; the CA (CN "HeadacheMD Sandbox CA", CA:TRUE, 30 days) signs a
// server certificate with CN 127.0.0.1 and SAN IP:127.0.0.1, DNS:localhost
// (and `host` when it is neither); with a non-empty `only_name`, CN and SAN
// name that alone (options::certificate_host). `expired`: the server
// certificate's validity ended a day ago (options::certificate_expired).
// Throws std::runtime_error naming the OpenSSL call that failed.
tls_material make_tls_material(const std::string& host, const std::string& only_name = {},
                               bool expired = false);

}  // namespace headachemd::sandbox::detail
