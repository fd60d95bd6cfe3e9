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

TEST(view_status, APendingViewSaysWhatFillsIt) {
    // Setup
    const std::vector<st::view_state> views{
        {"bp", "Observation", "2026-01-01T00:00:00Z", "complete"},
        {"allergies", "Condition", "2026-02-03T04:05:06Z", "pending"},
    };
    // Run
    const std::string text = sy::render_view_status(views);
    // Check
    EXPECT_EQ(text,
              "views:\n"
              "  view_bp                       Observation          complete\n"
              "  view_allergies                Condition            needs back-fill: rows only for resources "
              "written since 2026-02-03T04:05:06Z; the rest come with the next full pull (or a re-ingest)\n");
}

TEST(view_status, ValuesAreLineEscaped) {
    const std::vector<st::view_state> views{{"x", "Obs\nervation", "t\x1b", "pending"}};
    const std::string text = sy::render_view_status(views);
    EXPECT_EQ(text.find('\x1b'), std::string::npos);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
}

}  // namespace
