// The structural check simdjson On-Demand leaves to us, and the slow
// byte-level helpers that locate a fault for the error message.
//
// Why a structural pass: On-Demand validates only what it visits. When it
// skips a value (and we skip most of every resource) it counts brackets
// without matching them and without a depth limit: parser::max_depth() only
// applies with SIMDJSON_DEVELOPMENT_CHECKS (simdjson 3.0.1, ondemand
// parser.h: "the document's current_depth() should be used to monitor the
// depth"). A truncated document, `[}` or 10,000 nested arrays inside an
// unread field would pass silently. Stage 1 has already found every
// structural character of the document, so one walk over that index checks
// balance, bracket matching, trailing content and depth at a fraction of the
// cost of re-scanning the bytes (measured: a byte scanner ran at ~1 GB/s,
// 6× slower than simdjson's whole outer pass over Synthea bundles).
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "common.hpp"

// The walk reads the token index through ondemand::document's protected
// json_iterator. The names used (document::iter, json_iterator::root_position,
// peek, peek_last) are those of simdjson 3.x; fail loudly on another major.
static_assert(simdjson::SIMDJSON_VERSION_MAJOR == 3,
              "check_structure() reads simdjson 3.x internals; review it");

namespace headachemd::normalize::detail {
namespace {

// Standard C++ access to a protected member: a pointer to member formed in a
// derived class may be applied to the base object.
struct document_access : od::document {
    static od::json_iterator& iterator_of(od::document& doc) { return doc.*(&document_access::iter); }
};

// The precise walk: finds the first fault and every too-deep excursion.
// Branchy, so it runs only when the fast pass below saw something wrong.
void walk_precise(const std::uint8_t* buf, const std::uint32_t* pos, const std::uint8_t* last,
                  std::size_t shift, std::size_t max_depth, std::vector<char>& stack, structure_report& out) {
    constexpr std::size_t max_reported = 50;
    if (stack.size() < max_depth) stack.resize(max_depth);
    std::size_t depth = 0;
    bool root_done = false;
    for (; buf + *pos <= last; ++pos) {
        const char c = static_cast<char>(buf[*pos]);
        if (root_done) {
            out.kind = structure_report::fault::trailing;
            out.offset = shift + *pos;
            return;
        }
        switch (c) {
            case '[':
            case '{':
                if (depth < max_depth) {
                    stack[depth] = c;
                } else if (depth == max_depth && out.too_deep.size() < max_reported) {
                    out.too_deep.push_back(shift + *pos);
                }
                ++depth;
                break;
            case ']':
            case '}':
                if (depth == 0) {
                    out.kind = structure_report::fault::unbalanced_close;
                    out.offset = shift + *pos;
                    return;
                }
                --depth;
                // Past max_depth the opener was not kept; the document is
                // rejected for its depth anyway.
                if (depth < max_depth && stack[depth] != (c == ']' ? '[' : '{')) {
                    out.kind = structure_report::fault::mismatched;
                    out.offset = shift + *pos;
                    return;
                }
                if (depth == 0) root_done = true;
                break;
            default:
                if (depth == 0) root_done = true;  // a scalar document
                break;
        }
    }
    if (depth != 0) {
        out.kind = structure_report::fault::truncated;
        out.offset = shift + static_cast<std::size_t>(last - buf) + 1;
    }
}

// Per structural byte: bit 0 opens, bit 1 closes, bit 2 is an array
// bracket. Strings, scalars, ':' and ',' are 0.
constexpr std::array<std::uint8_t, 256> token_class = [] {
    std::array<std::uint8_t, 256> t{};
    t['{'] = 1;
    t['['] = 1 | 4;
    t['}'] = 2;
    t[']'] = 2 | 4;
    return t;
}();

// Nesting the fast pass tracks exactly: one bit per level in a register.
constexpr std::size_t fast_depth = 64;

}  // namespace

void check_structure(od::document& doc, const char* base, std::size_t max_depth, std::vector<char>& stack,
                     structure_report& out) {
    out = structure_report{};
    od::json_iterator& it = document_access::iterator_of(doc);
    const std::uint32_t* const root = it.root_position();
    const auto* last = it.peek_last();
    const auto* buf = it.peek(root) - *root;  // the token offsets are relative to the input start
    const std::size_t shift = static_cast<std::size_t>(reinterpret_cast<const char*>(buf) - base);

    // The fast pass keeps the open brackets as a bit stack in a register
    // (1 = array) and only notices that something is wrong, or nesting
    // deeper than it tracks; walk_precise() then says what and where. Most
    // tokens are strings, scalars, ':' or ',' and cost one table lookup.
    // (A branch-free variant measured slower: its dependency chain through
    // the bit stack outweighs the mispredicted brackets.)
    bool fine = false;
    const std::uint32_t* pos = root;
    if (const unsigned first = token_class[buf[*pos]]; !(first & 1)) {
        fine = first == 0 && buf + *pos == last;  // a scalar document is one token
    } else {
        std::uint64_t open = 0;
        std::size_t depth = 0, highest = 0;
        std::uint64_t bad = 0;
        for (; buf + *pos <= last; ++pos) {
            const unsigned k = token_class[buf[*pos]];
            if (k == 0) continue;
            if (k & 1) {
                open = (open << 1) | (k >> 2);
                highest = std::max(highest, ++depth);
            } else {
                bad |= (open & 1) ^ (k >> 2);  // closes the other kind
                open >>= 1;
                if (--depth == 0) break;  // the root closed
            }
        }
        fine = !bad && depth == 0 && buf + *pos == last && highest <= std::min(max_depth, fast_depth);
    }
    if (!fine) walk_precise(buf, root, last, shift, max_depth, stack, out);
}

std::size_t find_invalid_utf8(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        unsigned char lo = 0x80, hi = 0xbf;  // bounds of the second byte (RFC 3629 §4)
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else {
            return i;
        }
        if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
        for (std::size_t k = 2; k < len; ++k)
            if (p[i + k] < 0x80 || p[i + k] > 0xbf) return i;
        i += len;
    }
    return std::string_view::npos;
}

