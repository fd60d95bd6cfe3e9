#include "headachemd/terminology/terminology.hpp"

namespace headachemd::terminology {
namespace {

constexpr std::size_t max_answers = 50'000;

template <class Map, class Compute>
auto remember(Map& map, const std::string& key, Compute&& compute) {
    if (auto it = map.find(key); it != map.end()) return it->second;
    return map.emplace(key, compute()).first->second;
}

}  // namespace

const std::string& memo::key(char kind, std::span<const coding_view> codings, std::string_view text) {
    // Unit and record separators cannot appear in codes or display text
    // that a classifier would match, so the key is unambiguous.
    key_.clear();
    key_.push_back(kind);
    for (const auto& c : codings) {
        key_.append(c.system).push_back('\x1f');
        key_.append(c.code).push_back('\x1f');
        key_.append(c.display).push_back('\x1e');
    }
    key_.push_back('\x1d');
    key_.append(text);
    return key_;
}

void memo::bound() {
    if (answers_.size() + medications_.size() > max_answers) {
        answers_.clear();
        medications_.clear();
    }
}

headache_type memo::condition(std::span<const coding_view> codings, std::string_view text) {
    bound();
    return static_cast<headache_type>(remember(answers_, key('c', codings, text), [&] {
        return static_cast<std::uint32_t>(classify_condition(codings, text));
    }));
}

medication_class memo::medication(std::span<const coding_view> codings, std::string_view text) {
    bound();
    return remember(medications_, key('m', codings, text),
                    [&] { return classify_medication(codings, text); });
}

instrument memo::observation(std::span<const coding_view> codings, std::string_view text) {
    bound();
    return static_cast<instrument>(remember(answers_, key('o', codings, text), [&] {
        return static_cast<std::uint32_t>(classify_observation(codings, text));
    }));
}

procedure_kind memo::procedure(std::span<const coding_view> codings, std::string_view text) {
    bound();
    return static_cast<procedure_kind>(remember(answers_, key('p', codings, text), [&] {
        return static_cast<std::uint32_t>(classify_procedure(codings, text));
    }));
}

bool memo::headache_related(std::span<const coding_view> codings, std::string_view text) {
    bound();
    return remember(answers_, key('h', codings, text),
                    [&] { return static_cast<std::uint32_t>(is_headache_related(codings, text)); }) != 0;
}

}  // namespace headachemd::terminology
