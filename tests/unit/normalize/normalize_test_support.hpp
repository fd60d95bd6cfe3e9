// Shared helpers for the normalizer tests: run JSON text through a
// normalizer, pick out the one record of a type, print problems readably.
#pragma once

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdio>
#include <filesystem>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <simdjson.h>

#include "headachemd/normalize/normalize.hpp"
#include "test_support.hpp"

namespace headachemd::normalize {

// gtest prints these by argument-dependent lookup.
inline void PrintTo(const problem& p, std::ostream* os) { *os << "{" << p.where << ": " << p.message << "}"; }

}  // namespace headachemd::normalize

namespace headachemd::normalize::test {

// A whole document through a fresh normalizer (the input is copied into a
// padded buffer, as ingest and the sync do).
inline result run(std::string_view json, options opts = {}) {
    normalizer n(opts);
    const simdjson::padded_string padded(json);
    return n.normalize_document(padded);
}

// One NDJSON line through `n`.
inline void run_line(normalizer& n, std::string_view line, std::size_t line_no, result& out) {
    const simdjson::padded_string padded(line);
    n.normalize_line(padded, line_no, out);
}

inline std::string problems_text(const result& r) {
    std::string s;
    for (const auto& p : r.problems) s += p.where + ": " + p.message + "\n";
    return s;
}

// The records of type T, in input order.
template <class T>
std::vector<T> records_of(const result& r) {
    std::vector<T> out;
    for (const auto& rec : r.records)
        if (const T* t = std::get_if<T>(&rec)) out.push_back(*t);
    return out;
}

// The single record, which must be a T (fails the test otherwise).
template <class T>
T only(const result& r) {
    EXPECT_TRUE(r.ok()) << problems_text(r);
    EXPECT_EQ(r.records.size(), 1u);
    if (r.records.size() != 1 || !std::holds_alternative<T>(r.records[0])) {
        ADD_FAILURE() << "expected exactly one record of the requested type";
        return T{};
    }
    return std::get<T>(r.records[0]);
}

// Lower-case hex SHA-256, computed independently of the library.
inline std::string sha256(std::string_view bytes) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
    std::string out;
    char buf[3];
    for (unsigned i = 0; i < len; ++i) {
        std::snprintf(buf, sizeof buf, "%02x", md[i]);
        out += buf;
    }
    return out;
}

inline bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}
inline bool contains(std::string_view s, std::string_view part) {
    return s.find(part) != std::string_view::npos;
}

// `n` nested arrays: [[[…]]].
inline std::string nested_arrays(std::size_t n) { return std::string(n, '[') + std::string(n, ']'); }

// The HL7 R4 examples directory (third-party data; tests skip without it).
inline std::filesystem::path hl7_examples() { return headachemd::test::shared_data() / "hl7-examples"; }

inline result run_file(const std::filesystem::path& p, options opts = {}) {
    normalizer n(opts);
    simdjson::padded_string padded;
    if (simdjson::padded_string::load(p.string()).get(padded)) {
        ADD_FAILURE() << "cannot read " << p;
        return {};
    }
    return n.normalize_document(padded);
}

}  // namespace headachemd::normalize::test
