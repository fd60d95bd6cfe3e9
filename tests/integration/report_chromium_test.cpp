// The report in a real browser: Debian's chromium, headless, renders the
// demo data's report with no script error and no console error. The
// negative checks prove the detection fails when a script throws.
#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <regex>

#include <gtest/gtest.h>

#include "run_command.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using headachemd::test::read_file;
using headachemd::test::run_binary;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

fs::path find_chromium() {
    for (const char* name : {"chromium", "chromium-browser"}) {
        const char* path = std::getenv("PATH");
        std::string dirs = path ? path : "/usr/bin:/bin";
        for (std::size_t start = 0; start <= dirs.size();) {
            const auto end = std::min(dirs.find(':', start), dirs.size());
            const fs::path candidate = fs::path(dirs.substr(start, end - start)) / name;
            if (::access(candidate.c_str(), X_OK) == 0) return candidate;
            start = end + 1;
        }
    }
    return {};
}

bool in_ci() {
    const char* ci = std::getenv("CI");
    return ci && std::string(ci) == "true";
}

struct browser_run {
    int exit_code = -1;
    std::string dom, log;
};

// chromium --headless --dump-dom: the DOM after the load event, with the
// console logged to stderr. `timeout` bounds a hung browser.
browser_run open_in_chromium(const fs::path& chromium, const fs::path& html, const fs::path& scratch) {
    const fs::path out = scratch / "dom.html", err = scratch / "chromium.log";
    std::vector<std::string> args{
        "/usr/bin/timeout", "120", chromium.string(), "--headless", "--no-sandbox", "--disable-gpu",
        "--no-first-run",
        // Hermetic: no update checks, metrics or
        // other background requests leave the machine.
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-domain-reliability", "--user-data-dir=" + (scratch / "profile").string(),
        "--enable-logging=stderr", "--v=0", "--dump-dom", "file://" + html.string()};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    browser_run r;
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return r;
    int status = 0;
    waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.dom = read_file(out);
    r.log = read_file(err);
    return r;
}

