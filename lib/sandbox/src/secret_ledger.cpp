#include "secret_ledger.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

namespace headachemd::sandbox {

std::string_view secret_kind_name(secret_kind k) {
    switch (k) {
        case secret_kind::client_secret:
            return "client_secret";
        case secret_kind::authorization_code:
            return "authorization_code";
        case secret_kind::access_token:
            return "access_token";
        case secret_kind::refresh_token:
            return "refresh_token";
        case secret_kind::patient_name:
            return "patient_name";
        case secret_kind::patient_mrn:
            return "patient_mrn";
        case secret_kind::patient_phone:
            return "patient_phone";
        case secret_kind::bulk_capability:
            return "bulk_capability";
    }
    return "unknown";
}

namespace detail {
namespace {

// One ledger file, append-only; one write(2) per line.
class ledger_file {
public:
    explicit ledger_file(const std::filesystem::path& path)
        : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) {}
    ~ledger_file() {
        if (fd_ >= 0) ::close(fd_);
    }
    ledger_file(const ledger_file&) = delete;
    ledger_file& operator=(const ledger_file&) = delete;

    bool ok() const { return fd_ >= 0; }

    // Hex, so a value with a space or newline (a name) stays one field.
    void write(secret_kind k, std::string_view value) {
        static constexpr char hex[] = "0123456789abcdef";
        std::string line(secret_kind_name(k));
        line.push_back(' ');
        for (const char c : value) {
            const auto b = static_cast<unsigned char>(c);
            line.push_back(hex[b >> 4]);
            line.push_back(hex[b & 0xF]);
        }
        line.push_back('\n');
        std::lock_guard lock(mu_);
        std::size_t done = 0;
        while (done < line.size()) {
            const auto n = ::write(fd_, line.data() + done, line.size() - done);
            if (n <= 0) return;  // best effort: see the header
            done += static_cast<std::size_t>(n);
        }
    }

private:
    int fd_;
    std::mutex mu_;
};

}  // namespace

std::function<void(secret_kind, std::string_view)> with_ledger(
    std::function<void(secret_kind, std::string_view)> observer) {
    const char* dir = std::getenv(secret_ledger_env);
    if (!dir || !*dir) return observer;
    static std::atomic<unsigned> serial{0};
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    const auto path = std::filesystem::path(dir) / ("sandbox-" + std::to_string(::getpid()) + "-" +
                                                    std::to_string(serial.fetch_add(1)) + ".ledger");
    auto file = std::make_shared<ledger_file>(path);
    if (!file->ok()) return observer;
    return [file, observer = std::move(observer)](secret_kind k, std::string_view value) {
        file->write(k, value);
        if (observer) observer(k, value);
    };
}

}  // namespace detail
}  // namespace headachemd::sandbox
