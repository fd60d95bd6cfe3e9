// NDJSON line splitting: see headachemd/ndjson/line_splitter.hpp.
#include "headachemd/ndjson/line_splitter.hpp"

#include <cstring>
#include <stdexcept>

namespace headachemd::ndjson {

namespace {

// NDJSON allows no blank lines, but exports and hand-made files end with
// one or carry stray whitespace; skipping them is what `ingest` always did.
bool blank(std::string_view s) { return s.find_first_not_of(" \t") == std::string_view::npos; }

std::string_view without_cr(std::string_view s) {
    if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
    return s;
}

}  // namespace

line_splitter::line_splitter(std::size_t max_line_bytes, std::size_t padding)
    : max_line_bytes_(max_line_bytes), padding_(padding) {}

void line_splitter::feed(std::string_view chunk) {
    if (!chunk_.empty()) throw std::logic_error("line_splitter::feed before the previous chunk was used up");
    chunk_ = chunk;
}

std::optional<split_event> line_splitter::hand_out_joined(std::size_t number) {
    const std::size_t length = without_cr(joined_).size();
    if (blank(std::string_view(joined_).substr(0, length))) {
        joined_.clear();
        return std::nullopt;
    }
    // Zero-filled padding after the line; the view is taken after the
    // resize, which may move the bytes.
    joined_.resize(length + padding_, '\0');
    joined_handed_out_ = true;
    return line{number, std::string_view(joined_).substr(0, length)};
}

std::optional<split_event> line_splitter::next() {
    if (joined_handed_out_) {
        joined_.clear();
        joined_handed_out_ = false;
    }
    while (!chunk_.empty()) {
        const void* nl_at = std::memchr(chunk_.data(), '\n', chunk_.size());
        if (!nl_at) {
            // The line goes on in the next chunk: keep its bytes unless they
            // already pass the cap (a last "\r" may be half of its "\r\n").
            if (!dropping_) {
                const std::size_t seen = joined_.size() + chunk_.size();
                const std::size_t length = chunk_.back() == '\r' ? seen - 1 : seen;
                if (length > max_line_bytes_) {
                    joined_.clear();
                    dropping_ = true;
                    chunk_ = {};
                    return line_too_long{number_, length, max_line_bytes_};
                }
                joined_.append(chunk_);
            }
            chunk_ = {};
            break;
        }
        const std::size_t nl = static_cast<std::size_t>(static_cast<const char*>(nl_at) - chunk_.data());
        const std::string_view rest = chunk_.substr(0, nl);
        chunk_.remove_prefix(nl + 1);
        const std::size_t number = number_++;
        if (dropping_) {
            dropping_ = false;  // the end of the line already reported
            continue;
        }
        const std::size_t length = joined_.size() + without_cr(rest).size() -
                                   (rest.empty() && !joined_.empty() && joined_.back() == '\r' ? 1 : 0);
        if (length > max_line_bytes_) {
            joined_.clear();
            return line_too_long{number, length, max_line_bytes_};
        }
        if (joined_.empty()) {
            // The whole line is in this chunk: handed out in place.
            const std::string_view text = without_cr(rest);
            if (blank(text)) continue;
            return line{number, text};
        }
        joined_.append(rest);
        if (auto out = hand_out_joined(number)) return out;
    }
    return std::nullopt;
}

std::optional<split_event> line_splitter::finish() {
    if (!chunk_.empty()) throw std::logic_error("line_splitter::finish before the last chunk was used up");
    if (joined_handed_out_) {
        joined_.clear();
        joined_handed_out_ = false;
    }
    std::optional<split_event> last;
    if (!dropping_ && !joined_.empty()) last = hand_out_joined(number_);
    // Ready for another stream; a line handed out above stays valid until
    // the next call, which clears it.
    if (!joined_handed_out_) joined_.clear();
    dropping_ = false;
    number_ = 1;
    return last;
}

}  // namespace headachemd::ndjson
