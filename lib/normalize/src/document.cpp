// Documents, Bundles and NDJSON lines: the outer structure, problem
// locations, and the references that can only be resolved once a whole
// document has been read.
//
// Two parsers. The outer one iterates the document: Bundle.type and, per
// entry, fullUrl, request/response and the resource's resourceType and id.
// Each resource of a type we normalize is then parsed again on its own by
// the inner parser, from the exact bytes the outer one found (raw_json(), a
// view into the caller's buffer: the same bytes are hashed for raw_hash).
// A type we skip costs only the outer pass: it is neither re-parsed nor
// hashed. A single resource (a file or an NDJSON line) needs no second
// parse: the outer document is rewound and read directly.
//
// Choices where FHIR or the input leaves room, all visible in the tests:
// - Entries are counted from 0, as FHIRPath indexes Bundle.entry.
// - An entry without a resource is a problem, except where R4 bdl-5 allows
//   it: a transaction/batch request that carries no body (GET, HEAD,
//   DELETE), or an entry with a `response` (batch-response,
//   transaction-response, history). Those are skipped silently.
// - A resource without an id is a problem, except in a transaction or batch
//   Bundle whose entry fullUrl is urn:uuid:X (R4 Bundle.entry.fullUrl: the
//   urn:uuid identifies a resource the server has not named yet); its id is
//   then X. Skipped types need no id: nothing is stored for them.
// - A urn:uuid reference that no entry's fullUrl matches keeps the uuid as
//   the id, so rows from one transaction still join on the patient.
// - A Bundle inside a Bundle is counted as a skipped "Bundle"; it is not
//   descended into (R4 allows it only for document/message contents, which
//   we do not normalize).
// - Structure (brackets, strings, UTF-8, depth) is checked over the whole
//   document; the grammar of values no reader visits (a missing comma
//   inside an unread field) is left to simdjson On-Demand, which does not
//   check it when skipping.
#include <algorithm>
#include <map>
#include <string>
#include <unordered_map>

#include "common.hpp"
#include "headachemd/normalize/sha256.hpp"

namespace headachemd::normalize {

using namespace detail;

namespace {

constexpr std::size_t max_problems = 50;

bool full(const result& out) { return out.problems.size() > max_problems; }

void add_problem(result& out, std::string where, std::string message) {
    if (out.problems.size() < max_problems) {
        out.problems.push_back({std::move(where), std::move(message)});
    } else if (out.problems.size() == max_problems) {
        out.problems.push_back({std::move(where),
                                "more than 50 problems; this one and any later ones are not "
                                "listed"});
    }
}

// Where a problem is, in words a person can follow to the bytes.
struct locator {
    enum class kind { document, entry, line } k = kind::document;
    std::size_t n = 0;

    std::string where(std::string_view type = {}, std::string_view id = {}) const {
        std::string s;
        if (k == kind::entry) s = "entry " + std::to_string(n);
        if (k == kind::line) s = "line " + std::to_string(n);
        if (!type.empty()) {
            // Both come from the input: an unknown type or a bad id may be
            // any text of any size.
            std::string t = shown_in_message(type);
            if (!id.empty()) t += "/" + shown_in_message(id);
            if (s.empty()) return t;
            s += " (" + t + ")";
        }
        if (s.empty()) s = "document";
        return s;
    }
};

enum class bundle_type {
    unknown,
    document,
    message,
    transaction,
    transaction_response,
    batch,
    batch_response,
    history,
    searchset,
    collection
};

bundle_type bundle_type_of(std::string_view t) {
    if (t == "searchset") return bundle_type::searchset;
    if (t == "collection") return bundle_type::collection;
    if (t == "transaction") return bundle_type::transaction;
    if (t == "transaction-response") return bundle_type::transaction_response;
    if (t == "batch") return bundle_type::batch;
    if (t == "batch-response") return bundle_type::batch_response;
    if (t == "history") return bundle_type::history;
    if (t == "document") return bundle_type::document;
    if (t == "message") return bundle_type::message;
    return bundle_type::unknown;
}

// What the outer pass learned about one Bundle.entry. Views point into the
// input or the outer parser's string buffer: valid for the whole document.
struct entry_info {
    std::size_t index = 0;
    std::string_view full_url, type, id, request_method;
    std::string_view raw;  // the resource's exact bytes
    std::string_view effective_id;
    bool has_resource = false, has_request = false, has_response = false;
    std::string problem;  // set when the entry's own shape is wrong
};

std::string found(od::value& v) {
    od::json_type t{};
    if (v.type().get(t)) return "something else";
    return std::string(json_type_name(t));
}

bool is_json_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_json_space(s.front())) s.remove_prefix(1);
    return trim_json_space(s);
}

