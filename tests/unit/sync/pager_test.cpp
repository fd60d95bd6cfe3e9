// The pager of one search (issue 14, item 2), stepped page by page with
// plain values: which URL comes next, and where a search is cut off.
// No io_context, no network, no database.
#include <gtest/gtest.h>

#include "headachemd/sync/pager.hpp"

namespace {

namespace sy = headachemd::sync;

const std::string search = "https://ehr.test/fhir/Condition?patient=p1&_count=2";

sy::pager search_pager(int max_pages = 100, std::optional<std::string> page_param = std::nullopt) {
    return sy::pager("Condition", search, false, search, sy::paging_rules{max_pages, std::move(page_param)});
}

std::vector<sy::page_entry> conditions(std::initializer_list<const char*> ids) {
    std::vector<sy::page_entry> out;
    for (const char* id : ids) out.push_back({id, true});
    return out;
}

// One page through the pager as the engine drives it; the error of
// before_fetch or take_page, if any.
std::optional<headachemd::error> step(sy::pager& p, std::optional<std::string> next,
                                      std::vector<sy::page_entry> entries) {
    if (auto stop = p.before_fetch()) return stop;
    p.fetched();
    if (auto loop = p.take_page(std::move(next), std::move(entries))) return loop;
    p.committed();
    return std::nullopt;
}

TEST(Pager, FollowsNextLinksUntilAPageHasNone) {
    // Setup
    auto p = search_pager();
    // Run / Check
    EXPECT_EQ(p.url(), search);
    EXPECT_FALSE(step(p, "https://ehr.test/fhir?page=b", conditions({"c1", "c2"})));
    EXPECT_EQ(p.url(), "https://ehr.test/fhir?page=b");
    EXPECT_FALSE(p.last_page());
    EXPECT_FALSE(step(p, std::nullopt, conditions({"c3"})));
    EXPECT_TRUE(p.last_page());
    EXPECT_EQ(p.pages(), 2);
    EXPECT_EQ(p.where(), "Condition page 2");
}

TEST(Pager, ANextLinkBackToAnEarlierPageIsALoopAtTheRepeatedUrl) {
    // Setup
    auto p = search_pager();
    ASSERT_FALSE(step(p, "https://ehr.test/fhir?page=b", conditions({"c1"})));
    ASSERT_FALSE(step(p, search, conditions({"c2"})));  // page 2 links back to page 1
    // Run: the repeated URL is refused before it is fetched.
    auto stop = p.before_fetch();
    // Check
    ASSERT_TRUE(stop);
    EXPECT_EQ(to_string(stop->code), "paging_loop");
    EXPECT_EQ(stop->message, "Condition: a next link points back to an earlier page");
    EXPECT_EQ(p.pages(), 2);
}

TEST(Pager, APageRepeatingOnlySeenResourcesUnderANewUrlIsALoop) {
    // Setup: page 3 comes under a fresh URL but holds page 1's resources.
    auto p = search_pager();
    ASSERT_FALSE(step(p, "https://ehr.test/fhir?page=2", conditions({"c1", "c2"})));
    ASSERT_FALSE(step(p, "https://ehr.test/fhir?page=3&session=x", conditions({"c3"})));
    ASSERT_FALSE(p.before_fetch());
    p.fetched();
    // Run
    auto loop = p.take_page("https://ehr.test/fhir?page=4", conditions({"c1", "c2"}));
    // Check
    ASSERT_TRUE(loop);
    EXPECT_EQ(to_string(loop->code), "paging_loop");
    EXPECT_EQ(loop->message,
              "Condition page 3: the page repeats resources of an earlier page (a next-link loop)");
}

TEST(Pager, ResourcesOfAnotherTableOrAFreshOneAreNoLoop) {
    // Setup: an included Medication seen before, and a page mixing old and new.
    auto p = search_pager();
    ASSERT_FALSE(step(p, "https://ehr.test/fhir?page=2", {{"c1", true}, {"m1", false}}));
    ASSERT_FALSE(p.before_fetch());
    p.fetched();
    // Run / Check: only included resources (none of the type) is not a loop...
    EXPECT_FALSE(p.take_page("https://ehr.test/fhir?page=3", {{"m1", false}}));
    p.committed();
    ASSERT_FALSE(p.before_fetch());
    p.fetched();
    // ... and neither is a page with one resource not seen before.
    EXPECT_FALSE(p.take_page(std::nullopt, conditions({"c1", "c9"})));
}

TEST(Pager, TheDeleteSetIsTheTypesCommittedIdsAndTheTakenPage) {
    // Setup: page 1 committed with an included Medication; page 2 taken,
    // not yet committed (its transaction is where the set is used).
    auto p = search_pager();
    ASSERT_FALSE(step(p, "https://ehr.test/fhir?page=2", {{"c1", true}, {"m1", false}}));
    ASSERT_FALSE(p.before_fetch());
    p.fetched();
    // Run
    ASSERT_FALSE(p.take_page(std::nullopt, {{"c2", true}, {"m2", false}}));
    // Check: every id of the type, in page order; no included resource.
    EXPECT_EQ(p.ids_with_page(), (std::vector<std::string>{"c1", "c2"}));
}

TEST(Pager, ThePageLimitHoldsBeforeThePageIsAskedFor) {
    // Setup: max 3 pages, a server that links on forever with empty pages.
    auto p = search_pager(3);
    for (int i = 0; i < 3; ++i)
        ASSERT_FALSE(step(p, "https://ehr.test/fhir?page=" + std::to_string(i + 2), {})) << i;
    // Run
    auto stop = p.before_fetch();
    // Check
    ASSERT_TRUE(stop);
    EXPECT_EQ(to_string(stop->code), "page_limit");
    EXPECT_EQ(stop->message,
              "Condition: the search has more than 3 pages (max_pages_per_search); the rest was not fetched");
    EXPECT_EQ(p.pages(), 3);
}

TEST(Pager, ThePageParameterAsksForTheNextPageWhileTheServerSendsNoLinks) {
    // Setup: eCW's `page`, no next links.
    auto p = search_pager(100, "page");
    // Run / Check: page 1 full of new ids → page 2.
    ASSERT_FALSE(step(p, std::nullopt, conditions({"c1", "c2"})));
    EXPECT_FALSE(p.last_page());
    EXPECT_EQ(p.url(), search + "&page=2");
    // page 2 new → page 3.
    ASSERT_FALSE(step(p, std::nullopt, conditions({"c3"})));
    EXPECT_EQ(p.url(), search + "&page=3");
    // page 3 repeats what we have (eCW answers the last page again) → done.
    ASSERT_FALSE(p.before_fetch());
    p.fetched();
    ASSERT_FALSE(p.take_page(std::nullopt, conditions({"c3"})));
    EXPECT_TRUE(p.last_page());
}

TEST(Pager, AnEmptyPageEndsPagingByParameter) {
    auto p = search_pager(100, "page");
    ASSERT_FALSE(step(p, std::nullopt, conditions({"c1"})));
    ASSERT_FALSE(p.before_fetch());
    p.fetched();
    ASSERT_FALSE(p.take_page(std::nullopt, {}));
    EXPECT_TRUE(p.last_page());
}

TEST(Pager, NoPageParameterWithoutTheSettingOrOnceTheServerSentALink) {
    // Without page_param: one page without a next link ends the search.
    auto plain = search_pager();
    ASSERT_FALSE(step(plain, std::nullopt, conditions({"c1"})));
    EXPECT_TRUE(plain.last_page());
    // A server that sent a next link once pages by links only.
    auto linked = search_pager(100, "page");
    ASSERT_FALSE(step(linked, "https://ehr.test/fhir?page=b", conditions({"c1"})));
    ASSERT_FALSE(step(linked, std::nullopt, conditions({"c2"})));
    EXPECT_TRUE(linked.last_page());
}

TEST(Pager, AReadIsOnePageEvenWithAPageParameter) {
    // Setup: Patient/{id} under eCW's page parameter.
    const std::string read = "https://ehr.test/fhir/Patient/p1";
    sy::pager p("Patient", read, true, "https://ehr.test/fhir/Patient?_id=p1", sy::paging_rules{100, "page"});
    // Run
    ASSERT_FALSE(step(p, std::nullopt, {{"p1", true}}));
    // Check: no "page 2" of a read (one wasted call per patient against eCW's budget).
    EXPECT_TRUE(p.last_page());
    EXPECT_EQ(p.url(), read);
}

TEST(SameFhirBase, AbsoluteReferencesAreOursOnlyUnderTheSameBase) {
    EXPECT_TRUE(sy::same_fhir_base("https://ehr.test/fhir", "https://ehr.test/fhir"));
    EXPECT_TRUE(sy::same_fhir_base("HTTPS://EHR.test/fhir/", "https://ehr.test/fhir"));
    EXPECT_FALSE(sy::same_fhir_base("https://other.test/fhir", "https://ehr.test/fhir"));
    EXPECT_FALSE(sy::same_fhir_base("https://ehr.test/other", "https://ehr.test/fhir"));
    EXPECT_FALSE(sy::same_fhir_base("https://ehr.test:8443/fhir", "https://ehr.test/fhir"));
    EXPECT_FALSE(sy::same_fhir_base("https://ehr.test/FHIR", "https://ehr.test/fhir"));
}

}  // namespace
