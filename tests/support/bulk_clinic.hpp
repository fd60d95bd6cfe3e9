// A sandbox EHR with a Bulk Data backend registration (issue 15), and a
// config whose one [[ehr]] has [ehr.bulk] for it: what the tests of the
// `export` command and of the daemon's exports start from.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "backend_keys.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace headachemd::test {

// The sandbox (patients, `pending_polls` 202s before each manifest, and
// at most `resources_per_file` lines per output file, 0: one per type),
// its CA, client secret and the backend's ES384 key (kid "bulk-1") in
// `dir`, and `dir`/sync.toml (headache.db, vault.db and token.key there;
// `daemon_extra` goes into [daemon]). The server must outlive its use.
inline std::unique_ptr<sandbox::background_server> start_bulk_clinic(const std::filesystem::path& dir,
                                                                     int patients, int pending_polls,
                                                                     const std::string& daemon_extra = {},
                                                                     int resources_per_file = 0) {
    sandbox::options o;
    o.patients = patients;
    o.bulk_resources_per_file = resources_per_file;
    o.backend_client_id = "hmd-backend";
    o.backend_jwks = backend_ec_key().public_jwks("bulk-1");
    o.bulk_pending_polls = pending_polls;
    auto ehr = std::make_unique<sandbox::background_server>(std::move(o));
    (*ehr)->write_ca_pem(dir / "ca.pem");
    write_file(dir / "client.secret", (*ehr)->config().client_secret);
    ::chmod((dir / "client.secret").c_str(), 0600);
    write_file(dir / "bulk.pem", backend_ec_key().private_pem());
    ::chmod((dir / "bulk.pem").c_str(), 0600);
    write_file(dir / "sync.toml",
               "[daemon]\ndatabase = \"" + (dir / "headache.db").string() + "\"\nvault = \"" +
                   (dir / "vault.db").string() + "\"\n" + token_key_toml(dir) + daemon_extra +
                   "\n[[ehr]]\nname = \"sandbox\"\nprofile = \"generic\"\nfhir_base = \"" +
                   (*ehr)->fhir_base() + "\"\nclient_id = \"" + (*ehr)->config().client_id +
                   "\"\nclient_secret_file = \"" + (dir / "client.secret").string() + "\"\nca_file = \"" +
                   (dir / "ca.pem").string() +
                   "\"\nrequests_per_minute = 60000\n\n[ehr.bulk]\nclient_id = \"hmd-backend\"\n"
                   "private_key_file = \"" +
                   (dir / "bulk.pem").string() +
                   "\"\nkey_id = \"bulk-1\"\nalgorithm = \"ES384\"\ngroup_id = \"headachemd-clinic\"\n");
    ::chmod((dir / "sync.toml").c_str(), 0600);
    return ehr;
}

}  // namespace headachemd::test