std::string at_offset(std::size_t off) { return " at byte offset " + std::to_string(off); }

// ++counts[type] without building a std::string once the type is known.
void count(std::map<std::string, std::size_t, std::less<>>& counts, std::string_view type) {
    if (const auto it = counts.find(type); it != counts.end()) {
        ++it->second;
        return;
    }
    counts.emplace(std::string(type), 1);
}

// A transparent hash so string_view lookups need no temporary string.
struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

}  // namespace

struct normalizer::impl {
    explicit impl(options o) : opts(std::move(o)) {}

    options opts;

    bool wants_raw(std::string_view type) const {
        for (const auto& t : opts.raw_for_types)
            if (t == type) return true;
        return false;
    }
    // A type we do not normalize becomes a bare_record only when a view
    // reads it; any other costs what it cost before (one type comparison
    // per listed view type).
    resource_kind kind_with_views(std::string_view type) const {
        const resource_kind k = kind_of(type);
        return k == resource_kind::other && wants_raw(type) ? resource_kind::bare : k;
    }
    od::parser outer;  // the document or line
    od::parser inner;  // one Bundle entry's resource
    scratch s;
    resource_ctx ctx{s};
    std::vector<char> depth_stack;
    structure_report structure;
    std::vector<bool> deep_reported;

    std::vector<entry_info> entries;
    std::string root_type;  // resourceType of the document, copied before rewind()

    struct pending_patient {
        std::size_t record;
        std::vector<actor_candidate> actors;  // empty: a subject reference in patient_ref
    };
    std::vector<pending_patient> pending_patients;
    std::vector<std::size_t> pending_medications;

    // The Medication index: "Medication/<id>" and fullUrl → meds slot.
    std::vector<medication_info> meds;
    std::unordered_map<std::string, std::size_t, string_hash, std::equal_to<>> med_index;

    void begin() {
        entries.clear();
        pending_patients.clear();
        pending_medications.clear();
        structure = structure_report{};
        deep_reported.clear();
    }

    // --- input-level checks ---------------------------------------------------

    // Runs stage 1 and the structural check. False (with a problem) when
    // the document cannot be read at all.
    bool open(simdjson::padded_string_view in, std::string_view original, const locator& loc,
              od::document& doc, result& out) {
        if (const auto e = outer.iterate(in).get(doc)) {
            report_parse_error(e, original, loc, out);
            return false;
        }
        check_structure(doc, original.data(), opts.max_depth, depth_stack, structure);
        deep_reported.assign(structure.too_deep.size(), false);
        using fault = structure_report::fault;
        if (structure.kind == fault::none) {
            // An invalid escape in a string we never read would otherwise
            // pass, and its raw bytes would be kept (store_raw), where SQLite's
            // json functions refuse them (found by tests/fuzz).
            const std::size_t bad = find_bad_escape(original);
            if (bad == std::string_view::npos) return true;
            add_problem(out, where_of_offset(original, bad, loc),
                        "malformed JSON: a backslash that starts no valid escape sequence" + at_offset(bad));
            return false;
        }
        // A truncated input is reported where it ends, which is where a
        // person looks for the cut.
        const std::size_t off =
            structure.kind == fault::truncated ? trim_json_space(original).size() : structure.offset;
        std::string msg;
        switch (structure.kind) {
            case fault::unbalanced_close:
                msg = "malformed JSON: a closing bracket with nothing open" + at_offset(off);
                break;
            case fault::mismatched:
                msg = std::string("malformed JSON: '") + original[off] +
                      "' closes a bracket of the other kind" + at_offset(off);
                break;
            case fault::truncated:
                msg = "truncated JSON: the input ends inside an unclosed object or array" + at_offset(off);
                break;
            case fault::trailing:
                msg = "malformed JSON: more content after the end of the top-level value" + at_offset(off);
                break;
            case fault::none:
                break;
        }
        add_problem(out, where_of_offset(original, off, loc), std::move(msg));
        return false;
    }

