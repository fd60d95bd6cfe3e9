#include "headachemd/store/commit_page.hpp"

#include "headachemd/store/database.hpp"

namespace headachemd::store {
namespace {

page_counts write_rows(resource_writer& writer, std::span<const normalize::record> records,
                       std::string_view source, std::string_view now, const page_hooks& hooks) {
    page_counts counts;
    for (const normalize::record& r : records) {
        const upsert_outcome outcome = writer.upsert(r, source, hooks.patient_key(r), now);
        switch (outcome) {
            case upsert_outcome::inserted:
                ++counts.inserted;
                break;
            case upsert_outcome::updated:
                ++counts.updated;
                break;
            case upsert_outcome::unchanged:
                ++counts.unchanged;
                break;
        }
        if (hooks.views && hooks.views->reads(normalize::resource_type_of(r)))
            hooks.views->apply(r, outcome, source, writer.stored_id(r, source), hooks.patient_key(r),
                               hooks.view_patient_key, hooks.view_references);
        if (hooks.on_row) hooks.on_row(r, outcome);
    }
    return counts;
}

}  // namespace

page_counts commit_page(analytics_db& db, resource_writer& writer, std::span<const normalize::record> records,
                        std::string_view source, std::string_view now, const page_hooks& hooks) {
    write_transaction tx(db.sql());
    const page_counts counts = write_page(writer, records, source, now, hooks);
    if (hooks.before_commit) hooks.before_commit();
    tx.commit();
    return counts;
}

page_counts write_page(resource_writer& writer, std::span<const normalize::record> records,
                       std::string_view source, std::string_view now, const page_hooks& hooks) {
    // Frames left open by a page that failed before this one belong to a
    // transaction that rolled back.
    writer.discard_raw();
    try {
        const page_counts counts = write_rows(writer, records, source, now, hooks);
        // The page's JSON frames land in the transaction of the rows that
        // point into them (schema 12).
        writer.flush_raw();
        return counts;
    } catch (...) {
        writer.discard_raw();
        throw;
    }
}

}  // namespace headachemd::store
