// The synthetic data: deterministic from the seed, shaped like a headache
// clinic's records, and changed by the controls between passes.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <numeric>
#include <set>

#include "sandbox_client.hpp"

namespace sbx = headachemd::sandbox;
using sbx::test::reply;
using sbx::test::running_sandbox;
using namespace std::chrono_literals;

namespace {

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
        s.replace(p, from.size(), to);
    return s;
}

// Every page of every type for one patient, with the origin blanked out so
// that two sandboxes (two ports) can be compared byte for byte.
std::string everything(running_sandbox& s, const std::string& patient) {
    auto c = s.make_client();
    const std::string token = sbx::test::access_token_for(s, *c, patient);
    std::string all;
    for (const std::string type : {"Patient", "Condition", "MedicationRequest", "Encounter", "Observation",
                                   "Procedure", "Appointment"}) {
        const std::string param = type == "Patient" ? "_id" : "patient";
        const auto w =
            sbx::test::walk(*c, "/fhir/" + type + "?" + param + "=" + patient + "&_count=9", token);
        for (const auto& b : w.bodies) all += replace_all(b, s.srv().base_url(), "ORIGIN") + "\n";
    }
    return all;
}

std::vector<boost::json::value> resources(running_sandbox& s, sbx::test::client& c, const std::string& token,
                                          const std::string& type, const std::string& patient) {
    std::vector<boost::json::value> out;
    for (const auto& body :
         sbx::test::walk(c, "/fhir/" + type + "?patient=" + patient + "&_count=100", token).bodies) {
        const auto b = boost::json::parse(body);
        if (const auto* e = b.as_object().if_contains("entry"))
            for (const auto& entry : e->as_array()) out.push_back(entry.at("resource"));
    }
    (void)s;
    return out;
}

std::set<std::string> codes(const boost::json::value& concept_value) {
    std::set<std::string> out;
    if (const auto* coding = concept_value.as_object().if_contains("coding"))
        for (const auto& c : coding->as_array()) out.emplace(c.at("code").as_string());
    return out;
}

}  // namespace

TEST(SandboxData, SameSeedSameBytesOtherSeedOtherBytes) {
    sbx::options o;
    o.seed = 42;
    o.patients = 3;
    running_sandbox a(o);
    running_sandbox b(o);
    o.seed = 43;
    running_sandbox other(o);
    ASSERT_EQ(a.srv().patient_ids(), b.srv().patient_ids());
    const std::string bytes_a = everything(a, a.srv().patient_ids()[1]);
    EXPECT_EQ(bytes_a, everything(b, b.srv().patient_ids()[1]));
    EXPECT_NE(a.srv().patient_ids(), other.srv().patient_ids());
    EXPECT_NE(bytes_a, everything(other, other.srv().patient_ids()[1]));
    EXPECT_GT(bytes_a.size(), 10000u);
}

TEST(SandboxData, TwentyFivePatientsByDefaultWithEveryType) {
    running_sandbox s;
    const auto ids = s.srv().patient_ids();
    ASSERT_EQ(ids.size(), 25u);
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 25u);
    const auto counts = s.srv().count_by_type();
    EXPECT_EQ(counts.at("Patient"), 25u);
    for (const std::string type :
         {"Condition", "MedicationRequest", "Encounter", "Observation", "Appointment"}) {
        std::size_t sum = 0;
        for (const auto& id : ids) {
            const std::size_t n = s.srv().count_for(id, type);
            EXPECT_GE(n, 1u) << type << " " << id;
            sum += n;
        }
        EXPECT_EQ(counts.at(type), sum) << type;
    }
    for (const auto& id : ids) {
        EXPECT_LE(s.srv().count_for(id, "Condition"), 4u);
        EXPECT_GE(s.srv().count_for(id, "MedicationRequest"), 5u);
    }
    EXPECT_GT(counts.at("Procedure"), 0u);
}

