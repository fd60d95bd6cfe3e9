// Splits NDJSON (Bulk Data Access IG: "one resource per line", each line
// ended by "\n") into lines as its bytes arrive, in chunks of any size,
// with memory bounded by the longest line allowed: a server controls
// every byte, and an export file may be gigabytes with a few huge lines
// (attachments). Pure: no I/O, no JSON.
//
// Use: feed(chunk), then call next() until it gives nullopt (the chunk is
// used up), then feed the next chunk; after the last one, finish() gives
// a final line that had no newline, if any.
//
// - A line is handed out without its "\n", and without the "\r" of a
//   "\r\n" (tolerated as line ends are in practice); a chunk may end
//   anywhere, between "\r" and "\n" too. A "\r" ending the data is dropped
//   as well.
// - Lines count from 1, every line counted, so a number names the line an
//   editor shows; lines that are empty or only spaces and tabs are not
//   handed out.
// - A line longer than max_line_bytes (its "\r\n" not counted) is one
//   line_too_long for that line as soon as it is known to be too long;
//   the rest of its bytes are dropped as they arrive, never held, and the
//   next line is handed out as usual.
// - Memory: the bytes of one unfinished line, at most max_line_bytes + 1
//   (a "\r" that may end it) plus `padding`, besides the caller's chunk.
//
// Lifetimes: a line's text is valid until the next call on the splitter,
// and may point into the chunk, which must stay valid until next() has
// given nullopt for it. Calling feed() or finish() before then is a bug
// (std::logic_error).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace headachemd::ndjson {

struct line {
    std::size_t number = 0;  // 1-based
    std::string_view text;   // without its line end; never blank
};

struct line_too_long {
    std::size_t number = 0;          // 1-based
    std::size_t length = 0;          // its bytes seen when it passed the cap (more than max_line_bytes)
    std::size_t max_line_bytes = 0;  // the cap
};

using split_event = std::variant<line, line_too_long>;

class line_splitter {
public:
    // `padding`: every line handed out is followed by at least this many
    // readable bytes (simdjson::SIMDJSON_PADDING, so a parser reads the
    // line in place), provided every chunk fed is followed by as many.
    // Lines joined from several chunks are copied into the splitter's own
    // buffer, which has them (zero-filled).
    explicit line_splitter(std::size_t max_line_bytes, std::size_t padding = 0);

    void feed(std::string_view chunk);
    // The next line or over-long line in what was fed; nullopt when the
    // chunk is used up.
    std::optional<split_event> next();
    // The data has ended: the last line if it had no newline (and is not
    // blank, nor already reported too long). The splitter is then empty
    // and may be fed a new stream, numbered from 1.
    std::optional<split_event> finish();

    std::size_t max_line_bytes() const { return max_line_bytes_; }

private:
    std::optional<split_event> hand_out_joined(std::size_t number);

    std::size_t max_line_bytes_;
    std::size_t padding_;
    std::string_view chunk_;  // what is left of the chunk fed
    // An unfinished line's bytes from earlier chunks, or the joined line
    // last handed out (cleared by the next call).
    std::string joined_;
    bool joined_handed_out_ = false;
    bool dropping_ = false;   // inside a line already reported too long
    std::size_t number_ = 1;  // the number of the line being read
};

}  // namespace headachemd::ndjson