    std::string where_of_offset(std::string_view original, std::size_t off, const locator& loc) const {
        if (loc.k != locator::kind::document) return loc.where();
        if (const auto entry = locate_entry(original, off))
            return locator{locator::kind::entry, *entry}.where();
        return loc.where();
    }

    void report_parse_error(simdjson::error_code e, std::string_view original, const locator& loc,
                            result& out) {
        std::size_t off = std::string_view::npos;
        std::string msg;
        if (e == simdjson::UTF8_ERROR) {
            off = find_invalid_utf8(original);
            msg = "invalid UTF-8 (FHIR JSON must be UTF-8)";
        } else if (e == simdjson::UNCLOSED_STRING || e == simdjson::UNESCAPED_CHARS) {
            off = find_bad_string(original);
            msg = std::string("malformed JSON: ") + simdjson::error_message(e);
        } else if (e == simdjson::CAPACITY || e == simdjson::MEMALLOC) {
            msg = std::string("document too large to parse: ") + simdjson::error_message(e);
        } else {
            msg = std::string("malformed JSON: ") + simdjson::error_message(e);
        }
        if (off != std::string_view::npos) {
            msg += at_offset(off);
            add_problem(out, where_of_offset(original, off, loc), std::move(msg));
        } else {
            add_problem(out, loc.where(), std::move(msg));
        }
    }

    // An error of the outer iteration after the structure check passed
    // (a missing comma or colon where we read).
    void report_iteration_error(simdjson::error_code e, od::document& doc, std::string_view original,
                                const locator& loc, result& out) {
        std::string msg = std::string("malformed JSON: ") + simdjson::error_message(e);
        const char* p = nullptr;
        if (!doc.current_location().get(p) && p >= original.data() && p <= original.data() + original.size())
            msg += at_offset(static_cast<std::size_t>(p - original.data()));
        add_problem(out, loc.where(), std::move(msg));
    }

    // True (and a problem) when `raw` holds nesting deeper than max_depth.
    bool too_deep(std::string_view raw, std::string_view original, const locator& loc, std::string_view type,
                  std::string_view id, result& out) {
        const std::size_t begin = static_cast<std::size_t>(raw.data() - original.data());
        const std::size_t end = begin + raw.size();
        for (std::size_t i = 0; i < structure.too_deep.size(); ++i) {
            const std::size_t off = structure.too_deep[i];
            if (off < begin || off >= end) continue;
            deep_reported[i] = true;
            add_problem(
                out, loc.where(type, id),
                "JSON nested deeper than " + std::to_string(opts.max_depth) + " levels" + at_offset(off));
            return true;
        }
        return false;
    }

    void report_remaining_depth(std::string_view original, const locator& loc, result& out) {
        for (std::size_t i = 0; i < structure.too_deep.size(); ++i) {
            if (deep_reported[i]) continue;
            const std::size_t off = structure.too_deep[i];
            add_problem(
                out, where_of_offset(original, off, loc),
                "JSON nested deeper than " + std::to_string(opts.max_depth) + " levels" + at_offset(off));
        }
    }

    // --- one resource --------------------------------------------------------------

