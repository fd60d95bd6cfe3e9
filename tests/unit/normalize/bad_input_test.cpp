// Input the normalizer must refuse: every problem is a value, located by
// entry or line, and never stops the other entries from being checked.
#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

// A Bundle of the given entry texts.
std::string bundle(std::initializer_list<std::string_view> entries, std::string_view type = "collection") {
    std::string s = R"({"resourceType":"Bundle","type":")" + std::string(type) + R"(","entry":[)";
    bool first = true;
    for (auto e : entries) {
        if (!first) s += ",";
        first = false;
        s += e;
    }
    return s + "]}";
}

const std::string good_patient =
    R"({"fullUrl":"https://x/Patient/p","resource":{"resourceType":"Patient","id":"p"}})";

TEST(NormalizeBadInput, EmptyFile) {
    // Run
    const result r = run("");
    // Check
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.problems.size(), 1u);
    EXPECT_EQ(r.problems[0].where, "document");
    EXPECT_EQ(r.problems[0].message, "empty file");
}

TEST(NormalizeBadInput, OnlyWhitespace) {
    // Run
    const result r = run(" \n\t\r\n ");
    // Check
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.problems.size(), 1u);
    EXPECT_EQ(r.problems[0].where, "document");
    EXPECT_TRUE(contains(r.problems[0].message, "only whitespace")) << r.problems[0].message;
}

TEST(NormalizeBadInput, TruncatedBundleNamesTheEntryAndOffset) {
    // Setup: cut after the second entry's last value.
    std::string json = bundle({good_patient, good_patient});
    json.resize(json.size() - 4);
    // Run
    const result r = run(json);
    // Check
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.problems.size(), 1u) << problems_text(r);
    EXPECT_EQ(r.problems[0].where, "entry 1");
    EXPECT_TRUE(starts_with(r.problems[0].message, "truncated JSON")) << r.problems[0].message;
    EXPECT_TRUE(contains(r.problems[0].message, "byte offset " + std::to_string(json.size())))
        << r.problems[0].message;
    EXPECT_TRUE(r.records.empty());
}

TEST(NormalizeBadInput, MismatchedBracketInsideAnUnreadField) {
    // Setup: On-Demand would skip this field without matching brackets.
    const std::string json = bundle(
        {good_patient, R"({"resource":{"resourceType":"Patient","id":"q","name":[{"family":"x"]}]}})"});
    // Run
    const result r = run(json);
    // Check
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.problems.at(0).where, "entry 1");
    EXPECT_TRUE(contains(r.problems[0].message, "closes a bracket of the other kind"))
        << r.problems[0].message;
}

TEST(NormalizeBadInput, MissingColonIsMalformedJson) {
    // Setup
    const std::string json = R"({"resourceType":"Patient","id" "p"})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(starts_with(r.problems.at(0).message, "malformed JSON")) << r.problems[0].message;
}

TEST(NormalizeBadInput, TrailingContentAfterTheTopLevelValue) {
    // Setup
    const std::string json = R"({"resourceType":"Patient","id":"p"} {"resourceType":"Patient","id":"q"})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(contains(r.problems.at(0).message, "after the end of the top-level value"))
        << r.problems[0].message;
    EXPECT_TRUE(contains(r.problems[0].message, "byte offset 36")) << r.problems[0].message;
}

TEST(NormalizeBadInput, UnclosedStringGivesOffset) {
    // Setup
    const std::string json = R"({"resourceType":"Patient","id":"p)";
    // Run
    const result r = run(json);
    // Check
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(starts_with(r.problems.at(0).message, "malformed JSON")) << r.problems[0].message;
    EXPECT_TRUE(contains(r.problems[0].message, "byte offset 31")) << r.problems[0].message;
}

TEST(NormalizeBadInput, InvalidUtf8NamesTheEntryAndOffset) {
    // Setup: a lone 0xFF byte inside entry 1.
    const std::string second =
        "{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"q\",\"gender\":\"m\xFFle\"}}";
    const std::string json = bundle({good_patient, second});
    const std::size_t bad = json.find('\xFF');
    // Run
    const result r = run(json);
    // Check
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.problems.size(), 1u);
    EXPECT_EQ(r.problems[0].where, "entry 1");
    EXPECT_TRUE(starts_with(r.problems[0].message, "invalid UTF-8")) << r.problems[0].message;
    EXPECT_TRUE(contains(r.problems[0].message, "byte offset " + std::to_string(bad)))
        << r.problems[0].message;
}

