#include "headachemd/store/refresh_lock.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "headachemd/store/database.hpp"

namespace headachemd::store {
namespace {

// 2^40 bytes: far beyond any file size (a lock may lie past the end of a
// file, POSIX fcntl), and wide enough that collisions among even 100,000
// patients are rare; a collision costs only a serialised refresh.
constexpr std::uint64_t slot_range = std::uint64_t{1} << 40;

// FNV-1a, 64-bit: stable across builds and processes (std::hash is not
// required to be), which two binaries of different versions need to agree.
std::uint64_t fnv1a(std::uint64_t h, std::string_view s) {
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}

struct flock one_byte(short type, std::int64_t slot) {
    struct flock fl {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(slot);
    fl.l_len = 1;
    fl.l_pid = 0;  // F_OFD_* requires 0
    return fl;
}

}  // namespace

file_refresh_locks::file_refresh_locks(const std::filesystem::path& lock_file) : path_(lock_file) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd_ < 0)
        throw store_error("cannot open the refresh lock file '" + path_.string() +
                          "': " + std::strerror(errno));
}

file_refresh_locks::~file_refresh_locks() {
    // Closing the description releases every lock it holds (OFD semantics).
    if (fd_ >= 0) ::close(fd_);
}

std::filesystem::path file_refresh_locks::beside(const std::filesystem::path& vault) {
    return vault.string() + ".refresh.lock";
}

std::int64_t file_refresh_locks::slot(std::string_view ehr, std::string_view patient_key) {
    std::uint64_t h = fnv1a(0xcbf29ce484222325ULL, ehr);
    h = fnv1a(h, std::string_view("\0", 1));  // ("ab","c") and ("a","bc") differ
    h = fnv1a(h, patient_key);
    return static_cast<std::int64_t>(h % slot_range);
}

std::optional<refresh_locks::lease> file_refresh_locks::try_acquire(std::string_view ehr,
                                                                    std::string_view patient_key) {
    const std::int64_t at = slot(ehr, patient_key);
    // Our own description never conflicts with itself: another job of this
    // process holding the byte is seen here.
    if (held_.count(at) != 0) return std::nullopt;
    struct flock fl = one_byte(F_WRLCK, at);
    if (::fcntl(fd_, F_OFD_SETLK, &fl) != 0) {
        if (errno == EAGAIN || errno == EACCES) return std::nullopt;  // another description holds it
        throw store_error("cannot lock '" + path_.string() + "' (F_OFD_SETLK): " + std::strerror(errno) +
                          "; a Linux kernel >= 3.15 is required");
    }
    held_.insert(at);
    return lease([this, at] { release(at); });
}

void file_refresh_locks::release(std::int64_t at) {
    struct flock fl = one_byte(F_UNLCK, at);
    // Unlocking a byte we hold cannot fail but for a bad descriptor, which
    // would be a bug; the lock then ends with the descriptor at exit.
    (void)::fcntl(fd_, F_OFD_SETLK, &fl);
    held_.erase(at);
}

}  // namespace headachemd::store