    // Reads `obj` (a resource of `kind`) into a record or the Medication index.
    // `fallback_id` is the urn:uuid id a transaction entry may use.
    void normalize_object(resource_kind kind, od::object& obj, std::string_view type,
                          std::string_view known_id, std::string_view fallback_id, std::string_view full_url,
                          std::string_view raw, const locator& loc, result& out) {
        ctx.reset();
        if (kind == resource_kind::medication) {
            medication_info info;
            if (!read_medication(obj, ctx, info)) {
                add_problem(out, loc.where(type, known_id), ctx.failure());
                return;
            }
            if (info.id.empty()) info.id.assign(fallback_id);
            add_medication(std::move(info), full_url);
            return;
        }

        record& rec = emplace_record(kind, out);
        bool ok = false;
        std::visit(
            [&](auto& r) {
                using T = std::decay_t<decltype(r)>;
                if constexpr (std::is_same_v<T, patient_record>)
                    ok = read_patient(obj, ctx, r);
                else if constexpr (std::is_same_v<T, condition_record>)
                    ok = read_condition(obj, ctx, r);
                else if constexpr (std::is_same_v<T, medication_request_record>)
                    ok = read_medication_request(obj, ctx, r);
                else if constexpr (std::is_same_v<T, appointment_record>)
                    ok = read_appointment(obj, ctx, r);
                else if constexpr (std::is_same_v<T, encounter_record>)
                    ok = read_encounter(obj, ctx, r);
                else if constexpr (std::is_same_v<T, observation_record>)
                    ok = read_observation(obj, ctx, r);
                else if constexpr (std::is_same_v<T, procedure_record>)
                    ok = read_procedure(obj, ctx, r);
                else
                    ok = read_bare(obj, ctx, r);
            },
            rec);
        header& h = header_of(rec);
        if (!ok) {
            add_problem(out, loc.where(type, h.id.empty() ? known_id : std::string_view(h.id)),
                        ctx.failure());
            out.records.pop_back();
            return;
        }
        if (h.id.empty()) h.id.assign(fallback_id);
        if (h.id.empty()) {
            add_problem(out, loc.where(type), "resource has no id (every stored row needs Resource.id)");
            out.records.pop_back();
            return;
        }
        if (kind == resource_kind::patient) h.patient_ref = h.id;
        if (auto* b = std::get_if<bare_record>(&rec)) b->resource_type.assign(type);
        h.raw_hash = sha256_hex(raw);
        if (opts.keep_raw || wants_raw(type)) h.raw.assign(raw);
        const std::size_t index = out.records.size() - 1;
        if (ctx.patient_pending) pending_patients.push_back({index, std::move(ctx.actors)});
        if (ctx.medication_pending) pending_medications.push_back(index);
    }

    static record& emplace_record(resource_kind kind, result& out) {
        switch (kind) {
            case resource_kind::patient:
                return out.records.emplace_back(std::in_place_type<patient_record>);
            case resource_kind::condition:
                return out.records.emplace_back(std::in_place_type<condition_record>);
            case resource_kind::medication_request:
                return out.records.emplace_back(std::in_place_type<medication_request_record>);
            case resource_kind::appointment:
                return out.records.emplace_back(std::in_place_type<appointment_record>);
            case resource_kind::encounter:
                return out.records.emplace_back(std::in_place_type<encounter_record>);
            case resource_kind::observation:
                return out.records.emplace_back(std::in_place_type<observation_record>);
            case resource_kind::bare:
                return out.records.emplace_back(std::in_place_type<bare_record>);
            case resource_kind::procedure:
            case resource_kind::medication:
            case resource_kind::other:
                break;
        }
        return out.records.emplace_back(std::in_place_type<procedure_record>);
    }

    // --- the Medication index -------------------------------------------------------

    void add_medication(medication_info info, std::string_view full_url) {
        std::size_t slot = meds.size();
        std::string key;
        if (!info.id.empty()) {
            key = "Medication/" + info.id;
            if (const auto it = med_index.find(key); it != med_index.end())
                slot = it->second;  // a newer version
        }
        if (slot == meds.size())
            meds.push_back(std::move(info));
        else
            meds[slot] = std::move(info);
        if (!key.empty()) med_index.insert_or_assign(std::move(key), slot);
        if (!full_url.empty()) med_index.insert_or_assign(std::string(full_url), slot);
    }

