#include "json_writer.hpp"

#include "headachemd/core/json.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace headachemd::sandbox::detail {

void append_json_string(std::string& out, std::string_view s) { headachemd::append_json_string(out, s); }

void json_writer::before_value() {
    if (after_key_) {
        after_key_ = false;
        return;
    }
    if (!has_member_.empty()) {
        if (has_member_.back()) out_.push_back(',');
        has_member_.back() = true;
    }
}

json_writer& json_writer::begin_object() {
    before_value();
    out_.push_back('{');
    has_member_.push_back(false);
    return *this;
}

json_writer& json_writer::end_object() {
    out_.push_back('}');
    has_member_.pop_back();
    return *this;
}

json_writer& json_writer::begin_array() {
    before_value();
    out_.push_back('[');
    has_member_.push_back(false);
    return *this;
}

json_writer& json_writer::end_array() {
    out_.push_back(']');
    has_member_.pop_back();
    return *this;
}

json_writer& json_writer::key(std::string_view k) {
    before_value();
    append_json_string(out_, k);
    out_.push_back(':');
    after_key_ = true;
    return *this;
}

json_writer& json_writer::value(std::string_view s) {
    before_value();
    append_json_string(out_, s);
    return *this;
}

json_writer& json_writer::value(std::int64_t n) {
    before_value();
    out_ += std::to_string(n);
    return *this;
}

json_writer& json_writer::value(double d) {
    // JSON has no NaN or infinity; a caller passing one is a bug.
    if (!std::isfinite(d)) throw std::invalid_argument("json_writer: non-finite number");
    before_value();
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, d);
    out_.append(buf, r.ptr);
    return *this;
}

json_writer& json_writer::value(bool b) {
    before_value();
    out_ += b ? "true" : "false";
    return *this;
}

json_writer& json_writer::raw(std::string_view json) {
    before_value();
    out_ += json;
    return *this;
}

}  // namespace headachemd::sandbox::detail
