// result<T>: a value or an expected error, for failures that are part of
// normal operation (a timeout, an HTTP 503, invalid_grant). Bugs throw.
//
// std::expected is C++23; GCC 12 in C++20 mode does not have it.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace headachemd {

// An expected failure: a machine-readable code and a message for a person.
// The message never contains a token, a secret or a FHIR payload.
struct error {
    std::string code;     // stable identifier: "timeout", "http_503", "invalid_grant", …
    std::string message;  // what happened and where, for logs and `status`
};

template <class T>
class [[nodiscard]] result {
public:
    result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    result(error e) : v_(std::in_place_index<1>, std::move(e)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const error& err() const { return std::get<1>(v_); }

private:
    std::variant<T, error> v_;
};

// For operations with no value.
struct ok_t {};
inline constexpr ok_t ok_v{};

}  // namespace headachemd
