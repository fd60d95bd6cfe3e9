// The FHIRPath subset of SQL on FHIR v2 (lib/views): parse errors with their
// offsets, and evaluation over small resources with exact results. The
// behaviours follow the official suite's fhirpath.json, where.json and
// fn_*.json cases (../shared/data/sof-tests), rewritten as unit cases.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
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
            if (t.back() == '.') t.pop_back();
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
    // The resource's JSON text goes along as the source_text (decimal
    // precision); `source` overrides it, and run_without_source drops it.
    std::string run(const std::string& json, const std::string& expr, const v::constant_map& constants = {},
                    std::optional<std::string_view> source = std::nullopt, bool with_source = true) {
        docs_.emplace_back();
        simdjson::dom::element root;
        EXPECT_EQ(docs_.back().parse(json).get(root), simdjson::SUCCESS);
        auto p = v::parse(expr);
        if (p.error) return "error@" + std::to_string(p.error->offset) + ": " + p.error->message;
        v::source_text text{root, source.value_or(json)};
        auto r = v::evaluate(*p.ast, {root}, constants, with_source ? &text : nullptr);
        if (r.error) return "error@" + std::to_string(r.error->offset) + ": " + r.error->message;
        return show(r.value);
    }

    std::string run_without_source(const std::string& json, const std::string& expr) {
        return run(json, expr, {}, std::nullopt, false);
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
    EXPECT_EQ(run(patient, "name.given.lowBoundary(1, 2)"),
              "error@11: lowBoundary() takes a different number of arguments");
    EXPECT_EQ(run(patient, "name.first(1)"), "error@5: first() takes a different number of arguments");
    EXPECT_EQ(run(patient, "id.ofType()"), "error@3: ofType() takes a different number of arguments");
    EXPECT_EQ(run(patient, "9223372036854775807 + 1"), "error@20: integer overflow");
    EXPECT_EQ(run(patient, "-9223372036854775807 - 2"), "error@21: integer overflow");
    EXPECT_EQ(run(patient, "4611686018427387904 * 2"), "error@20: integer overflow");
    EXPECT_EQ(run(patient, "id + 1"), "error@3: '+' needs numbers");
    EXPECT_EQ(run(patient, "name['x']"), "error@5: an index must be an integer");
}

// ---------------------------------------------------------------------------
// \uXXXX escapes (FHIRPath N1 §"String": JSON-style escapes).

TEST_F(fhirpath, unicode_escapes) {
    EXPECT_EQ(run(patient, R"('a\u0041')"), "['aA']");
    EXPECT_EQ(run(patient, R"('\u00e9\u00E9')"), "['\xC3\xA9\xC3\xA9']");
    EXPECT_EQ(run(patient, R"('\u20AC')"), "['\xE2\x82\xAC']");
    // U+1F600 as a surrogate pair gives the one 4-byte UTF-8 character.
    EXPECT_EQ(run(patient, R"('\uD83D\uDE00')"), "['\xF0\x9F\x98\x80']");
    EXPECT_EQ(run(patient, R"(`\u0067ender`)"), "['female']");
    EXPECT_EQ(run(patient, R"('x\uDE00')"), "error@2: lone low surrogate in \\u escape");
    EXPECT_EQ(run(patient, R"('x\uD83D')"), "error@2: high surrogate without a low surrogate in \\u escape");
    EXPECT_EQ(run(patient, R"('\uD83Dx')"), "error@1: high surrogate without a low surrogate in \\u escape");
    EXPECT_EQ(run(patient, R"('\uD83D\u0041')"),
              "error@1: high surrogate without a low surrogate in \\u escape");
    EXPECT_EQ(run(patient, R"('\uD83D\uD83D')"),
              "error@1: high surrogate without a low surrogate in \\u escape");
    EXPECT_EQ(run(patient, R"('\u12')"), "error@1: \\u needs four hex digits");
    EXPECT_EQ(run(patient, R"('\uZZZZ')"), "error@1: \\u needs four hex digits");
    EXPECT_EQ(run(patient, R"('\u)"), "error@1: \\u needs four hex digits");
}

// ---------------------------------------------------------------------------
// Dates and times: strict literals, precision-aware comparison (FHIRPath N1
// §"Equality", §"Comparison").

