// The privacy rule of compile() (issue 16 item 4): under [privacy]
// identifiers = "none" (and "minimal"), every element that identifies a
// patient is refused wherever the definition reaches it, with the JSON path
// and offset of the offending node; the key functions give the patient_key.
// Each refusal case is also compiled with privacy::off and must pass there,
// so a case cannot pass by being malformed.
#include <gtest/gtest.h>

#include <simdjson.h>

#include <optional>
#include <string>
#include <vector>

#include "headachemd/views/view.hpp"

namespace {

namespace v = headachemd::views;

std::string column_view(const std::string& resource, const std::string& path) {
    return R"({"resource":")" + resource + R"(","select":[{"column":[{"name":"c","path":")" + path +
           R"("}]}]})";
}

std::optional<v::compile_error> refusal(const std::string& json, v::privacy rule) {
    auto r = v::compile(json, v::compile_options{rule});
    if (auto* e = std::get_if<v::compile_error>(&r)) return *e;
    return std::nullopt;
}

struct refused_case {
    const char* label;
    std::string definition;
    const char* json_path;
    std::size_t offset;
    v::privacy rule = v::privacy::none;
};

std::ostream& operator<<(std::ostream& os, const refused_case& c) { return os << c.label; }

class privacy_refusal : public ::testing::TestWithParam<refused_case> {};

TEST_P(privacy_refusal, names_the_path_and_offset) {
    const auto& c = GetParam();
    // The definition is valid: only the privacy rule refuses it.
    ASSERT_FALSE(refusal(c.definition, v::privacy::off).has_value()) << c.definition;
    auto e = refusal(c.definition, c.rule);
    ASSERT_TRUE(e.has_value()) << "compiled: " << c.definition;
    EXPECT_EQ(e->json_path, c.json_path) << e->message;
    EXPECT_EQ(e->expr_offset, std::optional<std::size_t>(c.offset)) << e->message;
    EXPECT_NE(e->message.find("[privacy] identifiers"), std::string::npos) << e->message;
}

const std::string col = "select[0].column[0].path";
const char* const us_core_race = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race";

