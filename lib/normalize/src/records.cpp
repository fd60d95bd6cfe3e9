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
static_assert(std::size(kinds) == std::variant_size_v<record>, "a record type without a table");

}  // namespace

const char* table_name(const record& r) { return kinds[r.index()].table; }

const char* resource_type_of(const record& r) { return kinds[r.index()].resource_type; }

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
