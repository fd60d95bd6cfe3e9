// Bundles: entry handling, counts, urn:uuid resolution, raw bytes and hash.
#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

TEST(NormalizeBundle, SearchsetKeepsOrderAndCountsReadAndSkipped) {
    // Setup
    const std::string json =
        R"({"resourceType":"Bundle","type":"searchset","total":5,"link":[{"relation":"self","url":"x"}],
        "entry":[
          {"fullUrl":"https://ehr/fhir/Patient/p1","resource":{"resourceType":"Patient","id":"p1"},"search":{"mode":"match"}},
          {"fullUrl":"https://ehr/fhir/Practitioner/d1","resource":{"resourceType":"Practitioner","id":"d1","name":[{"family":"X"}]}},
          {"fullUrl":"https://ehr/fhir/Condition/c1","resource":{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"}}},
          {"fullUrl":"https://ehr/fhir/Practitioner/d2","resource":{"resourceType":"Practitioner","id":"d2"}},
          {"fullUrl":"https://ehr/fhir/Observation/o1","resource":{"resourceType":"Observation","id":"o1","status":"final","subject":{"reference":"Patient/p1"}}}]})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_TRUE(r.ok()) << problems_text(r);
    ASSERT_EQ(r.records.size(), 3u);
    EXPECT_STREQ(table_name(r.records[0]), "patient");
    EXPECT_STREQ(table_name(r.records[1]), "condition");
    EXPECT_STREQ(table_name(r.records[2]), "observation");
    EXPECT_EQ(r.read.at("Patient"), 1u);
    EXPECT_EQ(r.read.at("Practitioner"), 2u);
    EXPECT_EQ(r.read.at("Condition"), 1u);
    EXPECT_EQ(r.skipped.at("Practitioner"), 2u);
    EXPECT_EQ(r.skipped.count("Patient"), 0u);
    EXPECT_EQ(r.read.count("Bundle"), 0u);  // the top-level Bundle is the container, not a resource read
}

TEST(NormalizeBundle, TransactionUrnReferencesResolveToIds) {
    // Setup: the Patient comes after the resources that reference it.
    const std::string json = R"({"resourceType":"Bundle","type":"transaction","entry":[
        {"fullUrl":"urn:uuid:aaaaaaaa-0000-4000-8000-000000000001","resource":{"resourceType":"Condition","id":"c1",
            "subject":{"reference":"urn:uuid:bbbbbbbb-0000-4000-8000-000000000002"}},"request":{"method":"POST","url":"Condition"}},
        {"fullUrl":"urn:uuid:cccccccc-0000-4000-8000-000000000003","resource":{"resourceType":"Encounter","id":"e1",
            "subject":{"reference":"urn:uuid:bbbbbbbb-0000-4000-8000-000000000002"}},"request":{"method":"POST","url":"Encounter"}},
        {"fullUrl":"urn:uuid:bbbbbbbb-0000-4000-8000-000000000002","resource":{"resourceType":"Patient","id":"pat-1"},
            "request":{"method":"POST","url":"Patient"}}]})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_TRUE(r.ok()) << problems_text(r);
    ASSERT_EQ(r.records.size(), 3u);
    EXPECT_EQ(header_of(r.records[0]).patient_ref, "pat-1");
    EXPECT_EQ(header_of(r.records[1]).patient_ref, "pat-1");
    EXPECT_EQ(header_of(r.records[2]).patient_ref, "pat-1");
}

