#include "headachemd/store/raw_views.hpp"

#include <limits>
#include <map>
#include <memory>
#include <utility>

#include <SQLiteCpp/Statement.h>

#include "column_bytes.hpp"
#include "headachemd/normalize/records.hpp"
#include "headachemd/store/raw_json.hpp"
#include "kept_raw.hpp"
#include "stored_table.hpp"

namespace headachemd::store {
namespace {

// Thrown by the key mapper through views::evaluate() when a referenced
// Patient has no patient row: the row fails alone, the id is not printed.
struct no_stored_key {};

std::string row_name(std::string_view source, std::string_view type, std::string_view id) {
    return "resource_raw row (source '" + std::string(source) + "', " + std::string(type) + "/" +
           std::string(id) + ")";
}

// The present resources of one type, with whether the kept JSON is of the
// stored version. A row whose typed row (or bare_resource row, for a type
// we do not normalize) is marked deleted (it vanished from a complete
// pull) is left out, as the analyst tables and the materialized views
// leave it out; resource_raw keeps no deleted_at of its own. A resource
// updated while store_raw was off keeps its older JSON here: its raw_hash
// differs from the stored row's, and its rows would describe a version
// that no longer exists.
// Since schema 12 a resource's JSON is in a raw_frame (kept_raw walks
// those); these are the resource_raw rows written before, of resources
// whose row has no pointer (a newer version's pointer wins).
std::string select_sql(std::string_view resource_type) {
    const auto table = detail::stored_table_of(resource_type);
    if (table.name == "patient")
        return "SELECT r.source, r.id, r.encoding, r.raw, 1 FROM resource_raw r WHERE r.resource_type = ?1 "
               "ORDER BY r.source, r.id";
    return "SELECT r.source, r.id, r.encoding, r.raw, t.raw_hash IS NULL OR t.raw_hash IS r.raw_hash "
           "FROM resource_raw r LEFT JOIN \"" +
           std::string(table.name) + "\" t ON t.source = r.source AND t.id = r.id" +
           table.type_filter("t", "r.resource_type") +
           " WHERE r.resource_type = ?1 AND t.deleted_at IS NULL AND t.raw_frame IS NULL ORDER BY r.source, "
           "r.id";
}

constexpr const char* no_key_message =
    "a key column names a Patient that headache.db has no patient_key for (its Patient resource was not "
    "stored, or [privacy] identifiers was \"none\" when it was)";

// FHIR patient id -> the patient_key stored for it. The patient table
// keeps the FHIR id in fhir_patient_id under [privacy] identifiers =
// "minimal", which store_raw requires (docs/admin/security.md).
class stored_keys {
public:
    explicit stored_keys(SQLite::Database& db)
        : q_(db, "SELECT patient_key FROM patient WHERE source = ?1 AND fhir_patient_id = ?2 LIMIT 1") {}

    void source(std::string s) { source_ = std::move(s); }

    std::string operator()(std::string_view fhir_id) {
        auto key = std::make_pair(source_, std::string(fhir_id));
        if (auto it = cache_.find(key); it != cache_.end()) return it->second;
        q_.tryReset();
        q_.bind(1, source_);
        q_.bind(2, key.second);
        if (!q_.executeStep()) throw no_stored_key{};
        std::string found = q_.getColumn(0).getString();
        cache_.emplace(std::move(key), found);
        return found;
    }

private:
    SQLite::Statement q_;
    std::string source_;
    std::map<std::pair<std::string, std::string>, std::string> cache_;
};

}  // namespace

std::size_t count_raw_rows(SQLite::Database& db, std::string_view resource_type) {
    const auto table = detail::stored_table_of(resource_type);
    SQLite::Statement count(
        db, !table.raw_pointer ? std::string("SELECT count(*) FROM resource_raw WHERE resource_type = ?1")
                               : "SELECT (SELECT count(*) FROM resource_raw WHERE resource_type = ?1) + "
                                 "(SELECT count(*) FROM \"" +
                                     std::string(table.name) + "\" t WHERE t.raw_frame IS NOT NULL" +
                                     table.type_filter("t", "?1") + ")");
    count.bind(1, std::string(resource_type));
    count.executeStep();
    return static_cast<std::size_t>(count.getColumn(0).getInt64());
}

raw_view_result run_view_over_raw(SQLite::Database& db, const views::view& plan,
                                  views::view_runner::row_fn on_row,
                                  views::view_runner::problem_fn on_problem) {
    raw_view_result out;
    const std::string type = plan.resource();
    auto keys = std::make_shared<stored_keys>(db);
    views::eval_options options;
    options.map_patient_key = [keys](std::string_view id) { return (*keys)(id); };
    views::view_runner runner(plan, std::move(options), std::move(on_row), std::move(on_problem));
    // The frames first (schema 12), in the order they were written.
    if (detail::stored_table_of(type).raw_pointer) {
        detail::kept_raw kept(db, type);
        (void)kept.next(
            detail::kept_position{}, std::numeric_limits<std::size_t>::max(),
            [&](const detail::kept_resource& r) {
                ++out.resources;
                const std::string where = raw_resource_name(r.source, type, r.id);
                keys->source(std::string(r.source));
                try {
                    runner.document(r.root, r.json, where);
                } catch (const no_stored_key&) {
                    runner.problem(where, no_key_message);
                }
            },
            [&](const std::string& where, const std::string& message) {
                std::string_view m = message;
                if (m.starts_with(where + ": ")) m.remove_prefix(where.size() + 2);
                runner.problem(where, m);
            });
    }
    SQLite::Statement q(db, select_sql(type));
    q.bind(1, type);
    simdjson::dom::parser parser;
    while (q.executeStep()) {
        ++out.resources;
        const std::string source = q.getColumn(0).getString();
        const std::string id = q.getColumn(1).getString();
        const std::string encoding = q.getColumn(2).getString();
        const std::string_view stored = detail::column_bytes(q.getColumn(3));
        const std::string where = row_name(source, type, id);
        if (q.getColumn(4).getInt() == 0) {
            runner.problem(where,
                           "the kept JSON is of an older version (the resource was updated while "
                           "store_raw was off); its rows are left out");
            continue;
        }
        std::string json;
        try {
            json = raw_json_text(raw_row{source, type, id, encoding, stored});
        } catch (const raw_decode_error& e) {
            // The message already starts with the row's name.
            std::string_view message = e.what();
            if (message.starts_with(where + ": ")) message.remove_prefix(where.size() + 2);
            runner.problem(where, message);
            continue;
        }
        simdjson::dom::element root;
        if (auto err = parser.parse(json).get(root)) {
            runner.problem(where, std::string("its JSON does not parse: ") + simdjson::error_message(err));
            continue;
        }
        keys->source(source);
        try {
            runner.document(root, json, where);
        } catch (const no_stored_key&) {
            runner.problem(where, no_key_message);
        }
    }
    out.problems = runner.problems();
    return out;
}

}  // namespace headachemd::store
