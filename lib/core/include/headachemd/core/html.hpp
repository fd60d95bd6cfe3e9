// HTML escaping for the pages this program writes: the enrollment callback
// page and the analyst report.
#pragma once

#include <string>
#include <string_view>

namespace headachemd {

// &, <, >, " and ' as entities: safe in element text and quoted attributes.
inline std::string html_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (const char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

}  // namespace headachemd