TEST(NormalizeBundle, TransactionEntryWithoutIdTakesItsUrnUuid) {
    // Setup: R4 transaction POSTs often carry no id; the fullUrl names them.
    const std::string json = R"({"resourceType":"Bundle","type":"transaction","entry":[
        {"fullUrl":"urn:uuid:11111111-2222-4333-8444-555555555555","resource":{"resourceType":"Patient"},
            "request":{"method":"POST","url":"Patient"}},
        {"fullUrl":"urn:uuid:66666666-2222-4333-8444-555555555555","resource":{"resourceType":"Observation","status":"final",
            "subject":{"reference":"urn:uuid:11111111-2222-4333-8444-555555555555"}},"request":{"method":"POST","url":"Observation"}}]})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_TRUE(r.ok()) << problems_text(r);
    ASSERT_EQ(r.records.size(), 2u);
    EXPECT_EQ(header_of(r.records[0]).id, "11111111-2222-4333-8444-555555555555");
    EXPECT_EQ(header_of(r.records[0]).patient_ref, "11111111-2222-4333-8444-555555555555");
    EXPECT_EQ(header_of(r.records[1]).id, "66666666-2222-4333-8444-555555555555");
    EXPECT_EQ(header_of(r.records[1]).patient_ref, "11111111-2222-4333-8444-555555555555");
}

TEST(NormalizeBundle, UnresolvableUrnKeepsTheUuid) {
    // Setup
    const std::string json = R"({"resourceType":"Bundle","type":"collection","entry":[
        {"fullUrl":"https://x/Condition/c1","resource":{"resourceType":"Condition","id":"c1",
            "subject":{"reference":"urn:uuid:deadbeef-0000-4000-8000-00000000abcd"}}}]})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_TRUE(r.ok()) << problems_text(r);
    EXPECT_EQ(header_of(r.records.at(0)).patient_ref, "deadbeef-0000-4000-8000-00000000abcd");
}

TEST(NormalizeBundle, UrnSubjectThatIsAGroupGivesNoPatient) {
    // Setup
    const std::string json = R"({"resourceType":"Bundle","type":"transaction","entry":[
        {"fullUrl":"urn:uuid:0000000a-0000-4000-8000-000000000000","resource":{"resourceType":"Group","id":"g",
            "type":"person","actual":true},"request":{"method":"POST","url":"Group"}},
        {"fullUrl":"urn:uuid:0000000b-0000-4000-8000-000000000000","resource":{"resourceType":"Observation","id":"o",
            "status":"final","subject":{"reference":"urn:uuid:0000000a-0000-4000-8000-000000000000"}},
            "request":{"method":"POST","url":"Observation"}}]})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_TRUE(r.ok()) << problems_text(r);
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_TRUE(header_of(r.records[0]).patient_ref.empty());
    EXPECT_EQ(r.skipped.at("Group"), 1u);
}

TEST(NormalizeBundle, AppointmentUrnParticipantsResolveToThePatient) {
    // Setup: a Practitioner participant first, then the patient, both urn.
    const std::string json = R"({"resourceType":"Bundle","type":"transaction","entry":[
        {"fullUrl":"urn:uuid:00000001-0000-4000-8000-000000000000","resource":{"resourceType":"Appointment","id":"ap",
            "status":"booked","participant":[
                {"actor":{"reference":"urn:uuid:00000002-0000-4000-8000-000000000000"}},
                {"actor":{"reference":"urn:uuid:00000003-0000-4000-8000-000000000000"}}]},
            "request":{"method":"POST","url":"Appointment"}},
        {"fullUrl":"urn:uuid:00000002-0000-4000-8000-000000000000","resource":{"resourceType":"Practitioner","id":"dr"},
            "request":{"method":"POST","url":"Practitioner"}},
        {"fullUrl":"urn:uuid:00000003-0000-4000-8000-000000000000","resource":{"resourceType":"Patient","id":"pt"},
            "request":{"method":"POST","url":"Patient"}}]})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_TRUE(r.ok()) << problems_text(r);
    const auto appts = records_of<appointment_record>(r);
    ASSERT_EQ(appts.size(), 1u);
    EXPECT_EQ(appts[0].h.patient_ref, "pt");
}

