#include "kept_raw.hpp"

#include <limits>

#include "column_bytes.hpp"
#include "headachemd/store/raw_json.hpp"

namespace headachemd::store::detail {

kept_raw::kept_raw(SQLite::Database& db, std::string_view resource_type)
    : type_(resource_type),
      table_(stored_table_of(resource_type)),
      frames_(db,
              "SELECT frame, source, sizes, raw, resources FROM raw_frame WHERE resource_type = ?1 AND frame "
              ">= ?2 "
              "ORDER BY frame LIMIT 64"),
      row_(db,
           "SELECT patient_key FROM \"" + std::string(table_.name) +
               "\" WHERE source = ?1 AND id = ?2 AND raw_frame = ?3 AND raw_at = ?4 AND deleted_at IS NULL" +
               (table_.shared ? " AND resource_type = ?5" : "")) {}

kept_batch kept_raw::next(kept_position after, std::size_t limit, const resource_fn& fn,
                          const problem_fn& on_problem) {
    kept_batch out;
    out.last = after;
    // A frame that cannot be read is passed over whole.
    constexpr std::int64_t whole_frame = std::numeric_limits<std::int32_t>::max();
    for (;;) {
        frames_.tryReset();
        frames_.bind(1, type_);
        frames_.bind(2, out.last.frame);
        bool any = false;
        // The frames of one query are read while it is open; the rows are
        // read through another statement and the views written to other
        // tables, which SQLite allows on one connection.
        while (frames_.executeStep()) {
            const std::int64_t frame = frames_.getColumn(0).getInt64();
            const std::int64_t first = frame == out.last.frame ? out.last.item + 1 : 0;
            if (frame == out.last.frame && out.last.item >= whole_frame) continue;
            const std::string source = frames_.getColumn(1).getString();
            raw_frame_content content;
            try {
                content = raw_frame_text(frame, column_bytes(frames_.getColumn(2)),
                                         column_bytes(frames_.getColumn(3)));
            } catch (const raw_decode_error& e) {
                any = true;
                out.last = {frame, whole_frame};
                // Says how many resources are lost to the view with it.
                const std::string message = e.what();
                const std::string name = "raw_frame " + std::to_string(frame);
                on_problem(name + " (source '" + source + "', " + type_ + ", " +
                               std::to_string(frames_.getColumn(4).getInt64()) + " resource(s))",
                           message.starts_with(name + ": ") ? message.substr(name.size() + 2) : message);
                continue;
            }
            for (std::size_t i = static_cast<std::size_t>(first); i < content.items.size(); ++i) {
                any = true;
                out.last = {frame, static_cast<std::int64_t>(i)};
                const auto [at, len] = content.items[i];
                const std::string_view json(content.text.data() + at, len);
                simdjson::dom::element root;
                std::string_view id;
                if (parser_.parse(json).get(root) != simdjson::SUCCESS ||
                    root["id"].get_string().get(id) != simdjson::SUCCESS) {
                    on_problem("raw_frame " + std::to_string(frame) + ", resource " + std::to_string(i + 1),
                               "its JSON does not parse, or has no id");
                    continue;
                }
                row_.tryReset();
                row_.bind(1, source);
                row_.bind(2, std::string(id));
                row_.bind(3, frame);
                row_.bind(4, static_cast<std::int64_t>(at));
                if (table_.shared) row_.bind(5, type_);
                if (!row_.executeStep()) continue;  // updated since, or deleted
                const std::string patient_key =
                    row_.getColumn(0).isNull() ? std::string() : row_.getColumn(0).getString();
                row_.tryReset();
                fn(kept_resource{source, id, patient_key, json, root});
                if (++out.given == limit) {
                    frames_.tryReset();
                    return out;
                }
            }
            if (out.last.frame != frame) {
                out.last = {frame, static_cast<std::int64_t>(content.items.size())};
                any = true;
            }
        }
        frames_.tryReset();
        if (!any) {
            out.end = true;
            return out;
        }
    }
}

}  // namespace headachemd::store::detail