    const medication_info* find_medication(std::string_view ref) const {
        if (const auto it = med_index.find(ref); it != med_index.end()) return &meds[it->second];
        const parsed_reference p = parse_reference(ref);
        if (p.kind != parsed_reference::form::literal || p.type != "Medication") return nullptr;
        std::string key = "Medication/";
        key += p.id;
        if (const auto it = med_index.find(key); it != med_index.end()) return &meds[it->second];
        return nullptr;
    }

    void resolve_medications(result& out) {
        for (const std::size_t index : pending_medications) {
            auto& r = std::get<medication_request_record>(out.records[index]);
            const medication_info* m = find_medication(*r.medication_reference);
            if (!m) continue;
            auto& views = s.codings;
            views.clear();
            for (const auto& c : m->codings) views.push_back({c.system, c.code, c.display});
            // The reference's display stands in for a Medication without text.
            const std::string fallback = r.medication_display.value_or(std::string());
            r.medication_system.reset();
            r.medication_code.reset();
            r.medication_display.reset();
            apply_medication(s.classify, r, views,
                             m->text.empty() ? std::string_view(fallback) : std::string_view(m->text));
        }
        pending_medications.clear();
    }

    // --- patient references -----------------------------------------------------------

    // `urn_target` maps a urn reference to its entry (nullptr: unknown).
    template <class Lookup>
    void resolve_patients(result& out, Lookup&& urn_target) {
        for (auto& p : pending_patients) {
            header& h = header_of(out.records[p.record]);
            if (p.actors.empty()) {
                // A subject: patient_ref holds the whole urn reference.
                if (const bundle_entry* e = urn_target(h.patient_ref)) {
                    h.patient_ref.assign(e->type == "Patient" ? e->id : std::string());
                } else {
                    const parsed_reference pr = parse_reference(h.patient_ref);
                    h.patient_ref.assign(pr.id);  // unresolved: the uuid stands for the patient
                }
                continue;
            }
            // Appointment: the first participant that turns out to be a Patient.
            h.patient_ref.clear();
            for (const auto& a : p.actors) {
                const parsed_reference pr = parse_reference(a.reference);
                if (pr.kind == parsed_reference::form::literal) {
                    h.patient_ref.assign(pr.id);  // only Patient literals became candidates
                    h.patient_ref_base.assign(pr.base);
                    break;
                }
                if (const bundle_entry* e = urn_target(a.reference)) {
                    if (e->type != "Patient") continue;
                    h.patient_ref.assign(e->id);
                    break;
                }
                // An unresolved urn is taken only when Reference.type says
                // Patient: a participant is as often a Practitioner.
                if (a.typed_patient) {
                    h.patient_ref.assign(pr.id);
                    break;
                }
            }
        }
        pending_patients.clear();
    }

    void resolve_without_bundle(result& out) {
        resolve_patients(out, [](std::string_view) -> const bundle_entry* { return nullptr; });
        resolve_medications(out);
    }

    // --- single resources (a file or a line) ------------------------------------------

    // The root of `doc` (already rewound) is a resource of R4 type `type`.
    void single_resource(od::document& doc, std::string_view type, std::string_view raw,
                         std::string_view original, const locator& loc, result& out) {
        count(out.read, type);
        const resource_kind kind = kind_with_views(type);
        if (kind == resource_kind::other || kind == resource_kind::medication) count(out.skipped, type);
        if (raw.size() > opts.max_resource_bytes) {
            add_problem(out, loc.where(type), resource_too_big(raw.size()));
            return;
        }
        if (too_deep(raw, original, loc, type, {}, out)) return;
        if (kind == resource_kind::other) return;
        od::object obj;
        if (const auto e = doc.get_object().get(obj)) {
            report_iteration_error(e, doc, original, loc, out);
            return;
        }
        normalize_object(kind, obj, type, {}, {}, {}, raw, loc, out);
    }

    std::string resource_too_big(std::size_t size) const {
        return "resource is " + std::to_string(size) + " bytes, over the " +
               std::to_string(opts.max_resource_bytes) + "-byte limit for one resource";
    }

