#include "headachemd/files/protected_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace headachemd::files {
namespace {

std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

std::string octal(unsigned mode) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", mode & 07777u);
    return buf;
}

file_problem problem(problem_kind kind, std::string what, std::string fix = {}) {
    return file_problem{kind, std::move(what), std::move(fix)};
}

class fd_guard {
public:
    explicit fd_guard(int fd) : fd_(fd) {}
    ~fd_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

}  // namespace

std::string_view to_string(problem_kind k) {
    switch (k) {
        case problem_kind::missing:
            return "missing";
        case problem_kind::unreadable:
            return "unreadable";
        case problem_kind::not_regular:
            return "not_regular";
        case problem_kind::unsafe_mode:
            return "unsafe_mode";
        case problem_kind::foreign_owner:
            return "foreign_owner";
        case problem_kind::too_large:
            return "too_large";
        case problem_kind::empty:
            return "empty";
    }
    return "unknown";
}

std::string file_problem::message() const {
    std::string out = what + "; refusing to use it";
    if (!fix.empty()) out += ". Fix: " + fix;
    return out;
}

std::optional<file_problem> mode_problem(file_kind kind, unsigned mode, unsigned owner_uid,
                                         unsigned process_uid, std::string_view role,
                                         const std::filesystem::path& path) {
    const std::string name = "the " + std::string(role) + " " + quoted(path);
    // Write access for group or others: whoever has it can point
    // token_endpoint at their own server (config) or swap the credential
    // (secret), and collect what the daemon sends there.
    if ((mode & 0022u) != 0) {
        const bool others = (mode & 0002u) != 0;
        return problem(
            problem_kind::unsafe_mode,
            name + " is writable by " + (others ? "other users" : "its group") + " (mode " + octal(mode) +
                ")",
            kind == file_kind::secret ? "chmod 600 " + path.string() : "chmod go-w " + path.string());
    }
    // A secret others can read protects nothing. Group read stays allowed
    // (see the header: systemd credentials are 0440 through an ACL).
    if (kind == file_kind::secret && (mode & 0007u) != 0) {
        return problem(problem_kind::unsafe_mode,
                       name + " is accessible to other users (mode " + octal(mode) + ")",
                       "chmod 600 " + path.string());
    }
    // Any owner may chmod its file: the mode means nothing unless the owner
    // is root (systemd credentials, packaged files) or the daemon itself.
    if (owner_uid != 0 && owner_uid != process_uid) {
        return problem(problem_kind::foreign_owner,
                       name + " is owned by uid " + std::to_string(owner_uid) +
                           ", neither root nor this process's user (uid " + std::to_string(process_uid) +
                           "), who could change it at will",
                       "chown root " + path.string() + "; or, if uid " + std::to_string(owner_uid) +
                           " is the daemon's own user, run this command as that user (docs/admin/install.md: "
                           "the hmd wrapper)");
    }
    return std::nullopt;
}

std::string_view file_type_name(unsigned st_mode) {
    switch (st_mode & S_IFMT) {
        case S_IFDIR:
            return "a directory";
        case S_IFCHR:
            return "a character device";
        case S_IFBLK:
            return "a block device";
        case S_IFIFO:
            return "a FIFO";
        case S_IFSOCK:
            return "a socket";
        case S_IFLNK:
            return "a symbolic link";
        case S_IFREG:
            return "a regular file";
        default:
            return "not a regular file";
    }
}

void wipe(std::string& s) {
    // explicit_bzero: a plain memset before the buffer dies may be elided.
    if (!s.empty()) ::explicit_bzero(s.data(), s.size());
    s.clear();
}

read_outcome read_protected_file(const std::filesystem::path& path, file_kind kind, std::string_view role,
                                 std::size_t max_bytes) {
    read_outcome out;
    const std::string name = std::string(role) + " " + quoted(path);  // after "the"/"cannot open the"
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer; it has no effect on the regular file we accept. O_NOCTTY: a
    // terminal device named here must not become our controlling tty.
    const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (raw < 0) {
        const int err = errno;
        if (err == ENOENT)
            out.problem = problem(problem_kind::missing, "cannot read the " + name + ": it does not exist",
                                  "create it, or correct the path in the config");
        else
            out.problem =
                problem(problem_kind::unreadable, "cannot open the " + name + ": " + std::strerror(err),
                        err == EACCES ? "make it readable by the daemon's user" : std::string());
        return out;
    }
    fd_guard fd(raw);
    // fstat on the descriptor we read from: the checked file is the read one.
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        out.problem =
            problem(problem_kind::unreadable, "cannot stat the " + name + ": " + std::strerror(errno));
        return out;
    }
    if (!S_ISREG(st.st_mode)) {
        out.problem =
            problem(problem_kind::not_regular,
                    "the " + name + " is " + std::string(file_type_name(st.st_mode)) + ", not a regular file",
                    "point the config at a regular file");
        return out;
    }
    if (auto p =
            mode_problem(kind, static_cast<unsigned>(st.st_mode & 07777), static_cast<unsigned>(st.st_uid),
                         static_cast<unsigned>(::geteuid()), role, path)) {
        out.problem = std::move(*p);
        return out;
    }
    const auto too_large = [&] {
        return problem(
            problem_kind::too_large,
            "the " + name + " is larger than " + std::to_string(max_bytes) + " bytes; is it the right file?",
            "point the config at the right file");
    };
    if (st.st_size < 0 || static_cast<std::uintmax_t>(st.st_size) > max_bytes) {
        out.problem = too_large();
        return out;
    }
    // Read up to one byte past the cap whatever st_size said: the file may
    // grow between fstat and read.
    std::string text(max_bytes + 1, '\0');
    std::size_t n = 0;
    while (n < text.size()) {
        const auto r = ::read(fd.get(), text.data() + n, text.size() - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            const int err = errno;
            wipe(text);
            out.problem =
                problem(problem_kind::unreadable, "cannot read the " + name + ": " + std::strerror(err));
            return out;
        }
        if (r == 0) break;
        n += static_cast<std::size_t>(r);
    }
    if (n > max_bytes) {
        wipe(text);
        out.problem = too_large();
        return out;
    }
    if (kind == file_kind::secret && n == 0) {
        wipe(text);
        out.problem = problem(problem_kind::empty, "the " + name + " is empty",
                              "write the secret into " + path.string());
        return out;
    }
    // Shrink in place (no copy of the secret is left behind in a freed buffer).
    ::explicit_bzero(text.data() + n, text.size() - n);
    text.resize(n);
    out.content = std::move(text);
    return out;
}

}  // namespace headachemd::files