// Each forbidden Patient element, and each way around the rule we thought of.
INSTANTIATE_TEST_SUITE_P(
    views, privacy_refusal,
    ::testing::Values(
        // The forbidden Patient elements.
        refused_case{"patient_name", column_view("Patient", "name.family"), col.c_str(), 0},
        refused_case{"patient_address", column_view("Patient", "address.city"), col.c_str(), 0},
        refused_case{"patient_telecom", column_view("Patient", "telecom.value"), col.c_str(), 0},
        refused_case{"patient_identifier", column_view("Patient", "identifier.value"), col.c_str(), 0},
        refused_case{"patient_photo", column_view("Patient", "photo.url"), col.c_str(), 0},
        refused_case{"patient_contact", column_view("Patient", "contact.name.family"), col.c_str(), 0},
        refused_case{"patient_birth_date", column_view("Patient", "birthDate"), col.c_str(), 0},
        // A year cut from birthDate cannot be proved safe by the walk: refused.
        refused_case{"patient_birth_year", column_view("Patient", "birthDate.substring(0, 4)"), col.c_str(),
                     0},
        refused_case{"patient_fhir_id", column_view("Patient", "id"), col.c_str(), 0},
        refused_case{"patient_primitive_extension", column_view("Patient", "_birthDate.extension.url"),
                     col.c_str(), 0},
        refused_case{"patient_extension_function",
                     column_view("Patient",
                                 "extension('http://hl7.org/fhir/StructureDefinition/"
                                 "patient-mothersMaidenName').value.ofType(string)"),
                     col.c_str(), 0},
        refused_case{"patient_extension_member", column_view("Patient", "extension.value.ofType(string)"),
                     col.c_str(), 0},
        // Extensions other than the US Core race, ethnicity and birth sex
        // ones, however they are selected; and anything but codes and text
        // inside those.
        refused_case{"patient_extension_birth_place",
                     column_view("Patient",
                                 "extension('http://hl7.org/fhir/StructureDefinition/"
                                 "patient-birthPlace').value.ofType(Address).city"),
                     col.c_str(), 0},
        refused_case{"patient_extension_geolocation",
                     column_view("Patient",
                                 "extension('http://hl7.org/fhir/StructureDefinition/geolocation')"
                                 ".extension('latitude').value.ofType(decimal)"),
                     col.c_str(), 0},
        refused_case{"patient_extension_unknown_url",
                     column_view("Patient", "extension('http://example.org/ext').value.ofType(string)"),
                     col.c_str(), 0},
        refused_case{"patient_extension_where_maiden_name",
                     column_view("Patient",
                                 "extension.where(url = 'http://hl7.org/fhir/StructureDefinition/"
                                 "patient-mothersMaidenName').value.ofType(string)"),
                     col.c_str(), 0},
        refused_case{"patient_extension_where_not_equal",
                     column_view("Patient", std::string("extension.where(url != '") + us_core_race +
                                                "').value.ofType(string)"),
                     col.c_str(), 0},
        refused_case{"patient_extension_where_or",
                     column_view("Patient", std::string("extension.where(url = '") + us_core_race +
                                                "' or url = 'x').value.ofType(string)"),
                     col.c_str(), 0},
        refused_case{"patient_extension_url_not_a_literal",
                     column_view("Patient", "extension(%resource.gender).value.ofType(string)"), col.c_str(),
                     0},
        refused_case{"us_core_race_human_name",
                     column_view("Patient", std::string("extension('") + us_core_race +
                                                "').extension.value.ofType(HumanName).family"),
                     col.c_str(), 97},
        refused_case{"us_core_race_address",
                     column_view("Patient", std::string("extension('") + us_core_race +
                                                "').extension.valueAddress.city"),
                     col.c_str(), 84},
        refused_case{"us_core_extension_below_an_element",
                     column_view("Patient", std::string("gender.extension('") + us_core_race + "').url"),
                     col.c_str(), 7},
        refused_case{"us_core_extension_marker_spelled",
                     column_view("Patient", std::string("`extension(") + us_core_race + ")`.url"),
                     col.c_str(), 0},
        refused_case{"minimal_patient_extension_birth_place",
                     column_view("Patient",
                                 "extension('http://hl7.org/fhir/StructureDefinition/"
                                 "patient-birthPlace').value.ofType(Address).city"),
                     col.c_str(), 0, v::privacy::minimal},
        // Evasions.
        refused_case{"type_prefix", column_view("Patient", "Patient.name.given"), col.c_str(), 8},
        refused_case{"resource_variable", column_view("Patient", "%resource.name.family"), col.c_str(), 10},
        refused_case{"root_resource_variable", column_view("Patient", "%rootResource.telecom.value"),
                     col.c_str(), 14},
        refused_case{"indexer", column_view("Patient", "name[0].family"), col.c_str(), 0},
        refused_case{"indexer_expression", column_view("Patient", "gender[name.count()]"), col.c_str(), 7},
        refused_case{"inside_where_criteria", column_view("Patient", "gender.where(%resource.name.exists())"),
                     col.c_str(), 23},
        refused_case{"where_on_root", column_view("Patient", "where(name.family = 'Smith').gender"),
                     col.c_str(), 6},
        refused_case{"exists_criteria", column_view("Patient", "exists(address.city = 'Oslo')"), col.c_str(),
                     7},
        refused_case{"union", column_view("Patient", "gender | name.family"), col.c_str(), 9},
        refused_case{"comparison", column_view("Patient", "birthDate > @1980-01-01"), col.c_str(), 0},
        refused_case{"join_separator", column_view("Patient", "gender.join(name.family.first())"),
                     col.c_str(), 12},
        refused_case{"of_type_choice", column_view("Patient", "deceased.ofType(dateTime)"), col.c_str(), 16},
        refused_case{"of_type_contained", column_view("Patient", "contained.ofType(Patient).name"),
                     col.c_str(), 0},
        refused_case{"unknown_function_descendants", column_view("Patient", "descendants().family"),
                     col.c_str(), 0},
        refused_case{"unknown_function_children", column_view("Patient", "children().value"), col.c_str(), 0},
        refused_case{"unknown_function_repeat", column_view("Patient", "repeat(link).other"), col.c_str(), 0},
        refused_case{"navigating_below_an_allowed_leaf", column_view("Patient", "gender.extension.url"),
                     col.c_str(), 7},
        refused_case{"view_where",
                     R"({"resource":"Patient","where":[{"path":"name.family = 'Smith'"}],)"
                     R"("select":[{"column":[{"name":"g","path":"gender"}]}]})",
                     "where[0].path", 0},
        refused_case{
            "for_each_then_this",
            R"({"resource":"Patient","select":[{"forEach":"name","column":[{"name":"f","path":"family"}]}]})",
            "select[0].forEach", 0},
        refused_case{"for_each_or_null_nested",
                     R"({"resource":"Patient","select":[{"select":[{"forEachOrNull":"%resource.address",)"
                     R"("column":[{"name":"c","path":"city"}]}]}]})",
                     "select[0].select[0].forEachOrNull", 10},
        refused_case{"repeat",
                     R"({"resource":"Patient","select":[{"repeat":["contact"],)"
                     R"("column":[{"name":"c","path":"gender"}]}]})",
                     "select[0].repeat[0]", 0},
        refused_case{
            "union_all_branch",
            R"({"resource":"Patient","select":[{"unionAll":[{"column":[{"name":"v","path":"gender"}]},)"
            R"({"column":[{"name":"v","path":"telecom.value"}]}]}]})",
            "select[0].unionAll[1].column[0].path", 0},
        refused_case{"key_inside_where_under_none",
                     column_view("Patient", "gender.where(%resource.getResourceKey() = 'Patient/1')"),
                     col.c_str(), 23},
        refused_case{"key_in_for_each_under_none",
                     R"j({"resource":"Observation","select":[{"forEach":"subject.getReferenceKey(Patient)",)j"
                     R"("column":[{"name":"k","path":"$this"}]}]})",
                     "select[0].forEach", 8},
        refused_case{"key_concatenated_under_none", column_view("Patient", "getResourceKey() & ''"),
                     col.c_str(), 0},
        // RelatedPerson and Person identify the patient's relatives and the
        // patient: the same elements are refused.
        refused_case{"related_person_name", column_view("RelatedPerson", "name.family"), col.c_str(), 0},
        refused_case{"related_person_patient_reference", column_view("RelatedPerson", "patient.reference"),
                     col.c_str(), 8},
        refused_case{"person_telecom", column_view("Person", "telecom.value"), col.c_str(), 0},
        refused_case{"person_birth_date", column_view("Person", "birthDate"), col.c_str(), 0},
        // Other resources: where a patient's identity is written.
        refused_case{"observation_subject_reference", column_view("Observation", "subject.reference"),
                     col.c_str(), 8},
        refused_case{"observation_subject_display", column_view("Observation", "subject.display"),
                     col.c_str(), 8},
        refused_case{"observation_contained_patient", column_view("Observation", "contained.name.family"),
                     col.c_str(), 0},
        refused_case{"observation_contained_by_type", column_view("Observation", "Patient.name.family"),
                     col.c_str(), 0},
        refused_case{"observation_narrative", column_view("Observation", "text.div"), col.c_str(), 0},
        refused_case{"observation_subject_identifier", column_view("Observation", "subject.identifier.value"),
                     col.c_str(), 8},
        refused_case{"observation_note", column_view("Observation", "note.text"), col.c_str(), 0},
        refused_case{"document_attachment", column_view("DocumentReference", "content.attachment.data"),
                     col.c_str(), 8},
        refused_case{"coverage_member_number", column_view("Coverage", "subscriberId"), col.c_str(), 0},
        refused_case{"encounter_display_via_for_each",
                     R"({"resource":"Encounter","select":[{"forEach":"participant.individual",)"
                     R"("column":[{"name":"d","path":"display"}]}]})",
                     "select[0].column[0].path", 0},
        refused_case{"extension_human_name",
                     column_view("Observation", "extension('http://x').value.ofType(HumanName).family"),
                     col.c_str(), 35},
        refused_case{"extension_address_choice", column_view("Encounter", "extension.valueAddress.city"),
                     col.c_str(), 10},
        refused_case{"this_is_the_whole_resource", column_view("Patient", "$this"), col.c_str(), 0},
        refused_case{"resource_variable_whole", column_view("Observation", "%resource"), col.c_str(), 0},
        refused_case{"where_first_whole", column_view("Observation", "where(status = 'final').first()"),
                     col.c_str(), 24},
        // minimal allows the FHIR id but still no names.
        refused_case{"minimal_patient_name", column_view("Patient", "name.family"), col.c_str(), 0,
                     v::privacy::minimal},
        refused_case{"minimal_subject_display", column_view("Observation", "subject.display"), col.c_str(), 8,
                     v::privacy::minimal}),
    [](const auto& param_info) { return std::string(param_info.param.label); });

