// A small streaming JSON writer for the sandbox's responses. It writes in
// the order it is called (FHIR JSON puts resourceType first by convention)
// and inserts commas itself. It does not check nesting: callers are ours.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace headachemd::sandbox::detail {

class json_writer {
public:
    json_writer& begin_object();
    json_writer& end_object();
    json_writer& begin_array();
    json_writer& end_array();
    // The key of the next value, inside an object.
    json_writer& key(std::string_view k);

    json_writer& value(std::string_view s);
    json_writer& value(const char* s) { return value(std::string_view{s}); }
    json_writer& value(std::int64_t n);
    json_writer& value(int n) { return value(static_cast<std::int64_t>(n)); }
    json_writer& value(std::size_t n) { return value(static_cast<std::int64_t>(n)); }
    json_writer& value(double d);  // finite only; shortest round-trip form
    json_writer& value(bool b);
    // Already serialized JSON (a nested resource), inserted as it is.
    json_writer& raw(std::string_view json);

    // key(k).value(v) in one call.
    template <class T>
    json_writer& member(std::string_view k, const T& v) {
        return key(k).value(v);
    }

    const std::string& str() const { return out_; }
    std::string take() { return std::move(out_); }

private:
    void before_value();

    std::string out_;
    // Per open container: whether it has a member yet (for the comma).
    std::vector<bool> has_member_;
    bool after_key_ = false;
};

// Appends `s` as a JSON string literal (quotes included), escaping '"', '\\'
// and every control character (RFC 8259 §7). Other UTF-8 passes through.
void append_json_string(std::string& out, std::string_view s);

}  // namespace headachemd::sandbox::detail