TEST(NormalizeBadInput, DeepNestingInsideAResourceFieldIsRejectedForThatEntryOnly) {
    // Setup: 10,000 nested arrays in an extension of entry 1.
    const std::string deep =
        R"({"fullUrl":"https://x/Observation/o","resource":{"resourceType":"Observation","id":"o",
        "status":"final","extension":)" +
        nested_arrays(10000) + "}}";
    const std::string json = bundle({good_patient, deep});
    // Run
    const result r = run(json);
    // Check
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.problems.size(), 1u) << problems_text(r);
    EXPECT_EQ(r.problems[0].where, "entry 1 (Observation/o)");
    EXPECT_TRUE(contains(r.problems[0].message, "nested deeper than 256 levels")) << r.problems[0].message;
    ASSERT_EQ(r.records.size(), 1u);  // entry 0 was still read
    EXPECT_STREQ(table_name(r.records[0]), "patient");
}

TEST(NormalizeBadInput, DeepNestingInASkippedTypeIsStillRejected) {
    // Setup
    const std::string deep =
        R"({"resource":{"resourceType":"Basic","id":"b","extension":)" + nested_arrays(10000) + "}}";
    // Run
    const result r = run(bundle({deep}));
    // Check
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.problems.at(0).where, "entry 0 (Basic/b)");
}

TEST(NormalizeBadInput, DeepNestingInASingleResource) {
    // Setup
    const std::string json =
        R"({"resourceType":"Patient","id":"p","extension":)" + nested_arrays(10000) + "}";
    // Run
    const result r = run(json);
    // Check
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.problems.size(), 1u) << problems_text(r);
    EXPECT_EQ(r.problems[0].where, "Patient");
    EXPECT_TRUE(contains(r.problems[0].message, "nested deeper than 256 levels")) << r.problems[0].message;
}

TEST(NormalizeBadInput, DeepNestingAtTopLevel) {
    // Setup
    const std::string json = nested_arrays(10000);
    // Run
    const result r = run(json);
    // Check
    ASSERT_FALSE(r.ok());
    bool depth = false;
    for (const auto& p : r.problems) {
        EXPECT_EQ(p.where, "document");
        depth = depth || contains(p.message, "nested deeper than 256 levels at byte offset 256");
    }
    EXPECT_TRUE(depth) << problems_text(r);
}

TEST(NormalizeBadInput, DeepNestingInATopLevelBundleField) {
    // Setup
    const std::string json = R"({"resourceType":"Bundle","type":"collection","meta":{"tag":)" +
                             nested_arrays(10000) + R"(},"entry":[)" + good_patient + "]}";
    // Run
    const result r = run(json);
    // Check
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.problems.size(), 1u) << problems_text(r);
    EXPECT_EQ(r.problems[0].where, "document");
    EXPECT_TRUE(contains(r.problems[0].message, "nested deeper than")) << r.problems[0].message;
}

TEST(NormalizeBadInput, MaxDepthOptionIsHonoured) {
    // Setup: depth 4 is fine with max 4, depth 5 is not.
    const std::string ok_json = R"({"resourceType":"Patient","id":"p","a":[[[1]]]})";
    const std::string bad_json = R"({"resourceType":"Patient","id":"p","a":[[[[1]]]]})";
    // Run
    const result ok = run(ok_json, options{.max_depth = 4});
    const result bad = run(bad_json, options{.max_depth = 4});
    // Check
    EXPECT_TRUE(ok.ok()) << problems_text(ok);
    ASSERT_FALSE(bad.ok());
    EXPECT_TRUE(contains(bad.problems.at(0).message, "nested deeper than 4 levels")) << problems_text(bad);
}

TEST(NormalizeBadInput, ResourceOverTheSizeLimit) {
    // Setup
    const std::string big =
        R"({"fullUrl":"x","resource":{"resourceType":"Observation","id":"big","status":"final","note":[{"text":")" +
        std::string(500, 'a') + R"("}]}})";
    // Run
    const result r = run(bundle({good_patient, big}), options{.max_resource_bytes = 200});
    // Check
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.problems.size(), 1u) << problems_text(r);
    EXPECT_EQ(r.problems[0].where, "entry 1 (Observation/big)");
    EXPECT_TRUE(contains(r.problems[0].message, "over the 200-byte limit")) << r.problems[0].message;
    EXPECT_EQ(r.records.size(), 1u);
}

