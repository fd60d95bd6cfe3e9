#include "headachemd/sync/backend_jwks.hpp"

#include "headachemd/sync/credentials.hpp"

namespace headachemd::sync {

backend_jwks build_backend_jwks(const std::vector<backend_key>& keys) {
    std::vector<smart::published_key> published;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        bool seen = false;
        for (std::size_t j = 0; j < i && !seen; ++j)
            seen = keys[j].kid == keys[i].kid && keys[j].file == keys[i].file;
        if (!seen) published.push_back({&keys[i].key, keys[i].kid});
    }
    if (published.empty()) return {};
    return backend_jwks{published.size(), smart::public_jwk_set(published)};
}

result<backend_jwks> load_backend_jwks(const config::config& cfg) {
    std::vector<backend_key> keys;
    const auto add = [&](const config::ehr_settings& e, const std::string& kid,
                         const std::filesystem::path& file) -> result<ok_t> {
        auto key = load_bulk_signing_key(e, file);
        if (!key) return error{errc::bad_key, "[[ehr]] \"" + e.name + "\" [ehr.bulk]: " + key.err().message};
        keys.push_back(backend_key{kid, file, std::move(*key)});
        return ok_v;
    };
    for (const auto& e : cfg.ehrs) {
        if (!e.bulk) continue;
        if (auto r = add(e, e.bulk->key_id, e.bulk->private_key_file); !r) return r.err();
        if (e.bulk->next_key)
            if (auto r = add(e, e.bulk->next_key->key_id, e.bulk->next_key->private_key_file); !r)
                return r.err();
    }
    return build_backend_jwks(keys);
}

}  // namespace headachemd::sync
