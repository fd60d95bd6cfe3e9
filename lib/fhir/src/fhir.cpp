#include "headachemd/fhir/fhir.hpp"

#include <cstdio>
#include <ctime>

#include "headachemd/http/url.hpp"

namespace headachemd::fhir {
namespace {

namespace od = simdjson::ondemand;

// RFC 3986 query encoding for FHIR search values. A ',' stays literal:
// FHIR uses it to separate OR values (R4 §3.1.1.1.1 "Composite search"),
// and a server that honours RFC 3986 reads %2C as data, not as a
// separator. ':' is allowed in a query as is (RFC 3986 §3.4) and keeps
// instants readable. A space is %20, never '+', which only form bodies use.
void append_query_encoded(std::string& out, std::string_view value) {
    static constexpr char hex[] = "0123456789ABCDEF";
    for (const unsigned char c : value) {
        const bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                          c == '-' || c == '.' || c == '_' || c == '~' || c == ',' || c == ':';
        if (keep) {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xf]);
        }
    }
}

}  // namespace

std::string search_url(const search_spec& s) {
    std::vector<std::pair<std::string, std::string>> params;
    params.emplace_back(s.patient_param, s.patient_id);
    for (const auto& p : s.extra) params.push_back(p);
    if (s.count) params.emplace_back("_count", std::to_string(*s.count));
    if (s.last_updated_gt) params.emplace_back("_lastUpdated", "gt" + *s.last_updated_gt);
    std::string url = s.fhir_base + "/" + s.resource_type;
    char sep = '?';
    for (const auto& [name, value] : params) {
        url.push_back(sep);
        sep = '&';
        append_query_encoded(url, name);
        url.push_back('=');
        append_query_encoded(url, value);
    }
    return url;
}

std::string with_query_param(std::string_view url, std::string_view name, std::string_view value) {
    std::string out(url);
    out.push_back(url.find('?') == std::string_view::npos ? '?' : '&');
    append_query_encoded(out, name);
    out.push_back('=');
    append_query_encoded(out, value);
    return out;
}

result<page_meta> read_page_meta(simdjson::padded_string_view json) {
    // RFC 8259 §8.1: a parser may ignore a byte order mark, and the
    // normalizer does; without the same here, a page it would accept was
    // rejected before it got there (found by tests/fuzz).
    if (std::string_view(json.data(), json.size()).starts_with("\xEF\xBB\xBF"))
        json = simdjson::padded_string_view(json.data() + 3, json.size() - 3, json.capacity() - 3);
    od::parser parser;
    od::document doc;
    od::object obj;
    if (auto err = parser.iterate(json).get(doc))
        return error{errc::bad_json, std::string("page is not valid JSON: ") + simdjson::error_message(err)};
    if (doc.get_object().get(obj)) return error{errc::bad_json, "page is not a JSON object"};
    page_meta m;
    for (auto field : obj) {
        std::string_view key;
        if (auto err = field.unescaped_key().get(key))
            return error{errc::bad_json,
                         std::string("page is not valid JSON: ") + simdjson::error_message(err)};
        od::value v = field.value();
        if (key == "resourceType") {
            std::string_view t;
            if (!v.get_string().get(t)) m.resource_type = t;
        } else if (key == "total") {
            std::int64_t n = 0;
            if (!v.get_int64().get(n)) m.total = n;
        } else if (key == "link") {
            od::array links;
            if (v.get_array().get(links)) continue;
            for (auto l : links) {
                od::object lo;
                if (l.get_object().get(lo)) continue;
                std::string relation, url;
                for (auto lf : lo) {
                    std::string_view lk, lv;
                    if (lf.unescaped_key().get(lk)) continue;
                    if (lf.value().get_string().get(lv)) continue;
                    if (lk == "relation")
                        relation = lv;
                    else if (lk == "url")
                        url = lv;
                }
                if (relation == "next" && !url.empty()) m.next = url;
            }
        } else if (key == "entry") {
            od::array entries;
            if (v.get_array().get(entries)) continue;
            for (auto en : entries) {
                page_meta::entry_meta em;
                od::object eo;
                if (!en.get_object().get(eo)) {
                    for (auto ef : eo) {
                        std::string_view ek;
                        if (ef.unescaped_key().get(ek)) continue;
                        od::object inner;
                        if ((ek != "resource" && ek != "search") || ef.value().get_object().get(inner))
                            continue;
                        std::string_view text;
                        if (ek == "resource") {
                            if (!inner.find_field_unordered("resourceType").get_string().get(text))
                                em.resource_type = text;
                        } else if (!inner.find_field_unordered("mode").get_string().get(text)) {
                            em.search_mode = text;
                        }
                    }
                }
                m.entries.push_back(std::move(em));
            }
        } else if (key == "issue") {
            od::array issues;
            if (v.get_array().get(issues)) continue;
            for (auto i : issues) {
                od::object io;
                if (i.get_object().get(io)) continue;
                std::string severity, code;
                for (auto f : io) {
                    std::string_view k, s;
                    if (f.unescaped_key().get(k)) continue;
                    if ((k == "severity" || k == "code") && !f.value().get_string().get(s))
                        (k == "severity" ? severity : code) = s;
                }
                if (!m.outcome_summary.empty()) m.outcome_summary += "; ";
                m.outcome_summary += severity + " " + code;
            }
        }
    }
    // Full validation (brackets, trailing bytes, depth) is the normalizer's,
    // which reads the same page next and rejects it whole.
    if (m.resource_type.empty()) return error{errc::bad_json, "page has no resourceType"};
    return m;
}

