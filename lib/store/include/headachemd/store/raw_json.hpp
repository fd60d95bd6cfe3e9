#pragma once
// How a resource's exact JSON is kept (store_raw), and the one way back to
// it. Since schema 12 (schema/0012_raw_frame.sql) the JSON of the resources
// one write brings for one patient and type is one zstd frame in a
// raw_frame row, and each resource's own row (condition, observation, ...,
// bare_resource) points into it: raw_frame, raw_at, raw_len. Before, each
// resource had a resource_raw row of its own; schema 8
// (schema/0008_raw_zstd.sql) gave it `encoding`: 'json' rows hold the bytes
// as text, 'zstd' rows one zstd frame of them. Old rows stay readable.
// Everything that reads the JSON (the ViewDefinition back-fill, `view run
// --db`) goes through these functions, so that it never needs to know
// which form a resource's JSON is in.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include "headachemd/store/database.hpp"

namespace headachemd::store {

// A resource_raw row as read: its key, and the `encoding` and `raw` columns
// as SQLite returned them (`raw` as bytes, whatever its storage class).
struct raw_row {
    std::string_view source;
    std::string_view resource_type;
    std::string_view id;
    std::string_view encoding;
    std::string_view stored;
};

// A row whose `raw` cannot be turned back into the JSON: an unknown
// encoding, or a zstd frame that is truncated, corrupt (its checksum does
// not match), followed by other bytes, or larger than the limit. The
// message names the row (source, type and id, never the content).
class raw_decode_error : public store_error {
public:
    using store_error::store_error;
};

// The largest JSON raw_json_text() will inflate a row to. The normalizer
// refuses resources above its own max_resource_bytes (64 MiB by default)
// before they are stored, so a frame that claims more is not ours.
inline constexpr std::size_t max_raw_json_bytes = std::size_t{256} << 20;

// The resource's JSON text, whatever the row's encoding. Pure: no I/O.
// Throws raw_decode_error (naming the row) when it cannot.
std::string raw_json_text(const raw_row& row);

// A raw_frame row inflated: the JSON texts of its resources one after
// another, and each one's (offset, length), in the order of `sizes`.
struct raw_frame_content {
    std::int64_t frame = 0;
    std::string text;
    std::vector<std::pair<std::size_t, std::size_t>> items;
};

// Pure: the frame from its `sizes` and `raw` columns. Throws
// raw_decode_error naming the frame when the zstd frame is damaged or the
// sizes do not add up to its content.
raw_frame_content raw_frame_text(std::int64_t frame, std::string_view sizes, std::string_view stored);

// What a resource's row says about its JSON (schema 12).
struct raw_pointer {
    std::int64_t frame = 0;
    std::int64_t at = 0;
    std::int64_t len = 0;
    std::string raw_hash;  // the row's: SHA-256 hex of the JSON's bytes
};

// Reads raw_frame rows by number and keeps the last one inflated, so that
// a reader going in frame order inflates each frame once. Not thread-safe.
class raw_frame_reader {
public:
    explicit raw_frame_reader(SQLite::Database& db);
    ~raw_frame_reader();
    raw_frame_reader(const raw_frame_reader&) = delete;
    raw_frame_reader& operator=(const raw_frame_reader&) = delete;

    // nullptr when there is no such frame. Valid until the next call.
    const raw_frame_content* get(std::int64_t frame);
    // The bytes `p` points to, checked against its raw_hash. Throws
    // raw_decode_error beginning with `name` when the frame is missing or
    // damaged, the pointer is out of its bounds, or the bytes are not the
    // stored version.
    std::string json_at(const raw_pointer& p, const std::string& name);

private:
    std::unique_ptr<SQLite::Statement> q_;
    std::optional<raw_frame_content> last_;
};

// How errors name a resource's kept JSON: source, type and id, never the
// content.
std::string raw_resource_name(std::string_view source, std::string_view resource_type, std::string_view id);

// The JSON kept of the resource's stored version: through its row's
// pointer, else its resource_raw row (written before schema 12), else
// nullopt. Throws raw_decode_error as above, SQLite::Exception on a
// database failure.
std::optional<std::string> read_raw_json(SQLite::Database& db, std::string_view source,
                                         std::string_view resource_type, std::string_view id);

// Compresses JSON into what a 'zstd' row holds: one zstd frame (level 1)
// that records its content size and an XXH64 checksum, so that
// raw_json_text() can size its buffer and detect corruption. Keeps its
// zstd context between calls; not thread-safe. The returned view stays
// valid until the next call. Throws std::runtime_error if zstd fails
// (out of memory), which is a bug or resource failure, not bad input.
class raw_compressor {
public:
    raw_compressor();
    ~raw_compressor();
    raw_compressor(const raw_compressor&) = delete;
    raw_compressor& operator=(const raw_compressor&) = delete;

    std::string_view compress(std::string_view json);

    // Bytes the output buffer holds on to between calls: given back (to
    // below 1 MiB) by the first small resource after a large one, so that
    // one big resource does not raise the daemon's RSS for good.
    std::size_t held_bytes() const { return out_.capacity(); }

private:
    struct context;
    std::unique_ptr<context> ctx_;
    std::string out_;
};

// The `encoding` values (schema/0008_raw_zstd.sql, CHECK constraint).
inline constexpr std::string_view raw_encoding_json = "json";
inline constexpr std::string_view raw_encoding_zstd = "zstd";

}  // namespace headachemd::store