TEST(NormalizeBundle, NestedBundleIsASkippedBundleNotDescendedInto) {
    // Setup
    const std::string json = R"({"resourceType":"Bundle","type":"collection","entry":[
        {"resource":{"resourceType":"Bundle","id":"inner","type":"collection","entry":[
            {"resource":{"resourceType":"Patient","id":"hidden"}}]}}]})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_TRUE(r.ok()) << problems_text(r);
    EXPECT_TRUE(r.records.empty());
    EXPECT_EQ(r.read.at("Bundle"), 1u);
    EXPECT_EQ(r.skipped.at("Bundle"), 1u);
    EXPECT_EQ(r.read.count("Patient"), 0u);
}

TEST(NormalizeBundle, ResponseOnlyAndBodilessRequestEntriesAreSkippedSilently) {
    // Setup: R4 bdl-5 allows an entry without a resource when it has a
    // request or a response.
    const std::string response = R"({"resourceType":"Bundle","type":"batch-response","entry":[
        {"response":{"status":"201 Created","location":"Patient/1/_history/1"}},
        {"resource":{"resourceType":"Patient","id":"2"},"response":{"status":"200 OK"}}]})";
    const std::string transaction = R"({"resourceType":"Bundle","type":"transaction","entry":[
        {"request":{"method":"DELETE","url":"Patient/3"}},
        {"request":{"method":"GET","url":"Patient?name=x"}}]})";
    // Run
    const result a = run(response);
    const result b = run(transaction);
    // Check
    EXPECT_TRUE(a.ok()) << problems_text(a);
    EXPECT_EQ(a.records.size(), 1u);
    EXPECT_TRUE(b.ok()) << problems_text(b);
    EXPECT_TRUE(b.records.empty());
}

TEST(NormalizeBundle, RawHashIsSha256OfTheExactResourceBytes) {
    // Setup: pretty-printed, with whitespace after the resource's brace.
    const std::string resource =
        "{\n  \"resourceType\": \"Condition\",\n  \"id\": \"c9\",\n  \"note\": [{\"text\": \"é\"}]\n}";
    const std::string json =
        "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"resource\": " + resource +
        "  \n , \"fullUrl\": \"x\"}]}";
    // Run
    const result r = run(json, options{.keep_raw = true});
    // Check
    ASSERT_TRUE(r.ok()) << problems_text(r);
    const header& h = header_of(r.records.at(0));
    EXPECT_EQ(h.raw, resource);
    EXPECT_EQ(h.raw_hash, sha256(resource));
    EXPECT_EQ(h.raw_hash.size(), 64u);
}

TEST(NormalizeBundle, KeepRawOffLeavesRawEmptyButHashes) {
    // Setup
    const std::string resource = R"({"resourceType":"Patient","id":"p"})";
    const std::string json =
        R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":)" + resource + "}]}";
    // Run
    const result off = run(json);
    const result on = run(json, options{.keep_raw = true});
    // Check
    EXPECT_TRUE(header_of(off.records.at(0)).raw.empty());
    EXPECT_EQ(header_of(on.records.at(0)).raw, resource);
    EXPECT_EQ(header_of(off.records.at(0)).raw_hash, header_of(on.records.at(0)).raw_hash);
}

TEST(NormalizeBundle, RawForTypesKeepsOnlyThoseTypes) {
    // Setup: the materialized views need the JSON of the types they read only
    const std::string patient = R"({"resourceType":"Patient","id":"p"})";
    const std::string condition =
        R"({"resourceType":"Condition","id":"c","subject":{"reference":"Patient/p"}})";
    const std::string json = R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":)" +
                             patient + R"(},{"resource":)" + condition + "}]}";
    // Run
    const result r = run(json, options{.raw_for_types = {"Condition"}});
    // Check
    ASSERT_EQ(r.records.size(), 2u);
    EXPECT_TRUE(header_of(r.records.at(0)).raw.empty());
    EXPECT_EQ(header_of(r.records.at(1)).raw, condition);
}