TEST_F(fhirpath, temporal_literals_are_checked) {
    EXPECT_EQ(run(patient, "@2020-13-45"), "error@0: invalid date/time literal");
    EXPECT_EQ(run(patient, "@2020-02-30"), "error@0: invalid date/time literal");
    EXPECT_EQ(run(patient, "@2019-02-29"), "error@0: invalid date/time literal");
    EXPECT_EQ(run(patient, "@2020-02-29"), "[@2020-02-29]");
    EXPECT_EQ(run(patient, "@0000"), "error@0: invalid date/time literal");
    EXPECT_EQ(run(patient, "@20200"), "error@0: invalid date/time literal");
    EXPECT_EQ(run(patient, "id = @T25:00"), "error@5: invalid date/time literal");
    EXPECT_EQ(run(patient, "@T12:60"), "error@0: invalid date/time literal");
    EXPECT_EQ(run(patient, "@2020-01-01T10:00+15:00"), "error@0: invalid date/time literal");
    EXPECT_EQ(run(patient, "@2020-01-01T10:00+05:60"), "error@0: invalid date/time literal");
    EXPECT_EQ(run(patient, "@2020-01T10:00"), "error@0: invalid date/time literal");
    EXPECT_EQ(run(patient, "@T"), "error@0: invalid date/time literal");
    EXPECT_EQ(run(patient, "@2020-01-01T10:00:00.123456789Z"), "[@2020-01-01T10:00:00.123456789Z]");
    EXPECT_EQ(run(patient, "@T12:34"), "[@12:34]");
    EXPECT_EQ(run(patient, "@2020-01-01T"), "[@2020-01-01T]");
    // A '.' after a literal invokes, it is not part of the literal.
    EXPECT_EQ(run(patient, "@2020-01-01.exists()"), "[true]");
}

TEST_F(fhirpath, temporal_comparison_follows_precision) {
    EXPECT_EQ(run(patient, "@2020 = @2020-01"), "[]");
    EXPECT_EQ(run(patient, "@2020 = @2021-01"), "[false]");
    EXPECT_EQ(run(patient, "@2018-03 < @2018-03-01"), "[]");
    EXPECT_EQ(run(patient, "@2018-03 < @2018-04-01"), "[true]");
    EXPECT_EQ(run(patient, "@2018-03-01 <= @2018-03-01T10:00"), "[]");
    EXPECT_EQ(run(patient, "@2018-03-01 < @2018-03-02T10:00"), "[true]");
    // Both zoned: compared in UTC.
    EXPECT_EQ(run(patient, "@2020-01-01T10:00:00+02:00 = @2020-01-01T08:00:00Z"), "[true]");
    EXPECT_EQ(run(patient, "@2020-01-01T00:30:00+02:00 < @2019-12-31T23:00:00Z"), "[true]");
    EXPECT_EQ(run(patient, "@2020-03-01T00:30:00+05:30 = @2020-02-29T19:00:00Z"), "[true]");
    // One zone only: FHIRPath has no answer.
    EXPECT_EQ(run(patient, "@2020-01-01T10:00:00 = @2020-01-01T10:00:00Z"), "[]");
    // Seconds and milliseconds are one precision.
    EXPECT_EQ(run(patient, "@T10:30:00 = @T10:30:00.000"), "[true]");
    EXPECT_EQ(run(patient, "@T10:30:00 < @T10:30:00.001"), "[true]");
    EXPECT_EQ(run(patient, "@T10:30 < @T10:31:00"), "[true]");
    EXPECT_EQ(run(patient, "@T10:30 = @T10:30:00"), "[]");
    EXPECT_EQ(run(patient, "@2020-01-01 = @T10:00"), "[]");
    // Against FHIR data (strings in JSON).
    EXPECT_EQ(run(observation, "effective.ofType(dateTime) < @2020-01"), "[]");
    EXPECT_EQ(run(observation, "effective.ofType(dateTime) > @2019"), "[true]");
    EXPECT_EQ(run(observation, "effectiveDateTime = @2020-01-05"), "[true]");
    EXPECT_EQ(run(observation, "effectiveDateTime = '2020-01-05'"), "[true]");
    EXPECT_EQ(run(observation, "effective.ofType(dateTime).join('|')"), "['2020-01-05']");
    EXPECT_EQ(run(observation, "effective.ofType(dateTime) & 'Z'"), "['2020-01-05Z']");
    const std::string bad = R"({"resourceType": "Observation", "effectiveDateTime": "2020-13-45"})";
    EXPECT_EQ(run(bad, "effective.ofType(dateTime)"), "['2020-13-45']");
    // Outside choice elements: a dateTime is not a date, a date is a valid dateTime.
    const std::string period = R"({"resourceType": "Encounter", "period": {"start": "2020-01-05T10:00:00Z"},
      "x": "2020-01-05", "t": "10:00:00", "s": "abc"})";
    EXPECT_EQ(run(period, "period.start.ofType(date)"), "[]");
    EXPECT_EQ(run(period, "period.start.ofType(dateTime)"), "[@2020-01-05T10:00:00Z]");
    EXPECT_EQ(run(period, "x.ofType(date)"), "[@2020-01-05]");
    EXPECT_EQ(run(period, "x.ofType(dateTime).lowBoundary()"), "[@2020-01-05T00:00:00.000+14:00]");
    EXPECT_EQ(run(period, "x.ofType(date).lowBoundary()"), "[@2020-01-05]");
    EXPECT_EQ(run(period, "t.ofType(time)"), "[@10:00:00]");
    EXPECT_EQ(run(period, "t.ofType(date)"), "[]");
    EXPECT_EQ(run(period, "s.ofType(date)"), "['abc']");
    EXPECT_EQ(run(bad, "effective.ofType(dateTime) = @2020-01-05"), "[]");
    EXPECT_EQ(run(bad, "effective.ofType(dateTime) < @2020-01-05"), "[]");
    EXPECT_EQ(run(bad, "effective.ofType(dateTime).lowBoundary()"), "[]");
}

