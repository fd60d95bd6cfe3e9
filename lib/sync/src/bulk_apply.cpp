#include "headachemd/sync/bulk_apply.hpp"

#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <utility>
#include <variant>

#include <simdjson.h>

#include "headachemd/ndjson/line_splitter.hpp"
#include "headachemd/normalize/normalize.hpp"
#include "headachemd/store/commit_page.hpp"
#include "headachemd/store/database.hpp"
#include "headachemd/store/sync_state.hpp"

namespace headachemd::sync {
namespace {

namespace nz = headachemd::normalize;
namespace dom = simdjson::dom;

// Bulk Data IG "deleted": each entry's request.url names the resource as
// "Type/id" (a relative reference); an absolute URL is read by its last
// two segments, which are the same reference at the server's base.
std::optional<std::pair<std::string_view, std::string_view>> type_and_id(std::string_view url) {
    const std::size_t q = url.find_first_of("?#");
    if (q != std::string_view::npos) return std::nullopt;
    const std::size_t slash = url.rfind('/');
    if (slash == std::string_view::npos || slash == 0) return std::nullopt;
    const std::string_view id = url.substr(slash + 1);
    std::string_view head = url.substr(0, slash);
    const std::size_t before = head.rfind('/');
    const std::string_view type = before == std::string_view::npos ? head : head.substr(before + 1);
    if (!nz::is_r4_resource_type(type) || !is_fhir_id(id)) return std::nullopt;
    return std::pair{type, id};
}

// The table a FHIR type's rows are in (as the per-patient delete detection
// names it): a typed analyst table, or bare_resource.
std::string_view stored_table(std::string_view type) {
    const std::string_view t = nz::table_for_type(type);
    return t.empty() ? nz::bare_table : t;
}

}  // namespace

std::string_view to_string(line_error_reason r) {
    switch (r) {
        case line_error_reason::too_long:
            return "line longer than max_line_bytes";
        case line_error_reason::unreadable:
            return "not JSON, or not a FHIR resource that can be read";
        case line_error_reason::wrong_type:
            return "a resource of another type than the file's";
        case line_error_reason::bad_entry:
            return "an entry that is not a DELETE of Type/id";
    }
    return "?";
}

enrolled_keys enrolled_at(store::vault& vault, std::string_view ehr) {
    enrolled_keys out;
    for (const auto& e : vault.enrollments())
        if (e.ehr == ehr && !e.fhir_patient_id.empty()) out.emplace(e.fhir_patient_id, e.patient_key);
    return out;
}

struct bulk_applier::impl {
    impl(store::analytics_db& d, const store::pseudonym_key& k, bulk_apply_options o, enrolled_keys e,
         std::shared_ptr<store::view_tables> v)
        : db(d),
          opts(std::move(o)),
          enrolled(std::move(e)),
          views(std::move(v)),
          normalizer(
              nz::options{.keep_raw = opts.store_raw,
                          .raw_for_types = views ? views->resource_types() : std::vector<std::string>{}}),
          writer(d, opts.store_raw, store::identity_policy{k, opts.keep_fhir_patient_id}),
          keys(k, opts.ehr),
          state(d) {}

    store::analytics_db& db;
    bulk_apply_options opts;
    enrolled_keys enrolled;
    std::shared_ptr<store::view_tables> views;
    nz::normalizer normalizer;
    store::resource_writer writer;
    store::patient_key_cache keys;
    store::sync_state state;
    dom::parser parser;  // error and deleted files
    bool busy = false;   // a file is being applied

    // Item 5: an enrolled patient's rows carry the configured key, as the
    // per-patient sync stores them, so the analyst views see one patient
    // whichever path brought a row; anyone else gets ingest's keyed hash.
    // An absolute reference to another base names a patient on another
    // server (FHIR R4 §2.3.0): never an enrolled one, so the keyed hash.
    const std::string& patient_key(const std::string& fhir_id, std::string_view base) {
        if (base.empty()) {
            const auto it = enrolled.find(fhir_id);
            if (it != enrolled.end()) return it->second;
        }
        return keys.get(fhir_id);
    }
};

bulk_applier::bulk_applier(store::analytics_db& db, const store::pseudonym_key& key, bulk_apply_options opts,
                           enrolled_keys enrolled, std::shared_ptr<store::view_tables> views)
    : impl_(std::make_unique<impl>(db, key, std::move(opts), std::move(enrolled), std::move(views))) {}

bulk_applier::~bulk_applier() = default;

struct bulk_file_apply::impl {
    impl(bulk_applier::impl& a, std::size_t index, const bulk_file& f, std::string n)
        : app(a), file(f), now(std::move(n)), lines(a.opts.max_line_bytes, simdjson::SIMDJSON_PADDING) {
        rep.file = index;
        rep.kind = f.kind;
    }