bool capabilities::supports(std::string_view type, std::string_view param) const {
    auto it = search_params.find(type);
    return it != search_params.end() && it->second.count(std::string(param)) > 0;
}

bool capabilities::serves(std::string_view type) const {
    return search_params.find(type) != search_params.end();
}

result<capabilities> parse_capability_statement(std::string_view json) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(json).get(doc)) return error{errc::bad_json, "CapabilityStatement is not valid JSON"};
    std::string_view rt;
    if (doc["resourceType"].get(rt) || rt != "CapabilityStatement")
        return error{errc::bad_capability, "metadata did not return a CapabilityStatement"};
    capabilities c;
    simdjson::dom::array rest;
    if (doc["rest"].get(rest)) return c;
    for (auto r : rest) {
        std::string_view mode;
        if (!r["mode"].get(mode) && mode != "server") continue;
        simdjson::dom::array resources;
        if (r["resource"].get(resources)) continue;
        for (auto res : resources) {
            std::string_view type;
            if (res["type"].get(type)) continue;
            auto& params = c.search_params[std::string(type)];
            simdjson::dom::array sps;
            if (res["searchParam"].get(sps)) continue;
            for (auto sp : sps) {
                std::string_view name;
                if (!sp["name"].get(name)) params.insert(std::string(name));
            }
        }
    }
    return c;
}

action classify_status(int status) {
    if (status >= 200 && status < 300) return action::use;
    if (status == 401) return action::refresh_token;
    if (status == 403) return action::not_permitted;
    if (status == 404) return action::not_found;
    if (status == 429 || status == 503) return action::wait_and_retry;
    if (status >= 500) return action::retry;
    return action::fail;
}

std::string last_updated_with_overlap(std::string_view cursor, std::chrono::seconds overlap) {
    // Parse the leading YYYY-MM-DDThh:mm:ss and an optional zone; the
    // result is UTC. Anything we cannot read falls back to no filter at all
    // (a full pull is always correct, only slower). The text comes from the
    // server (meta.lastUpdated, unchecked by the normalizer), so every
    // digit is checked here: strptime alone accepts "2024-1-1T1:1:1".
    const auto digits = [&](std::size_t from, std::size_t n) {
        for (std::size_t i = from; i < from + n; ++i)
            if (i >= cursor.size() || cursor[i] < '0' || cursor[i] > '9') return false;
        return true;
    };
    if (cursor.size() < 19 || !digits(0, 4) || cursor[4] != '-' || !digits(5, 2) || cursor[7] != '-' ||
        !digits(8, 2) || cursor[10] != 'T' || !digits(11, 2) || cursor[13] != ':' || !digits(14, 2) ||
        cursor[16] != ':' || !digits(17, 2))
        return "";
    std::tm tm{};
    int offset_seconds = 0;
    const std::string c(cursor);
    if (!strptime(c.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return "";
    std::size_t zone = 19;
    if (zone < c.size() && c[zone] == '.')
        while (zone < c.size() && (c[zone] == '.' || (c[zone] >= '0' && c[zone] <= '9'))) ++zone;
    if (zone < c.size() && (c[zone] == '+' || c[zone] == '-')) {
        // FHIR instant zone: (+|-)hh:mm. Anything else is unreadable (it
        // once reached std::stoi, which threw on "+ab:cd").
        if (!digits(zone + 1, 2) || zone + 3 >= c.size() || c[zone + 3] != ':' || !digits(zone + 4, 2))
            return "";
        const int h = (c[zone + 1] - '0') * 10 + (c[zone + 2] - '0');
        const int m = (c[zone + 4] - '0') * 10 + (c[zone + 5] - '0');
        offset_seconds = (c[zone] == '+' ? 1 : -1) * (h * 3600 + m * 60);
    }
    const std::time_t t = timegm(&tm) - offset_seconds - overlap.count();
    std::tm out{};
    if (!gmtime_r(&t, &out)) return "";
    // An instant has a four-digit year, 0001-9999 (FHIR R4 datatypes):
    // write year 224 as 0224 (strftime wrote "224"), and when the shift
    // leaves that range (9999-12-31T23:59:59-01:00 is in year 10000) there
    // is no valid _lastUpdated: pull everything instead.
    const int year = out.tm_year + 1900;
    if (year < 1 || year > 9999) return "";
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", year, out.tm_mon + 1, out.tm_mday,
                  out.tm_hour, out.tm_min, out.tm_sec);
    return buf;
}

}  // namespace headachemd::fhir
