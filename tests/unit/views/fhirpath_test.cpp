// The FHIRPath subset of SQL on FHIR v2 (lib/views): parse errors with their
// offsets, and evaluation over small resources with exact results. The
// behaviours follow the official suite's fhirpath.json, where.json and
// fn_*.json cases (../shared/data/sof-tests), rewritten as unit cases.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "headachemd/views/fhirpath.hpp"

namespace {

namespace v = headachemd::views;

// Renders a collection as text so each test states its exact result:
// strings quoted, numbers and booleans bare, JSON objects minified.
std::string show(const v::collection& c) {
    std::string out = "[";
    for (std::size_t i = 0; i < c.size(); ++i) {
        if (i) out += ", ";
        const auto& x = c[i];
        if (const auto* s = std::get_if<std::string>(&x)) {
            out += "'" + *s + "'";
        } else if (const auto* n = std::get_if<std::int64_t>(&x)) {
            out += std::to_string(*n);
        } else if (const auto* d = std::get_if<double>(&x)) {
            std::string t = std::to_string(*d);
            t.erase(t.find_last_not_of('0') + 1);
            out += t;
        } else if (const auto* b = std::get_if<bool>(&x)) {
            out += *b ? "true" : "false";
        } else if (const auto* dt = std::get_if<v::date_value>(&x)) {
            out += "@" + dt->text;
        } else {
            out += simdjson::minify(std::get<simdjson::dom::element>(x));
        }
    }
    return out + "]";
}

class fhirpath : public ::testing::Test {
protected:
    // Parses `json` (kept alive by the fixture's parser) and evaluates `expr`
    // on it; a parse or evaluation error is returned as "error@offset: ...".
    std::string run(const std::string& json, const std::string& expr, const v::constant_map& constants = {}) {
        docs_.emplace_back();
        simdjson::dom::element root;
        EXPECT_EQ(docs_.back().parse(json).get(root), simdjson::SUCCESS);
        auto p = v::parse(expr);
        if (p.error) return "error@" + std::to_string(p.error->offset) + ": " + p.error->message;
        auto r = v::evaluate(*p.ast, {root}, constants);
        if (r.error) return "error@" + std::to_string(r.error->offset) + ": " + r.error->message;
        return show(r.value);
    }

    std::vector<simdjson::dom::parser> docs_;
};

const std::string patient = R"({
  "resourceType": "Patient", "id": "pt1", "active": true, "gender": "female",
  "deceasedBoolean": false,
  "managingOrganization": {"reference": "Organization/o1"},
  "name": [
    {"family": "f1.1", "use": "official", "given": ["g1.1.1", "g1.1.2"]},
    {"family": "f1.2", "given": ["g1.2.1"]}
  ],
  "extension": [
    {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F"},
    {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
     "extension": [
       {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3"}},
       {"url": "text", "valueString": "White"}
     ]}
  ]
})";

const std::string observation = R"({"resourceType": "Observation", "id": "o1", "valueInteger": 12,
  "effectiveDateTime": "2020-01-05"})";

// ---------------------------------------------------------------------------
// Navigation

TEST_F(fhirpath, navigates_and_flattens_arrays) {
    EXPECT_EQ(run(patient, "id"), "['pt1']");
    EXPECT_EQ(run(patient, "name.family"), "['f1.1', 'f1.2']");
    EXPECT_EQ(run(patient, "name.given"), "['g1.1.1', 'g1.1.2', 'g1.2.1']");
    EXPECT_EQ(run(patient, "managingOrganization.reference"), "['Organization/o1']");
    EXPECT_EQ(run(patient, "birthDate"), "[]");
    EXPECT_EQ(run(patient, "Patient.id"), "['pt1']");
    EXPECT_EQ(run(patient, "`id`"), "['pt1']");
}

TEST_F(fhirpath, indexer_and_first) {
    EXPECT_EQ(run(patient, "name[0].family"), "['f1.1']");
    EXPECT_EQ(run(patient, "name[1].family"), "['f1.2']");
    EXPECT_EQ(run(patient, "name[2].family"), "[]");
    EXPECT_EQ(run(patient, "name.family.first()"), "['f1.1']");
    EXPECT_EQ(run(patient, "name.first().given.first()"), "['g1.1.1']");
    EXPECT_EQ(run(patient, "name[1 + 0].family"), "['f1.2']");
}

// ---------------------------------------------------------------------------
// Functions

