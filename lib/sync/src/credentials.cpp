#include "headachemd/sync/credentials.hpp"

#include "headachemd/files/protected_file.hpp"
#include "headachemd/smart/client_assertion.hpp"
#include "headachemd/store/token_key.hpp"
#include "headachemd/sync/vault_access.hpp"

#include <filesystem>
#include <stdexcept>

namespace headachemd::sync {
namespace {

// The client secret (RFC 6749 §2.3.1), under the one rule for secret files
// (lib/files): a regular file with no access for others, read with a cap,
// so /dev/zero, a directory or a FIFO behind the path is a clear error
// naming the file instead of an abort or a hang. Trailing line ends and
// spaces are an editor's, not the secret's; what is left must not be empty,
// or the token request would go out with an empty secret.
std::string read_secret_file(const std::filesystem::path& p) {
    constexpr std::size_t max_client_secret_bytes = 4096;
    auto read = files::read_protected_file(p, files::file_kind::secret, "client secret file",
                                           max_client_secret_bytes);
    if (read.problem) throw std::runtime_error(read.problem->message());
    std::string s = std::move(*read.content);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    if (s.empty())
        throw std::runtime_error(files::file_problem{
            files::problem_kind::empty, "the client secret file '" + p.string() + "' holds only white space",
            "write the secret into " + p.string()}
                                     .message());
    return s;
}

smart::client_auth auth_of(config::client_auth_method m) {
    switch (m) {
        case config::client_auth_method::client_secret_post:
            return smart::client_auth::client_secret_post;
        case config::client_auth_method::none:
            return smart::client_auth::none;
        case config::client_auth_method::private_key_jwt:
            return smart::client_auth::private_key_jwt;
        default:
            return smart::client_auth::client_secret_basic;
    }
}

// private_key_jwt: the key is read once, when the credentials are loaded,
// and signs a fresh assertion for every token call. The algorithm follows the
// key type (RSA: RS384, EC P-384: ES384); eClinicalWorks accepts RS384 only,
// so an eCW registration needs an RSA key. Without key_id the kid is the
// key's RFC 7638 thumbprint, which is also what `keygen --jwks` publishes.
void load_signing_key(const config::ehr_settings& s, smart::client_credentials& creds) {
    if (!s.private_key_file)
        throw std::runtime_error("EHR " + s.name +
                                 ": client_auth = \"private_key_jwt\" needs private_key_file");
    auto key = smart::signing_key::from_file(*s.private_key_file);
    if (!key) throw std::runtime_error("EHR " + s.name + ": " + key.err().message);
    if (s.assertion_rs384_only && key->alg() != smart::jws_alg::rs384)
        throw std::runtime_error("EHR " + s.name + ": the private key file " + s.private_key_file->string() +
                                 " is an EC key (ES384), but eClinicalWorks accepts RS384 only; make an RSA "
                                 "key with `headachemd-sync keygen --jwks --alg RS384`");
    creds.key_id = s.key_id ? *s.key_id : key->thumbprint();
    creds.key = std::make_shared<const smart::signing_key>(std::move(*key));
}

// check-config: [ehr.bulk]'s current key and, during a rotation, its next
// key, each read and checked as load_bulk_signing_key does at start-up.
template <class Present>
void check_bulk_key(const config::ehr_settings& e, const std::filesystem::path& file, std::string_view role,
                    const Present& present, secret_file_report& out) {
    if (!present(file, role)) return;
    auto key = load_bulk_signing_key(e, file);
    if (!key) out.errors.push_back("[[ehr]] \"" + e.name + "\" [ehr.bulk]: " + key.err().message);
}

}  // namespace

result<smart::signing_key> load_bulk_signing_key(const config::ehr_settings& e,
                                                 const std::filesystem::path& file) {
    auto key = smart::signing_key::from_file(file);
    if (!key || !e.bulk) return key;
    // The key type decides what it signs (RSA: RS384, EC P-384: ES384), so
    // a mismatch with `algorithm` shows at check-config and at start-up,
    // not at the first export.
    const auto& b = *e.bulk;
    const auto wanted =
        b.algorithm == config::bulk_algorithm::es384 ? smart::jws_alg::es384 : smart::jws_alg::rs384;
    if (key->alg() == wanted) return key;
    const std::string alg(config::to_string(b.algorithm));
    return error{errc::bad_key, "the private key file " + file.string() + " signs " +
                                    std::string(smart::to_string(key->alg())) + ", but algorithm = \"" + alg +
                                    "\"; make a matching key with `headachemd-sync keygen --jwks --alg " +
                                    alg + "` or change algorithm"};
}

smart::client_credentials load_client_credentials(const config::ehr_settings& ehr) {
    smart::client_credentials creds;
    creds.client_id = ehr.client_id;
    creds.auth = auth_of(ehr.client_auth);
    if (ehr.client_secret_file) creds.client_secret = read_secret_file(*ehr.client_secret_file);
    if (ehr.client_auth == config::client_auth_method::private_key_jwt) load_signing_key(ehr, creds);
    return creds;
}

secret_file_report check_secret_files(const config::config& cfg, const std::string& credentials_directory) {
    namespace fs = std::filesystem;
    secret_file_report out;
    const auto present = [&out](const fs::path& p, std::string_view role) {
        std::error_code ec;
        if (fs::exists(p, ec)) return true;
        out.notes.push_back("the " + std::string(role) + " " + p.string() +
                            " does not exist here; not checked");
        return false;
    };
    for (const auto& e : cfg.ehrs) {
        bool all_present = true;
        if (e.client_secret_file) all_present &= present(*e.client_secret_file, "client secret file");
        if (e.client_auth == config::client_auth_method::private_key_jwt && e.private_key_file)
            all_present &= present(*e.private_key_file, "private key file");
        if (!all_present) continue;
        try {
            (void)load_client_credentials(e);
        } catch (const std::runtime_error& ex) {
            out.errors.push_back("[[ehr]] \"" + e.name + "\": " + ex.what());
        }
    }
    for (const auto& e : cfg.ehrs) {
        if (!e.bulk) continue;
        check_bulk_key(e, e.bulk->private_key_file, "bulk private key file", present, out);
        if (e.bulk->next_key)
            check_bulk_key(e, e.bulk->next_key->private_key_file, "bulk next private key file", present, out);
    }
    std::optional<fs::path> key = cfg.daemon.token_key_file;
    if (!key && !credentials_directory.empty()) key = fs::path(credentials_directory) / token_key_credential;
    if (key && present(*key, "token key file")) {
        try {
            (void)store::load_token_key(*key);
        } catch (const store::key_error& ex) {
            out.errors.push_back(ex.what());
        }
    }
    return out;
}

}  // namespace headachemd::sync
