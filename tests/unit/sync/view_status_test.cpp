// What `status` says about the materialized views: complete, or waiting
// for its resources to come again after a new or edited definition.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "headachemd/sync/status_report.hpp"

namespace {

namespace sy = headachemd::sync;
namespace st = headachemd::store;

TEST(view_status, NoViewsPrintNothing) { EXPECT_EQ(sy::render_view_status({}), ""); }

st::view_state state(std::string name, std::string backfill_state, std::string backfilled_at = {},
                     long long missing = 0, bool under_way = false) {
    st::view_state v{std::move(name), "Observation", "2026-02-03T04:05:06Z", std::move(backfill_state)};
    v.backfilled_at = std::move(backfilled_at);
    v.backfill_missing_raw = missing;
    v.backfill_under_way = under_way;
    return v;
}

TEST(view_status, EachViewSaysWhetherItIsCompleteBackfilledOrWhatFillsTheRest) {
    // Setup: one view in each state
    const std::vector<st::view_state> views{
        state("a", "complete"),
        state("b", "complete", "2026-02-03T05:00:00Z"),
        state("c", "pending", "2026-02-03T05:00:00Z", 7),
        state("d", "pending", "", 0, true),
        state("e", "pending"),
    };
    // Run
    const std::string text = sy::render_view_status(views);
    // Check
    EXPECT_EQ(
        text,
        "views:\n"
        "  view_a                        Observation          complete\n"
        "  view_b                        Observation          complete (back-filled from the kept JSON at "
        "2026-02-03T05:00:00Z)\n"
        "  view_c                        Observation          pending until the next full pull (or a "
        "re-ingest): 7 stored resource(s) had no raw JSON to back-fill from (store_raw was off); rows for "
        "the rest and for resources written since 2026-02-03T04:05:06Z\n"
        "  view_d                        Observation          back-fill from the kept JSON interrupted; the "
        "next start (sync-once, run or ingest) goes on\n"
        "  view_e                        Observation          pending: back-fill from the kept JSON runs at "
        "the next start (sync-once, run or ingest); rows only for resources written since "
        "2026-02-03T04:05:06Z\n");
}

TEST(view_status, JsonListsTheViewsWithTheirState) {
    // Setup
    const std::vector<st::view_state> views{state("b", "complete", "2026-02-03T05:00:00Z"),
                                            state("c", "pending", "2026-02-03T05:00:00Z", 7)};
    // Run
    const std::string json = sy::render_status_json({}, views);
    // Check
    EXPECT_EQ(
        json,
        "{\"attention\":false,\"patients\":[],\"views\":["
        "{\"name\":\"b\",\"table\":\"view_b\",\"resource\":\"Observation\",\"state\":\"backfilled\","
        "\"created_at\":\"2026-02-03T04:05:06Z\",\"backfilled_at\":\"2026-02-03T05:00:00Z\",\"missing_raw\":"
        "0},"
        "{\"name\":\"c\",\"table\":\"view_c\",\"resource\":\"Observation\",\"state\":\"pending_full_pull\","
        "\"created_at\":\"2026-02-03T04:05:06Z\",\"backfilled_at\":\"2026-02-03T05:00:00Z\",\"missing_raw\":"
        "7}"
        "],\"bulk\":[]}\n");
    EXPECT_EQ(sy::render_status_json({}), "{\"attention\":false,\"patients\":[],\"views\":[],\"bulk\":[]}\n");
}

TEST(view_status, ValuesAreLineEscaped) {
    const std::vector<st::view_state> views{{"x", "Obs\nervation", "t\x1b", "pending"}};
    const std::string text = sy::render_view_status(views);
    EXPECT_EQ(text.find('\x1b'), std::string::npos);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
}

}  // namespace