TEST_F(fhirpath, where_exists_empty) {
    EXPECT_EQ(run(patient, "name.where(use='official').family"), "['f1.1']");
    EXPECT_EQ(run(patient, "name.where(use = 'maiden').exists()"), "[false]");
    EXPECT_EQ(run(patient, "name.where(use = 'official' and family = 'f1.1').exists()"), "[true]");
    EXPECT_EQ(run(patient, "name.where(use = 'official' or family = 'f1.2').family"), "['f1.1', 'f1.2']");
    EXPECT_EQ(run(patient, "name.where(family = 'f2').empty()"), "[true]");
    EXPECT_EQ(run(patient, "name.exists()"), "[true]");
    EXPECT_EQ(run(patient, "name.given.exists()"), "[true]");
    EXPECT_EQ(run(patient, "name.exists(use = 'official')"), "[true]");
    EXPECT_EQ(run(patient, "telecom.exists()"), "[false]");
    EXPECT_EQ(run(patient, "telecom.empty()"), "[true]");
    EXPECT_EQ(run(patient, "name.where($this.use = 'official').family"), "['f1.1']");
}

TEST_F(fhirpath, join) {
    EXPECT_EQ(run(patient, "name.given.join(', ' )"), "['g1.1.1, g1.1.2, g1.2.1']");
    EXPECT_EQ(run(patient, "name.given.join()"), "['g1.1.1g1.1.2g1.2.1']");
    EXPECT_EQ(run(patient, "name.given.join('')"), "['g1.1.1g1.1.2g1.2.1']");
    EXPECT_EQ(run(patient, "telecom.value.join(',')"), "['']");
}

TEST_F(fhirpath, of_type_reads_choice_elements) {
    EXPECT_EQ(run(observation, "value.ofType(integer)"), "[12]");
    EXPECT_EQ(run(observation, "value.ofType(string)"), "[]");
    EXPECT_EQ(run(observation, "value.ofType(FHIR.integer)"), "[12]");
    EXPECT_EQ(run(observation, "where(value.ofType(integer) > 11).exists()"), "[true]");
    EXPECT_EQ(run(observation, "where(value.ofType(integer) < 11).exists()"), "[false]");
    EXPECT_EQ(run(patient, "deceased.ofType(boolean) = false"), "[true]");
    // Not a choice element: the JSON kind decides.
    EXPECT_EQ(run(patient, "id.ofType(string)"), "['pt1']");
    EXPECT_EQ(run(patient, "id.ofType(integer)"), "[]");
    EXPECT_EQ(run(patient, "ofType(Patient).id"), "['pt1']");
    EXPECT_EQ(run(patient, "ofType(Observation).id"), "[]");
}

TEST_F(fhirpath, extension_by_url) {
    EXPECT_EQ(run(patient,
                  "extension('http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex')"
                  ".value.ofType(code).first()"),
              "['F']");
    EXPECT_EQ(run(patient,
                  "extension('http://hl7.org/fhir/us/core/StructureDefinition/us-core-race')"
                  ".extension('ombCategory').value.ofType(Coding).code.first()"),
              "['2106-3']");
    EXPECT_EQ(run(patient, "extension('urn:none').exists()"), "[false]");
}

TEST_F(fhirpath, not_and_three_valued_logic) {
    EXPECT_EQ(run(patient, "(gender = 'male').not()"), "[true]");
    EXPECT_EQ(run(patient, "gender = 'male' or deceased.ofType(boolean) = false"), "[true]");
    EXPECT_EQ(run(patient, "gender = 'male' and deceased.ofType(boolean) = false"), "[false]");
    // birthDate is absent, so the comparison is empty, and empty is unknown.
    EXPECT_EQ(run(patient, "birthDate = @2000-01-01"), "[]");
    EXPECT_EQ(run(patient, "birthDate = @2000-01-01 and false"), "[false]");
    EXPECT_EQ(run(patient, "birthDate = @2000-01-01 and true"), "[]");
    EXPECT_EQ(run(patient, "birthDate = @2000-01-01 or true"), "[true]");
    EXPECT_EQ(run(patient, "birthDate = @2000-01-01 or false"), "[]");
    EXPECT_EQ(run(patient, "true xor false"), "[true]");
    EXPECT_EQ(run(patient, "true xor true"), "[false]");
    EXPECT_EQ(run(patient, "{} xor true"), "[]");
    EXPECT_EQ(run(patient, "false implies {}"), "[true]");
    EXPECT_EQ(run(patient, "{} implies true"), "[true]");
    EXPECT_EQ(run(patient, "true implies false"), "[false]");
    EXPECT_EQ(run(patient, "{}.not()"), "[]");
}