TEST(SandboxData, RecordsCarryTheHeadacheCodesTheClassifierExpects) {
    sbx::options o;
    o.patients = 40;
    running_sandbox s(o);
    auto c = s.make_client();
    std::set<std::string> dx, drugs, drug_texts, obs_codes, obs_texts, procs;
    bool as_needed_seen = false;
    for (const auto& id : s.srv().patient_ids()) {
        const std::string token = sbx::test::access_token_for(s, *c, id);
        for (const auto& r : resources(s, *c, token, "Condition", id))
            for (const auto& code : codes(r.at("code"))) dx.insert(code);
        for (const auto& r : resources(s, *c, token, "MedicationRequest", id)) {
            const auto& med = r.at("medicationCodeableConcept");
            for (const auto& code : codes(med)) drugs.insert(code);
            drug_texts.emplace(med.at("text").as_string());
            const auto& dose = r.at("dosageInstruction").as_array().at(0);
            as_needed_seen = as_needed_seen || dose.at("asNeededBoolean").as_bool();
            const auto& dispense = r.at("dispenseRequest");
            EXPECT_EQ(dispense.at("expectedSupplyDuration").at("code").as_string(), "d");
            EXPECT_GT(dispense.at("quantity").at("value").as_int64(), 0);
            EXPECT_FALSE(r.at("authoredOn").as_string().empty());
        }
        for (const auto& r : resources(s, *c, token, "Observation", id)) {
            for (const auto& code : codes(r.at("code"))) obs_codes.insert(code);
            const std::string text(r.at("code").at("text").as_string());
            obs_texts.insert(text);
            if (text == "HIT-6 total score") {
                const auto v = r.at("valueInteger").as_int64();
                EXPECT_GE(v, 36);
                EXPECT_LE(v, 78);
            }
            if (text == "Pain severity 0-10") {
                const auto v = r.at("valueQuantity").at("value").as_int64();
                EXPECT_GE(v, 0);
                EXPECT_LE(v, 10);
            }
        }
        for (const auto& r : resources(s, *c, token, "Procedure", id))
            for (const auto& code : codes(r.at("code"))) procs.insert(code);
        for (const auto& r : resources(s, *c, token, "Encounter", id))
            EXPECT_EQ(r.at("class").at("code").as_string(), "AMB");
    }
    for (const char* code :
         {"56097005", "G43.009", "G43.709", "124171000119105", "G44.209", "G44.009", "I10"})
        EXPECT_TRUE(dx.count(code)) << code;
    for (const char* code : {"313088", "5640", "38404"}) EXPECT_TRUE(drugs.count(code)) << code;
    EXPECT_TRUE(drug_texts.count("ibuprofen 600 MG Oral Tablet") ||
                drug_texts.count("naproxen 500 MG Oral Tablet"));
    EXPECT_TRUE(drug_texts.count("topiramate 25 MG Oral Tablet"));
    EXPECT_TRUE(as_needed_seen);
    EXPECT_TRUE(obs_codes.count("72514-3"));
    EXPECT_TRUE(obs_codes.count("44261-6"));
    EXPECT_TRUE(obs_texts.count("MIDAS total score"));
    EXPECT_TRUE(obs_texts.count("HIT-6 total score"));
    EXPECT_TRUE(procs.count("64615"));
}

TEST(SandboxData, PatientNamesAreObviouslySynthetic) {
    running_sandbox s;
    auto c = s.make_client();
    const auto id = s.srv().patient_ids()[6];
    const reply r = c->get("/fhir/Patient/" + id, sbx::test::access_token_for(s, *c, id));
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.json().at("name").as_array().at(0).at("text").as_string(), "Test Patient 0007");
}

TEST(SandboxData, UpdateDeleteAndAddShowInSearches) {
    // Setup
    running_sandbox s;
    auto c = s.make_client();
    const auto id = s.srv().patient_ids()[2];
    const std::string token = sbx::test::access_token_for(s, *c, id);
    const auto meds = s.srv().ids_of("MedicationRequest", id);
    const auto before_total = s.srv().count_by_type().at("MedicationRequest");
    const reply before = c->get("/fhir/MedicationRequest/" + meds[0], token);
    ASSERT_EQ(before.status, 200) << before.error << before.body;
    // Run
    s.srv().update_resource("MedicationRequest", meds[0]);
    s.srv().delete_resource("MedicationRequest", meds[1]);
    const std::string added = s.srv().add_resource("MedicationRequest", id);
    // Check
    const reply after = c->get("/fhir/MedicationRequest/" + meds[0], token);
    ASSERT_EQ(after.status, 200) << after.error << after.body;
    EXPECT_EQ(after.json().at("meta").at("versionId").as_string(), "2");
    EXPECT_EQ(after.json().at("meta").at("lastUpdated").as_string(), "2024-07-01T00:00:10.000Z");
    EXPECT_NE(after.json().at("status"), before.json().at("status"));
    const auto w = sbx::test::walk(*c, "/fhir/MedicationRequest?patient=" + id, token);
    std::vector<std::string> expected = meds;
    expected.erase(expected.begin() + 1);
    expected.push_back(added);
    EXPECT_EQ(w.ids, expected);
    EXPECT_EQ(s.srv().count_by_type().at("MedicationRequest"), before_total);
    EXPECT_THROW(s.srv().update_resource("MedicationRequest", meds[1]), std::invalid_argument);
    EXPECT_THROW(s.srv().add_resource("Widget", id), std::invalid_argument);
    EXPECT_THROW((void)s.srv().count_for("nobody", "Condition"), std::invalid_argument);
}

