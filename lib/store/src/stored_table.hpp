// Private to lib/store: which table holds the stored rows of one FHIR
// resource type.
#pragma once

#include <string>
#include <string_view>

#include "headachemd/normalize/records.hpp"

namespace headachemd::store::detail {

// A type we normalize has its typed table (normalize::table_for_type); every
// other type a view reads shares bare_resource (schema 11), whose rows must
// then be filtered by their resource_type column. Reading resource_raw
// against the stored rows (raw_views.cpp) and walking a view's resources
// (view_tables.cpp) both ask this, so they cannot disagree on it.
struct stored_table {
    std::string_view name;  // a fixed name from the normalizer, never the caller's text
    bool shared = false;    // bare_resource: filter by resource_type
    // raw_frame, raw_at, raw_len (schema 12): every table but patient, whose
    // JSON is never kept.
    bool raw_pointer = true;

    // "" for a typed table; for bare_resource " AND <alias>.resource_type =
    // <value>", where value is a bound parameter or a column, never text.
    std::string type_filter(std::string_view alias, std::string_view value) const {
        if (!shared) return {};
        return " AND " + std::string(alias) + ".resource_type = " + std::string(value);
    }
};

inline stored_table stored_table_of(std::string_view resource_type) {
    const std::string_view typed = normalize::table_for_type(resource_type);
    if (typed.empty()) return {normalize::bare_table, true};
    return {typed, false, typed != "patient"};
}

}  // namespace headachemd::store::detail
