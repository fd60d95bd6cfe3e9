#include "keygen_command.hpp"

#include <unistd.h>

#include <iostream>
#include <memory>
#include <string>

#include "exit_codes.hpp"
#include "headachemd/files/write_file.hpp"
#include "headachemd/smart/client_assertion.hpp"
#include "vault_commands.hpp"

namespace headachemd::daemon {
namespace {

// Each kind of key is one flag and one function below; the command runs
// every one asked for. A new kind (a token-vault key, say) adds its
// options to add_keygen_command and a make_* function beside make_jwks.
struct keygen_args {
    bool jwks = false;
    std::string alg = "RS384";
    std::string key_out;
    std::string kid;
    std::string token_key;  // --token-key PATH: the vault's AES-256-GCM key
};

// keygen never overwrites a key: one already registered with an EHR must
// not be lost. Returns an error message, empty on success.
std::string write_new_private_file(const std::string& path, const std::string& text) {
    const auto failed = files::write_new_private_file(path, text);
    if (!failed) return {};
    if (failed->already_exists)
        return path +
               " already exists; keygen never overwrites a key (move it away or choose another --key-out)";
    return (failed->opened ? "cannot write " : "cannot create ") + path + ": " + failed->reason;
}

int make_jwks(const keygen_args& a) {
    const auto alg = smart::parse_jws_alg(a.alg);
    if (!alg) {
        std::cerr
            << "headachemd-sync keygen: --alg must be RS384 or ES384 (eClinicalWorks accepts RS384 only)\n";
        return exit_code::usage;
    }
    if (a.key_out.empty()) {
        std::cerr << "headachemd-sync keygen: --jwks needs --key-out PATH for the private key\n";
        return exit_code::usage;
    }
    // RSA 3072: above the 2048-bit floor of RFC 7518 §3.3, good past 2030.
    const auto key = smart::signing_key::generate(*alg, 3072);
    // RFC 7638 thumbprint: the same kid the daemon uses when the config
    // sets no key_id.
    const std::string kid = a.kid.empty() ? key.thumbprint() : a.kid;
    if (const auto failure = write_new_private_file(a.key_out, key.private_pem()); !failure.empty()) {
        std::cerr << "headachemd-sync keygen: " << failure << "\n";
        return exit_code::cant_create;
    }
    std::cout << key.public_jwks(kid) << "\n" << std::flush;
    if (::isatty(STDERR_FILENO)) {
        std::cerr << "\nWrote the private key to " << a.key_out << " (mode 0600; keep it on this host).\n"
                  << "Register the JWKS above (public keys only) with the EHR's app registration, then set:\n"
                  << "  client_auth = \"private_key_jwt\"\n"
                  << "  private_key_file = \"" << a.key_out << "\"\n"
                  << "  key_id = \"" << kid << "\"\n";
    }
    return exit_code::ok;
}

int run_keygen(const keygen_args& a) {
    if (!a.jwks && a.token_key.empty()) {
        std::cerr
            << "headachemd-sync keygen: say what to make: --token-key PATH (the vault key) or --jwks (a "
               "key pair for private_key_jwt)\n";
        return exit_code::usage;
    }
    try {
        if (!a.token_key.empty()) {
            const int rc = write_token_key(a.token_key);
            if (rc != exit_code::ok || !a.jwks) return rc;
        }
        return make_jwks(a);
    } catch (const std::exception& e) {
        std::cerr << "headachemd-sync keygen: " << e.what() << "\n";
        return exit_code::software;
    }
}

}  // namespace

void add_keygen_command(CLI::App& app, int* exit_code) {
    auto args = std::make_shared<keygen_args>();
    CLI::App* cmd = app.add_subcommand(
        "keygen", "Make key material: the vault key (--token-key), a private_key_jwt pair (--jwks)");
    cmd->footer(
        "Examples:\n"
        "  headachemd-sync keygen --token-key /etc/headachemd/token.key\n"
        "  headachemd-sync keygen --jwks --alg RS384 --key-out /etc/headachemd/ecw-key.pem > ecw-jwks.json\n"
        "The private key file is created with mode 0600 and never overwritten; the public JWKS on stdout\n"
        "is what you register with the EHR. eClinicalWorks accepts RS384 (RSA) keys only.");
    cmd->add_option("--token-key", args->token_key,
                    "write a new vault key (32 random bytes as hex, mode 0600; must not exist) to this path");
    cmd->add_flag("--jwks", args->jwks,
                  "make a private_key_jwt key pair: the private key to --key-out, the public JWKS to stdout");
    cmd->add_option("--alg", args->alg, "RS384 (RSA 3072) or ES384 (EC P-384)")->capture_default_str();
    cmd->add_option("--key-out", args->key_out,
                    "where to write the private key (PEM, mode 0600; must not exist)");
    cmd->add_option("--kid", args->kid, "the key id to publish (default: the key's RFC 7638 thumbprint)");
    cmd->callback([args, exit_code] { *exit_code = run_keygen(*args); });
}

}  // namespace headachemd::daemon