v::view compiled(const std::string& json, v::privacy rule) {
    auto r = v::compile(json, v::compile_options{rule});
    if (auto* e = std::get_if<v::compile_error>(&r)) {
        ADD_FAILURE() << "refused at " << e->json_path << ": " << e->message;
        return {};
    }
    return std::move(std::get<v::view>(r));
}

// What stays allowed: without it the rule could refuse everything and the
// refusal tests would still pass.
TEST(view_privacy, allows_what_does_not_identify) {
    const std::vector<std::pair<std::string, std::string>> allowed{
        {"Patient", "gender"},
        {"Patient", "Patient.gender"},
        {"Patient", "%resource.active"},
        {"Patient", "deceased.ofType(boolean)"},
        {"Patient", "getResourceKey()"},
        {"Patient", "gender.where($this = 'female').exists()"},
        {"RelatedPerson", "relationship.coding.code"},
        {"RelatedPerson", "patient.getReferenceKey(Patient)"},
        {"Observation", "subject.getReferenceKey(Patient)"},
        {"Observation", "code.coding.where(system = 'http://loinc.org').display"},
        {"Observation", "value.ofType(Quantity).value"},
        {"Observation", "code.text"},
        {"Observation", "extension('http://example.org/ext').value.ofType(string)"},
        {"Observation", "id"},
    };
    for (const auto& [resource, path] : allowed) {
        auto e = refusal(column_view(resource, path), v::privacy::none);
        EXPECT_FALSE(e.has_value()) << resource << " " << path << ": " << (e ? e->message : "");
    }
}