    // Finds the root's resourceType, then rewinds. Empty (with a problem)
    // when there is none.
    bool root_type_of(od::document& doc, std::string_view original, const locator& loc, result& out) {
        root_type.clear();
        od::object root;
        if (const auto e = doc.get_object().get(root)) {
            if (e == simdjson::INCORRECT_TYPE) {
                od::json_type t{};
                std::string what = doc.type().get(t) ? "something else" : std::string(json_type_name(t));
                add_problem(
                    out, loc.where(),
                    "the top-level value is " + what + "; expected a FHIR resource or Bundle (an object)");
            } else {
                report_iteration_error(e, doc, original, loc, out);
            }
            return false;
        }
        bool found_type = false;
        for (auto res : root) {
            if (res.error()) {
                report_iteration_error(res.error(), doc, original, loc, out);
                return false;
            }
            od::field& f = res.value_unsafe();
            if (f.key() != "resourceType") continue;
            std::string_view t;
            if (f.value().get_string().get(t)) {
                add_problem(out, loc.where(), "resourceType: expected a string, found " + found(f.value()));
                return false;
            }
            root_type.assign(t);
            found_type = true;
            break;
        }
        if (!found_type || root_type.empty()) {
            add_problem(out, loc.where(), "no resourceType: expected a FHIR resource or Bundle");
            return false;
        }
        doc.rewind();
        return true;
    }

    // --- Bundles ------------------------------------------------------------------------

    // The outer pass over a Bundle: its type and what each entry holds.
    // False after an error that ends the iteration (already reported).
    bool scan_bundle(od::document& doc, std::string_view original, bundle_type& btype, result& out) {
        od::object root;
        if (const auto e = doc.get_object().get(root)) {
            report_iteration_error(e, doc, original, locator{}, out);
            return false;
        }
        for (auto res : root) {
            if (res.error()) {
                report_iteration_error(res.error(), doc, original, locator{}, out);
                return false;
            }
            od::field& f = res.value_unsafe();
            const od::raw_json_string key = f.key();
            if (key == "type") {
                std::string_view t;
                if (f.value().get_string().get(t)) {
                    add_problem(out, "document", "Bundle.type: expected a string, found " + found(f.value()));
                    continue;
                }
                btype = bundle_type_of(t);
            } else if (key == "entry") {
                od::array arr;
                if (f.value().get_array().get(arr)) {
                    bool null = false;
                    if (f.value().is_null().get(null) || !null)
                        add_problem(out, "document",
                                    "Bundle.entry: expected an array, found " + found(f.value()));
                    continue;
                }
                std::size_t i = 0;
                for (auto er : arr) {
                    if (er.error()) {
                        report_iteration_error(er.error(), doc, original, locator{locator::kind::entry, i},
                                               out);
                        return false;
                    }
                    entry_info& e = entries.emplace_back();
                    e.index = i++;
                    if (const auto err = scan_entry(er.value_unsafe(), e)) {
                        report_iteration_error(err, doc, original, locator{locator::kind::entry, e.index},
                                               out);
                        return false;
                    }
                }
            }
        }
        return true;
    }

