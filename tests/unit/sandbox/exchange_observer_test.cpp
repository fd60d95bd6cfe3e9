// The crash-test control: the exchange observer sees each request once it
// is read and once its whole answer is written, with the path and no query;
// an injected reset has no "sent"; an empty observer is never called.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "sandbox_client.hpp"

namespace sbx = headachemd::sandbox;
using phase = sbx::server::exchange_phase;
using namespace std::chrono_literals;

namespace {

// Collects events from the server thread; the test waits for a count with a
// deadline (the "sent" event may come just after the client has its reply).
class recorder {
public:
    void add(std::string_view path, phase p) {
        std::lock_guard lock(mu_);
        events_.emplace_back(std::string(path), p);
        cv_.notify_all();
    }
    std::vector<std::pair<std::string, phase>> wait_for(std::size_t n) {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, 10s, [&] { return events_.size() >= n; });
        return events_;
    }
    // Until `path` has been answered.
    std::vector<std::pair<std::string, phase>> wait_for_sent(const std::string& path) {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, 10s, [&] {
            for (const auto& e : events_)
                if (e.first == path && e.second == phase::sent) return true;
            return false;
        });
        return events_;
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::pair<std::string, phase>> events_;
};

TEST(SandboxExchangeObserver, SeesEachRequestReadAndEachAnswerWrittenWithoutTheQuery) {
    sbx::test::running_sandbox s;
    auto c = s.make_client();
    recorder rec;
    s.srv().set_exchange_observer([&rec](std::string_view path, phase p) { rec.add(path, p); });

    EXPECT_EQ(c->get("/fhir/metadata?_format=json").status, 200);
    const auto events = rec.wait_for(2);

    const std::vector<std::pair<std::string, phase>> want = {{"/fhir/metadata", phase::received},
                                                             {"/fhir/metadata", phase::sent}};
    EXPECT_EQ(events, want);
}

TEST(SandboxExchangeObserver, AResetAnswerIsReadButNeverSent) {
    // Setup: a FHIR search that is answered with a connection reset.
    sbx::test::running_sandbox s;
    auto c = s.make_client();
    const std::string id = s.srv().patient_ids().front();
    recorder rec;
    s.srv().set_exchange_observer([&rec](std::string_view path, phase p) { rec.add(path, p); });
    const std::string token = sbx::test::access_token_for(s, *c, id);
    rec.wait_for_sent("/token");
    s.srv().set_fault_rates(0, 0, 1, 0);

    // Run: the reset request, then discovery (never faulted) as a marker.
    EXPECT_FALSE(c->get("/fhir/Observation?patient=" + id, token).ok());
    EXPECT_EQ(c->get("/fhir/metadata").status, 200);
    const auto events = rec.wait_for_sent("/fhir/metadata");

    // Check
    const std::vector<std::pair<std::string, phase>> want = {{"/token", phase::received},
                                                             {"/token", phase::sent},
                                                             {"/fhir/Observation", phase::received},
                                                             {"/fhir/metadata", phase::received},
                                                             {"/fhir/metadata", phase::sent}};
    EXPECT_EQ(events, want);
}

TEST(SandboxExchangeObserver, AnEmptyObserverIsNotCalled) {
    sbx::test::running_sandbox s;
    auto c = s.make_client();
    recorder rec;
    s.srv().set_exchange_observer([&rec](std::string_view path, phase p) { rec.add(path, p); });
    s.srv().set_exchange_observer({});
    EXPECT_EQ(c->get("/fhir/metadata").status, 200);
    // A second observer installed afterwards sees only what follows.
    recorder later;
    s.srv().set_exchange_observer([&later](std::string_view path, phase p) { later.add(path, p); });
    EXPECT_EQ(c->get("/fhir/.well-known/smart-configuration").status, 200);
    const auto seen = later.wait_for_sent("/fhir/.well-known/smart-configuration");
    EXPECT_GE(seen.size(), 2u);  // the metadata answer's "sent" may come after the switch
    EXPECT_TRUE(rec.wait_for(0).empty());
}

}  // namespace