TEST_F(fhirpath, equivalence) {
    EXPECT_EQ(run(patient, "@2020 ~ @2020-01"), "[false]");
    EXPECT_EQ(run(patient, "@2020-01 ~ @2020-01"), "[true]");
    EXPECT_EQ(run(patient, "'Abc  d ' ~ ' abc d'"), "[true]");
    EXPECT_EQ(run(patient, "'Abc' !~ 'abd'"), "[true]");
    EXPECT_EQ(run(patient, "{} ~ {}"), "[true]");
    EXPECT_EQ(run(patient, "{} ~ 1"), "[false]");
    EXPECT_EQ(run(patient, "(1 | 2) ~ (2 | 1)"), "[true]");
    EXPECT_EQ(run(patient, "name.given ~ name.given"), "[true]");
    EXPECT_EQ(run(patient, "1 !~ 1.0"), "[false]");
}

// ---------------------------------------------------------------------------
// Type and membership operators (FHIRPath N1 §"Types", §"Collections").

TEST_F(fhirpath, is_and_as) {
    EXPECT_EQ(run(patient, "gender is string"), "[true]");
    EXPECT_EQ(run(patient, "gender is System.String"), "[true]");
    EXPECT_EQ(run(patient, "active is FHIR.boolean"), "[true]");
    EXPECT_EQ(run(patient, "active is string"), "[false]");
    EXPECT_EQ(run(patient, "active.is(boolean)"), "[true]");
    EXPECT_EQ(run(patient, "$this is Patient"), "[true]");
    EXPECT_EQ(run(patient, "$this is Observation"), "[false]");
    EXPECT_EQ(run(patient, "missing is string"), "[]");
    EXPECT_EQ(run(observation, "value is integer"), "[true]");
    EXPECT_EQ(run(observation, "value is Quantity"), "[false]");
    EXPECT_EQ(run(observation, "value as integer"), "[12]");
    EXPECT_EQ(run(observation, "value.as(integer) + 1"), "[13]");
    EXPECT_EQ(run(observation, "value as string"), "[]");
    EXPECT_EQ(run(observation, "effective as dateTime"), "[@2020-01-05]");
    EXPECT_EQ(run(observation, "(effective as dateTime).lowBoundary()"), "[@2020-01-05T00:00:00.000+14:00]");
    EXPECT_EQ(run(patient, "name.given is string"),
              "error@11: 'is' needs a single value, got a collection of 3");
    EXPECT_EQ(run(patient, "gender is"), "error@9: expected a type name after 'is'");
    EXPECT_EQ(run(patient, "gender is 5"), "error@10: expected a type name after 'is'");
    EXPECT_EQ(run(patient, "gender is FHIR."), "error@15: expected a type name after '.'");
    // `is` binds tighter than `=` and `|`.
    EXPECT_EQ(run(patient, "gender is string = true"), "[true]");
}