// Race, ethnicity and birth sex are not Safe Harbor identifiers (45 CFR
// 164.514(b)(2)): the US Core extensions that carry them are allowed on
// Patient under none and minimal, by extension('<url>') or
// extension.where(url = '<url>'), with their sub-extensions.
TEST(view_privacy, allows_the_us_core_demographic_extensions) {
    const std::string us_core = "http://hl7.org/fhir/us/core/StructureDefinition/";
    const std::vector<std::string> allowed{
        "extension('" + us_core + "us-core-birthsex').value.ofType(code)",
        "extension('" + us_core + "us-core-birthsex').valueCode",
        "extension('" + us_core + "us-core-race').extension('ombCategory').value.ofType(Coding).code",
        "extension('" + us_core + "us-core-race').extension('detailed').valueCoding.display",
        "extension('" + us_core + "us-core-race').extension('text').value.ofType(string)",
        "extension('" + us_core + "us-core-race').exists()",
        "extension.where(url = '" + us_core +
            "us-core-ethnicity').extension('ombCategory').valueCoding.system",
        "extension.where(url = '" + us_core +
            "us-core-ethnicity').extension.where(url = 'text').value.ofType(string)",
        "Patient.extension('" + us_core + "us-core-ethnicity').extension.url",
    };
    for (auto rule : {v::privacy::none, v::privacy::minimal}) {
        for (const auto& path : allowed) {
            auto e = refusal(column_view("Patient", path), rule);
            EXPECT_FALSE(e.has_value()) << path << ": " << (e ? e->message : "");
        }
    }
}

