// Scripted faults (the fault matrix's switches), seen through the test's own
// HTTPS client: each hits exactly the requests it matches, and is spent.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <set>

#include "sandbox_client.hpp"

namespace sbx = headachemd::sandbox;
using sbx::test::reply;
using sbx::test::running_sandbox;
using fault = sbx::scripted_fault::kind;
using namespace std::chrono_literals;

namespace {

struct scripted {
    explicit scripted(sbx::options o = {}) : s(std::move(o)) {}
    running_sandbox s;
    std::unique_ptr<sbx::test::client> c = s.make_client();
    std::string id = s.srv().patient_ids().front();
    std::string token = sbx::test::access_token_for(s, *c, id);
    std::string obs = "/fhir/Observation?patient=" + id + "&_count=3";
    std::string cond = "/fhir/Condition?patient=" + id + "&_count=1";

    void add(fault what, const std::string& type, int page, int count = 1) {
        sbx::scripted_fault f;
        f.what = what;
        f.type = type;
        f.page = page;
        f.count = count;
        s.srv().add_scripted_fault(f);
    }
};

std::string self_link(const reply& r) {
    const boost::json::value doc = r.json();
    for (const auto& l : doc.at("link").as_array())
        if (l.at("relation").as_string() == "self") return std::string(l.at("url").as_string());
    return {};
}

}  // namespace

TEST(SandboxScriptedFaults, StatusHitsOnlyItsTypeAndPageAndIsSpent) {
    scripted f;
    sbx::scripted_fault sf;
    sf.status = 503;
    sf.type = "Observation";
    sf.page = 2;
    f.s.srv().add_scripted_fault(sf);
    const reply first = f.c->get(f.obs, f.token);
    ASSERT_EQ(first.status, 200);
    const std::string cond_page2 = sbx::test::next_link(f.c->get(f.cond, f.token));
    ASSERT_FALSE(cond_page2.empty());
    EXPECT_EQ(f.c->get(cond_page2, f.token).status, 200);  // page 2 of another type
    const std::string page2 = sbx::test::next_link(first);
    const reply hit = f.c->get(page2, f.token);
    EXPECT_EQ(hit.status, 503);
    EXPECT_FALSE(hit.has_header("retry-after"));
    EXPECT_EQ(f.c->get(page2, f.token).status, 200);  // spent
}

TEST(SandboxScriptedFaults, A429CarriesRetryAfterOnlyWhenScripted) {
    scripted f;
    sbx::scripted_fault sf;
    sf.status = 429;
    sf.count = 1;
    f.s.srv().add_scripted_fault(sf);
    sf.retry_after = "7";
    f.s.srv().add_scripted_fault(sf);
    const reply bare = f.c->get(f.obs, f.token);
    EXPECT_EQ(bare.status, 429);
    EXPECT_FALSE(bare.has_header("retry-after"));  // even though retry_after_on_429 is on
    const reply with = f.c->get(f.obs, f.token);
    EXPECT_EQ(with.status, 429);
    EXPECT_EQ(with.header("retry-after"), "7");
    f.s.srv().clear_scripted_faults();
    EXPECT_EQ(f.c->get(f.obs, f.token).status, 200);
}

TEST(SandboxScriptedFaults, LyingContentLengthLooksCompleteButIsNotJson) {
    scripted f;
    f.add(fault::lying_length, "Observation", 1);
    const reply r = f.c->get(f.obs, f.token);
    EXPECT_TRUE(r.ok()) << r.error;  // a whole HTTP message
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("content-length"), std::to_string(r.body.size()));
    EXPECT_ANY_THROW((void)r.json());
}

TEST(SandboxScriptedFaults, ShortContentLengthLeavesTheRestOnTheConnection) {
    scripted f;
    const reply whole = f.c->get(f.obs, f.token);
    ASSERT_EQ(whole.status, 200);
    f.add(fault::short_length, "Observation", 1);
    const reply cut = f.c->get(f.obs, f.token);
    EXPECT_TRUE(cut.ok()) << cut.error;
    EXPECT_EQ(cut.body, whole.body.substr(0, whole.body.size() / 2));
    EXPECT_NE(cut.header("connection"), "close");  // the rest waits on a kept-alive connection
}

TEST(SandboxScriptedFaults, ResetMidBodyAndTruncatedBodyEndTheMessageEarly) {
    scripted f;
    f.add(fault::reset_mid_body, "Observation", 1);
    f.add(fault::truncated_body, "Condition", 1);
    EXPECT_FALSE(f.c->get(f.obs, f.token).ok());
    EXPECT_EQ(f.s.srv().stats().resets, 1u);
    EXPECT_EQ(f.c->get(f.cond, f.token).error, "partial_message");
    EXPECT_EQ(f.s.srv().stats().truncations, 1u);
    EXPECT_EQ(f.c->get(f.obs, f.token).status, 200);
}