TEST(NormalizeBadInput, NumberOutOfRangeNamesTheField) {
    // Setup
    const std::string json = bundle({R"({"resource":{"resourceType":"Observation","id":"o9","status":"final",
        "valueQuantity":{"value":1e999,"unit":"mg"}}})"});
    // Run
    const result r = run(json);
    // Check
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.problems.size(), 1u) << problems_text(r);
    EXPECT_EQ(r.problems[0].where, "entry 0 (Observation/o9)");
    EXPECT_EQ(r.problems[0].message, "valueQuantity.value: number 1e999 is out of range or malformed");
    EXPECT_TRUE(r.records.empty());
}

// Found by tests/fuzz/fuzz_normalize_document: an unknown resourceType was
// quoted whole into the problem (a fuzzer pasted a narrative <div> into it,
// 1.3 KB), and problems reach the logs, which never carry payloads. Quoted
// input is now at most 64 bytes, cut at a UTF-8 boundary; a number token at
// most 40.
TEST(NormalizeBadInput, InputQuotedInAProblemIsShortAndStaysUtf8) {
    // Setup: "é" is 2 bytes, so a cut at 64 bytes would split one.
    std::string long_type = "X";
    for (int i = 0; i < 200; ++i) long_type += "\xC3\xA9";
    const std::string single = R"({"resourceType":")" + long_type + R"(","id":"p"})";
    const std::string in_bundle = bundle(
        {R"({"resource":{"resourceType":")" + long_type + R"(","id":")" + std::string(300, 'i') + R"("}})"});
    const std::string number = R"({"resourceType":"Observation","id":"o","valueInteger":1)" + long_type + "}";
    // Run
    const result a = run(single);
    const result b = run(in_bundle);
    normalizer n;
    result c;
    run_line(n, number, 1, c);
    // Check
    for (const result* r : std::initializer_list<const result*>{&a, &b, &c}) {
        ASSERT_FALSE(r->ok());
        for (const auto& p : r->problems) {
            EXPECT_LT(p.message.size(), 200u) << p.message;
            EXPECT_LT(p.where.size(), 160u) << p.where;
            EXPECT_TRUE(simdjson::validate_utf8(p.message.data(), p.message.size())) << p.message;
            EXPECT_TRUE(simdjson::validate_utf8(p.where.data(), p.where.size())) << p.where;
        }
    }
    EXPECT_TRUE(contains(a.problems.at(0).message, "unknown resourceType \"X\xC3\xA9"))
        << a.problems[0].message;
    EXPECT_TRUE(contains(a.problems[0].message, "…\": not a FHIR R4 resource type")) << a.problems[0].message;
}

// Found by tests/fuzz/fuzz_normalize_document: simdjson checks escapes only
// in strings that are unescaped, so `"verif\cationStatus"`, a key no reader
// looks at, passed, and its bytes would have reached resource_raw as JSON
// that SQLite's json functions refuse.
TEST(NormalizeBadInput, InvalidEscapeInAnUnreadStringIsMalformed) {
    // Setup
    const std::string key = R"({"resourceType":"Patient","id":"p","verif\cationStatus":1})";
    const std::string value =
        bundle({good_patient, R"({"resource":{"resourceType":"Patient","id":"q","text":{"div":"a\x41"}}})"});
    const std::string short_u = R"({"resourceType":"Patient","id":"p","x":"\u12"})";
    const std::string fine =
        R"({"resourceType":"Patient","id":"p","x":"\" \\ \/ \b \f \n \r \t \u00e9 \\c"})";
    // Run
    const result a = run(key);
    const result b = run(value);
    const result c = run(short_u);
    const result d = run(fine);
    // Check
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.problems.at(0).message,
              "malformed JSON: a backslash that starts no valid escape sequence at byte offset 41");
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.problems.at(0).where, "entry 1") << problems_text(b);
    EXPECT_FALSE(c.ok());
    EXPECT_TRUE(d.ok()) << problems_text(d);
    EXPECT_EQ(d.records.size(), 1u);
}