TEST(SandboxData, GeneratedHistoryIsOlderThanTheAnchor) {
    sbx::options o;
    o.patients = 5;
    running_sandbox s(o);
    auto c = s.make_client();
    for (const auto& id : s.srv().patient_ids()) {
        const std::string token = sbx::test::access_token_for(s, *c, id);
        const auto w = sbx::test::walk(
            *c, "/fhir/Observation?patient=" + id + "&_lastUpdated=gt2024-06-01T00:00:00Z", token);
        EXPECT_TRUE(w.ids.empty()) << id;
    }
}

namespace {

std::string med_text(const boost::json::value& r) {
    return std::string(r.at("medicationCodeableConcept").at("text").as_string());
}
std::int64_t med_quantity(const boost::json::value& r) {
    return r.at("dispenseRequest").at("quantity").at("value").as_int64();
}
std::vector<std::int64_t> scores_of(const std::vector<boost::json::value>& obs, const std::string& text) {
    std::vector<std::int64_t> out;
    for (const auto& o : obs)
        if (o.at("code").at("text").as_string() == text) out.push_back(o.at("valueInteger").as_int64());
    return out;
}

}  // namespace

// The first patients are the demo's clinical cases (data.cpp
// clinical_cases()): each side of each analytic rule, written the way a
// clinic writes it.
TEST(SandboxData, DemoCasesPrescribeTheWayClinicsDo) {
    // Setup
    sbx::options o;
    o.patients = 10;
    running_sandbox s(o);
    auto c = s.make_client();
    const auto ids = s.srv().patient_ids();
    const auto get = [&](std::size_t k, const std::string& type) {
        return resources(s, *c, sbx::test::access_token_for(s, *c, ids[k]), type, ids[k]);
    };
    // Check: demo-001 takes one box of sumatriptan (9 tablets, at most 2 a day)
    // a month, then 3 boxes a month for the last 10 months; topiramate is one
    // order of 30 days with 5 refills; MIDAS and HIT-6 fall after it starts.
    {
        std::vector<std::int64_t> triptan_boxes;
        int topiramate = 0;
        for (const auto& r : get(0, "MedicationRequest")) {
            if (med_text(r).rfind("sumatriptan", 0) == 0) {
                triptan_boxes.push_back(med_quantity(r));
                const auto& dose = r.at("dosageInstruction").as_array().at(0);
                EXPECT_TRUE(dose.at("asNeededBoolean").as_bool());
                EXPECT_EQ(dose.at("maxDosePerPeriod").at("numerator").at("value").as_int64(), 2);
                EXPECT_EQ(dose.at("maxDosePerPeriod").at("denominator").at("code").as_string(), "d");
            }
            if (med_text(r).rfind("topiramate", 0) == 0) {
                ++topiramate;
                EXPECT_EQ(r.at("dispenseRequest").at("numberOfRepeatsAllowed").as_int64(), 5);
                EXPECT_EQ(r.at("dispenseRequest").at("expectedSupplyDuration").at("value").as_int64(), 30);
            }
        }
        std::vector<std::int64_t> want(8, 9);
        want.insert(want.end(), 10, 27);
        EXPECT_EQ(triptan_boxes, want);
        EXPECT_EQ(topiramate, 2);
        const auto obs = get(0, "Observation");
        EXPECT_EQ(scores_of(obs, "MIDAS total score"), (std::vector<std::int64_t>{42, 42, 42, 42, 31, 24}));
        EXPECT_EQ(scores_of(obs, "HIT-6 total score"), (std::vector<std::int64_t>{67, 67, 67, 67, 64, 62}));
    }
    // demo-002: migraine with aura and a combined (estrogen) oral contraceptive.
    {
        std::set<std::string> dx, texts;
        for (const auto& r : get(1, "Condition"))
            for (const auto& code : codes(r.at("code"))) dx.insert(code);
        for (const auto& r : get(1, "MedicationRequest")) texts.insert(med_text(r));
        EXPECT_TRUE(dx.count("4473006") || dx.count("G43.109"));
        EXPECT_TRUE(texts.count("levonorgestrel 0.15 MG / ethinyl estradiol 0.03 MG Oral Tablet"));
    }
    // demo-003: tension-type headache only; ibuprofen 90 tablets a month at the end.
    {
        const auto conds = get(2, "Condition");
        ASSERT_EQ(conds.size(), 1u);
        EXPECT_EQ(conds[0].at("code").at("text").as_string(), "Tension-type headache");
        int big = 0;
        for (const auto& r : get(2, "MedicationRequest"))
            if (med_text(r).rfind("ibuprofen", 0) == 0 && med_quantity(r) == 90) ++big;
        EXPECT_EQ(big, 8);
    }
    // demo-004 died on 2024-02-02: nothing after it, no booked appointment,
    // and her last orders still say "active".
    {
        const auto p = c->get("/fhir/Patient/" + ids[3], sbx::test::access_token_for(s, *c, ids[3]));
        ASSERT_EQ(p.status, 200);
        EXPECT_EQ(p.json().at("deceasedDateTime").as_string(), "2024-02-02T04:00:00Z");
        int active = 0;
        for (const auto& r : get(3, "MedicationRequest")) {
            EXPECT_LT(std::string(r.at("authoredOn").as_string()), "2024-02-02");
            active += r.at("status").as_string() == "active" ? 1 : 0;
        }
        EXPECT_EQ(active, 3);
        for (const auto& r : get(3, "Appointment")) EXPECT_NE(r.at("status").as_string(), "booked");
    }
    // demo-005: timolol eye drops (ophthalmic route) and bladder botulinum
    // toxin (CPT 52287), neither a migraine treatment.
    {
        bool eye = false;
        for (const auto& r : get(4, "MedicationRequest"))
            if (med_text(r).rfind("timolol", 0) == 0)
                eye = codes(r.at("dosageInstruction").as_array().at(0).at("route")).count("54485002") == 1;
        EXPECT_TRUE(eye);
        std::vector<std::string> procs;
        for (const auto& r : get(4, "Procedure"))
            for (const auto& code : codes(r.at("code"))) procs.push_back(code);
        EXPECT_EQ(procs, (std::vector<std::string>{"52287", "52287"}));
    }
    // demo-006 and demo-007: 5 months of 30 oxycodone/acetaminophen, then of
    // 30 butalbital/acetaminophen/caffeine tablets, as needed every 6 and 4 hours.
    {
        int oxy = 0, codeine = 0, butalbital = 0;
        for (const auto& r : get(5, "MedicationRequest")) {
            oxy += med_text(r).rfind("oxycodone", 0) == 0 && med_quantity(r) == 30 ? 1 : 0;
            codeine += med_text(r).rfind("acetaminophen 300 MG / codeine", 0) == 0 ? 1 : 0;
        }
        for (const auto& r : get(6, "MedicationRequest")) {
            if (med_text(r).rfind("butalbital", 0) != 0) continue;
            ++butalbital;
            EXPECT_EQ(med_quantity(r), 30);
            const auto& dose = r.at("dosageInstruction").as_array().at(0);
            EXPECT_EQ(dose.at("timing").at("repeat").at("period").as_int64(), 4);
            EXPECT_EQ(dose.at("timing").at("repeat").at("periodUnit").as_string(), "h");
            EXPECT_EQ(dose.as_object().if_contains("maxDosePerPeriod"), nullptr);
            EXPECT_TRUE(codes(dose.at("route")).count("26643006"));
        }
        EXPECT_EQ(oxy, 5);
        EXPECT_EQ(codeine, 1);
        EXPECT_EQ(butalbital, 5);
    }
}