TEST(SandboxScriptedFaults, SlowAnswerWaitsItsDelay) {
    scripted f;
    sbx::scripted_fault sf;
    sf.what = fault::slow;
    sf.delay = 300ms;
    f.s.srv().add_scripted_fault(sf);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(f.c->get(f.obs, f.token).status, 200);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
}

TEST(SandboxScriptedFaults, StallAfterHeadSendsTheHeadAndNeverTheWholeBody) {
    // Setup: a stall with no trickle, and one with a byte every 20 ms.
    scripted f;
    sbx::scripted_fault sf;
    sf.what = fault::stall_after_head;
    sf.type = "Observation";
    f.s.srv().add_scripted_fault(sf);
    sf.type = "Condition";
    sf.delay = 20ms;
    f.s.srv().add_scripted_fault(sf);
    f.c->set_read_deadline(500ms);
    // Run / Check: the head arrived (status 200), the body never completed.
    const reply stalled = f.c->get(f.obs, f.token);
    EXPECT_FALSE(stalled.ok());
    EXPECT_EQ(stalled.status, 200);
    const reply trickled = f.c->get(f.cond, f.token);
    EXPECT_FALSE(trickled.ok());
    EXPECT_EQ(trickled.status, 200);
    EXPECT_EQ(f.s.srv().stats().stalls, 2u);
    // Spent: the next request is answered whole.
    EXPECT_EQ(f.c->get(f.obs, f.token).status, 200);
}

TEST(SandboxScriptedFaults, InterimFloodSendsOnly102s) {
    scripted f;
    sbx::scripted_fault sf;
    sf.what = fault::interim_flood;
    sf.delay = 20ms;
    f.s.srv().add_scripted_fault(sf);
    // A 1xx is a complete message to a parser: this client sees the first
    // 102, and nothing else ever follows on that connection.
    const reply first = f.c->get(f.obs, f.token);
    EXPECT_EQ(first.status, 102);
    EXPECT_EQ(f.s.srv().stats().stalls, 1u);
    auto fresh = f.s.make_client();
    EXPECT_EQ(fresh->get(f.obs, f.token).status, 200);  // spent
}

TEST(SandboxScriptedFaults, MalformedJsonAndOperationOutcomeWith200) {
    scripted f;
    f.add(fault::malformed_json, "Observation", 1);
    f.add(fault::operation_outcome, "Condition", 1);
    const reply bad = f.c->get(f.obs, f.token);
    EXPECT_EQ(bad.status, 200);
    EXPECT_ANY_THROW((void)bad.json());
    const reply oo = f.c->get(f.cond, f.token);
    EXPECT_EQ(oo.status, 200);
    EXPECT_EQ(oo.json().at("resourceType").as_string(), "OperationOutcome");
}

TEST(SandboxScriptedFaults, OtherPatientEntriesReferenceAnotherPatient) {
    scripted f;
    f.add(fault::other_patient, "Condition", 1);
    const reply r = f.c->get(f.cond, f.token);
    ASSERT_EQ(r.status, 200);
    const boost::json::value doc = r.json();
    const auto& entries = doc.at("entry").as_array();
    ASSERT_FALSE(entries.empty());
    for (const auto& e : entries) {
        const std::string ref(e.at("resource").at("subject").at("reference").as_string());
        EXPECT_NE(ref, "Patient/" + f.id);
    }
}

TEST(SandboxScriptedFaults, NextLoopLinksBackToTheFirstPage) {
    scripted f;
    f.add(fault::next_loop, "Observation", 2, 100);
    const reply first = f.c->get(f.obs, f.token);
    ASSERT_EQ(first.status, 200);
    const reply second = f.c->get(sbx::test::next_link(first), f.token);
    ASSERT_EQ(second.status, 200);
    EXPECT_EQ(sbx::test::next_link(second), self_link(first));
}

TEST(SandboxScriptedFaults, NextLoopNewUrlNeverRepeatsAUrl) {
    scripted f;
    f.add(fault::next_loop_new_url, "Observation", 2, 100);
    std::set<std::string> urls;
    std::string url = f.obs;
    std::vector<std::string> first_ids;
    for (int i = 0; i < 6; ++i) {
        const reply r = f.c->get(url, f.token);
        ASSERT_EQ(r.status, 200);
        if (i % 2 == 0) {
            std::vector<std::string> ids;
            const boost::json::value doc = r.json();
            for (const auto& e : doc.at("entry").as_array())
                ids.emplace_back(e.at("resource").at("id").as_string());
            if (i == 0) first_ids = ids;
            EXPECT_EQ(ids, first_ids);  // every other step is the first page again
        }
        url = sbx::test::next_link(r);
        EXPECT_TRUE(urls.insert(url).second) << url;
    }
}