TEST(NormalizeBundle, SingleResourceHashCoversTheDocumentWithoutSurroundingWhitespace) {
    // Setup
    const std::string resource = R"({"resourceType":"Patient","id":"solo","gender":"male"})";
    // Run
    const result r = run("\n  " + resource + "\n\n", options{.keep_raw = true});
    // Check
    const auto rec = only<patient_record>(r);
    EXPECT_EQ(rec.h.raw, resource);
    EXPECT_EQ(rec.h.raw_hash, sha256(resource));
}

TEST(NormalizeBundle, KnownSha256Vector) {
    // Setup: the hash of this exact 35-byte resource, computed with
    // `printf '%s' '{"resourceType":"Patient","id":"x"}' | sha256sum`.
    const std::string resource = R"({"resourceType":"Patient","id":"x"})";
    // Run
    const auto rec = only<patient_record>(run(resource));
    // Check
    EXPECT_EQ(rec.h.raw_hash, "9c4bb5e28fd31221e951ec458ea8eceb80d7716b7293042cb94a159609877745");
}

TEST(NormalizeBundle, ByteOrderMarkIsIgnored) {
    // Setup
    const std::string json =
        "\xEF\xBB\xBF"
        R"({"resourceType":"Patient","id":"bom"})";
    // Run
    const auto rec = only<patient_record>(run(json));
    // Check
    EXPECT_EQ(rec.h.id, "bom");
}

TEST(NormalizeBundle, SingleResourceOfASkippedTypeIsCountedOnly) {
    // Setup
    const std::string json = R"({"resourceType":"Practitioner","id":"d1","name":[{"family":"X"}]})";
    // Run
    const result r = run(json);
    // Check
    EXPECT_TRUE(r.ok()) << problems_text(r);
    EXPECT_TRUE(r.records.empty());
    EXPECT_EQ(r.read.at("Practitioner"), 1u);
    EXPECT_EQ(r.skipped.at("Practitioner"), 1u);
}

TEST(NormalizeBundle, BundleTypeAfterTheEntriesStillApplies) {
    // Setup: JSON object order is not significant; "type" may come last.
    const std::string json = R"({"resourceType":"Bundle","entry":[
        {"fullUrl":"urn:uuid:12121212-0000-4000-8000-000000000000","resource":{"resourceType":"Patient"},
         "request":{"method":"POST","url":"Patient"}}],"type":"transaction"})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_TRUE(r.ok()) << problems_text(r);
    EXPECT_EQ(header_of(r.records.at(0)).id, "12121212-0000-4000-8000-000000000000");
}

TEST(NormalizeBundle, FullUrlsDoNotCarryOverToTheNextDocument) {
    // Setup: one normalizer, two documents; the second names a uuid that
    // only the first defined.
    normalizer n;
    const simdjson::padded_string first(
        std::string_view(R"({"resourceType":"Bundle","type":"transaction","entry":[
        {"fullUrl":"urn:uuid:34343434-0000-4000-8000-000000000000","resource":{"resourceType":"Group","id":"g"},
         "request":{"method":"POST","url":"Group"}}]})"));
    const simdjson::padded_string second(
        std::string_view(R"({"resourceType":"Bundle","type":"collection","entry":[
        {"resource":{"resourceType":"Condition","id":"c","subject":{"reference":"urn:uuid:34343434-0000-4000-8000-000000000000"}}}]})"));
    // Run
    const result a = n.normalize_document(first);
    const result b = n.normalize_document(second);
    // Check: in the second document the uuid is unknown, so it stands.
    EXPECT_TRUE(a.ok()) << problems_text(a);
    ASSERT_TRUE(b.ok()) << problems_text(b);
    EXPECT_EQ(header_of(b.records.at(0)).patient_ref, "34343434-0000-4000-8000-000000000000");
}

TEST(NormalizeBundle, EmptyBundleIsFine) {
    // Setup
    const std::string json = R"({"resourceType":"Bundle","type":"searchset","total":0})";
    // Run
    const result r = run(json);
    // Check
    EXPECT_TRUE(r.ok()) << problems_text(r);
    EXPECT_TRUE(r.records.empty());
}

}  // namespace
}  // namespace headachemd::normalize::test