TEST(SandboxData, TriptansComeByTheBoxAndPreventivesWithRefills) {
    // Setup: the demo cases and 30 patients drawn from the seed.
    sbx::options o;
    o.patients = 40;
    running_sandbox s(o);
    auto c = s.make_client();
    std::set<std::int64_t> triptan_quantities;
    std::set<int> prn_writings;  // 0 with a daily maximum, 1 timing only, 2 supply only
    int preventive_orders = 0;
    for (const auto& id : s.srv().patient_ids()) {
        for (const auto& r :
             resources(s, *c, sbx::test::access_token_for(s, *c, id), "MedicationRequest", id)) {
            const std::string text = med_text(r);
            const auto& dose = r.at("dosageInstruction").as_array().at(0).as_object();
            if (text.find("triptan ") != std::string::npos) {
                triptan_quantities.insert(med_quantity(r));
                prn_writings.insert(dose.if_contains("maxDosePerPeriod") ? 0
                                    : dose.if_contains("timing")         ? 1
                                                                         : 2);
            }
            for (const char* p : {"topiramate", "propranolol", "amitriptyline", "divalproex"}) {
                if (text.rfind(p, 0) != 0) continue;
                ++preventive_orders;
                EXPECT_GE(r.at("dispenseRequest").at("numberOfRepeatsAllowed").as_int64(), 1) << text;
            }
        }
    }
    // Check
    EXPECT_EQ(triptan_quantities, (std::set<std::int64_t>{9, 27}));
    EXPECT_EQ(prn_writings, (std::set<int>{0, 1, 2}));
    EXPECT_GT(preventive_orders, 10);
}