// Found by tests/fuzz/fuzz_normalize_document: a UTF-16 surrogate escape
// without its pair in a key no reader looks at. simdjson refuses it when it
// unescapes (fhir::read_page_meta did, at the top level), so the normalizer
// must refuse it too, wherever it is, and say where.
TEST(NormalizeBadInput, UnpairedSurrogateEscapeIsMalformed) {
    // Setup: the fuzzer's input, then each way a pair can be broken
    const std::string fuzzed = R"({"resourceType":"Appointment","id":"a","\ud83d\u0d0eend":1})";
    const std::vector<std::string> broken = {
        R"({"resourceType":"Patient","id":"p","x":"\ud83d"})",        // high at the end of a string
        R"({"resourceType":"Patient","id":"p","x":"\ud83dx"})",       // high, then a plain character
        R"({"resourceType":"Patient","id":"p","x":"\ud83d\ud83d"})",  // high, then another high
        R"({"resourceType":"Patient","id":"p","x":"\udc00"})",        // a low on its own
        R"({"resourceType":"Patient","id":"p","x":"\ud83d\n"})",      // high, then another escape
    };
    const std::string paired =
        R"({"resourceType":"Patient","id":"p","x":"\ud83d\ude00 \udbff\udfff \u0000"})";
    // Run
    const result a = run(fuzzed);
    const result d = run(paired);
    // Check
    ASSERT_FALSE(a.ok());
    EXPECT_TRUE(a.records.empty());
    EXPECT_EQ(a.problems.at(0).message,
              "malformed JSON: a backslash that starts no valid escape sequence at byte offset 40");
    for (const std::string& json : broken) {
        const result r = run(json);
        EXPECT_FALSE(r.ok()) << json;
        EXPECT_TRUE(r.records.empty()) << json;
        ASSERT_FALSE(r.problems.empty()) << json;
        EXPECT_EQ(r.problems[0].message,
                  "malformed JSON: a backslash that starts no valid escape sequence at byte offset 40")
            << json;
    }
    EXPECT_TRUE(d.ok()) << problems_text(d);
    EXPECT_EQ(d.records.size(), 1u);
}

TEST(NormalizeBadInput, TopLevelValueThatIsNotAnObject) {
    for (const char* json : {"[1,2]", "\"Patient\"", "42", "null"}) {
        // Run
        const result r = run(json);
        // Check
        ASSERT_FALSE(r.ok()) << json;
        EXPECT_EQ(r.problems.at(0).where, "document");
        EXPECT_TRUE(contains(r.problems[0].message, "expected a FHIR resource or Bundle"))
            << r.problems[0].message;
    }
}

TEST(NormalizeBadInput, StrayClosingBracket) {
    for (const char* json : {"]", "}", R"({"resourceType":"Patient","id":"p"}})"}) {
        // Run
        const result r = run(json);
        // Check
        ASSERT_FALSE(r.ok()) << json;
        EXPECT_EQ(r.problems.at(0).where, "document");
        EXPECT_TRUE(starts_with(r.problems[0].message, "malformed JSON")) << r.problems[0].message;
    }
}

TEST(NormalizeBadInput, MissingResourceType) {
    // Setup
    const std::string single = R"({"id":"p","gender":"male"})";
    const std::string in_bundle = bundle({good_patient, R"({"resource":{"id":"q"}})"});
    // Run
    const result a = run(single);
    const result b = run(in_bundle);
    // Check
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.problems.at(0).where, "document");
    EXPECT_TRUE(contains(a.problems[0].message, "no resourceType")) << a.problems[0].message;
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.problems.at(0).where, "entry 1");
    EXPECT_EQ(b.problems[0].message, "resource has no resourceType");
}

TEST(NormalizeBadInput, UnknownResourceType) {
    // Setup
    const std::string single = R"({"resourceType":"Foo","id":"1"})";
    const std::string in_bundle = bundle({R"({"resource":{"resourceType":"Foo","id":"1"}})", good_patient});
    // Run
    const result a = run(single);
    const result b = run(in_bundle);
    // Check
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.problems.at(0).where, "document");
    EXPECT_EQ(a.problems[0].message, "unknown resourceType \"Foo\": not a FHIR R4 resource type");
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.problems.at(0).where, "entry 0 (Foo/1)");
    EXPECT_EQ(b.records.size(), 1u);  // entry 1 still read
    EXPECT_EQ(b.read.count("Foo"), 0u);
}

