// Per-record facts the store needs without knowing every record type.
#include <iterator>
#include <type_traits>
#include <variant>

#include "headachemd/normalize/records.hpp"

namespace headachemd::normalize {
namespace {

// In the order of the record variant. The table names are a contract with
// analysts (schema/0001_analytics_tables.sql).
struct kind {
    const char* resource_type;
    const char* table;
};
constexpr kind kinds[] = {
    {"Patient", "patient"},         {"Condition", "condition"}, {"MedicationRequest", "medication_request"},
    {"Appointment", "appointment"}, {"Encounter", "encounter"}, {"Observation", "observation"},
    {"Procedure", "procedure"}};
// The bare_record is last and names its own type.
static_assert(std::size(kinds) + 1 == std::variant_size_v<record>, "a record type without a table");
static_assert(std::is_same_v<std::variant_alternative_t<std::size(kinds), record>, bare_record>);

}  // namespace

const char* table_name(const record& r) {
    // A literal, so data() ends in a NUL.
    if (std::holds_alternative<bare_record>(r)) return bare_table.data();
    return kinds[r.index()].table;
}

const char* resource_type_of(const record& r) {
    if (const auto* b = std::get_if<bare_record>(&r)) return b->resource_type.c_str();
    return kinds[r.index()].resource_type;
}

std::string_view table_for_type(std::string_view resource_type) {
    for (const auto& k : kinds)
        if (resource_type == k.resource_type) return k.table;
    return {};
}

const header& header_of(const record& r) {
    return std::visit([](const auto& rec) -> const header& { return rec.h; }, r);
}

header& header_of(record& r) {
    return std::visit([](auto& rec) -> header& { return rec.h; }, r);
}

}  // namespace headachemd::normalize
