#include "headachemd/sync/credentials.hpp"

#include <fstream>
#include <iterator>
#include <stdexcept>

namespace headachemd::sync {
namespace {

std::string read_secret_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read the secret file " + p.string());
    std::string s{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

smart::client_auth auth_of(config::client_auth_method m) {
    switch (m) {
        case config::client_auth_method::client_secret_post:
            return smart::client_auth::client_secret_post;
        case config::client_auth_method::none:
            return smart::client_auth::none;
        default:
            return smart::client_auth::client_secret_basic;
    }
}

}  // namespace

smart::client_credentials load_client_credentials(const config::ehr_settings& ehr) {
    smart::client_credentials creds;
    creds.client_id = ehr.client_id;
    creds.auth = auth_of(ehr.client_auth);
    if (ehr.client_secret_file) creds.client_secret = read_secret_file(*ehr.client_secret_file);
    return creds;
}

}  // namespace headachemd::sync