TEST_F(fhirpath, in_and_contains) {
    EXPECT_EQ(run(patient, "'official' in name.use"), "[true]");
    EXPECT_EQ(run(patient, "'usual' in name.use"), "[false]");
    EXPECT_EQ(run(patient, "name.given contains 'g1.2.1'"), "[true]");
    EXPECT_EQ(run(patient, "name.given contains 'x'"), "[false]");
    EXPECT_EQ(run(patient, "{} in name.given"), "[]");
    EXPECT_EQ(run(patient, "'x' in {}"), "[false]");
    EXPECT_EQ(run(patient, "2 in (1 | 2.0)"), "[true]");
    EXPECT_EQ(run(patient, "@2020-01 in (@2020-01 | @2021)"), "[true]");
    EXPECT_EQ(run(patient, "name.given in 'x'"), "error@5: expected a single value, got a collection of 3");
    // `in` binds looser than `=`: ('a' = 'a') in (true).
    EXPECT_EQ(run(patient, "'a' = 'a' in true"), "[true]");
}

// ---------------------------------------------------------------------------
// lowBoundary() / highBoundary() (FHIRPath 3.0 STU; sof-tests fn_boundary.json).

TEST_F(fhirpath, decimal_boundaries_use_the_written_digits) {
    EXPECT_EQ(run(patient, "1.0.lowBoundary()"), "[0.95]");
    EXPECT_EQ(run(patient, "1.0.highBoundary()"), "[1.05]");
    EXPECT_EQ(run(patient, "1.587.lowBoundary()"), "[1.5865]");
    EXPECT_EQ(run(patient, "1.587.highBoundary()"), "[1.5875]");
    EXPECT_EQ(run(patient, "1.587.lowBoundary(2)"), "[1.58]");
    EXPECT_EQ(run(patient, "1.587.highBoundary(2)"), "[1.59]");
    EXPECT_EQ(run(patient, "1.587.lowBoundary(0)"), "[1]");
    EXPECT_EQ(run(patient, "(-1.587).lowBoundary()"), "[-1.5875]");
    EXPECT_EQ(run(patient, "(-1.587).highBoundary(2)"), "[-1.58]");
    EXPECT_EQ(run(patient, "(-1.587).lowBoundary(2)"), "[-1.59]");
    EXPECT_EQ(run(patient, "1.lowBoundary()"), "[0.5]");
    EXPECT_EQ(run(patient, "1.587.lowBoundary(29)"), "[]");
    EXPECT_EQ(
        run(patient, "1." + std::string(300, '0') + ".lowBoundary()"),
        "error@303: lowBoundary(): decimal has more digits than lowBoundary()/highBoundary() handle (36)");
    EXPECT_EQ(run(patient, "1" + std::string(400, '0') + ".5.lowBoundary()"), "error@0: bad decimal");
    EXPECT_EQ(run(patient, "1.587.lowBoundary(-1)"), "[]");
    EXPECT_EQ(run(patient, "1.587.lowBoundary('x')"), "error@18: lowBoundary() precision must be an integer");

    auto obs = [](const std::string& value) {
        return R"({"resourceType": "Observation", "valueQuantity": {"value": )" + value + "}}";
    };
    const std::string low = "value.ofType(Quantity).value.lowBoundary()";
    const std::string high = "value.ofType(Quantity).value.highBoundary()";
    EXPECT_EQ(run(obs("1.0"), low), "[0.95]");
    EXPECT_EQ(run(obs("1.0"), high), "[1.05]");
    EXPECT_EQ(run(obs("1.50"), low), "[1.495]");
    EXPECT_EQ(run(obs("1"), high), "[1.5]");
    EXPECT_EQ(run(obs("-0.0"), low), "[-0.05]");
    EXPECT_EQ(run(obs("1e2"), low), "[50]");
    EXPECT_EQ(run(obs("1.5E2"), high), "[155]");
    EXPECT_EQ(run(obs("12.5e-1"), low), "[1.245]");
    EXPECT_EQ(run(obs("1.0  "), high), "[1.05]");
    // Hostile numbers: more digits than the exact arithmetic holds is an error, never a wrong value.
    EXPECT_EQ(
        run(obs("123456789012345678901234567890123456.5"), low),
        "error@29: lowBoundary(): decimal has more digits than lowBoundary()/highBoundary() handle (36)");
    EXPECT_EQ(
        run(obs("1." + std::string(300, '0')), low),
        "error@29: lowBoundary(): decimal has more digits than lowBoundary()/highBoundary() handle (36)");
    EXPECT_EQ(
        run(obs("1e300"), low),
        "error@29: lowBoundary(): decimal has more digits than lowBoundary()/highBoundary() handle (36)");
    EXPECT_EQ(
        run(obs("1e-300"), low),
        "error@29: lowBoundary(): decimal has more digits than lowBoundary()/highBoundary() handle (36)");
    // 35 digits fit; the result is then the nearest double.
    EXPECT_EQ(run(obs("1234567890123456789012345678901234.5"), low), "[1234567890123456752318548159758336]");

    // Numbers in arrays keep their own text; other keys are not confused.
    const std::string arr = R"({"resourceType": "X", "c": [{"v": [1.0, 2.50], "w": 1.0}, {"v": 3}]})";
    EXPECT_EQ(run(arr, "c.v.lowBoundary()"), "[0.95, 2.495, 2.5]");
    EXPECT_EQ(run(arr, "c.w.highBoundary()"), "[1.05]");
    EXPECT_EQ(run(arr, "c.v.first().lowBoundary()"), "[0.95]");
    EXPECT_EQ(run(arr, "c.v.where($this > 2).lowBoundary()"), "[2.495, 2.5]");
    EXPECT_EQ(run(arr, "c.v.where($this > 2).first().highBoundary()"), "[2.505]");
    EXPECT_EQ(run(arr, "c.v.where($this > 100).lowBoundary()"), "[]");
    EXPECT_EQ(run(arr, "c.v.first(1).lowBoundary()"),
              "error@4: first() takes a different number of arguments");
    // Other steps lose the number's key: refused rather than guessed.
    EXPECT_EQ(
        run(arr, "c.v[1].lowBoundary()"),
        "error@7: lowBoundary() of a decimal needs its JSON text (its precision is its digits); evaluate "
        "with the source_text");

    // A document nested 1,000 levels deep (simdjson's DOM takes 1,024): the
    // walk stops at its own cap and the numbers above it keep their text.
    std::string deep = R"({"resourceType": "X", "w": 1.0, "d": )";
    for (int i = 0; i < 1000; ++i) deep += R"({"d": )";
    deep += "2.0";
    for (int i = 0; i < 1000; ++i) deep += "}";
    deep += "}";
    EXPECT_EQ(run(deep, "w.lowBoundary()"), "[0.95]");
    EXPECT_EQ(run(deep, "d.d.d.lowBoundary()"), "[]");

    // Without the JSON text a decimal's precision is unknown: refused.
    EXPECT_EQ(
        run_without_source(obs("1.0"), low),
        "error@29: lowBoundary() of a decimal needs its JSON text (its precision is its digits); evaluate "
        "with the source_text");
    EXPECT_EQ(run_without_source(obs("1"), low), "[0.5]");
    // A source text that is not the resource's JSON is caught, not trusted.
    EXPECT_EQ(
        run(obs("1.0"), low, {}, R"({"resourceType": "Observation", "valueQuantity": {"value": 2.00}})"),
        "[1.995]");
    EXPECT_EQ(run(obs("1.0"), low, {}, R"({"resourceType": "Observation", "other": {"value": 1.0}})"),
              "error@23: the source_text given is not the JSON of the resource");
    EXPECT_EQ(run(obs("1.0"), low, {}, "not json"),
              "error@23: the source_text given is not the JSON of the resource");
}