    bulk_applier::impl& app;
    bulk_file file;
    std::string now;
    ndjson::line_splitter lines;
    std::vector<char> chunk_buf;  // the chunk with simdjson's padding after it
    bulk_apply_report rep;
    // output files: the batch not yet written, and one line's result
    nz::result batch, scratch;
    std::size_t batch_lines = 0, batch_bytes = 0;
    // The file's transaction, begun at its first write.
    std::optional<store::write_transaction> tx;
    std::optional<int> synchronous_before;
    bool finished = false, failed = false;

    void line_error(std::size_t number, line_error_reason reason) {
        ++rep.line_error_count;
        if (rep.line_errors.size() < app.opts.max_line_errors_kept)
            rep.line_errors.push_back({rep.file, number, reason});
    }

    // Bulk_store.hpp's step 1 must be durable before the vault's mark:
    // headache.db runs synchronous=NORMAL, so this file's commit runs
    // under FULL. SQLite refuses to change the level inside a transaction,
    // so it is set before BEGIN and put back after COMMIT or ROLLBACK.
    void begin() {
        if (tx) return;
        auto& sql = app.db.sql();
        synchronous_before = sql.execAndGet("PRAGMA synchronous").getInt();
        sql.exec("PRAGMA synchronous=FULL");
        tx.emplace(sql);
    }

    void restore_synchronous() noexcept {
        if (!synchronous_before) return;
        try {
            app.db.sql().exec("PRAGMA synchronous=" + std::to_string(*synchronous_before));
        } catch (...) {  // the connection is unusable anyway; the next open sets it again
        }
        synchronous_before.reset();
    }

    void rollback() noexcept {
        tx.reset();                                       // write_transaction rolls back in its destructor
        if (app.views) (void)app.views->take_failures();  // of rows rolled back
        restore_synchronous();
    }

    // Runs `f` (which writes), mapping a database failure to store_error
    // after rolling the file back: nothing half-written remains.
    template <class F>
    void writing(F&& f) {
        try {
            f();
        } catch (const std::exception& e) {
            failed = true;
            rollback();
            if (const auto* se = dynamic_cast<const store::store_error*>(&e)) throw *se;
            store::rethrow_as_store_error(e, app.db.path(), "applying a Bulk Data file to");
        }
    }

    // ---- output files ----

    void write_batch() {
        if (batch.records.empty()) {
            batch = nz::result{};
            batch_lines = batch_bytes = 0;
            return;
        }
        writing([&] {
            begin();
            store::page_hooks hooks;
            hooks.patient_key = [this](const nz::record& r) -> const std::string& {
                static const std::string no_key;
                const nz::header& h = nz::header_of(r);
                return h.patient_ref.empty() ? no_key : app.patient_key(h.patient_ref, h.patient_ref_base);
            };
            hooks.views = app.views.get();
            hooks.view_patient_key = [this](std::string_view id) {
                return app.patient_key(std::string(id), {});
            };
            const store::page_counts c =
                store::write_page(app.writer, batch.records, app.opts.ehr, now, hooks);
            rep.inserted += static_cast<std::size_t>(c.inserted);
            rep.updated += static_cast<std::size_t>(c.updated);
            rep.unchanged += static_cast<std::size_t>(c.unchanged);
            if (app.views) rep.view_failures += app.views->take_failures().size();
        });
        batch = nz::result{};
        batch_lines = batch_bytes = 0;
    }

    // One line as ingest normalizes it (nz::normalizer::normalize_line),
    // into `scratch` first so that a line of another type can be left out.
    void output_line(const ndjson::line& l) {
        scratch.records.clear();
        scratch.read.clear();
        scratch.skipped.clear();
        scratch.problems.clear();
        app.normalizer.normalize_line(
            simdjson::padded_string_view(l.text.data(), l.text.size(),
                                         l.text.size() + simdjson::SIMDJSON_PADDING),
            l.number, scratch);
        for (const auto& [type, n] : scratch.read)
            if (type != file.type) return line_error(l.number, line_error_reason::wrong_type);
        if (!scratch.problems.empty() || scratch.read.empty())
            return line_error(l.number, line_error_reason::unreadable);
        for (const auto& [type, n] : scratch.skipped) rep.skipped += n;
        for (auto& r : scratch.records) batch.records.push_back(std::move(r));
        batch_bytes += l.text.size();
        if (++batch_lines >= app.opts.batch_lines || batch_bytes >= app.opts.batch_bytes) write_batch();
    }

    // ---- error files ----

    std::optional<dom::object> parse_object(const ndjson::line& l, std::string_view type) {
        dom::element root;
        dom::object obj;
        if (app.parser.parse(reinterpret_cast<const std::uint8_t*>(l.text.data()), l.text.size(), false)
                .get(root) ||
            root.get(obj)) {
            line_error(l.number, line_error_reason::unreadable);
            return std::nullopt;
        }
        std::string_view rt;
        if (obj["resourceType"].get(rt)) {
            line_error(l.number, line_error_reason::unreadable);
            return std::nullopt;
        }
        if (rt != type) {
            line_error(l.number, line_error_reason::wrong_type);
            return std::nullopt;
        }
        return obj;
    }

