// Issue 12, items 8, 9, 10e and 10f: the one rule for the config and the
// secret files (lib/files: mode, owner, type, size), load_config under that
// rule, escaped error lines, and one listen rule for both listeners.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "config_test_helpers.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/files/protected_file.hpp"
#include "test_support.hpp"

namespace {

namespace cfg = headachemd::config;
namespace files = headachemd::files;
namespace fs = std::filesystem;
using cfg::test::config_of;
using cfg::test::errors_of;
using cfg::test::fake_env;
using cfg::test::has_error;
using cfg::test::parse;
using files::file_kind;
using files::problem_kind;

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

constexpr unsigned root = 0;
constexpr unsigned daemon_uid = 998;

std::optional<files::file_problem> rule(file_kind kind, unsigned mode, unsigned owner = root) {
    return files::mode_problem(kind, mode, owner, daemon_uid, "secret file", "/etc/headachemd/x");
}

// ----- the pure rule

TEST(file_rule, config_may_be_read_by_anyone_but_written_by_its_owner_only) {
    // A root-owned 0644 /etc/headachemd/sync.toml is normal; 0640
    // root:headachemd is what docs/admin/install.md installs.
    EXPECT_FALSE(rule(file_kind::config, 0644));
    EXPECT_FALSE(rule(file_kind::config, 0640));
    EXPECT_FALSE(rule(file_kind::config, 0600, daemon_uid));
    for (unsigned mode : {0666u, 0646u, 0664u, 0660u, 0620u, 0602u}) {
        const auto p = rule(file_kind::config, mode);
        ASSERT_TRUE(p) << std::oct << mode;
        EXPECT_EQ(p->kind, problem_kind::unsafe_mode);
        EXPECT_TRUE(contains(p->what, "writable")) << p->what;
        EXPECT_TRUE(contains(p->what, "/etc/headachemd/x")) << p->what;
        EXPECT_EQ(p->fix, "chmod go-w /etc/headachemd/x");
    }
}

TEST(file_rule, secrets_are_not_for_others_and_group_may_only_read) {
    // Accepted: 0600/0400 (keygen, the non-ACL credential fallback owned by
    // the service user), 0440 root (a systemd credential: the group bits are
    // the ACL mask), 0640 root (installed for the daemon's group).
    EXPECT_FALSE(rule(file_kind::secret, 0600, daemon_uid));
    EXPECT_FALSE(rule(file_kind::secret, 0400, daemon_uid));
    EXPECT_FALSE(rule(file_kind::secret, 0440, root));
    EXPECT_FALSE(rule(file_kind::secret, 0640, root));
    for (unsigned mode : {0644u, 0604u, 0601u, 0602u, 0660u, 0620u, 0666u}) {
        const auto p = rule(file_kind::secret, mode);
        ASSERT_TRUE(p) << std::oct << mode;
        EXPECT_EQ(p->kind, problem_kind::unsafe_mode);
        EXPECT_EQ(p->fix, "chmod 600 /etc/headachemd/x");
        char octal[8];
        std::snprintf(octal, sizeof octal, "%04o", mode);
        EXPECT_TRUE(contains(p->what, octal)) << p->what;
        EXPECT_TRUE(contains(p->message(), "/etc/headachemd/x")) << p->message();
        EXPECT_TRUE(contains(p->message(), "chmod 600")) << p->message();
    }
}

TEST(file_rule, owner_must_be_root_or_the_process_user) {
    // Any owner may chmod its file: a 0600 file of another user means nothing.
    for (auto kind : {file_kind::config, file_kind::secret}) {
        const auto p = rule(kind, 0600, 1234);
        ASSERT_TRUE(p);
        EXPECT_EQ(p->kind, problem_kind::foreign_owner);
        EXPECT_TRUE(contains(p->what, "uid 1234")) << p->what;
        EXPECT_TRUE(contains(p->fix, "chown root /etc/headachemd/x")) << p->fix;
    }
}

// ----- the shell: read_protected_file

TEST(protected_file, a_private_regular_secret_is_read) {
    headachemd::test::temp_dir dir;
    headachemd::test::write_file(dir / "s", "s3cret\n");
    ::chmod((dir / "s").c_str(), 0600);
    const auto r = files::read_protected_file(dir / "s", file_kind::secret, "client secret file", 4096);
    ASSERT_TRUE(r.content) << r.problem->message();
    EXPECT_EQ(*r.content, "s3cret\n");
}

TEST(protected_file, a_world_readable_secret_is_refused_naming_file_and_fix) {
    headachemd::test::temp_dir dir;
    headachemd::test::write_file(dir / "s", "s3cret");
    ::chmod((dir / "s").c_str(), 0644);
    const auto r = files::read_protected_file(dir / "s", file_kind::secret, "client secret file", 4096);
    ASSERT_FALSE(r.content);
    ASSERT_TRUE(r.problem);
    EXPECT_EQ(r.problem->kind, problem_kind::unsafe_mode);
    const auto m = r.problem->message();
    EXPECT_TRUE(contains(m, "client secret file '" + (dir / "s").string() + "'")) << m;
    EXPECT_TRUE(contains(m, "0644")) << m;
    EXPECT_TRUE(contains(m, "chmod 600 " + (dir / "s").string())) << m;
    EXPECT_FALSE(contains(m, "s3cret")) << m;
}

TEST(protected_file, dev_zero_directly_or_behind_a_symlink_is_refused_without_reading) {
    headachemd::test::temp_dir dir;
    fs::create_symlink("/dev/zero", dir / "link");
    for (const fs::path& p : {fs::path("/dev/zero"), dir / "link"}) {
        const auto r = files::read_protected_file(p, file_kind::secret, "client secret file", 4096);
        ASSERT_TRUE(r.problem) << p;
        EXPECT_EQ(r.problem->kind, problem_kind::not_regular);
        EXPECT_TRUE(contains(r.problem->what, p.string())) << r.problem->what;
        EXPECT_TRUE(contains(r.problem->what, "character device")) << r.problem->what;
    }
}

TEST(protected_file, a_directory_or_fifo_is_refused_naming_it) {
    headachemd::test::temp_dir dir;
    fs::create_directory(dir / "d");
    ASSERT_EQ(::mkfifo((dir / "f").c_str(), 0600), 0);
    const auto d = files::read_protected_file(dir / "d", file_kind::secret, "private key file", 4096);
    ASSERT_TRUE(d.problem);
    EXPECT_EQ(d.problem->kind, problem_kind::not_regular);
    EXPECT_TRUE(contains(d.problem->what, "private key file '" + (dir / "d").string() + "' is a directory"))
        << d.problem->what;
    // A FIFO with no writer: opened without blocking, refused by type.
    const auto f = files::read_protected_file(dir / "f", file_kind::secret, "private key file", 4096);
    ASSERT_TRUE(f.problem);
    EXPECT_EQ(f.problem->kind, problem_kind::not_regular);
    EXPECT_TRUE(contains(f.problem->what, "a FIFO")) << f.problem->what;
}

TEST(protected_file, empty_and_oversize_secrets_are_refused) {
    headachemd::test::temp_dir dir;
    headachemd::test::write_file(dir / "empty", "");
    headachemd::test::write_file(dir / "big", std::string(4097, 'a'));
    const auto e = files::read_protected_file(dir / "empty", file_kind::secret, "client secret file", 4096);
    ASSERT_TRUE(e.problem);
    EXPECT_EQ(e.problem->kind, problem_kind::empty);
    EXPECT_TRUE(contains(e.problem->message(), (dir / "empty").string()));
    const auto b = files::read_protected_file(dir / "big", file_kind::secret, "client secret file", 4096);
    ASSERT_TRUE(b.problem);
    EXPECT_EQ(b.problem->kind, problem_kind::too_large);
    EXPECT_TRUE(contains(b.problem->message(), (dir / "big").string()));
    // An empty config is a valid (empty) config, not a problem of the file.
    const auto c = files::read_protected_file(dir / "empty", file_kind::config, "config file", 4096);
    ASSERT_TRUE(c.content);
}

TEST(protected_file, a_missing_file_says_so) {
    headachemd::test::temp_dir dir;
    const auto r = files::read_protected_file(dir / "nope", file_kind::secret, "token key file", 80);
    ASSERT_TRUE(r.problem);
    EXPECT_EQ(r.problem->kind, problem_kind::missing);
    EXPECT_TRUE(contains(r.problem->what, (dir / "nope").string()));
}

// ----- load_config under the rule (item 8)

TEST(config_file_rule, a_world_or_group_writable_config_is_refused_with_the_fix) {
    // Setup: a valid config, then modes that let others rewrite it.
    headachemd::test::temp_dir dir;
    const auto file = dir / "sync.toml";
    headachemd::test::write_file(file, "[daemon]\nlog_level = \"info\"\n");
    for (unsigned mode : {0666u, 0664u, 0646u}) {
        ::chmod(file.c_str(), mode);

        // Run
        const auto result = cfg::load_config(file, fake_env());

        // Check
        const auto errors = errors_of(result);
        ASSERT_EQ(errors.size(), 1u) << std::oct << mode;
        EXPECT_EQ(errors[0].file, file.string());
        EXPECT_TRUE(contains(errors[0].message, "writable")) << errors[0].message;
        EXPECT_TRUE(contains(errors[0].message, "chmod go-w " + file.string())) << errors[0].message;
    }
    // 0644 and 0640, owned by us: fine (only secrets must not be readable).
    for (unsigned mode : {0644u, 0640u, 0600u}) {
        ::chmod(file.c_str(), mode);
        const auto result = cfg::load_config(file, fake_env());
        EXPECT_NE(config_of(result), nullptr) << std::oct << mode;
    }
}

TEST(config_file_rule, a_config_owned_by_another_user_is_refused) {
    if (::geteuid() != 0) {
        // CI runs as root: there a missing precondition is a failure, never a skip.
        if (headachemd::test::in_ci()) FAIL() << "needs root to give the file away, and CI=true runs as root";
        GTEST_SKIP() << "needs root to give the file away (CI runs as root)";
    }
    headachemd::test::temp_dir dir;
    const auto file = dir / "sync.toml";
    headachemd::test::write_file(file, "");
    ::chmod(file.c_str(), 0644);
    ASSERT_EQ(::chown(file.c_str(), 4242, 4242), 0);
    const auto errors = errors_of(cfg::load_config(file, fake_env()));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_TRUE(contains(errors[0].message, "owned by uid 4242")) << errors[0].message;
}

TEST(config_file_rule, a_ca_file_others_can_write_is_refused_like_the_config) {
    // Setup: a valid config naming a ca_file beside it. A CA file is a
    // trust anchor: whoever may rewrite it can read every token sent over
    // "verified" TLS.
    headachemd::test::temp_dir dir;
    const auto file = dir / "sync.toml";
    const auto ca = dir / "ca.pem";
    headachemd::test::write_file(file,
                                 std::string(cfg::test::valid_ehr) + "ca_file = \"" + ca.string() + "\"\n");
    headachemd::test::write_file(ca, "-----BEGIN CERTIFICATE-----\n");
    for (unsigned mode : {0666u, 0664u}) {
        ::chmod(ca.c_str(), mode);

        // Run
        const auto errors = errors_of(cfg::load_config(file, fake_env()));

        // Check
        ASSERT_EQ(errors.size(), 1u) << std::oct << mode;
        EXPECT_TRUE(contains(errors[0].message, "ca_file")) << errors[0].message;
        EXPECT_TRUE(contains(errors[0].message, "chmod go-w " + ca.string())) << errors[0].message;
    }
    // Readable by anyone is fine (a CA certificate is public); a CA file
    // not created yet is for the HTTP client to refuse at start.
    for (unsigned mode : {0644u, 0600u}) {
        ::chmod(ca.c_str(), mode);
        EXPECT_NE(config_of(cfg::load_config(file, fake_env())), nullptr) << std::oct << mode;
    }
    fs::remove(ca);
    EXPECT_NE(config_of(cfg::load_config(file, fake_env())), nullptr);
}

TEST(config_file_rule, dev_zero_or_a_fifo_as_the_config_is_refused_at_once) {
    headachemd::test::temp_dir dir;
    fs::create_symlink("/dev/zero", dir / "sync.toml");
    ASSERT_EQ(::mkfifo((dir / "fifo.toml").c_str(), 0600), 0);
    for (const auto& p : {dir / "sync.toml", dir / "fifo.toml"}) {
        const auto errors = errors_of(cfg::load_config(p, fake_env()));
        ASSERT_EQ(errors.size(), 1u) << p;
        EXPECT_TRUE(contains(errors[0].message, "not a regular file")) << errors[0].message;
    }
}

// ----- item 10e: one printable line per error

TEST(config_error_line, control_characters_in_values_are_escaped) {
    // Setup: TOML escapes put ESC, CR, LF and DEL into values the loader
    // quotes back in its errors, and into an unknown key's name.
    const auto result = parse(
        "[daemon]\n"
        "callback_listen = \"\\u001b[31mred\\r\\nerror: forged\\u007f\"\n"
        "\"k\\u001b[2J\" = 1\n");

    // Run
    const auto errors = errors_of(result);

    // Check
    ASSERT_EQ(errors.size(), 2u) << cfg::test::describe(errors);
    for (const auto& e : errors) {
        const std::string line = e.to_string();
        for (char c : line) {
            const auto u = static_cast<unsigned char>(c);
            EXPECT_TRUE(u >= 0x20 && u != 0x7f) << "raw control byte " << int(u) << " in: " << line;
        }
    }
    EXPECT_TRUE(contains(errors[0].to_string(), "\\x1b[31mred\\r\\nerror: forged\\x7f"))
        << errors[0].to_string();
    EXPECT_TRUE(contains(errors[1].to_string(), "k\\x1b[2J")) << errors[1].to_string();
    // The message itself stays the raw text (for callers that escape
    // themselves, e.g. a JSON writer).
    EXPECT_TRUE(contains(errors[0].message, "\x1b[31m"));
}

TEST(config_error_line, the_file_name_is_escaped_too) {
    const cfg::config_error e{"sync\n.toml", 1, 2, "bad"};
    EXPECT_EQ(e.to_string(), "sync\\n.toml:1:2: bad");
}

// ----- item 10f: one listen rule

TEST(listen_rule, callback_listen_is_loopback_only_like_metrics_listen) {
    const auto text = [](std::string_view key, std::string_view v, bool allow = false) {
        return std::string("[daemon]\n") + (allow ? "allow_non_loopback_listen = true\n" : "") +
               std::string(key) + " = \"" + std::string(v) + "\"\n";
    };
    for (std::string_view key : {"callback_listen", "metrics_listen"}) {
        for (std::string_view addr :
             {"0.0.0.0:8765", "192.0.2.7:8765", "[::]:8765", "ehr.example.org:8765"}) {
            const auto result = parse(text(key, addr));
            EXPECT_TRUE(has_error(result, 2, static_cast<int>(key.size()) + 4,
                                  std::string(key) + " must be a loopback address"))
                << key << " " << addr;
            EXPECT_TRUE(contains(errors_of(result).at(0).message, "allow_non_loopback_listen"));
        }
        for (std::string_view addr : {"127.0.0.1:8765", "[::1]:8765", "localhost:8765"}) {
            const auto result = parse(text(key, addr));
            ASSERT_NE(config_of(result), nullptr) << key << " " << addr;
        }
    }
}

TEST(listen_rule, allow_non_loopback_listen_lets_both_listeners_leave_loopback) {
    const auto result = parse(
        "[daemon]\n"
        "allow_non_loopback_listen = true\n"
        "callback_listen = \"0.0.0.0:8765\"\n"
        "metrics_listen = \"[::]:9464\"\n");
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    EXPECT_TRUE(c->daemon.allow_non_loopback_listen);
    EXPECT_EQ(c->daemon.callback_listen, "0.0.0.0:8765");
    EXPECT_EQ(c->daemon.metrics_listen, "[::]:9464");
    // The default is false, and port rules stay per listener: the callback
    // needs the fixed port its redirect URI names, metrics may take 0.
    const auto defaults = parse("");
    ASSERT_NE(config_of(defaults), nullptr);
    EXPECT_FALSE(config_of(defaults)->daemon.allow_non_loopback_listen);
    EXPECT_TRUE(has_error(parse("[daemon]\ncallback_listen = \"127.0.0.1:0\"\n"), 2, 19,
                          "callback_listen has an invalid port"));
    EXPECT_NE(config_of(parse("[daemon]\nmetrics_listen = \"127.0.0.1:0\"\n")), nullptr);
    EXPECT_TRUE(has_error(parse("[daemon]\nallow_non_loopback_listen = \"yes\"\n"), 2, 29, "true or false"));
}

}  // namespace