TEST_F(fhirpath, date_and_time_boundaries) {
    auto pt = [](const std::string& birth) {
        return R"({"resourceType": "Patient", "birthDate": ")" + birth + R"("})";
    };
    EXPECT_EQ(run(pt("1970-06"), "birthDate.lowBoundary()"), "[@1970-06-01]");
    EXPECT_EQ(run(pt("1970-06"), "birthDate.highBoundary()"), "[@1970-06-30]");
    EXPECT_EQ(run(pt("2020-02"), "birthDate.highBoundary()"), "[@2020-02-29]");
    EXPECT_EQ(run(pt("1900-02"), "birthDate.highBoundary()"), "[@1900-02-28]");
    EXPECT_EQ(run(pt("2019"), "birthDate.highBoundary()"), "[@2019-12-31]");
    EXPECT_EQ(run(pt("2019-05-06"), "birthDate.lowBoundary()"), "[@2019-05-06]");
    EXPECT_EQ(run(pt("2020-13-45"), "birthDate.lowBoundary()"), "[]");
    EXPECT_EQ(run(pt("2020-01-01T10:00:00Z"), "birthDate.lowBoundary()"), "[]");

    auto obs = [](const std::string& field, const std::string& value) {
        return R"({"resourceType": "Observation", ")" + field + R"(": ")" + value + R"("})";
    };
    EXPECT_EQ(run(obs("valueDateTime", "2010-10-10"), "value.ofType(dateTime).lowBoundary()"),
              "[@2010-10-10T00:00:00.000+14:00]");
    EXPECT_EQ(run(obs("valueDateTime", "2010-10-10"), "value.ofType(dateTime).highBoundary()"),
              "[@2010-10-10T23:59:59.999-12:00]");
    EXPECT_EQ(run(obs("valueDateTime", "2010"), "value.ofType(dateTime).highBoundary()"),
              "[@2010-12-31T23:59:59.999-12:00]");
    EXPECT_EQ(run(obs("valueDateTime", "2010-10-10T10:30:00+05:30"), "value.ofType(dateTime).lowBoundary()"),
              "[@2010-10-10T10:30:00.000+05:30]");
    EXPECT_EQ(run(obs("valueDateTime", "2010-10-10T10:30:00.5Z"), "value.ofType(dateTime).highBoundary()"),
              "[@2010-10-10T10:30:00.500Z]");
    EXPECT_EQ(run(obs("valueTime", "12:34:00"), "value.ofType(time).lowBoundary()"), "[@12:34:00.000]");
    EXPECT_EQ(run(obs("valueTime", "12:34:00"), "value.ofType(time).highBoundary()"), "[@12:34:00.999]");
    EXPECT_EQ(run(obs("valueTime", "12:34:00"), "value.ofType(dateTime).lowBoundary()"), "[]");
    // An untyped date could be a FHIR date or a dateTime: refused, not guessed.
    EXPECT_EQ(run(obs("effectiveDateTime", "2010-10-10"), "effectiveDateTime.lowBoundary()"),
              "error@18: lowBoundary() cannot tell a date from a dateTime here; use ofType(date) or "
              "ofType(dateTime)");
    EXPECT_EQ(run(obs("effectiveDateTime", "2010-10-10T10:00:00Z"), "effectiveDateTime.lowBoundary()"),
              "[@2010-10-10T10:00:00.000Z]");
    EXPECT_EQ(run(obs("effectiveDateTime", "2010-10-10"), "effective.ofType(date).highBoundary()"), "[]");
    EXPECT_EQ(run(patient, "name.family.lowBoundary()"), "[]");

    EXPECT_EQ(run(patient, "@T12:34.highBoundary()"), "[@12:34:59.999]");
    EXPECT_EQ(run(patient, "@T12.lowBoundary()"), "[@12:00:00.000]");
    EXPECT_EQ(run(patient, "@T12:34.lowBoundary(4)"), "[@12:34]");
    EXPECT_EQ(run(patient, "@2014-01-25.lowBoundary(6)"), "[@2014-01]");
    EXPECT_EQ(run(patient, "@2014.highBoundary(8)"), "[@2014-12-31]");
    EXPECT_EQ(run(patient, "@2014.highBoundary(10)"), "[]");
    EXPECT_EQ(run(patient, "@2014-01-25.lowBoundary(5)"), "[]");
    EXPECT_EQ(run(patient, "@2014-01-25T.lowBoundary(12)"), "[@2014-01-25T00:00+14:00]");
    EXPECT_EQ(run(patient, "@2014-01-25T.highBoundary(9223372036854775807)"), "[]");
    EXPECT_EQ(run(patient, "@9999-12-31T23:59:59.999Z.highBoundary()"), "[@9999-12-31T23:59:59.999Z]");
    EXPECT_EQ(run(patient, "@0001.lowBoundary()"), "[@0001-01-01]");
}