    // Only severity and code are kept (sync::coded): diagnostics and
    // details.text are the server's free text and may name a patient.
    std::map<std::pair<std::string, std::string>, std::size_t> issues;

    void error_line(const ndjson::line& l) {
        auto obj = parse_object(l, "OperationOutcome");
        if (!obj) return;
        dom::array list;
        if ((*obj)["issue"].get(list)) return line_error(l.number, line_error_reason::unreadable);
        for (auto issue : list) {
            std::string_view severity, code;
            if (issue["severity"].get(severity)) severity = "";
            if (issue["code"].get(code)) code = "";
            // IssueSeverity: only error and fatal say something failed;
            // a warning is not a failure (issue 15).
            if (severity == "error" || severity == "fatal") ++rep.outcome_failures;
            ++issues[{coded(severity), coded(code)}];
        }
    }

    // ---- deleted files ----

    void deleted_line(const ndjson::line& l) {
        auto obj = parse_object(l, "Bundle");
        if (!obj) return;
        dom::array entries;
        if (auto err = (*obj)["entry"].get(entries)) {
            if (err != simdjson::NO_SUCH_FIELD) line_error(l.number, line_error_reason::bad_entry);
            return;  // a Bundle with no entry deletes nothing
        }
        bool bad = false;
        for (auto entry : entries) {
            std::string_view method, url;
            if (entry["request"]["method"].get(method) || method != "DELETE" ||
                entry["request"]["url"].get(url)) {
                bad = true;
                continue;
            }
            const auto ref = type_and_id(url);
            if (!ref) {
                bad = true;
                continue;
            }
            const std::string_view type = ref->first, id = ref->second;
            // A Patient row's id is its keyed hash (store::identity_policy).
            const std::string stored = app.writer.stored_id(type, id, app.opts.ehr);
            bool marked = false;
            writing([&] {
                begin();
                marked = app.state.mark_deleted(app.opts.ehr, stored_table(type), stored, now, type);
            });
            if (marked)
                ++rep.deleted;
            else
                ++rep.deleted_absent;
        }
        if (bad) line_error(l.number, line_error_reason::bad_entry);
    }

    void take(const ndjson::split_event& e) {
        ++rep.lines;
        if (const auto* too_long = std::get_if<ndjson::line_too_long>(&e))
            return line_error(too_long->number, line_error_reason::too_long);
        const auto& l = std::get<ndjson::line>(e);
        switch (file.kind) {
            case bulk_file_kind::output:
                return output_line(l);
            case bulk_file_kind::error:
                return error_line(l);
            case bulk_file_kind::deleted:
                return deleted_line(l);
        }
    }

    void check_usable(const char* what) const {
        if (finished) throw std::logic_error(std::string("bulk_file_apply::") + what + " after finish()");
        if (failed) throw std::logic_error(std::string("bulk_file_apply::") + what + " after a failure");
    }
};

bulk_file_apply::bulk_file_apply(bulk_applier& applier, std::size_t file_index, const bulk_file& file,
                                 std::string now) {
    if (applier.impl_->busy)
        throw std::logic_error("bulk_file_apply: another file of the job is being applied");
    impl_ = std::make_unique<impl>(*applier.impl_, file_index, file, std::move(now));
    applier.impl_->busy = true;
}

bulk_file_apply::~bulk_file_apply() {
    impl_->rollback();
    impl_->app.busy = false;
}

void bulk_file_apply::feed(std::string_view chunk) {
    impl& m = *impl_;
    m.check_usable("feed");
    if (chunk.empty()) return;
    // The splitter hands out lines that point into the chunk, and simdjson
    // reads SIMDJSON_PADDING bytes past a line: the driver's chunk has no
    // such padding, so it is copied once into a buffer that has.
    m.chunk_buf.resize(chunk.size() + simdjson::SIMDJSON_PADDING);
    std::memcpy(m.chunk_buf.data(), chunk.data(), chunk.size());
    std::memset(m.chunk_buf.data() + chunk.size(), 0, simdjson::SIMDJSON_PADDING);
    m.lines.feed(std::string_view(m.chunk_buf.data(), chunk.size()));
    while (auto e = m.lines.next()) m.take(*e);
}

bulk_apply_report bulk_file_apply::finish() {
    impl& m = *impl_;
    m.check_usable("finish");
    if (auto e = m.lines.finish()) m.take(*e);
    m.write_batch();
    if (m.tx) m.writing([&] { m.tx->commit(); });
    m.tx.reset();
    m.restore_synchronous();
    m.finished = true;
    for (auto& [k, n] : m.issues) m.rep.outcome_issues.push_back({k.first, k.second, n});
    return m.rep;
}

}  // namespace headachemd::sync
