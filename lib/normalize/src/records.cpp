// Per-record facts the store needs without knowing every record type.
#include <type_traits>
#include <variant>

#include "headachemd/normalize/records.hpp"

namespace headachemd::normalize {
namespace {

// The table names are a contract with analysts (schema/0001_analytics_tables.sql).
template <class T>
constexpr const char* table_of() {
    if constexpr (std::is_same_v<T, patient_record>)
        return "patient";
    else if constexpr (std::is_same_v<T, condition_record>)
        return "condition";
    else if constexpr (std::is_same_v<T, medication_request_record>)
        return "medication_request";
    else if constexpr (std::is_same_v<T, appointment_record>)
        return "appointment";
    else if constexpr (std::is_same_v<T, encounter_record>)
        return "encounter";
    else if constexpr (std::is_same_v<T, observation_record>)
        return "observation";
    else {
        static_assert(std::is_same_v<T, procedure_record>, "a record type without a table");
        return "procedure";
    }
}

}  // namespace

const char* table_name(const record& r) {
    return std::visit([](const auto& rec) { return table_of<std::decay_t<decltype(rec)>>(); }, r);
}

const header& header_of(const record& r) {
    return std::visit([](const auto& rec) -> const header& { return rec.h; }, r);
}

header& header_of(record& r) {
    return std::visit([](auto& rec) -> header& { return rec.h; }, r);
}

}  // namespace headachemd::normalize