// ---------------------------------------------------------------------------
// Hostile expressions: 20,000 token sequences from a fixed-seed generator,
// over a resource with dates, decimals and arrays. Each must parse or be
// refused, and evaluate or fail, as a value: never crash, hang or trip
// ASan/UBSan (the sanitizer build runs this too). The check that fails is
// that every error carries an offset inside the expression.
TEST_F(fhirpath, random_token_soup_is_a_value_or_an_error) {
    const std::string json = R"({"resourceType": "Observation", "id": "o", "valueQuantity": {"value": 1.50},
      "effectiveDateTime": "2020-02-29T23:59:59.999+14:00", "component": [{"v": [1e2, -0.0, 3]}],
      "birthDate": "1970-06", "valueTime": "12:34:00", "s": "\u00e9"})";
    static const std::vector<std::string> tokens = {"value",
                                                    "component",
                                                    "v",
                                                    "effective",
                                                    "birthDate",
                                                    "id",
                                                    "s",
                                                    ".",
                                                    "(",
                                                    ")",
                                                    "[",
                                                    "]",
                                                    "0",
                                                    "1",
                                                    "1.0",
                                                    "-",
                                                    "+",
                                                    "*",
                                                    "/",
                                                    "div",
                                                    "mod",
                                                    "&",
                                                    "|",
                                                    "=",
                                                    "!=",
                                                    "~",
                                                    "!~",
                                                    "<",
                                                    "<=",
                                                    ">",
                                                    ">=",
                                                    "and",
                                                    "or",
                                                    "xor",
                                                    "implies",
                                                    "in",
                                                    "contains",
                                                    "is",
                                                    "as",
                                                    "dateTime",
                                                    "Quantity",
                                                    "FHIR",
                                                    "System",
                                                    "String",
                                                    "ofType(",
                                                    "lowBoundary(",
                                                    "highBoundary(",
                                                    "where(",
                                                    "exists(",
                                                    "first(",
                                                    "not(",
                                                    "join(",
                                                    "is(",
                                                    "as(",
                                                    ",",
                                                    "@2020",
                                                    "@2020-02-29T23:59:59.999+14:00",
                                                    "@T12:34",
                                                    "@2020-13-45",
                                                    "'x'",
                                                    R"('\uD83D\uDE00')",
                                                    R"('\uDE00')",
                                                    "$this",
                                                    "{}",
                                                    "9223372036854775807",
                                                    "28",
                                                    "-1",
                                                    "%c",
                                                    "'"};
    v::constant_map c;
    c["c"] = {v::item{std::int64_t{1}}};
    std::uint64_t state = 0x9E3779B97F4A7C15ULL;
    auto next = [&state] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    int values = 0, errors = 0;
    for (int round = 0; round < 20000; ++round) {
        std::string expr;
        auto n = 1 + next() % 12;
        for (std::uint64_t k = 0; k < n; ++k) expr += tokens[next() % tokens.size()] + " ";
        std::string got = run(json, expr, c);
        if (got.rfind("error@", 0) == 0) {
            ++errors;
            auto at = std::stoul(got.substr(6));
            EXPECT_LE(at, expr.size()) << expr << " -> " << got;
        } else {
            ++values;
        }
        docs_.clear();
    }
    // Both outcomes occur: the generator reaches the evaluator, not just the lexer.
    EXPECT_GT(values, 1000);
    EXPECT_GT(errors, 1000);
}

}  // namespace
