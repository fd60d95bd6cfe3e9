// The clock, injected so that tests can drive a day of schedule in
// milliseconds and so that nothing reads the wall clock behind our back.
#pragma once

#include <chrono>

namespace headachemd {

class clock {
public:
    virtual ~clock() = default;
    virtual std::chrono::system_clock::time_point now() const = 0;
    virtual std::chrono::steady_clock::time_point steady_now() const = 0;
};

class system_clock final : public clock {
public:
    std::chrono::system_clock::time_point now() const override { return std::chrono::system_clock::now(); }
    std::chrono::steady_clock::time_point steady_now() const override {
        return std::chrono::steady_clock::now();
    }
};

// A clock that moves only when told to.
class manual_clock final : public clock {
public:
    explicit manual_clock(std::chrono::system_clock::time_point start =
                              std::chrono::system_clock::time_point{} + std::chrono::hours(24 * 365 * 56))
        : now_(start) {}
    std::chrono::system_clock::time_point now() const override { return now_; }
    std::chrono::steady_clock::time_point steady_now() const override {
        return std::chrono::steady_clock::time_point{} + (now_ - std::chrono::system_clock::time_point{});
    }
    void advance(std::chrono::nanoseconds d) { now_ += d; }

private:
    std::chrono::system_clock::time_point now_;
};

}  // namespace headachemd
