#include "headachemd/store/view_tables.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <utility>

#include <SQLiteCpp/Statement.h>
#include "column_bytes.hpp"
#include "headachemd/core/json.hpp"
#include "headachemd/files/protected_file.hpp"
#include "headachemd/normalize/sha256.hpp"
#include "headachemd/store/database.hpp"
#include "kept_raw.hpp"
#include "stored_table.hpp"

namespace headachemd::store {
namespace {

namespace nz = headachemd::normalize;

// Names come from the config (a-z 0-9 _) and the engine (letters, digits,
// _); quoting still doubles '"' so no name can end the identifier.
std::string quote_ident(std::string_view name) {
    std::string out = "\"";
    for (char c : name) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

std::string table_of(std::string_view view_name) { return "view_" + std::string(view_name); }

void append_json_scalar(std::string& out, const views::scalar& v) {
    std::visit(
        [&out](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::monostate>)
                out += "null";
            else if constexpr (std::is_same_v<T, bool>)
                out += x ? "true" : "false";
            else if constexpr (std::is_same_v<T, std::int64_t>)
                out += std::to_string(x);
            else if constexpr (std::is_same_v<T, double>) {
                char buf[32];  // shortest text that reads back as the same double
                const auto res = std::to_chars(buf, buf + sizeof buf, x);
                out.append(buf, res.ptr);
            } else if constexpr (std::is_same_v<T, std::string>)
                append_json_string(out, x);
            else
                out += x.text;  // json_text: already minified JSON
        },
        v);
}

// A cell bound as its natural SQLite value; the column's declared type is
// the affinity, which converts text that looks like a number.
void bind_cell(SQLite::Statement& s, int i, const views::cell& c) {
    std::visit(
        [&s, i](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::monostate>)
                s.bind(i);
            else if constexpr (std::is_same_v<T, bool>)
                s.bind(i, x ? 1 : 0);
            else if constexpr (std::is_same_v<T, std::int64_t>)
                s.bind(i, static_cast<int64_t>(x));
            else if constexpr (std::is_same_v<T, double>)
                s.bind(i, x);
            else if constexpr (std::is_same_v<T, std::string>)
                s.bind(i, x);
            else if constexpr (std::is_same_v<T, views::json_text>)
                s.bind(i, x.text);
            else {
                std::string json = "[";
                for (std::size_t k = 0; k < x.size(); ++k) {
                    if (k) json += ',';
                    append_json_scalar(json, x[k]);
                }
                s.bind(i, json + "]");
            }
        },
        c);
}

std::string create_sql(const loaded_view& v) {
    std::string sql = "CREATE TABLE " + quote_ident(table_of(v.name)) + " (";
    for (const auto& c : v.plan.columns())
        sql += quote_ident(c.name) + " " + std::string(sqlite_type_for(c)) + ", ";
    return sql +
           "\"_source\" TEXT NOT NULL, \"_resource_type\" TEXT NOT NULL, \"_resource_id\" TEXT NOT NULL, "
           "\"_patient_key\" TEXT)";
}

std::string insert_sql(const loaded_view& v) {
    std::string cols, params;
    int i = 1;
    for (const auto& c : v.plan.columns()) {
        cols += quote_ident(c.name) + ",";
        params += "?" + std::to_string(i++) + ",";
    }
    cols += "\"_source\",\"_resource_type\",\"_resource_id\",\"_patient_key\"";
    for (int k = 0; k < 4; ++k) params += (k ? ",?" : "?") + std::to_string(i + k);
    return "INSERT INTO " + quote_ident(table_of(v.name)) + " (" + cols + ") VALUES (" + params + ")";
}

bool table_exists(SQLite::Database& db, const std::string& table) {
    SQLite::Statement q(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1");
    q.bind(1, table);
    return q.executeStep();
}

// Are resources of this type already stored? Then a new view starts
// 'pending': their rows come only when each is written again.
bool type_has_rows(SQLite::Database& db, std::string_view resource_type) {
    // A type we do not normalize is kept in bare_resource only while some
    // view reads it (schema 10).
    const auto table = detail::stored_table_of(resource_type);
    SQLite::Statement q(db, "SELECT EXISTS (SELECT 1 FROM " + quote_ident(table.name) +
                                " AS t WHERE t.deleted_at IS NULL" + table.type_filter("t", "?1") + ")");
    if (table.shared) q.bind(1, std::string(resource_type));
    return q.executeStep() && q.getColumn(0).getInt() != 0;
}

// A pending view is complete once every sync cursor of its type records a
// full pull that finished after the view was made: a full pull runs every
// resource of the type through commit_page, and a pending view evaluates
// even the unchanged ones. With no cursor (ingest only) it stays pending.
bool full_pulls_since(SQLite::Database& db, std::string_view resource_type, const std::string& created_at) {
    SQLite::Statement q(db,
                        "SELECT count(*), count(*) FILTER (WHERE last_full_pull_at >= ?2) FROM sync_cursor "
                        "WHERE resource_type = ?1");
    q.bind(1, std::string(resource_type));
    q.bind(2, created_at);
    if (!q.executeStep()) return false;
    const long long all = q.getColumn(0).getInt64();
    return all > 0 && q.getColumn(1).getInt64() == all;
}

}  // namespace

std::string_view sqlite_type_for(const views::column_info& column) {
    if (column.collection) return "TEXT";  // a JSON array
    const std::string& t = column.type;
    if (t == "boolean" || t == "integer" || t == "positiveInt" || t == "unsignedInt" || t == "integer64")
        return "INTEGER";
    if (t == "decimal") return "REAL";
    return "TEXT";
}

view_load_result load_views(std::span<const view_file> files, views::privacy identifiers) {
    view_load_result out;
    for (const auto& f : files) {
        const std::string label = "[[view]] \"" + f.name + "\": " + f.file.string();
        // The config checks the name too; the store does not trust it with
        // a DROP TABLE: view_definition is ours.
        const bool name_ok = !f.name.empty() && f.name.size() <= 48 && f.name[0] >= 'a' && f.name[0] <= 'z' &&
                             f.name != "definition" && std::all_of(f.name.begin(), f.name.end(), [](char c) {
                                 return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                             });
        if (!name_ok) {
            out.errors.push_back(
                "[[view]]: the name is not a-z, 0-9 and '_' starting with a letter, or is reserved");
            continue;
        }
        auto read = files::read_protected_file(f.file, files::file_kind::config, "view definition",
                                               files::max_config_bytes);
        if (read.problem) {
            out.errors.push_back(label + ": " + read.problem->message());
            continue;
        }
        auto compiled = views::compile(*read.content, views::compile_options{identifiers});
        if (auto* err = std::get_if<views::compile_error>(&compiled)) {
            std::string where = err->json_path.empty() ? "the definition" : err->json_path;
            if (err->expr_offset) where += " (offset " + std::to_string(*err->expr_offset) + ")";
            out.errors.push_back(label + ": " + where + ": " + err->message);
            continue;
        }
        out.views.push_back(loaded_view{f.name, f.file, nz::sha256_hex(*read.content),
                                        std::move(std::get<views::view>(compiled))});
    }
    return out;
}

struct view_tables::table {
    table(SQLite::Database& db, loaded_view v, bool is_pending)
        : view(std::move(v)),
          pending(is_pending),
          remove(db, "DELETE FROM " + quote_ident(table_of(view.name)) +
                         " WHERE \"_source\" = ?1 AND \"_resource_type\" = ?2 AND \"_resource_id\" = ?3"),
          insert(db, insert_sql(view)) {}
    loaded_view view;
    bool pending;
    SQLite::Statement remove, insert;
};

view_tables::view_tables(analytics_db& db, std::vector<loaded_view> views, std::string_view now) : db_(db) {
    auto& sql = db_.sql();
    std::vector<bool> pending;
    try {
        write_transaction tx(sql);
        for (const auto& v : views) {
            const std::string vt = table_of(v.name);
            std::optional<std::string> stored_sha, created_at, state;
            {
                // Read and finished before any DROP: SQLite refuses to drop
                // a table while a statement on the connection is active.
                SQLite::Statement q(
                    sql,
                    "SELECT definition_sha256, created_at, backfill_state FROM view_definition "
                    "WHERE name = ?1");
                q.bind(1, v.name);
                if (q.executeStep()) {
                    stored_sha = q.getColumn(0).getString();
                    created_at = q.getColumn(1).getString();
                    state = q.getColumn(2).getString();
                }
            }
            const bool same = stored_sha == v.definition_sha256 && table_exists(sql, vt);
            if (same) {
                bool is_pending = state == "pending";
                if (is_pending && full_pulls_since(sql, v.plan.resource(), *created_at)) {
                    SQLite::Statement done(
                        sql, "UPDATE view_definition SET backfill_state = 'complete' WHERE name = ?1");
                    done.bind(1, v.name);
                    done.exec();
                    is_pending = false;
                }
                pending.push_back(is_pending);
                continue;
            }
            // New or edited: its old rows were made by another definition.
            sql.exec("DROP TABLE IF EXISTS " + quote_ident(vt));
            sql.exec(create_sql(v));
            sql.exec("CREATE INDEX " + quote_ident(vt + "__resource") + " ON " + quote_ident(vt) +
                     " (\"_source\", \"_resource_type\", \"_resource_id\")");
            sql.exec("CREATE INDEX " + quote_ident(vt + "__patient") + " ON " + quote_ident(vt) +
                     " (\"_patient_key\")");
            const bool is_pending = type_has_rows(sql, v.plan.resource());
            SQLite::Statement put(
                sql,
                "INSERT INTO view_definition (name, resource, definition_sha256, created_at, "
                "backfill_state) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE "
                "SET resource = excluded.resource, definition_sha256 = excluded.definition_sha256, "
                "created_at = excluded.created_at, backfill_state = excluded.backfill_state, "
                // The table is new: a back-fill of the old one means nothing for it.
                "backfill_after_source = NULL, backfill_after_id = NULL, backfilled_at = NULL, "
                "backfill_missing_raw = 0, backfill_after_frame = NULL, backfill_after_item = NULL");
            put.bind(1, v.name);
            put.bind(2, v.plan.resource());
            put.bind(3, v.definition_sha256);
            put.bind(4, std::string(now));
            put.bind(5, is_pending ? "pending" : "complete");
            put.exec();
            pending.push_back(is_pending);
        }
        tx.commit();
        for (std::size_t i = 0; i < views.size(); ++i)
            views_.push_back(std::make_unique<table>(sql, std::move(views[i]), pending[i]));
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& e) {
        rethrow_as_store_error(e, db_.path(), "making the view tables in");
    }
}

view_tables::~view_tables() = default;

bool view_tables::reads(std::string_view resource_type) const {
    for (const auto& t : views_)
        if (t->view.plan.resource() == resource_type) return true;
    return false;
}

std::vector<std::string> view_tables::resource_types() const {
    std::vector<std::string> out;
    for (const auto& t : views_)
        if (std::find(out.begin(), out.end(), t->view.plan.resource()) == out.end())
            out.push_back(t->view.plan.resource());
    return out;
}

void view_tables::remove_rows(table& t, std::string_view type, std::string_view source,
                              std::string_view stored_id) {
    t.remove.tryReset();
    t.remove.bind(1, std::string(source));
    t.remove.bind(2, std::string(type));
    t.remove.bind(3, std::string(stored_id));
    t.remove.exec();
}

void view_tables::write_rows(table& t, simdjson::dom::element root, std::string_view raw,
                             std::string_view type, std::string_view source, std::string_view stored_id,
                             std::string_view patient_key, const views::key_mapper& patient_keys,
                             const views::reference_resolver& references) {
    // The kept bytes beside the DOM: a decimal keeps its written
    // precision for lowBoundary()/highBoundary().
    const views::source_text text(root, raw);
    views::eval_options options;
    options.map_patient_key = patient_keys;
    options.source = &text;
    options.resolve_reference = references;
    auto rows = views::evaluate(t.view.plan, root, options);
    if (rows.error) {
        failures_.push_back({t.view.name, std::string(type), std::string(stored_id), rows.error->json_path,
                             rows.error->message});
        return;
    }
    const int ncols = static_cast<int>(t.view.plan.columns().size());
    for (const auto& row : rows.rows) {
        t.insert.tryReset();
        for (int i = 0; i < ncols; ++i) bind_cell(t.insert, i + 1, row[static_cast<std::size_t>(i)]);
        t.insert.bind(ncols + 1, std::string(source));
        t.insert.bind(ncols + 2, std::string(type));
        t.insert.bind(ncols + 3, std::string(stored_id));
        if (patient_key.empty())
            t.insert.bind(ncols + 4);
        else
            t.insert.bind(ncols + 4, std::string(patient_key));
        t.insert.exec();
    }
}

void view_tables::apply(const normalize::record& r, upsert_outcome outcome, std::string_view source,
                        std::string_view stored_id, std::string_view patient_key,
                        const views::key_mapper& patient_keys, const views::reference_resolver& references) {
    const std::string_view type = nz::resource_type_of(r);
    bool parsed = false;
    simdjson::dom::element root;
    for (auto& t : views_) {
        if (t->view.plan.resource() != type) continue;
        if (outcome == upsert_outcome::unchanged && !t->pending) continue;
        // A resource new to its table has no view rows to replace: rows
        // leave with their resource (purge_patient removes both), so only
        // an update or a pending re-evaluation needs the DELETE.
        if (outcome != upsert_outcome::inserted) remove_rows(*t, type, source, stored_id);
        const auto& h = nz::header_of(r);
        if (!parsed) {
            // The normalizer read the resource with simdjson's on-demand
            // API, which leaves no tree behind; the engine walks a DOM, so
            // the kept bytes are parsed once more, once for all its views.
            if (h.raw.empty())
                throw std::logic_error(
                    "view_tables::apply: the record carries no JSON (normalize::options::raw_for_types)");
            if (parser_.parse(h.raw).get(root) != simdjson::SUCCESS) {
                failures_.push_back({t->view.name, std::string(type), std::string(stored_id), "",
                                     "the resource's JSON did not parse again"});
                continue;
            }
            parsed = true;
        }
        write_rows(*t, root, h.raw, type, source, stored_id, patient_key, patient_keys, references);
    }
}

std::vector<view_failure> view_tables::take_failures() { return std::exchange(failures_, {}); }

namespace {

// One stored resource as the back-fill reads it: the typed table's key and
// patient_key, and the kept JSON when it is of the stored version.
struct stored_resource {
    std::string source, id, patient_key;
    bool deleted = false;
    std::optional<std::string> raw;     // nullopt: no raw JSON of this version
    std::optional<std::string> broken;  // a raw row that could not be read back (raw_decode_error)
};

// The next batch after (after_source, after_id), in the typed table's key
// order. A resource_raw row counts only when its raw_hash is the typed
// row's: with store_raw off an update leaves the older JSON behind, and
// rows of that version would be wrong.
// A type we do not normalize is read from bare_resource (schema 11), the
// same bookkeeping filtered by its resource_type.
// The resources whose JSON is in a frame were done in frame order first
// (backfill_one): here are the rest, and the deleted ones (whose view rows go).
constexpr const char* without_frame = " AND (t.raw_frame IS NULL OR t.deleted_at IS NOT NULL)";

std::vector<stored_resource> next_batch(SQLite::Database& db, const detail::stored_table& table,
                                        std::string_view resource_type,
                                        const std::optional<std::string>& after_source,
                                        const std::string& after_id, std::size_t limit) {
    SQLite::Statement q(
        db,
        "SELECT t.source, t.id, t.patient_key, t.deleted_at IS NOT NULL, r.raw_hash IS t.raw_hash, "
        "r.encoding, r.raw FROM " +
            quote_ident(table.name) +
            " AS t LEFT JOIN resource_raw AS r ON r.source = t.source AND r.resource_type = ?1 "
            "AND r.id = t.id WHERE (?2 IS NULL OR (t.source, t.id) > (?2, ?3))" +
            table.type_filter("t", "?1") + (table.raw_pointer ? without_frame : "") +
            " ORDER BY t.source, t.id LIMIT ?4");
    q.bind(1, std::string(resource_type));
    if (after_source)
        q.bind(2, *after_source);
    else
        q.bind(2);
    q.bind(3, after_id);
    q.bind(4, static_cast<int64_t>(limit));
    std::vector<stored_resource> out;
    while (q.executeStep()) {
        stored_resource r;
        r.source = q.getColumn(0).getString();
        r.id = q.getColumn(1).getString();
        if (!q.getColumn(2).isNull()) r.patient_key = q.getColumn(2).getString();
        r.deleted = q.getColumn(3).getInt() != 0;
        if (!r.deleted && q.getColumn(4).getInt() != 0) {
            const std::string encoding = q.getColumn(5).getString();
            try {
                r.raw = raw_json_text(
                    raw_row{r.source, resource_type, r.id, encoding, detail::column_bytes(q.getColumn(6))});
            } catch (const raw_decode_error& e) {
                r.broken = e.what();  // names the row, never its content
            }
        }
        out.push_back(std::move(r));
    }
    return out;
}

}  // namespace

std::string backfill_summary(const backfill_result& r) {
    std::string out = "view " + r.view + ": back-filled " + std::to_string(r.resources) + " stored " +
                      r.resource_type + " resource(s) from the kept JSON; ";
    if (r.complete) return out + "complete";
    return out + std::to_string(r.missing_raw) +
           " have no stored JSON of their current version (stored while store_raw was off): pending until "
           "the next full pull (or a re-ingest) brings them";
}

std::vector<backfill_result> view_tables::backfill(std::string_view now,
                                                   const source_key_mapper& patient_keys,
                                                   const backfill_options& opts) {
    std::vector<backfill_result> out;
    try {
        for (auto& t : views_)
            if (t->pending) out.push_back(backfill_one(*t, now, patient_keys, opts));
    } catch (const store_error&) {
        throw;
    } catch (const SQLite::Exception& e) {
        rethrow_as_store_error(e, db_.path(), "back-filling the views in");
    }
    return out;
}

backfill_result view_tables::backfill_one(table& t, std::string_view now,
                                          const source_key_mapper& patient_keys,
                                          const backfill_options& opts) {
    auto& sql = db_.sql();
    const std::string type = t.view.plan.resource();
    backfill_result res{t.view.name, type};
    std::optional<std::string> after_source;
    std::string after_id;
    detail::kept_position after;  // frame -1: the frames are done
    {
        SQLite::Statement q(sql,
                            "SELECT backfilled_at IS NOT NULL, backfill_after_source, backfill_after_id, "
                            "backfill_missing_raw, coalesce(backfill_after_frame, 0), "
                            "coalesce(backfill_after_item, -1) FROM view_definition "
                            "WHERE name = ?1");
        q.bind(1, t.view.name);
        if (!q.executeStep()) return res;
        // Finished once with resources left without JSON: going over them
        // again finds no more JSON; the next full pull fills the rest.
        if (q.getColumn(0).getInt() != 0) {
            res.missing_raw = q.getColumn(3).getInt64();
            return res;
        }
        if (!q.getColumn(1).isNull()) after_source = q.getColumn(1).getString();
        after_id = q.getColumn(2).isNull() ? std::string() : q.getColumn(2).getString();
        res.missing_raw = q.getColumn(3).getInt64();
        after = {q.getColumn(4).getInt64(), q.getColumn(5).getInt64()};
    }
    const auto stored = detail::stored_table_of(type);
    const std::size_t limit = std::max<std::size_t>(opts.batch_resources, 1);
    if (after.frame >= 0 && stored.raw_pointer) {
        // First the resources whose JSON is in a raw_frame (schema 12), in
        // frame order, so that a batch inflates each frame once.
        detail::kept_raw kept(sql, type);
        for (bool done = false; !done;) {
            write_transaction tx(sql);
            const auto batch = kept.next(
                after, limit,
                [&](const detail::kept_resource& r) {
                    remove_rows(t, type, r.source, r.id);
                    ++res.resources;
                    const std::string source(r.source);
                    views::key_mapper keys;  // empty when the caller has no mapping: key columns then fail
                    if (patient_keys)
                        keys = [&patient_keys, &source](std::string_view id) {
                            return patient_keys(source, id);
                        };
                    write_rows(t, r.root, r.json, type, r.source, r.id, r.patient_key, keys);
                },
                [&](const std::string& where, const std::string& message) {
                    failures_.push_back({t.view.name, type, "", "", where + ": " + message});
                });
            done = batch.end;
            after = done ? detail::kept_position{-1, -1} : batch.last;
            // As below: the place commits with the rows.
            SQLite::Statement progress(sql,
                                       "UPDATE view_definition SET backfill_after_frame = ?2, "
                                       "backfill_after_item = ?3 WHERE name = ?1");
            progress.bind(1, t.view.name);
            progress.bind(2, after.frame);
            progress.bind(3, after.item);
            progress.exec();
            tx.commit();
            if (opts.after_batch) opts.after_batch();
        }
    }
    for (bool done = false; !done;) {
        write_transaction tx(sql);
        const auto batch = next_batch(sql, stored, type, after_source, after_id, limit);
        long long missing = 0;
        for (const auto& r : batch) {
            remove_rows(t, type, r.source, r.id);
            ++res.resources;
            if (r.deleted) continue;  // marked deleted: no rows (as remove_deleted_view_rows)
            if (r.broken) failures_.push_back({t.view.name, type, r.id, "", *r.broken});
            if (!r.raw) {
                ++missing;
                continue;
            }
            simdjson::dom::element root;
            if (parser_.parse(*r.raw).get(root) != simdjson::SUCCESS) {
                failures_.push_back({t.view.name, type, r.id, "", "the stored raw JSON did not parse"});
                continue;
            }
            const std::string source = r.source;
            views::key_mapper keys;  // empty when the caller has no mapping: key columns then fail
            if (patient_keys)
                keys = [&patient_keys, &source](std::string_view id) { return patient_keys(source, id); };
            write_rows(t, root, *r.raw, type, r.source, r.id, r.patient_key, keys);
        }
        res.missing_raw += missing;
        done = batch.size() < limit;
        if (!batch.empty()) {
            after_source = batch.back().source;
            after_id = batch.back().id;
        }
        // The progress commits with the rows: a crash after COMMIT resumes
        // after this batch, one before it redoes the batch (each resource's
        // rows are replaced, so redoing is harmless).
        SQLite::Statement progress(
            sql, done ? "UPDATE view_definition SET backfill_after_source = NULL, backfill_after_id = NULL, "
                        "backfill_after_frame = NULL, backfill_after_item = NULL, "
                        "backfill_missing_raw = backfill_missing_raw + ?2, backfilled_at = ?3, "
                        "backfill_state = CASE WHEN backfill_missing_raw + ?2 = 0 THEN 'complete' "
                        "ELSE 'pending' END WHERE name = ?1"
                      : "UPDATE view_definition SET backfill_after_source = ?3, backfill_after_id = ?4, "
                        "backfill_missing_raw = backfill_missing_raw + ?2 WHERE name = ?1");
        progress.bind(1, t.view.name);
        progress.bind(2, static_cast<int64_t>(missing));
        if (done) {
            progress.bind(3, std::string(now));
        } else {
            progress.bind(3, *after_source);
            progress.bind(4, after_id);
        }
        progress.exec();
        tx.commit();
        if (done && res.missing_raw == 0) {
            // Every stored resource has its rows: unchanged resources of
            // later pages need no evaluation any more.
            t.pending = false;
            res.complete = true;
        }
        if (opts.after_batch) opts.after_batch();
    }
    return res;
}

std::vector<view_state> read_view_states(analytics_db& db) {
    std::vector<view_state> out;
    SQLite::Statement q(
        db.sql(),
        "SELECT name, resource, created_at, backfill_state, backfilled_at, backfill_missing_raw, "
        "backfill_after_source IS NOT NULL OR backfill_after_frame IS NOT NULL FROM view_definition ORDER BY "
        "name");
    while (q.executeStep())
        out.push_back({q.getColumn(0).getString(), q.getColumn(1).getString(), q.getColumn(2).getString(),
                       q.getColumn(3).getString(),
                       q.getColumn(4).isNull() ? std::string() : q.getColumn(4).getString(),
                       q.getColumn(5).getInt64(), q.getColumn(6).getInt() != 0});
    return out;
}

int remove_deleted_view_rows(analytics_db& db, std::string_view source, std::string_view patient_key,
                             std::string_view table, std::string_view resource_type) {
    auto& sql = db.sql();
    std::vector<std::string> names;
    {
        SQLite::Statement q(sql, "SELECT name FROM view_definition WHERE resource = ?1");
        q.bind(1, std::string(resource_type));
        while (q.executeStep()) names.push_back(q.getColumn(0).getString());
    }
    int removed = 0;
    for (const auto& name : names) {
        const std::string vt = table_of(name);
        if (!table_exists(sql, vt)) continue;  // an analyst dropped a table no longer configured
        SQLite::Statement del(
            sql, "DELETE FROM " + quote_ident(vt) +
                     " WHERE \"_source\" = ?1 AND \"_resource_type\" = ?3 AND \"_resource_id\" IN "
                     "(SELECT id FROM " +
                     quote_ident(table) +
                     " WHERE source = ?1 AND patient_key = ?2 AND deleted_at IS NOT NULL" +
                     (table == nz::bare_table ? " AND resource_type = ?3)" : ")"));
        del.bind(1, std::string(source));
        del.bind(2, std::string(patient_key));
        del.bind(3, std::string(resource_type));
        removed += del.exec();
    }
    return removed;
}

}  // namespace headachemd::store