    // One entry in the outer pass. Shape problems go to e.problem; an error
    // is returned only when the iteration itself failed.
    simdjson::error_code scan_entry(od::value& v, entry_info& e) {
        od::object obj;
        if (v.get_object().get(obj)) {
            e.problem = "entry is " + found(v) + ", not an object";
            return simdjson::SUCCESS;
        }
        for (auto res : obj) {
            if (res.error()) return res.error();
            od::field& f = res.value_unsafe();
            const od::raw_json_string key = f.key();
            if (key == "fullUrl") {
                if (f.value().get_string().get(e.full_url) && e.problem.empty())
                    e.problem = "fullUrl: expected a string, found " + found(f.value());
            } else if (key == "resource") {
                od::object r;
                if (f.value().get_object().get(r)) {
                    bool null = false;
                    if ((f.value().is_null().get(null) || !null) && e.problem.empty())
                        e.problem = "resource is " + found(f.value()) + ", not an object";
                    continue;
                }
                e.has_resource = true;
                bool have_type = false, have_id = false;
                for (auto rf : r) {
                    if (rf.error()) return rf.error();
                    od::field& g = rf.value_unsafe();
                    const od::raw_json_string k = g.key();
                    if (k == "resourceType") {
                        have_type = true;
                        if (g.value().get_string().get(e.type) && e.problem.empty())
                            e.problem = "resourceType: expected a string, found " + found(g.value());
                    } else if (k == "id") {
                        have_id = true;
                        if (g.value().get_string().get(e.id) && e.problem.empty())
                            e.problem = "id: expected a string, found " + found(g.value());
                    }
                    // FHIR JSON puts both first; the rest is skipped whole
                    // by raw_json() below, faster than field by field.
                    if (have_type && have_id) break;
                }
                std::string_view raw;
                if (const auto err = r.raw_json().get(raw)) return err;
                e.raw = trim_json_space(raw);
            } else if (key == "request") {
                e.has_request = true;
                od::object rq;
                if (f.value().get_object().get(rq)) continue;
                for (auto rf : rq) {
                    if (rf.error()) return rf.error();
                    od::field& g = rf.value_unsafe();
                    if (g.key() == "method" && g.value().get_string().get(e.request_method))
                        e.request_method = {};
                }
            } else if (key == "response") {
                e.has_response = true;
            }
        }
        return simdjson::SUCCESS;
    }

    void process_entries(bundle_type btype, simdjson::padded_string_view in, std::string_view original,
                         result& out) {
        const char* const buffer_end = in.data() + in.capacity();
        // R4 Bundle.entry.fullUrl: in a transaction or batch, urn:uuid names
        // a resource before the server has given it an id.
        const bool urn_ids = btype == bundle_type::transaction || btype == bundle_type::batch;
        for (entry_info& e : entries) {
            if (full(out)) return;
            const locator loc{locator::kind::entry, e.index};
            if (!e.problem.empty()) {
                add_problem(out, loc.where(e.type, e.id), std::move(e.problem));
                continue;
            }
            if (!e.has_resource) {
                // R4 bdl-5: "must be a resource unless there's a request or response".
                const bool bodiless_request =
                    e.has_request &&
                    (e.request_method == "GET" || e.request_method == "HEAD" || e.request_method == "DELETE");
                if (e.has_response || bodiless_request) continue;
                add_problem(out, loc.where(), "entry " + std::to_string(e.index) + " has no resource");
                continue;
            }
            if (e.type.empty()) {
                add_problem(out, loc.where(), "resource has no resourceType");
                continue;
            }
            if (!is_r4_resource_type(e.type)) {
                add_problem(
                    out, loc.where(e.type, e.id),
                    "unknown resourceType \"" + shown_in_message(e.type) + "\": not a FHIR R4 resource type");
                continue;
            }
            e.effective_id = e.id;
            if (e.effective_id.empty() && urn_ids && e.full_url.substr(0, 9) == "urn:uuid:")
                e.effective_id = e.full_url.substr(9);

            count(out.read, e.type);
            const resource_kind kind = kind_with_views(e.type);
            if (kind == resource_kind::other || kind == resource_kind::medication) count(out.skipped, e.type);
            if (e.raw.size() > opts.max_resource_bytes) {
                add_problem(out, loc.where(e.type, e.id), resource_too_big(e.raw.size()));
                continue;
            }
            if (too_deep(e.raw, original, loc, e.type, e.id, out)) continue;
            if (kind == resource_kind::other) continue;

            // The resource's bytes lie inside the caller's padded buffer, so
            // the padding simdjson needs is there after them.
            const simdjson::padded_string_view view(e.raw.data(), e.raw.size(),
                                                    static_cast<std::size_t>(buffer_end - e.raw.data()));
            od::document doc;
            od::object obj;
            if (const auto err = inner.iterate(view).get(doc); err || doc.get_object().get(obj)) {
                add_problem(out, loc.where(e.type, e.id),
                            std::string("malformed JSON: ") +
                                simdjson::error_message(err ? err : simdjson::TAPE_ERROR));
                continue;
            }
            normalize_object(kind, obj, e.type, e.id, urn_ids ? e.effective_id : std::string_view(),
                             e.full_url, e.raw, loc, out);
        }
    }

