#include "bulk_export.hpp"

#include <algorithm>

#include "json_writer.hpp"

namespace headachemd::sandbox::detail {

namespace {

constexpr std::string_view export_op = "$export";

// The comma-separated items of a header or parameter value, trimmed of
// spaces and tabs (RFC 9110 §5.6.1 lists).
std::vector<std::string_view> split_list(std::string_view s) {
    std::vector<std::string_view> out;
    while (true) {
        const auto comma = s.find(',');
        std::string_view item = s.substr(0, comma);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        out.push_back(item);
        if (comma == std::string_view::npos) return out;
        s.remove_prefix(comma + 1);
    }
}

// The part before any ';' (media-type or preference parameters), trimmed.
std::string_view head_of(std::string_view item) {
    item = item.substr(0, item.find(';'));
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    return item;
}

export_refusal invalid(std::string diagnostics) { return {400, "invalid", std::move(diagnostics)}; }

}  // namespace

std::optional<export_target> parse_export_path(std::string_view path) {
    if (path == "/fhir/$export") return export_target{export_level::system, {}};
    if (path == "/fhir/Patient/$export") return export_target{export_level::patient, {}};
    constexpr std::string_view group = "/fhir/Group/";
    if (path.substr(0, group.size()) != group) return std::nullopt;
    std::string_view rest = path.substr(group.size());
    const auto slash = rest.find('/');
    if (slash == 0 || slash == std::string_view::npos || rest.substr(slash + 1) != export_op)
        return std::nullopt;
    return export_target{export_level::group, std::string(rest.substr(0, slash))};
}

std::optional<time_point> parse_instant(std::string_view s) {
    // parse_fhir_date_range takes any precision; an instant must name the
    // second and a zone ("YYYY-MM-DDThh:mm:ss" is 19 characters, then the
    // fraction or the zone).
    if (s.size() < 20 || s[10] != 'T' || s[16] != ':') return std::nullopt;
    const char zone = s.back();
    if (zone != 'Z' && s.find_first_of("+-", 19) == std::string_view::npos) return std::nullopt;
    const auto range = parse_fhir_date_range(s);
    if (!range) return std::nullopt;
    return range->first;
}

std::variant<export_params, export_refusal> check_kickoff(std::string_view accept, std::string_view prefer,
                                                          const params& query,
                                                          const std::vector<rtype>& served) {
    // IG v2.0.0 "Headers": Accept is application/fhir+json (the format of
    // an OperationOutcome); without it a server MAY refuse, and the sandbox
    // does, so a client that omits it is caught here and not at an EHR.
    const auto accepts = split_list(accept);
    if (std::none_of(accepts.begin(), accepts.end(),
                     [](std::string_view a) { return iequals(head_of(a), "application/fhir+json"); }))
        return invalid("Accept: application/fhir+json is required for $export");
    // Prefer: respond-async is required; handling=lenient (v2) asks the
    // server to ignore parameters it does not support.
    export_params out;
    bool async = false;
    for (const auto item : split_list(prefer)) {
        const auto h = head_of(item);
        async = async || iequals(h, "respond-async");
        out.lenient = out.lenient || iequals(h, "handling=lenient");
    }
    if (!async) return invalid("Prefer: respond-async is required for $export");

    for (const auto& [name, value] : query) {
        if (name == "_type") {
            if (count_param(query, "_type") != 1)
                return invalid("Send _type once, as a comma-separated list");
            for (const auto item : split_list(value)) {
                const auto t = parse_rtype(item);
                if (!t || std::find(served.begin(), served.end(), *t) == served.end())
                    return invalid("_type names a type this server does not export: " + std::string(item));
                if (std::find(out.types.begin(), out.types.end(), *t) == out.types.end())
                    out.types.push_back(*t);
            }
        } else if (name == "_since") {
            if (count_param(query, "_since") != 1) return invalid("Send _since once");
            out.since = parse_instant(value);
            // A '+' in an unencoded zone arrives as a space (form decoding).
            if (!out.since)
                return invalid(
                    "_since must be a FHIR instant (YYYY-MM-DDThh:mm:ss[.sss]Z or ±hh:mm, '+' "
                    "percent-encoded): " +
                    value);
        } else if (name == "_outputFormat") {
            // IG v2.0.0: servers SHALL support NDJSON under these three names.
            if (value != "application/fhir+ndjson" && value != "application/ndjson" && value != "ndjson")
                return invalid("_outputFormat must be application/fhir+ndjson");
        } else if (!out.lenient) {
            return invalid(
                "Parameter not supported by this server (send Prefer: handling=lenient to "
                "have it ignored): " +
                name);
        }
    }
    return out;
}

bool scope_reads(std::string_view scope, std::string_view context, rtype t) {
    const std::string_view name = rtype_name(t);
    std::size_t i = 0;
    while (i < scope.size()) {
        while (i < scope.size() && scope[i] == ' ') ++i;
        const std::size_t j = std::min(scope.find(' ', i), scope.size());
        const std::string_view word = scope.substr(i, j - i);
        i = j;
        if (word.size() <= context.size() || word.substr(0, context.size()) != context ||
            word[context.size()] != '/')
            continue;
        const std::string_view rest = word.substr(context.size() + 1);
        const auto dot = rest.find('.');
        if (dot == std::string_view::npos) continue;
        const std::string_view type = rest.substr(0, dot);
        const std::string_view access = rest.substr(dot + 1);
        if (type != "*" && type != name) continue;
        // v1: read or *; v2: a cruds string, where reading needs r and
        // searching s; one of them is enough for the sandbox.
        if (access == "read" || access == "*") return true;
        if (!access.empty() && access.find_first_not_of("cruds") == std::string_view::npos &&
            access.find_first_of("rs") != std::string_view::npos)
            return true;
    }
    return false;
}

void append_ndjson_line(std::string& out, std::string_view resource_json) {
    out.append(resource_json);
    out.push_back('\n');
}

void append_copies(std::string& out, std::size_t& count, std::string_view originals, std::size_t min_bytes) {
    constexpr std::string_view id_member = "\"id\":\"";
    constexpr std::size_t max_id = 64;  // FHIR R4 id: [A-Za-z0-9\-\.]{1,64}
    // Where each copyable line's id ends, found once.
    struct line {
        std::string_view text;
        std::size_t id_end;
    };
    std::vector<line> lines;
    std::size_t longest_id = 0;
    for (std::size_t start = 0; start < originals.size();) {
        std::size_t end = originals.find('\n', start);
        if (end == std::string_view::npos) end = originals.size();
        const std::string_view text = originals.substr(start, end - start);
        start = end + 1;
        const auto at = text.find(id_member);
        if (at == std::string_view::npos) continue;
        const auto id_begin = at + id_member.size();
        const auto id_end = text.find('"', id_begin);
        if (id_end == std::string_view::npos) continue;
        longest_id = std::max(longest_id, id_end - id_begin);
        lines.push_back({text, id_end});
    }
    if (lines.empty()) return;
    for (std::size_t n = 1; out.size() < min_bytes; ++n) {
        const std::string suffix = "-c" + std::to_string(n);
        if (longest_id + suffix.size() > max_id) return;
        for (const auto& l : lines) {
            out.append(l.text.substr(0, l.id_end)).append(suffix).append(l.text.substr(l.id_end));
            out.push_back('\n');
            ++count;
        }
    }
}

std::string operation_outcome_json(std::string_view severity, std::string_view code,
                                   std::string_view diagnostics) {
    json_writer w;
    w.begin_object().member("resourceType", "OperationOutcome");
    w.key("issue").begin_array().begin_object();
    w.member("severity", severity).member("code", code).member("diagnostics", diagnostics);
    w.end_object().end_array().end_object();
    return w.take();
}

std::string delete_bundle(std::string_view type, const std::vector<std::string>& ids) {
    json_writer w;
    w.begin_object().member("resourceType", "Bundle").member("type", "transaction");
    w.key("entry").begin_array();
    for (const auto& id : ids) {
        w.begin_object().key("request").begin_object();
        w.member("method", "DELETE").member("url", std::string(type) + "/" + id);
        w.end_object().end_object();
    }
    w.end_array().end_object();
    return w.take();
}

std::string render_manifest(const manifest& m) {
    json_writer w;
    w.begin_object();
    // The instant the export's data reflects: the client's next _since.
    w.member("transactionTime", format_instant(m.transaction_time));
    w.member("request", m.request);
    w.member("requiresAccessToken", true);
    const auto files = [&w](std::string_view key, const std::vector<manifest_file>& list) {
        w.key(key).begin_array();
        for (const auto& f : list)
            w.begin_object()
                .member("type", f.type)
                .member("url", f.url)
                .member("count", f.count)
                .end_object();
        w.end_array();
    };
    files("output", m.output);
    // v1.0.1 and v2: error[] is required, empty when nothing went wrong.
    files("error", m.error);
    // deleted[] is new in v2; a v1.0.1 server never sends it.
    if (m.form == manifest_form::v2) files("deleted", m.deleted);
    w.end_object();
    return w.take();
}

}  // namespace headachemd::sandbox::detail
