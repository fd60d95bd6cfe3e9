// See fhirpath_decimal.hpp. Exact decimal boundaries in 128-bit integers
// scaled by a power of ten; the digit cap keeps every step in range.
#include "fhirpath_decimal.hpp"

#include "headachemd/views/fhirpath.hpp"

#include <algorithm>
#include <cctype>

namespace headachemd::views::detail {
namespace {

// GCC/Clang's 128-bit integer; __extension__ keeps -Wpedantic quiet.
__extension__ typedef __int128 i128;

// 36 digits and a 10x step stay below 2^127 (about 1.7e38).
constexpr std::size_t max_digits = 36;
constexpr long long max_precision = 28;  // FHIRPath N1 §"Decimal": 28 digits

i128 pow10(long long n) {
    i128 p = 1;
    for (long long k = 0; k < n; ++k) p *= 10;
    return p;
}

// floor/ceil of a / b for b > 0.
i128 floor_div(i128 a, i128 b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
i128 ceil_div(i128 a, i128 b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

std::string to_text(i128 v, long long scale) {
    bool neg = v < 0;
    std::string digits;
    for (i128 m = neg ? -v : v; m > 0; m /= 10)
        digits.insert(digits.begin(), static_cast<char>('0' + (m % 10)));
    while (digits.size() <= static_cast<std::size_t>(scale)) digits.insert(digits.begin(), '0');
    if (scale > 0) digits.insert(digits.end() - scale, '.');
    return (neg ? "-" : "") + digits;
}

}  // namespace

decimal_boundary_result decimal_boundary(std::string_view text, bool high, std::optional<long long> digits) {
    decimal_boundary_result r;
    if (digits && (*digits < 0 || *digits > max_precision)) return r;
    // -?int(.frac)?([eE][+-]?exp)? : the digits, and the scale they are at.
    std::size_t i = 0;
    bool neg = i < text.size() && text[i] == '-';
    if (neg) ++i;
    std::string all;
    long long scale = 0;
    bool in_fraction = false;
    for (; i < text.size(); ++i) {
        char c = text[i];
        if (c == '.' && !in_fraction) {
            in_fraction = true;
        } else if (std::isdigit(static_cast<unsigned char>(c)) != 0) {
            if (all.size() > 4096) {
                r.error = "decimal has more digits than lowBoundary()/highBoundary() handle (36)";
                return r;
            }
            all += c;
            if (in_fraction) ++scale;
        } else {
            break;
        }
    }
    if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
        // 1.5e2 is 150 with its last digit in the tens: written precision
        // of an exponent form is the mantissa's, so 1.5e2 gives 145/155.
        long long e = 0;
        bool eneg = false;
        ++i;
        if (i < text.size() && (text[i] == '+' || text[i] == '-')) eneg = text[i++] == '-';
        for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) != 0; ++i) {
            e = e * 10 + (text[i] - '0');
            if (e > 1000) {
                r.error = "decimal exponent out of range";
                return r;
            }
        }
        scale -= eneg ? -e : e;
    }
    if (all.empty() || i != text.size()) {
        r.error = "not a decimal: " + std::string(text.substr(0, 40));
        return r;
    }
    all.erase(0, std::min(all.find_first_not_of('0'), all.size() - 1));
    if (all.size() > max_digits || scale > static_cast<long long>(max_digits) ||
        scale < -static_cast<long long>(max_digits - all.size())) {
        r.error = "decimal has more digits than lowBoundary()/highBoundary() handle (36)";
        return r;
    }
    i128 m = 0;
    for (char c : all) m = m * 10 + (c - '0');
    // Half a unit of the last written digit's place, below or above; for
    // an exponent form that place may be tens or hundreds.
    if (scale < 0) m *= pow10(-scale);
    i128 half = scale < 0 ? 5 * pow10(-scale - 1) : 5;
    long long s = scale < 0 ? 0 : scale + 1;
    i128 v = scale < 0 ? m : m * 10;
    if (neg) v = -v;
    i128 b = high ? v + half : v - half;
    if (digits && *digits < s) {
        i128 f = pow10(s - *digits);
        b = high ? ceil_div(b, f) : floor_div(b, f);
        s = *digits;
    }
    r.text = to_text(b, s);
    return r;
}