    void resolve_in_bundle(result& out) {
        for (const auto& e : entries)
            if (!e.full_url.empty() && !e.type.empty())
                out.full_urls.try_emplace(std::string(e.full_url),
                                          bundle_entry{std::string(e.type), std::string(e.effective_id)});
        if (!pending_patients.empty()) {
            resolve_patients(out, [&](std::string_view ref) -> const bundle_entry* {
                const auto it = out.full_urls.find(ref);
                return it == out.full_urls.end() ? nullptr : &it->second;
            });
        }
        resolve_medications(out);
    }

    // --- entry points ---------------------------------------------------------------------

    result document(simdjson::padded_string_view json) {
        result out;
        begin();
        const std::string_view original(json.data(), json.size());
        if (original.empty()) {
            add_problem(out, "document", "empty file");
            return out;
        }
        // RFC 8259 §8.1: a parser may ignore a byte order mark; simdjson
        // leaves that to the caller.
        std::size_t skip = 0;
        if (original.substr(0, 3) == "\xEF\xBB\xBF") skip = 3;
        if (trim(original.substr(skip)).empty()) {
            add_problem(out, "document",
                        "the file holds only whitespace; expected a FHIR resource or Bundle");
            return out;
        }
        const simdjson::padded_string_view in(json.data() + skip, json.size() - skip, json.capacity() - skip);
        const locator loc{};
        od::document doc;
        if (!open(in, original, loc, doc, out)) return out;
        if (!root_type_of(doc, original, loc, out)) {
            report_remaining_depth(original, loc, out);
            return out;
        }

        if (root_type == "Bundle") {
            bundle_type btype = bundle_type::unknown;
            scan_bundle(doc, original, btype, out);
            out.records.reserve(entries.size());
            process_entries(btype, in, original, out);
            resolve_in_bundle(out);
            report_remaining_depth(original, loc, out);
            return out;
        }
        if (!is_r4_resource_type(root_type)) {
            add_problem(
                out, loc.where(),
                "unknown resourceType \"" + shown_in_message(root_type) + "\": not a FHIR R4 resource type");
            return out;
        }
        single_resource(doc, root_type, trim(original.substr(skip)), original, loc, out);
        resolve_without_bundle(out);
        return out;
    }

    void line(simdjson::padded_string_view json, std::size_t line_no, result& out) {
        begin();
        const std::string_view original(json.data(), json.size());
        const std::string_view raw = trim(original);
        // NDJSON readers conventionally skip blank lines (a trailing newline
        // makes one); there is nothing in them to report.
        if (raw.empty()) return;
        const locator loc{locator::kind::line, line_no};
        if (raw.size() > opts.max_resource_bytes) {
            add_problem(out, loc.where(), resource_too_big(raw.size()));
            return;
        }
        od::document doc;
        if (!open(json, original, loc, doc, out)) return;
        if (!root_type_of(doc, original, loc, out)) {
            report_remaining_depth(original, loc, out);
            return;
        }
        if (!is_r4_resource_type(root_type)) {
            add_problem(
                out, loc.where(),
                "unknown resourceType \"" + shown_in_message(root_type) + "\": not a FHIR R4 resource type");
            return;
        }
        // One resource per line (FHIR Bulk Data NDJSON); a Bundle line is a
        // resource of a type we skip.
        single_resource(doc, root_type, raw, original, loc, out);
        resolve_without_bundle(out);
    }
};

normalizer::normalizer(options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}
normalizer::~normalizer() = default;

result normalizer::normalize_document(simdjson::padded_string_view json) { return impl_->document(json); }

void normalizer::normalize_line(simdjson::padded_string_view line, std::size_t line_no, result& out) {
    impl_->line(line, line_no, out);
}

void normalizer::reset_medication_index() {
    impl_->meds.clear();
    impl_->med_index.clear();
}

}  // namespace headachemd::normalize
