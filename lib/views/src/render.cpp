// csv_record() and ndjson_record(): see render.hpp.
#include "headachemd/views/render.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <type_traits>

#include "headachemd/core/json.hpp"

namespace headachemd::views {
namespace {

// A JSON string (RFC 8259 §7) with the escaping every hand-written JSON of
// this program shares (core/json.hpp).
void json_string(std::string& out, std::string_view s) {
    out += '"';
    for (char c : s) append_json_escaped_byte(out, c);
    out += '"';
}

// The shortest text that reads back as the same double (std::to_chars).
std::string number(double d) {
    std::array<char, 32> buf{};
    auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), d);
    return ec == std::errc{} ? std::string(buf.data(), end) : std::string();
}

// A scalar as JSON.
void scalar_json(std::string& out, const scalar& s) {
    std::visit(
        [&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::monostate>) {
                out += "null";
            } else if constexpr (std::is_same_v<T, bool>) {
                out += x ? "true" : "false";
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                out += std::to_string(x);
            } else if constexpr (std::is_same_v<T, double>) {
                out += std::isfinite(x) ? number(x) : "null";
            } else if constexpr (std::is_same_v<T, std::string>) {
                json_string(out, x);
            } else {
                out += x.text;
            }
        },
        s);
}

void cell_json(std::string& out, const cell& c) {
    if (const auto* list = std::get_if<std::vector<scalar>>(&c)) {
        out += '[';
        for (std::size_t i = 0; i < list->size(); ++i) {
            if (i) out += ',';
            scalar_json(out, (*list)[i]);
        }
        out += ']';
        return;
    }
    std::visit(
        [&](const auto& x) {
            if constexpr (!std::is_same_v<std::decay_t<decltype(x)>, std::vector<scalar>>)
                scalar_json(out, x);
        },
        c);
}

std::string cell_text(const cell& c) {
    if (std::holds_alternative<std::monostate>(c)) return {};
    if (const auto* s = std::get_if<std::string>(&c)) return *s;
    if (const auto* d = std::get_if<double>(&c)) return std::isfinite(*d) ? number(*d) : std::string();
    std::string out;
    cell_json(out, c);
    return out;
}

void csv_field(std::string& out, std::string_view s) {
    if (s.find_first_of(",\"\r\n") == std::string_view::npos) {
        out += s;
        return;
    }
    out += '"';
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
}

}  // namespace

std::string csv_header(const std::vector<column_info>& columns) {
    std::string out;
    for (std::size_t i = 0; i < columns.size(); ++i) {
        if (i) out += ',';
        csv_field(out, columns[i].name);
    }
    return out + "\r\n";
}

std::string csv_record(const row& r) {
    std::string out;
    for (std::size_t i = 0; i < r.size(); ++i) {
        if (i) out += ',';
        csv_field(out, cell_text(r[i]));
    }
    return out + "\r\n";
}

std::string ndjson_record(const std::vector<column_info>& columns, const row& r) {
    std::string out = "{";
    for (std::size_t i = 0; i < columns.size() && i < r.size(); ++i) {
        if (i) out += ',';
        json_string(out, columns[i].name);
        out += ':';
        cell_json(out, r[i]);
    }
    return out + "}\n";
}

}  // namespace headachemd::views