TEST(view_privacy, a_view_over_a_bundle_is_refused) {
    // entry.fullUrl names the patient by FHIR id without any denied element.
    for (auto rule : {v::privacy::none, v::privacy::minimal}) {
        auto e = refusal(column_view("Bundle", "entry.fullUrl"), rule);
        ASSERT_TRUE(e.has_value());
        EXPECT_EQ(e->json_path, "resource");
    }
    EXPECT_FALSE(refusal(column_view("Bundle", "entry.fullUrl"), v::privacy::off).has_value());
}

TEST(view_privacy, minimal_allows_the_fhir_id) {
    for (const char* path : {"id", "getResourceKey() & ''"}) {
        EXPECT_FALSE(refusal(column_view("Patient", path), v::privacy::minimal).has_value()) << path;
        EXPECT_TRUE(refusal(column_view("Patient", path), v::privacy::none).has_value()) << path;
    }
    EXPECT_FALSE(refusal(column_view("Observation", "subject.reference"), v::privacy::minimal).has_value());
}

TEST(view_privacy, off_is_the_default_and_checks_nothing) {
    EXPECT_TRUE(std::holds_alternative<v::view>(v::compile(column_view("Patient", "name.family"))));
}

struct parsed {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    explicit parsed(const std::string& json) { EXPECT_EQ(parser.parse(json).get(root), simdjson::SUCCESS); }
};

std::string cell_text(const v::cell& c) {
    if (const auto* s = std::get_if<std::string>(&c)) return *s;
    if (std::holds_alternative<std::monostate>(c)) return "null";
    return "?";
}

const char* key_view = R"j({"resource":"Observation","select":[{"column":[
    {"name":"own","path":"getResourceKey()"
},
    {"name":"patient","path":"subject.getReferenceKey(Patient)"},
    {"name":"any","path":"subject.getReferenceKey()"},
    {"name":"encounter","path":"encounter.getReferenceKey()"}]
}]
})j";
const char* observation = R"({"resourceType":"Observation","id":"o1",
    "subject":{"reference":"Patient/p-77"},"encounter":{"reference":"Encounter/e1"}})";

TEST(view_privacy, keys_give_the_patient_key_under_none) {
    auto view = compiled(key_view, v::privacy::none);
    parsed obs(observation);
    std::vector<std::string> asked;
    v::eval_options opts;
    opts.map_patient_key = [&](std::string_view id) {
        asked.emplace_back(id);
        return "pk-" + std::string(id);
    };
    auto r = v::evaluate(view, obs.root, opts);
    ASSERT_FALSE(r.error) << r.error->message;
    ASSERT_EQ(r.rows.size(), 1u);
    // Only Patient keys are mapped; the mapper sees the bare FHIR id.
    EXPECT_EQ(cell_text(r.rows[0][0]), "Observation/o1");
    EXPECT_EQ(cell_text(r.rows[0][1]), "pk-p-77");
    EXPECT_EQ(cell_text(r.rows[0][2]), "pk-p-77");
    EXPECT_EQ(cell_text(r.rows[0][3]), "Encounter/e1");
    EXPECT_EQ(asked, (std::vector<std::string>{"p-77", "p-77"}));

    auto patient_view = compiled(column_view("Patient", "getResourceKey()"), v::privacy::none);
    parsed patient(R"({"resourceType":"Patient","id":"p-77","gender":"female"})");
    auto p = v::evaluate(patient_view, patient.root, opts);
    ASSERT_FALSE(p.error) << p.error->message;
    EXPECT_EQ(cell_text(p.rows.at(0).at(0)), "pk-p-77");
}

