// The integration suite's log scan: every captured log line (log_capture.hpp)
// is searched for every secret and identifying value the sandbox servers
// recorded (their ledgers). Pure over strings, apart from scan_capture_dir.
// A finding names the file, the line and the kind of secret, never the
// secret itself: the report must not leak what it found.
#pragma once

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace headachemd::logscan {

struct secret {
    std::string kind;  // "access_token", "patient_name", …
    std::string value;
    bool operator<(const secret& o) const { return std::tie(value, kind) < std::tie(o.value, o.kind); }
};

// Ledger lines are "<kind> <value in hex>". Malformed lines are counted in
// `bad_lines` (the scan fails on any: a ledger it cannot read is a ledger
// it cannot trust).
inline std::vector<secret> parse_ledger(std::string_view text, std::size_t& bad_lines) {
    std::vector<secret> out;
    const auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    while (!text.empty()) {
        const auto nl = text.find('\n');
        const std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        if (line.empty()) continue;
        const auto sp = line.find(' ');
        const std::string_view hex = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
        if (sp == 0 || hex.empty() || hex.size() % 2 != 0) {
            ++bad_lines;
            continue;
        }
        secret s{std::string(line.substr(0, sp)), {}};
        bool ok = true;
        for (std::size_t i = 0; i < hex.size() && ok; i += 2) {
            const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
            ok = hi >= 0 && lo >= 0;
            s.value.push_back(static_cast<char>(hi * 16 + lo));
        }
        if (!ok) {
            ++bad_lines;
            continue;
        }
        out.push_back(std::move(s));
    }
    return out;
}

// The forms a value may take in a log line besides itself: a name with
// spaces as it would appear form- or percent-encoded in a URL.
inline std::vector<secret> with_encoded_forms(std::vector<secret> secrets) {
    const std::size_t n = secrets.size();
    for (std::size_t i = 0; i < n; ++i) {
        if (secrets[i].value.find(' ') == std::string::npos) continue;
        std::string plus = secrets[i].value, pct;
        std::replace(plus.begin(), plus.end(), ' ', '+');
        for (const char c : secrets[i].value) pct += c == ' ' ? std::string("%20") : std::string(1, c);
        secrets.push_back({secrets[i].kind, plus});
        secrets.push_back({secrets[i].kind, pct});
    }
    std::sort(secrets.begin(), secrets.end());
    secrets.erase(std::unique(secrets.begin(), secrets.end(),
                              [](const secret& a, const secret& b) { return a.value == b.value; }),
                  secrets.end());
    return secrets;
}

// Finds every secret in a text in one pass: secrets are indexed by their
// first `key_` bytes (the shortest secret's length, at most 8), and each
// position of the text looks its window up, so tens of thousands of tokens
// against megabytes of logs stay linear.
class matcher {
public:
    explicit matcher(std::vector<secret> secrets) : secrets_(std::move(secrets)) {
        std::erase_if(secrets_, [](const secret& s) { return s.value.empty(); });
        key_ = 8;
        for (const auto& s : secrets_) key_ = std::min(key_, s.value.size());
        for (std::size_t i = 0; i < secrets_.size(); ++i)
            index_[std::string_view(secrets_[i].value).substr(0, key_)].push_back(i);
    }

    std::size_t size() const { return secrets_.size(); }

    struct hit {
        std::size_t offset;
        const secret* what;
    };
    std::vector<hit> find_all(std::string_view text) const {
        std::vector<hit> hits;
        if (secrets_.empty() || text.size() < key_) return hits;
        for (std::size_t pos = 0; pos + key_ <= text.size(); ++pos) {
            const auto it = index_.find(text.substr(pos, key_));
            if (it == index_.end()) continue;
            for (const std::size_t i : it->second) {
                if (text.substr(pos, secrets_[i].value.size()) == secrets_[i].value)
                    hits.push_back({pos, &secrets_[i]});
            }
        }
        return hits;
    }

private:
    std::vector<secret> secrets_;
    std::size_t key_ = 8;
    std::unordered_map<std::string_view, std::vector<std::size_t>> index_;
};

struct finding {
    std::string file;
    std::size_t line = 0;  // 1-based
    std::string kind;
};

// Every secret in `text` (the contents of `file`), as file:line:kind, one
// finding per (line, kind).
inline std::vector<finding> scan_text(const matcher& m, const std::string& file, std::string_view text) {
    std::vector<finding> out;
    std::set<std::pair<std::size_t, std::string>> seen;
    for (const auto& h : m.find_all(text)) {
        const std::size_t line =
            1 + static_cast<std::size_t>(
                    std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(h.offset), '\n'));
        if (seen.insert({line, h.what->kind}).second) out.push_back({file, line, h.what->kind});
    }
    return out;
}

struct scan_report {
    std::size_t files = 0, lines = 0, bytes = 0;
    std::map<std::string, std::size_t> secrets_by_kind;  // before encoded forms
    std::size_t ledger_files = 0, bad_ledger_lines = 0;
    std::vector<finding> findings;
    std::vector<std::string> problems;  // why the scan cannot be trusted

    bool passed() const { return findings.empty() && problems.empty(); }
};

// Kinds every full integration run records; a scan without one of them
// would pass for the wrong reason (a ledger that stopped recording).
inline const std::vector<std::string>& required_kinds() {
    static const std::vector<std::string> kinds{"access_token", "refresh_token", "client_secret",
                                                "patient_name"};
    return kinds;
}

inline std::string read_all(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// DIR/secrets/*.ledger against DIR/captured/*; the report says what failed.
inline scan_report scan_capture_dir(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    scan_report r;
    std::vector<secret> secrets;
    std::error_code ec;
    if (fs::is_directory(dir / "secrets", ec)) {
        for (const auto& e : fs::directory_iterator(dir / "secrets")) {
            if (e.path().extension() != ".ledger") continue;
            ++r.ledger_files;
            auto more = parse_ledger(read_all(e.path()), r.bad_ledger_lines);
            for (const auto& s : more) ++r.secrets_by_kind[s.kind];
            secrets.insert(secrets.end(), std::make_move_iterator(more.begin()),
                           std::make_move_iterator(more.end()));
        }
    }
    const matcher m(with_encoded_forms(std::move(secrets)));
    std::vector<fs::path> files;
    if (fs::is_directory(dir / "captured", ec)) {
        for (const auto& e : fs::directory_iterator(dir / "captured"))
            if (e.is_regular_file()) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        const std::string text = read_all(f);
        ++r.files;
        r.bytes += text.size();
        r.lines += static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
        auto found = scan_text(m, f.filename().string(), text);
        r.findings.insert(r.findings.end(), found.begin(), found.end());
    }
    if (r.bad_ledger_lines)
        r.problems.push_back(std::to_string(r.bad_ledger_lines) + " malformed ledger lines");
    if (r.lines == 0)
        r.problems.push_back("no captured log line at all under " + (dir / "captured").string());
    if (m.size() == 0) r.problems.push_back("no secret recorded under " + (dir / "secrets").string());
    for (const auto& k : required_kinds())
        if (r.secrets_by_kind[k] == 0) r.problems.push_back("no " + k + " recorded by any sandbox");
    return r;
}

}  // namespace headachemd::logscan