TEST_F(fhirpath, resource_and_reference_keys) {
    const std::string obs = R"({"resourceType": "Observation", "id": "o1",
      "subject": {"reference": "Patient/p1"},
      "performer": [{"reference": "https://ehr.example/fhir/Practitioner/d1/_history/3"},
                    {"reference": "#contained"}, {"reference": "urn:uuid:1234"},
                    {"identifier": {"value": "x"}}]})";
    EXPECT_EQ(run(obs, "getResourceKey()"), "['Observation/o1']");
    EXPECT_EQ(run(obs, "subject.getReferenceKey()"), "['Patient/p1']");
    EXPECT_EQ(run(obs, "subject.getReferenceKey(Patient)"), "['Patient/p1']");
    EXPECT_EQ(run(obs, "subject.getReferenceKey(Group)"), "[]");
    EXPECT_EQ(run(obs, "performer.getReferenceKey()"), "['Practitioner/d1']");
    EXPECT_EQ(run(patient, "getResourceKey() = managingOrganization.getReferenceKey(Organization)"),
              "[false]");
    EXPECT_EQ(run(patient, "name.getResourceKey()"), "[]");
}

// ---------------------------------------------------------------------------
// Operators

TEST_F(fhirpath, comparisons_and_equality) {
    EXPECT_EQ(run(patient, "active = true"), "[true]");
    EXPECT_EQ(run(patient, "active != true"), "[false]");
    EXPECT_EQ(run(patient, "1 < 2"), "[true]");
    EXPECT_EQ(run(patient, "2 <= 2.0"), "[true]");
    EXPECT_EQ(run(patient, "'b' > 'a'"), "[true]");
    EXPECT_EQ(run(patient, "3 >= 4"), "[false]");
    EXPECT_EQ(run(observation, "effective.ofType(dateTime) = @2020-01-05"), "[true]");
    EXPECT_EQ(run(observation, "effective.ofType(dateTime) < @2020-02-01"), "[true]");
    // Collections compare item by item; different sizes are unequal.
    EXPECT_EQ(run(patient, "name.family = name.family"), "[true]");
    EXPECT_EQ(run(patient, "name.family = 'f1.1'"), "[false]");
    EXPECT_EQ(run(patient, "{} = 1"), "[]");
}

TEST_F(fhirpath, arithmetic_and_concatenation) {
    EXPECT_EQ(run(patient, "1 + 2 * 3"), "[7]");
    EXPECT_EQ(run(patient, "(1 + 2) * 3"), "[9]");
    EXPECT_EQ(run(patient, "7 div 2"), "[3]");
    EXPECT_EQ(run(patient, "7 mod 2"), "[1]");
    EXPECT_EQ(run(patient, "7 / 2"), "[3.5]");
    EXPECT_EQ(run(patient, "1 / 0"), "[]");
    EXPECT_EQ(run(patient, "5 div 0"), "[]");
    EXPECT_EQ(run(patient, "-3 + 1"), "[-2]");
    EXPECT_EQ(run(patient, "- 1.5"), "[-1.5]");
    EXPECT_EQ(run(patient, "10 - 2 - 3"), "[5]");
    EXPECT_EQ(run(patient, "1 + {}"), "[]");
    EXPECT_EQ(run(patient, "'a' + 'b'"), "['ab']");
    EXPECT_EQ(run(patient, "'a' & {} & 'b'"), "['ab']");
    EXPECT_EQ(run(patient, "id & '-' & gender"), "['pt1-female']");
    EXPECT_EQ(run(patient, "name.family | name.family"), "['f1.1', 'f1.2']");
}

// The official suite's fhirpath_numbers.json case, on a Range value[x].
TEST_F(fhirpath, arithmetic_on_choice_elements) {
    const std::string obs =
        R"({"resourceType": "Observation", "id": "o1", "valueRange": {"low": {"value": 2}, "high": {"value": 3}}})";
    EXPECT_EQ(run(obs, "value.ofType(Range).low.value + value.ofType(Range).high.value"), "[5]");
    EXPECT_EQ(run(obs, "value.ofType(Range).high.value - value.ofType(Range).low.value"), "[1]");
    EXPECT_EQ(run(obs, "value.ofType(Range).low.value * value.ofType(Range).high.value"), "[6]");
    EXPECT_EQ(run(obs, "value.ofType(Range).high.value / value.ofType(Range).low.value"), "[1.5]");
    EXPECT_EQ(run(obs, "value.ofType(Range).high.value = value.ofType(Range).low.value"), "[false]");
    EXPECT_EQ(run(obs, "value.ofType(Range).high.value >= value.ofType(Range).low.value"), "[true]");
    EXPECT_EQ(run(obs, "value.ofType(Range).high.value < value.ofType(Range).low.value"), "[false]");
}

TEST_F(fhirpath, keywords_are_names_where_no_operator_fits) {
    EXPECT_EQ(run(R"({"div": 4, "and": "x"})", "div div 2"), "[2]");
    EXPECT_EQ(run(R"({"div": 4, "and": "x"})", "`and`"), "['x']");
}

TEST_F(fhirpath, literals) {
    EXPECT_EQ(run(patient, "'it\\'s'"), "['it's']");
    EXPECT_EQ(run(patient, "@2020-01-01T10:00:00Z"), "[@2020-01-01T10:00:00Z]");
    EXPECT_EQ(run(patient, "42"), "[42]");
    EXPECT_EQ(run(patient, "4.25"), "[4.25]");
    EXPECT_EQ(run(patient, "true"), "[true]");
    EXPECT_EQ(run(patient, "{}"), "[]");
}

