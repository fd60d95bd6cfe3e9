// `headachemd-sync export` (issue 15, item 7) as an admin runs it: the
// binary, a config with [ehr.bulk], the sandbox as the EHR. A job left
// unfinished is made in-process (run_configured_export stopped after its
// first poll) so that --resume and --cancel meet a real server-side job
// without any timing.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <spdlog/sinks/null_sink.h>

#include "bulk_clinic.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/bulk_export.hpp"
#include "headachemd/sync/bulk_store.hpp"
#include "headachemd/sync/http_options.hpp"
#include "run_command.hpp"
#include "test_logger.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

namespace asio = boost::asio;
namespace sy = headachemd::sync;
using headachemd::test::run_binary;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

struct export_cli : ::testing::Test {
    temp_dir dir;
    std::unique_ptr<headachemd::sandbox::background_server> ehr;
    std::string cfg;

    // pending_polls: 202s before the manifest. The binary really waits
    // (10 s before its first poll), so only one test pays for that.
    void start(int pending_polls = 0) {
        ehr = headachemd::test::start_bulk_clinic(dir.path(), 3, pending_polls);
        cfg = (dir / "sync.toml").string();
    }

    headachemd::test::command_result export_(std::vector<std::string> args) {
        args.insert(args.begin(), {"export", "--config", cfg});
        return run_binary(args, dir.path());
    }

    // An export kicked off and left polling, as a crash would leave it.
    void leave_a_job_polling() {
        auto parsed = headachemd::config::load_config(cfg);
        ASSERT_TRUE(std::holds_alternative<headachemd::config::config>(parsed));
        const auto& c = std::get<headachemd::config::config>(parsed);
        headachemd::store::analytics_db db(dir / "headache.db");
        headachemd::store::vault vault(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
        asio::io_context io;
        headachemd::http::client http(io.get_executor(), sy::http_options_for(c));
        headachemd::system_clock clk;
        int asked = 0;
        // No sleeping here: the sandbox answers a poll whenever it comes.
        sy::export_context ctx{
            http,
            c,
            db,
            vault,
            clk,
            headachemd::test::test_logger("export", std::make_shared<spdlog::sinks::null_sink_mt>()),
            nullptr,
            [](std::chrono::nanoseconds) {},
            [&asked] { return ++asked == 4; },
            {}};
        headachemd::result<sy::bulk_run_result> r = headachemd::error{headachemd::errc::internal_error, ""};
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                // Named: GCC 12 mishandles a temporary inside a co_await operand.
                sy::export_request req;
                r = co_await sy::run_configured_export(ctx, req);
                http.close_idle();
            },
            asio::detached);
        io.run();
        ASSERT_TRUE(r.ok()) << r.err().message;
        ASSERT_TRUE(r->stopped);
        ASSERT_EQ(sy::load_bulk_job(vault.sql(), "sandbox")->phase, sy::bulk_phase::polling);
    }

    int count(const std::string& sql) {
        SQLite::Database db((dir / "headache.db").string(), SQLite::OPEN_READONLY);
        SQLite::Statement q(db, sql);
        q.executeStep();
        return q.getColumn(0).getInt();
    }
};

TEST_F(export_cli, ExportsTheClinicAndSaysWhatItDidWithoutUrls) {
    start();

    const auto r = export_({});

    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("export of EHR sandbox: done"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("requests: "), std::string::npos) << r.out;
    EXPECT_EQ(count("SELECT count(*) FROM patient"), 3);
    EXPECT_EQ((*ehr)->stats().bulk_deletes, 1u);
    EXPECT_EQ((r.out + r.err).find("/bulk/"), std::string::npos) << r.out << r.err;
    EXPECT_EQ((r.out + r.err).find("Bearer"), std::string::npos);

    // `status` shows the export; --json too.
    const auto status = run_binary({"status", "--config", cfg}, dir.path());
    EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
    EXPECT_NE(status.out.find("bulk export sandbox: done, "), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("files applied"), std::string::npos) << status.out;
    const auto json = run_binary({"status", "--config", cfg, "--json"}, dir.path());
    EXPECT_NE(json.out.find("\"bulk\":[{\"ehr\":\"sandbox\",\"phase\":\"done\""), std::string::npos)
        << json.out;
    EXPECT_EQ((status.out + json.out).find("/bulk/"), std::string::npos);

    // Nothing left to resume or cancel: a usage error that says so.
    const auto resume = export_({"--resume"});
    EXPECT_EQ(resume.exit_code, 64) << resume.out << resume.err;
    EXPECT_NE(resume.err.find("no unfinished export to resume"), std::string::npos) << resume.err;
    const auto cancel = export_({"--cancel"});
    EXPECT_EQ(cancel.exit_code, 64);
    const auto since = export_({"--since", "yesterday"});
    EXPECT_EQ(since.exit_code, 64);
    EXPECT_NE(since.err.find("--since is not a FHIR instant"), std::string::npos) << since.err;
    EXPECT_EQ((*ehr)->stats().bulk_kickoffs, 1u);
}

TEST_F(export_cli, ResumeFinishesTheJobACrashLeftWithoutASecondKickoff) {
    start(1);  // the in-process run takes the one 202
    leave_a_job_polling();

    const auto r = export_({"--resume"});

    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("done (resumed)"), std::string::npos) << r.out;
    EXPECT_EQ((*ehr)->stats().bulk_kickoffs, 1u);
    EXPECT_EQ(count("SELECT count(*) FROM patient"), 3);
}

TEST_F(export_cli, CancelDeletesTheJobAtTheServerAndStoresNothing) {
    start(1);  // the in-process run takes the one 202
    leave_a_job_polling();

    const auto r = export_({"--cancel"});

    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("cancelled; the server's export was deleted"), std::string::npos) << r.out;
    EXPECT_EQ((*ehr)->stats().bulk_deletes, 1u);
    EXPECT_EQ((*ehr)->stats().bulk_file_downloads, 0u);
    EXPECT_EQ(count("SELECT count(*) FROM patient"), 0);
    // Ended: nothing left to resume, and the next export is a new job.
    const auto again = export_({"--resume"});
    EXPECT_EQ(again.exit_code, 64) << again.out << again.err;
    headachemd::store::vault vault(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
    EXPECT_EQ(sy::load_bulk_job(vault.sql(), "sandbox")->phase, sy::bulk_phase::cancelled);
}

TEST_F(export_cli, AConfigWithoutBulkSaysSo) {
    start();
    write_file(dir / "nobulk.toml", "[daemon]\ndatabase = \"" + (dir / "headache.db").string() +
                                        "\"\nvault = \"" + (dir / "vault.db").string() + "\"\n" +
                                        headachemd::test::token_key_toml(dir.path()));
    ::chmod((dir / "nobulk.toml").c_str(), 0600);

    const auto r = run_binary({"export", "--config", (dir / "nobulk.toml").string()}, dir.path());

    EXPECT_EQ(r.exit_code, 78) << r.out << r.err;
    EXPECT_NE(r.err.find("no [[ehr]] has an [ehr.bulk] section"), std::string::npos) << r.err;
}

}  // namespace
