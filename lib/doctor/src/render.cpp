#include <algorithm>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "headachemd/doctor/doctor.hpp"

namespace headachemd::doctor {
namespace {

std::string label(severity s, bool color) {
    const char* text = "ok";
    const char* code = "32";
    switch (s) {
        case severity::ok:
            break;
        case severity::info:
            text = "info", code = "36";
            break;
        case severity::warning:
            text = "WARNING", code = "33";
            break;
        case severity::error:
            text = "ERROR", code = "31;1";
            break;
    }
    const std::string padded = fmt::format("{:<8}", text);
    return color ? fmt::format("\x1b[{}m{}\x1b[0m", code, padded) : padded;
}

// A text wrapped at `width` columns (0: not wrapped). The caller has
// printed `pad` before it; every further line starts with `pad`. Its own
// line breaks are kept with their leading spaces, and an indented line (a
// numbered cause) continues under its text.
std::string wrap(std::string_view text, std::string_view pad, std::size_t width) {
    std::string out;
    std::string hang(pad);
    std::size_t column = pad.size();
    bool line_start = true;
    std::size_t i = 0;
    while (i < text.size()) {
        if (text[i] == '\n') {
            out += '\n';
            out += pad;
            ++i;
            std::size_t lead = 0;
            while (i < text.size() && text[i] == ' ') out.push_back(text[i++]), ++lead;
            column = pad.size() + lead;
            hang = std::string(pad) + std::string(lead, ' ') + (lead > 0 ? "   " : "");
            line_start = true;
            continue;
        }
        const std::size_t end = std::min(text.find_first_of(" \n", i), text.size());
        const std::string_view word = text.substr(i, end - i);
        if (!line_start) {
            if (width > 0 && column + 1 + word.size() > width) {
                out += '\n';
                out += hang;
                column = hang.size();
            } else {
                out.push_back(' ');
                ++column;
            }
        }
        out += word;
        column += word.size();
        line_start = false;
        i = end;
        while (i < text.size() && text[i] == ' ') ++i;
    }
    return out;
}

}  // namespace

std::string render_report(const report& rep, bool color, std::size_t width) {
    std::string out;
    constexpr topic order[] = {topic::discovery, topic::server, topic::request,   topic::client,
                               topic::files,     topic::clock,  topic::authorize, topic::bulk};
    const std::string pad(12, ' ');
    for (const auto t : order) {
        bool header = false;
        for (const auto& f : rep.findings) {
            if (f.area != t) continue;
            if (!header) {
                out +=
                    fmt::format("\n{}{}{}\n", color ? "\x1b[1m" : "", to_string(t), color ? "\x1b[0m" : "");
                header = true;
            }
            out += "  " + label(f.level, color) + "  " + f.what + "\n";
            if (f.level == severity::ok) continue;  // an ok needs no explanation
            if (!f.why.empty()) out += pad + wrap(f.why, pad, width) + "\n";
            if (!f.fix.empty()) out += pad + wrap("fix: " + f.fix, pad, width) + "\n";
        }
    }
    out += fmt::format("\n{} error(s), {} warning(s), {} note(s), {} ok\n", rep.count(severity::error),
                       rep.count(severity::warning), rep.count(severity::info), rep.count(severity::ok));
    return out;
}

}  // namespace headachemd::doctor
