// Private to lib/store: walking the kept JSON of one resource type in
// raw_frame order (schema 12), for the view back-fill (view_tables.cpp) and
// `view run --db` (raw_views.cpp). Each frame is inflated once and each of
// its resources is given with its parsed JSON, if its row still points
// there: a resource updated since (its row points into a later frame, or
// to none) or marked deleted is skipped, so every present resource with
// kept JSON is given exactly once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <simdjson.h>

#include "stored_table.hpp"

namespace headachemd::store::detail {

struct kept_resource {
    std::string_view source, id, patient_key;  // patient_key "" when NULL
    std::string_view json;
    simdjson::dom::element root;
};

// A place in the walk: after resource `item` (0-based, in `sizes` order)
// of frame `frame`. The start is {0, -1}.
struct kept_position {
    std::int64_t frame = 0;
    std::int64_t item = -1;
};

struct kept_batch {
    kept_position last;  // where the next batch goes on
    std::size_t given = 0;
    bool end = false;  // no resource is left after `last`
};

class kept_raw {
public:
    using resource_fn = std::function<void(const kept_resource&)>;
    // (name of the frame or resource, what is wrong): never the content.
    using problem_fn = std::function<void(const std::string&, const std::string&)>;

    kept_raw(SQLite::Database& db, std::string_view resource_type);

    // Gives the resources after `after`, in order, until `limit` were given
    // or none remain. A frame that cannot be read is one problem, and its
    // resources are passed over.
    kept_batch next(kept_position after, std::size_t limit, const resource_fn& fn,
                    const problem_fn& on_problem);

private:
    std::string type_;
    stored_table table_;
    SQLite::Statement frames_, row_;
    simdjson::dom::parser parser_;
};

}  // namespace headachemd::store::detail