// What went wrong in the page, empty when nothing did: the page's error
// hook marks <html data-js-error>, the script marks data-report-ready at
// its very end, and Chromium logs each console message as
// "...:INFO:CONSOLE:line] "text", source: ..." (older builds: CONSOLE(line)),
// errors included.
std::vector<std::string> problems(const browser_run& r, const std::string& expect_ready) {
    std::vector<std::string> out;
    if (r.exit_code != 0) out.push_back("chromium exited with " + std::to_string(r.exit_code));
    std::smatch m;
    if (std::regex_search(r.dom, m, std::regex(R"(data-js-error="([^"]*)\")")))
        out.push_back("script error: " + m[1].str());
    if (r.dom.find("data-report-ready=\"" + expect_ready + "\"") == std::string::npos)
        out.push_back("the page script did not finish");
    const std::regex console(R"(:CONSOLE[(:]\d+\)?\] (.*))");
    for (std::sregex_iterator it(r.log.begin(), r.log.end(), console), end; it != end; ++it)
        out.push_back("console: " + (*it)[1].str());
    return out;
}

class report_in_chromium : public ::testing::Test {
protected:
    void SetUp() override {
        chromium_ = find_chromium();
        if (chromium_.empty()) {
            if (in_ci())
                FAIL() << "chromium is not installed; .ci/deps installs it (apt-get install chromium)";
            GTEST_SKIP()
                << "chromium is not installed: apt-get install chromium (CI=true makes this a failure)";
        }
        // The demo: sandbox EHR, enrollment and one sync of 12 patients.
        const auto demo =
            run_binary({"demo", "--patients", "12", "--dir", (dir_ / "demo").string()}, dir_.path());
        ASSERT_EQ(demo.exit_code, 0) << demo.err << demo.out;
        const auto rep = run_binary({"report", "--db", (dir_ / "demo" / "headache.db").string(), "--out",
                                     (dir_ / "report.html").string()},
                                    dir_.path());
        ASSERT_EQ(rep.exit_code, 0) << rep.err << rep.out;
        html_ = read_file(dir_ / "report.html");
        ASSERT_FALSE(html_.empty());
    }

    browser_run open(const std::string& html, const std::string& name) {
        const fs::path p = dir_ / name;
        write_file(p, html);
        fs::create_directories(dir_ / (name + ".scratch"));
        return open_in_chromium(chromium_, p, dir_ / (name + ".scratch"));
    }

    temp_dir dir_;
    fs::path chromium_;
    std::string html_;
};

TEST_F(report_in_chromium, DemoReportRendersWithoutConsoleErrors) {
    // Run
    const auto r = open(html_, "ok.html");
    // Check: no error, the script ran to its end, and the first patient's
    // three charts were drawn.
    EXPECT_EQ(problems(r, "12"), std::vector<std::string>{}) << r.log;
    EXPECT_NE(r.dom.find("aria-label=\"Acute exposure per month for demo-001\""), std::string::npos);
    EXPECT_NE(r.dom.find("aria-label=\"Score trends for demo-001\""), std::string::npos);
    EXPECT_NE(r.dom.find("Page 1 of 1 (12 patients)"), std::string::npos);
    // The three charts share one time axis.
    std::vector<std::string> axes;
    const std::regex svg(
        R"re(<svg[^>]*aria-label="([^"]*) for demo-001"[^>]*data-x0="(\d+)" data-x1="(\d+)")re");
    for (std::sregex_iterator it(r.dom.begin(), r.dom.end(), svg), end; it != end; ++it)
        axes.push_back((*it)[2].str() + "-" + (*it)[3].str());
    ASSERT_EQ(axes.size(), 3u) << r.dom.substr(0, 2000);
    EXPECT_EQ(axes[0], axes[1]);
    EXPECT_EQ(axes[1], axes[2]);
    // No exposure bar reaches above its month's days; there are bars.
    int bars = 0;
    const std::regex bar(R"re(data-days="([0-9.]+)" data-dim="(\d+)")re");
    for (std::sregex_iterator it(r.dom.begin(), r.dom.end(), bar), end; it != end; ++it, ++bars)
        EXPECT_LE(std::stod((*it)[1].str()), std::stod((*it)[2].str())) << (*it)[0].str();
    EXPECT_GT(bars, 10);
    // MIDAS grades and HIT-6 bands are drawn; the deceased patient is marked.
    EXPECT_NE(r.dom.find("data-band=\"IV\""), std::string::npos);
    EXPECT_NE(r.dom.find("data-band=\"severe impact\""), std::string::npos);
    EXPECT_NE(r.dom.find("demo-004</button><span class=\"deceased\""), std::string::npos);
}

TEST_F(report_in_chromium, TheCheckFailsWhenAScriptThrowsOrLogsAnError) {
    // Setup: three broken copies of the real report.
    std::string throws = html_, bad_data = html_, logs = html_;
    throws.insert(throws.rfind("</body>"), "<script>throw new Error('injected failure');</script>");
    const auto data_at = bad_data.find("\"p\":[");
    ASSERT_NE(data_at, std::string::npos);
    bad_data.insert(data_at + 5, "!");  // JSON.parse throws, the page script never draws
    logs.insert(logs.rfind("</body>"), "<script>console.error('injected console error');</script>");
    // Run
    const auto a = open(throws, "throws.html");
    const auto b = open(bad_data, "bad-data.html");
    const auto c = open(logs, "logs.html");
    // Check
    const auto pa = problems(a, "12"), pb = problems(b, "12"), pc = problems(c, "12");
    EXPECT_FALSE(pa.empty());
    EXPECT_NE(a.dom.find("injected failure"), std::string::npos) << a.dom.substr(0, 300);
    EXPECT_FALSE(pb.empty());
    EXPECT_EQ(b.dom.find("data-report-ready=\""), std::string::npos);
    ASSERT_EQ(pc.size(), 1u) << c.log;
    EXPECT_NE(pc[0].find("injected console error"), std::string::npos) << pc[0];
}

TEST(ReportCli, MissingDatabaseExits66AndCreatesNothing) {
    temp_dir dir;
    const auto r = run_binary(
        {"report", "--db", (dir / "nope.db").string(), "--out", (dir / "out.html").string()}, dir.path());
    EXPECT_EQ(r.exit_code, 66) << r.out << r.err;
    EXPECT_NE(r.err.find("nope.db"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir / "nope.db"));
    EXPECT_FALSE(fs::exists(dir / "out.html"));
}

}  // namespace