// A complex element could hold anything (a Reference's display is often
// the patient's name), and the walk does not know element types: it is an
// error at evaluation, under every privacy rule, and a cell without one.
TEST(view_privacy, a_complex_element_is_refused_at_evaluation) {
    const std::string def = column_view("Observation", "subject");
    parsed obs(R"({"resourceType":"Observation","subject":{"reference":"Patient/1","display":"Jane Doe"}})");
    for (auto rule : {v::privacy::none, v::privacy::minimal}) {
        auto r = v::evaluate(compiled(def, rule), obs.root);
        ASSERT_TRUE(r.error.has_value());
        EXPECT_EQ(r.error->json_path, "select[0].column[0].path");
        EXPECT_TRUE(r.rows.empty());
    }
    auto off = v::evaluate(compiled(def, v::privacy::off), obs.root);
    ASSERT_FALSE(off.error.has_value());
    EXPECT_EQ(off.rows.size(), 1u);
}

TEST(view_privacy, a_key_under_none_without_a_mapping_fails_rather_than_leak_the_id) {
    auto view = compiled(key_view, v::privacy::none);
    parsed obs(observation);
    auto r = v::evaluate(view, obs.root);
    ASSERT_TRUE(r.error.has_value());
    EXPECT_EQ(r.error->json_path, "select[0].column[1].path");
    EXPECT_TRUE(r.rows.empty());
}

TEST(view_privacy, minimal_and_off_keep_the_fhir_id_in_keys) {
    for (auto rule : {v::privacy::minimal, v::privacy::off}) {
        auto view = compiled(key_view, rule);
        parsed obs(observation);
        v::eval_options opts;
        opts.map_patient_key = [](std::string_view) { return std::string("must not be used"); };
        auto r = v::evaluate(view, obs.root, opts);
        ASSERT_FALSE(r.error) << r.error->message;
        EXPECT_EQ(cell_text(r.rows.at(0).at(1)), "Patient/p-77");
    }
}

TEST(view_privacy, allowed_patient_view_gives_its_rows) {
    auto view = compiled(R"j({"resource":"Patient","select":[{"column":[
        {"name":"k","path":"getResourceKey()"},{"name":"g","path":"gender"},
        {"name":"d","path":"deceased.ofType(boolean)","type":"boolean"}]}]})j",
                         v::privacy::none);
    parsed patient(R"({"resourceType":"Patient","id":"x","gender":"male","deceasedBoolean":false,
        "name":[{"family":"Doe"}]})");
    v::eval_options opts;
    opts.map_patient_key = [](std::string_view id) { return "k:" + std::string(id); };
    auto r = v::evaluate(view, patient.root, opts);
    ASSERT_FALSE(r.error) << r.error->message;
    ASSERT_EQ(r.rows.size(), 1u);
    EXPECT_EQ(cell_text(r.rows[0][0]), "k:x");
    EXPECT_EQ(cell_text(r.rows[0][1]), "male");
    ASSERT_TRUE(std::holds_alternative<bool>(r.rows[0][2]));
    EXPECT_FALSE(std::get<bool>(r.rows[0][2]));
}

TEST(view_privacy, us_core_extensions_give_their_values_and_nothing_else) {
    auto view = compiled(R"j({"resource":"Patient","select":[{"column":[
        {"name":"sex","path":"extension('http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex').value.ofType(code)"},
        {"name":"race","path":"extension.where(url = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race').extension('ombCategory').value.ofType(Coding).code","collection":true}]}]})j",
                         v::privacy::none);
    parsed patient(R"({"resourceType":"Patient","id":"x","extension":[
        {"url":"http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName","valueString":"Doe"},
        {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","extension":[
            {"url":"ombCategory","valueCoding":{"code":"2106-3"}},{"url":"ombCategory","valueCoding":{"code":"2028-9"}}]},
        {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"F"}]})");
    auto r = v::evaluate(view, patient.root);
    ASSERT_FALSE(r.error) << r.error->message;
    ASSERT_EQ(r.rows.size(), 1u);
    EXPECT_EQ(cell_text(r.rows[0][0]), "F");
    ASSERT_TRUE(std::holds_alternative<std::vector<v::scalar>>(r.rows[0][1]));
    EXPECT_EQ(std::get<std::vector<v::scalar>>(r.rows[0][1]),
              (std::vector<v::scalar>{std::string("2106-3"), std::string("2028-9")}));
}

}  // namespace
