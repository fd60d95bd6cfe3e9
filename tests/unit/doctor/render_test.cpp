// doctor's printed report (doctor::render_report): grouped by topic in a
// fixed order, an ok line without its explanation, wrapping only when asked.
#include <gtest/gtest.h>

#include "headachemd/doctor/doctor.hpp"

namespace dr = headachemd::doctor;

namespace {

dr::report sample() {
    dr::report rep;
    rep.findings.push_back({dr::severity::error, dr::topic::client, "client secret file is world-readable",
                            "anyone on the host can read it", "chmod 600 the file", true});
    rep.findings.push_back({dr::severity::ok, dr::topic::discovery, "smart-configuration found",
                            "not shown for an ok", "", true});
    return rep;
}

}  // namespace

TEST(DoctorRender, PlainTextGroupsByTopicInOrderAndExplainsOnlyProblems) {
    const std::string out = dr::render_report(sample(), false, 0);
    EXPECT_EQ(out,
              "\ndiscovery\n"
              "  ok        smart-configuration found\n"
              "\nclient authentication\n"
              "  ERROR     client secret file is world-readable\n"
              "            anyone on the host can read it\n"
              "            fix: chmod 600 the file\n"
              "\n1 error(s), 0 warning(s), 0 note(s), 1 ok\n")
        << out;
}

TEST(DoctorRender, ColorOnlyWhenAsked) {
    EXPECT_EQ(dr::render_report(sample(), false, 0).find('\x1b'), std::string::npos);
    EXPECT_NE(dr::render_report(sample(), true, 0).find("\x1b[31;1mERROR"), std::string::npos);
}

TEST(DoctorRender, WrapsLongExplanationsUnderTheirIndent) {
    dr::report rep;
    rep.findings.push_back({dr::severity::warning, dr::topic::server, "w",
                            "one two three four five six seven eight nine ten", "", true});
    const std::string out = dr::render_report(rep, false, 30);
    // 30 columns, 12 of them the indent: no line of the explanation is longer.
    EXPECT_NE(
        out.find("            one two three four\n            five six seven\n            eight nine ten\n"),
        std::string::npos)
        << out;
}