TEST(NormalizeBadInput, ResourceWithoutIdInASearchset) {
    // Setup
    const std::string json = bundle({R"({"fullUrl":"urn:uuid:0a0a0a0a-0000-4000-8000-000000000000",
        "resource":{"resourceType":"Condition","subject":{"reference":"Patient/p"}}})"},
                                    "searchset");
    // Run
    const result r = run(json);
    // Check
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.problems.at(0).where, "entry 0 (Condition)");
    EXPECT_TRUE(starts_with(r.problems[0].message, "resource has no id")) << r.problems[0].message;
}

TEST(NormalizeBadInput, ResourceWithoutIdInATransactionNeedsAUrnFullUrl) {
    // Setup
    const std::string json =
        bundle({R"({"fullUrl":"https://x/Condition/c","resource":{"resourceType":"Condition"},
        "request":{"method":"PUT","url":"Condition/c"}})"},
               "transaction");
    // Run
    const result r = run(json);
    // Check
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.problems.at(0).where, "entry 0 (Condition)");
}

TEST(NormalizeBadInput, SingleResourceWithoutId) {
    // Run
    const result r = run(R"({"resourceType":"Observation","status":"final"})");
    // Check
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.problems.at(0).where, "Observation");
    EXPECT_TRUE(starts_with(r.problems[0].message, "resource has no id")) << r.problems[0].message;
}

TEST(NormalizeBadInput, EntryWithoutResource) {
    // Setup
    const std::string searchset =
        bundle({good_patient, R"({"fullUrl":"https://x/Patient/q","search":{"mode":"match"}})"}, "searchset");
    const std::string post = bundle({R"({"request":{"method":"POST","url":"Patient"}})"}, "transaction");
    // Run
    const result a = run(searchset);
    const result b = run(post);
    // Check
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.problems.at(0).where, "entry 1");
    EXPECT_EQ(a.problems[0].message, "entry 1 has no resource");
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.problems.at(0).message, "entry 0 has no resource");
}

TEST(NormalizeBadInput, EntryOrResourceOfTheWrongType) {
    // Setup
    const std::string json = bundle({"17", R"({"resource":"Patient/1"})", good_patient});
    // Run
    const result r = run(json);
    // Check
    ASSERT_EQ(r.problems.size(), 2u) << problems_text(r);
    EXPECT_EQ(r.problems[0].where, "entry 0");
    EXPECT_EQ(r.problems[0].message, "entry is a number, not an object");
    EXPECT_EQ(r.problems[1].where, "entry 1");
    EXPECT_EQ(r.problems[1].message, "resource is a string, not an object");
    EXPECT_EQ(r.records.size(), 1u);
}

TEST(NormalizeBadInput, EntryArrayOfTheWrongType) {
    // Run
    const result r = run(R"({"resourceType":"Bundle","type":"searchset","entry":{"resource":{}}})");
    // Check
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.problems.at(0).where, "document");
    EXPECT_EQ(r.problems[0].message, "Bundle.entry: expected an array, found an object");
}

TEST(NormalizeBadInput, ProblemsInSeveralEntriesAreAllReported) {
    // Setup
    const std::string json = bundle({R"({"resource":{"resourceType":"Condition"}})", good_patient,
                                     R"({"resource":{"resourceType":"Foo","id":"f"}})",
                                     R"({"resource":{"resourceType":"Observation","id":"o","status":7}})"});
    // Run
    const result r = run(json);
    // Check
    ASSERT_EQ(r.problems.size(), 3u) << problems_text(r);
    EXPECT_EQ(r.problems[0].where, "entry 0 (Condition)");
    EXPECT_EQ(r.problems[1].where, "entry 2 (Foo/f)");
    EXPECT_EQ(r.problems[2].where, "entry 3 (Observation/o)");
    EXPECT_EQ(r.problems[2].message, "status: expected a string, found a number 7");
}

TEST(NormalizeBadInput, ProblemsAreCappedAtFifty) {
    // Setup: 80 entries without an id.
    std::string json = R"({"resourceType":"Bundle","type":"searchset","entry":[)";
    for (int i = 0; i < 80; ++i)
        json += std::string(i ? "," : "") + R"({"resource":{"resourceType":"Condition"}})";
    json += "]}";
    // Run
    const result r = run(json);
    // Check
    ASSERT_EQ(r.problems.size(), 51u);
    EXPECT_EQ(r.problems[49].where, "entry 49 (Condition)");
    EXPECT_TRUE(starts_with(r.problems[50].message, "more than 50 problems")) << r.problems[50].message;
}

}  // namespace
}  // namespace headachemd::normalize::test