TEST_F(fhirpath, constants) {
    v::constant_map c;
    c["use"] = {v::item{std::string("official")}};
    c["n"] = {v::item{std::int64_t{1}}};
    EXPECT_EQ(run(patient, "name.where(use = %use).family", c), "['f1.1']");
    EXPECT_EQ(run(patient, "name[%n].family", c), "['f1.2']");
    EXPECT_EQ(run(patient, "%missing", c), "error@0: unknown constant %missing");
}

// ---------------------------------------------------------------------------
// Errors: parse errors give the byte offset where parsing stopped.

TEST_F(fhirpath, parse_errors_give_offsets) {
    EXPECT_EQ(run(patient, "name.where(use = 'official'"), "error@27: expected ')' before the end");
    EXPECT_EQ(run(patient, "name..family"), "error@5: expected a name after '.'");
    EXPECT_EQ(run(patient, "name.family 'x'"), "error@12: unexpected 'x'");
    EXPECT_EQ(run(patient, "id = 'abc"), "error@5: unterminated quoted text");
    EXPECT_EQ(run(patient, "id = #"), "error@5: unexpected character '#'");
    EXPECT_EQ(run(patient, "1 +"), "error@3: expression ends too early");
    EXPECT_EQ(run(patient, ""), "error@0: expression ends too early");
    EXPECT_EQ(run(patient, "name[0"), "error@6: expected ']' before the end");
    EXPECT_EQ(run(patient, "@"), "error@0: empty date/time literal");
    // validate.json "wrong fhirpath": the suite expects this refused.
    EXPECT_EQ(run(patient, "@@"), "error@0: empty date/time literal");
    EXPECT_EQ(run(patient, "where(id = 'x'"), "error@14: expected ')' before the end");
    EXPECT_EQ(run(patient, "%"), "error@0: expected a constant name after '%'");
    EXPECT_EQ(run(patient, "$index"), "error@0: unsupported variable");
    EXPECT_EQ(run(patient, "'a\\u0041'"), "error@2: \\u escapes are not supported yet");
    EXPECT_EQ(run(patient, "a)"), "error@1: unexpected ')'");
    EXPECT_EQ(run(patient, "99999999999999999999"), "error@0: integer out of range");
    // Built step by step: GCC 12 warns (-Warray-bounds) on a chain of
    // temporary std::string concatenations here, a known false positive.
    std::string nested(100, '(');
    nested += '1';
    nested.append(100, ')');
    EXPECT_EQ(run(patient, nested), "error@100: expression nested too deeply");
    std::string fits(99, '(');
    fits += '1';
    fits.append(99, ')');
    EXPECT_EQ(run(patient, fits), "[1]");
    std::string minus(200, '-');
    minus += '1';
    EXPECT_EQ(run(patient, minus), "error@99: expression nested too deeply");
    std::string chain = "1";
    while (chain.size() < 10000) chain += "+1";
    EXPECT_EQ(run(patient, chain), "error@10000: expression longer than 10000 bytes");
    chain.resize(9999);
    EXPECT_EQ(run(patient, chain), "error@399: expression nested too deeply");
    chain.resize(397);
    EXPECT_EQ(run(patient, chain), "[199]");
    std::string path = "a";
    for (int i = 0; i < 300; ++i) path += ".a";
    EXPECT_EQ(run(patient, path), "error@400: expression nested too deeply");
}

TEST_F(fhirpath, evaluation_errors_give_offsets) {
    // A path's offset is that of its last step: `given` here.
    EXPECT_EQ(run(patient, "name.given < 'z'"), "error@5: expected a single value, got a collection of 3");
    EXPECT_EQ(run(patient, "name.family.foo()"), "error@12: unsupported function foo()");
    EXPECT_EQ(run(patient, "lowBoundary()"), "error@0: unsupported function lowBoundary()");
    EXPECT_EQ(run(patient, "name.first(1)"), "error@5: first() takes a different number of arguments");
    EXPECT_EQ(run(patient, "id.ofType()"), "error@3: ofType() takes a different number of arguments");
    EXPECT_EQ(run(patient, "9223372036854775807 + 1"), "error@20: integer overflow");
    EXPECT_EQ(run(patient, "-9223372036854775807 - 2"), "error@21: integer overflow");
    EXPECT_EQ(run(patient, "4611686018427387904 * 2"), "error@20: integer overflow");
    EXPECT_EQ(run(patient, "id + 1"), "error@3: '+' needs numbers");
    EXPECT_EQ(run(patient, "name['x']"), "error@5: an index must be an integer");
}

}  // namespace
