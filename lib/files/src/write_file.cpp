#include "headachemd/files/write_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace headachemd::files {
namespace {

namespace fs = std::filesystem;

// write(2) until all of `text` is out; false with errno set otherwise.
bool write_all(int fd, std::string_view text) {
    std::size_t done = 0;
    while (done < text.size()) {
        const auto n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) errno = EIO;  // no progress and no error: do not report "Success"
        if (n <= 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

// The directory entry must be durable too, or a crash could leave a file
// whose name vanished. Best effort: some file systems refuse to fsync a
// directory, and the data itself is already on disk.
void sync_directory(const fs::path& file) {
    const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
    if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

}  // namespace

std::optional<write_failure> write_new_private_file(const fs::path& path, std::string_view text) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return write_failure{errno == EEXIST, false, std::strerror(errno)};
    // The umask may only take bits away; make the mode exactly 0600 anyway.
    int err = ::fchmod(fd, 0600) == 0 && write_all(fd, text) && ::fsync(fd) == 0 ? 0 : errno;
    if (::close(fd) != 0 && err == 0) err = errno;
    if (err != 0) {
        ::unlink(path.c_str());  // no half-written key is left behind
        return write_failure{false, true, std::strerror(err)};
    }
    sync_directory(path);
    return std::nullopt;
}

std::optional<write_failure> write_file_atomically(const fs::path& path, std::string_view text,
                                                   unsigned mode) {
    const fs::path tmp = path.string() + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, static_cast<mode_t>(mode));
    if (fd < 0) return write_failure{false, false, std::strerror(errno)};
    int err = write_all(fd, text) && ::fsync(fd) == 0 ? 0 : errno;
    if (::close(fd) != 0 && err == 0) err = errno;  // closed whatever fsync said
    if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
    if (err != 0) {
        ::unlink(tmp.c_str());
        return write_failure{false, true, std::strerror(err)};
    }
    sync_directory(path);
    return std::nullopt;
}

}  // namespace headachemd::files