bool number_texts::build(simdjson::dom::element root, std::string_view json) {
    texts_.clear();
    copy_ = simdjson::padded_string(json);
    simdjson::ondemand::document doc;
    if (parser_.iterate(copy_).get(doc) != simdjson::SUCCESS) return false;
    simdjson::ondemand::value v;
    if (doc.get_value().get(v) != simdjson::SUCCESS) return false;
    if (!root.is_object()) return false;
    return walk_object(root, v, 0);
}

std::optional<std::string_view> number_texts::find(const char* key, std::size_t index) const {
    auto it = texts_.find({key, index});
    if (it == texts_.end()) return std::nullopt;
    return it->second;
}

// FHIR resources nest a few dozen levels at most; the cap bounds the
// recursion whatever the DOM parser accepted (1024 levels). Numbers deeper
// than this are left without text (a boundary on them is then refused),
// and On-Demand skips the part not walked.
constexpr int max_walk_depth = 256;

bool number_texts::walk_object(simdjson::dom::element d, simdjson::ondemand::value o, int depth) {
    if (depth > max_walk_depth) return true;
    simdjson::dom::object dobj;
    simdjson::ondemand::object oobj;
    if (d.get(dobj) != simdjson::SUCCESS || o.get_object().get(oobj) != simdjson::SUCCESS) return false;
    auto dit = dobj.begin();
    for (auto f : oobj) {
        simdjson::ondemand::field field;
        if (std::move(f).get(field) != simdjson::SUCCESS || dit == dobj.end()) return false;
        std::string_view okey;
        if (field.unescaped_key().get(okey) != simdjson::SUCCESS || okey != dit.key()) return false;
        if (!visit(dit.key().data(), not_in_array, dit.value(), field.value(), depth)) return false;
        ++dit;
    }
    return dit == dobj.end();
}

bool number_texts::visit(const char* key, std::size_t index, simdjson::dom::element d,
                         simdjson::ondemand::value o, int depth) {
    switch (d.type()) {
        case simdjson::dom::element_type::INT64:
        case simdjson::dom::element_type::UINT64:
        case simdjson::dom::element_type::DOUBLE: {
            std::string_view raw = o.raw_json_token();
            while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.back())) != 0)
                raw.remove_suffix(1);
            texts_[{key, index}] = std::string(raw);
            return true;
        }
        case simdjson::dom::element_type::OBJECT:
            return walk_object(d, o, depth + 1);
        case simdjson::dom::element_type::ARRAY: {
            if (index != not_in_array) return true;  // arrays of arrays: not FHIR, left unmapped
            simdjson::dom::array darr;
            simdjson::ondemand::array oarr;
            if (d.get(darr) != simdjson::SUCCESS || o.get_array().get(oarr) != simdjson::SUCCESS)
                return false;
            std::size_t k = 0;
            auto dit = darr.begin();
            for (auto x : oarr) {
                simdjson::ondemand::value ov;
                if (std::move(x).get(ov) != simdjson::SUCCESS || dit == darr.end()) return false;
                if (!visit(key, k, *dit, ov, depth + 1)) return false;
                ++dit;
                ++k;
            }
            return dit == darr.end();
        }
        default:
            return true;
    }
}

}  // namespace headachemd::views::detail

namespace headachemd::views {

source_text::source_text(simdjson::dom::element root, std::string_view json) : root_(root), json_(json) {}
source_text::~source_text() = default;

const detail::number_texts* source_text::numbers() const {
    if (!built_) {
        built_ = true;
        numbers_ = std::make_unique<detail::number_texts>();
        ok_ = numbers_->build(root_, json_);
    }
    return ok_ ? numbers_.get() : nullptr;
}

}  // namespace headachemd::views