TEST(SandboxScriptedFaults, FailedTokenRequestsSpendNoToken) {
    scripted f;
    const std::string rt = f.s.srv().issue_refresh_token(f.id);
    f.s.srv().fail_token_requests(500, "server_error", 1);
    const reply failed = sbx::test::refresh(*f.c, f.s.srv().config(), rt);
    EXPECT_EQ(failed.status, 500);
    EXPECT_EQ(failed.json().at("error").as_string(), "server_error");
    EXPECT_EQ(sbx::test::refresh(*f.c, f.s.srv().config(), rt).status, 200);  // still unspent
}

// Issue 12: a careless token endpoint, so clients can be tested against one.
TEST(SandboxScriptedFaults, EchoedTokenRequestsRepeatTheRequestAndSpendNoToken) {
    scripted f;
    const std::string rt = f.s.srv().issue_refresh_token(f.id);
    f.s.srv().echo_token_requests(400, "invalid_request", 1);
    const reply echoed = sbx::test::refresh(*f.c, f.s.srv().config(), rt);
    EXPECT_EQ(echoed.status, 400);
    EXPECT_EQ(echoed.json().at("error").as_string(), "invalid_request");
    const std::string description(echoed.json().at("error_description").as_string());
    EXPECT_NE(description.find("refresh_token=" + rt), std::string::npos) << description;
    EXPECT_NE(description.find(" client_secret=" + f.s.srv().config().client_secret), std::string::npos);
    EXPECT_EQ(sbx::test::refresh(*f.c, f.s.srv().config(), rt).status, 200);  // still unspent
}

TEST(SandboxScriptedFaults, CertificateForAnotherHostFailsHostNameVerification) {
    sbx::options o;
    o.certificate_host = "ehr.example.org";
    running_sandbox s(o);
    auto c = s.make_client();  // trusts the CA, verifies the name 127.0.0.1
    const reply r = c->get("/fhir/metadata");
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(s.srv().stats().requests, 0u);
    // The refused handshake is counted (the fault matrix checks that a
    // client tries it once and does not retry). The server's side of the
    // handshake ends just after the client's: wait for it, with a bound.
    ASSERT_TRUE(s.srv().wait_until_no_connections(5000ms));
    EXPECT_EQ(s.srv().stats().tls_handshakes, 1u);
    EXPECT_EQ(s.srv().stats().tls_handshake_failures, 1u);
}

// Issue 18: token faults. The grant is processed before the answer is lost,
// so the refresh token is spent although the client saw no answer; sending
// it again is a reuse, refused (and the grant revoked) by a strict server.
TEST(SandboxScriptedFaults, TokenFaultsSpendTheRefreshTokenAndLoseTheAnswer) {
    for (const fault what : {fault::reset, fault::truncated_body, fault::stall_after_head}) {
        SCOPED_TRACE(static_cast<int>(what));
        // Setup
        scripted f;
        f.c->set_read_deadline(500ms);
        const std::string rt = f.s.srv().issue_refresh_token(f.id);
        sbx::scripted_fault sf;
        sf.what = what;
        sf.token = true;
        f.s.srv().add_scripted_fault(sf);
        const auto calls = f.s.srv().stats().token_calls;

        // Run
        const reply lost = sbx::test::refresh(*f.c, f.s.srv().config(), rt);
        const reply again = sbx::test::refresh(*f.c, f.s.srv().config(), rt);

        // Check: no usable answer, the token was spent, the fault was spent,
        // and a FHIR request is untouched by it.
        EXPECT_FALSE(lost.ok()) << lost.status;
        EXPECT_EQ(f.s.srv().stats().token_calls, calls + 2);
        EXPECT_EQ(again.status, 400);
        EXPECT_EQ(again.json().at("error").as_string(), "invalid_grant");
        EXPECT_EQ(f.c->get(f.obs, f.token).status, 200);
    }
}

TEST(SandboxScriptedFaults, ATokenFaultDoesNotHitFhirRequestsNorAFhirFaultTheTokenEndpoint) {
    scripted f;
    f.add(fault::reset, "", 0);  // a FHIR fault for any type
    sbx::scripted_fault sf;
    sf.what = fault::reset;
    sf.token = true;
    f.s.srv().add_scripted_fault(sf);
    // The first /token request takes the token fault only.
    const std::string rt = f.s.srv().issue_refresh_token(f.id);
    EXPECT_FALSE(sbx::test::refresh(*f.c, f.s.srv().config(), rt).ok());
    const std::string rt2 = f.s.srv().issue_refresh_token(f.id);
    EXPECT_EQ(sbx::test::refresh(*f.c, f.s.srv().config(), rt2).status, 200);
    // The FHIR fault is still there for the first FHIR request.
    EXPECT_FALSE(f.c->get(f.obs, f.token).ok());
    EXPECT_EQ(f.c->get(f.obs, f.token).status, 200);
}