std::size_t find_bad_string(std::string_view s) {
    bool in_string = false;
    std::size_t start = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (!in_string) {
            if (c == '"') {
                in_string = true;
                start = i;
            }
        } else if (c == '\\') {
            ++i;
        } else if (c == '"') {
            in_string = false;
        } else if (c < 0x20) {
            return i;  // RFC 8259 §7: control characters must be escaped
        }
    }
    return in_string ? start : std::string_view::npos;
}

std::size_t find_bad_escape(std::string_view s) {
    const auto hex = [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    };
    const auto code_unit = [](const char* u) {  // the four hex digits after "\u"
        unsigned v = 0;
        for (int i = 2; i < 6; ++i) {
            const char c = u[i];
            v = v * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        return v;
    };
    const auto unicode_escape = [&](const char* u, const char* end) {
        return end - u >= 6 && u[0] == '\\' && u[1] == 'u' && hex(u[2]) && hex(u[3]) && hex(u[4]) &&
               hex(u[5]);
    };
    const char* const begin = s.data();
    const char* const end = begin + s.size();
    for (const char* p = begin;
         (p = static_cast<const char*>(std::memchr(p, '\\', static_cast<std::size_t>(end - p))));) {
        if (end - p < 2) return static_cast<std::size_t>(p - begin);
        switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p += 2;
                break;
            case 'u': {
                if (!unicode_escape(p, end)) return static_cast<std::size_t>(p - begin);
                // UTF-16 in JSON (RFC 8259 §7): a high surrogate escape must
                // be followed by a low one, and a low one cannot stand
                // alone. simdjson refuses such a string when it reads it,
                // so a page whose top-level key held "\ud83d\u0d0e" was
                // refused by fhir::read_page_meta and accepted here (found
                // by tests/fuzz/fuzz_normalize_document).
                const unsigned unit = code_unit(p);
                if (unit >= 0xDC00 && unit <= 0xDFFF) return static_cast<std::size_t>(p - begin);
                if (unit >= 0xD800 && unit <= 0xDBFF) {
                    const unsigned low = unicode_escape(p + 6, end) ? code_unit(p + 6) : 0;
                    if (low < 0xDC00 || low > 0xDFFF) return static_cast<std::size_t>(p - begin);
                    p += 6;
                }
                p += 6;
                break;
            }
            default:
                return static_cast<std::size_t>(p - begin);
        }
    }
    return std::string_view::npos;
}

std::optional<std::size_t> locate_entry(std::string_view json, std::size_t offset) {
    // A small state machine over the bytes: depth, strings, and the key
    // last seen at depth 1. Entries are the values at depth 2 of the array
    // that follows the top-level key "entry".
    std::size_t depth = 0;
    bool in_string = false;
    std::size_t string_start = 0;
    std::string_view last_key;
    bool in_entry_array = false;
    std::optional<std::size_t> entry;
    std::size_t count = 0;
    const std::size_t end = std::min(offset, json.size());
    for (std::size_t i = 0; i < end; ++i) {
        const char c = json[i];
        if (in_string) {
            if (c == '\\') {
                ++i;
            } else if (c == '"') {
                in_string = false;
                if (depth == 1) last_key = json.substr(string_start + 1, i - string_start - 1);
            }
            continue;
        }
        switch (c) {
            case '"':
                in_string = true;
                string_start = i;
                break;
            case '[':
            case '{':
                if (depth == 1 && c == '[' && last_key == "entry") in_entry_array = true;
                if (depth == 2 && in_entry_array) entry = count++;
                ++depth;
                break;
            case ']':
            case '}':
                if (depth > 0) --depth;
                if (depth == 1) in_entry_array = false;  // the entry array itself closed
                break;
            case ',':
                if (depth == 2 && in_entry_array) entry.reset();
                break;
            default:
                if (depth == 2 && in_entry_array && c != ' ' && c != '\n' && c != '\r' && c != '\t' &&
                    c != ':' && !entry)
                    entry = count++;  // a scalar entry (invalid, but an entry)
                break;
        }
    }
    if (!in_entry_array) return std::nullopt;
    return entry;
}

}  // namespace headachemd::normalize::detail
