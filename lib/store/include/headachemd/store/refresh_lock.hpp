// One refresher per patient: the lock held across "read the stored refresh
// token → POST it to the token endpoint → store the rotated one".
//
// Why: a refresh token is single-use at strict EHRs (eClinicalWorks rotates
// on every refresh_token grant, RFC 6749 §6 allows it, OAuth 2.0 Security
// BCP §4.14.2 recommends it). Two processes that refresh one patient at the
// same moment send the same token twice: one wins, the other gets
// invalid_grant, and without this lock the loser marked a healthy patient
// needs_reauth while the winner's new token sat unused in the vault
// (issue 12, defect 1). `run` and `sync-once` (or two cron-started
// `sync-once`) share the vault, so the lock is between processes.
//
// Contract
// - try_acquire never blocks: it returns a held lease, or nullopt when
//   another holder (another process, another refresh_locks object, or
//   another job of this object) has the patient. The caller decides how to
//   wait (the engine polls on its executor's timer; see engine.cpp).
// - A lease releases on destruction. Leases must not outlive their
//   refresh_locks object.
// - Throws store_error when the lock file cannot be opened or locked for a
//   reason other than "busy" (the message names the file).
// - Not thread-safe; one executor uses one object.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

namespace headachemd::store {

class refresh_locks {
public:
    // A held lock; releases when destroyed. Move-only.
    class lease {
    public:
        lease() = default;
        explicit lease(std::function<void()> release) : release_(std::move(release)) {}
        lease(lease&& o) noexcept : release_(std::exchange(o.release_, {})) {}
        lease& operator=(lease&& o) noexcept {
            if (this != &o) {
                reset();
                release_ = std::exchange(o.release_, {});
            }
            return *this;
        }
        lease(const lease&) = delete;
        lease& operator=(const lease&) = delete;
        ~lease() { reset(); }
        void reset() {
            if (release_) std::exchange(release_, {})();
        }

    private:
        std::function<void()> release_;
    };

    virtual ~refresh_locks() = default;
    virtual std::optional<lease> try_acquire(std::string_view ehr, std::string_view patient_key) = 0;
};

// The lock between processes: one byte of "<vault>.refresh.lock" per
// patient, locked with an open-file-description lock (fcntl F_OFD_SETLK,
// Linux >= 3.15).
//
// Why OFD locks: classic POSIX fcntl locks belong to the process, so they
// never exclude two holders in one process (the daemon's own jobs, or two
// vault handles in a test) and any close() of any descriptor of the file
// drops them all. flock(2) locks the whole file, which would serialise every
// refresh of every patient. An OFD byte-range lock excludes every other open
// file description, in this process or another, and lives exactly as long
// as the descriptor. Within this object (one description) a set of held
// bytes does the excluding, since a description does not conflict with
// itself.
//
// The byte is a hash of (EHR, patient key) modulo a large range: a
// collision only serialises two patients' refreshes, never mixes them up.
class file_refresh_locks final : public refresh_locks {
public:
    // Opens (creating with mode 0600, never following a symlink) the lock
    // file. Throws store_error naming the file.
    explicit file_refresh_locks(const std::filesystem::path& lock_file);
    ~file_refresh_locks() override;
    file_refresh_locks(const file_refresh_locks&) = delete;
    file_refresh_locks& operator=(const file_refresh_locks&) = delete;

    std::optional<lease> try_acquire(std::string_view ehr, std::string_view patient_key) override;

    // "<vault>.refresh.lock": beside the vault, like rekey's "<vault>.lock".
    static std::filesystem::path beside(const std::filesystem::path& vault);

    // The byte locked for a patient (exposed for the tests of collisions).
    static std::int64_t slot(std::string_view ehr, std::string_view patient_key);

private:
    void release(std::int64_t slot);

    std::filesystem::path path_;
    int fd_ = -1;
    std::set<std::int64_t> held_;
};

}  // namespace headachemd::store
