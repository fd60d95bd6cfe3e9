#pragma once
// resource_raw: how a resource's exact JSON is stored, and the one way back
// to it. Schema 8 (schema/0008_raw_zstd.sql) added `encoding`: 'json' rows
// (everything written before) hold the bytes as text, 'zstd' rows one zstd
// frame of them. Everything that reads resource_raw (the ViewDefinition
// back-fill, `view run --db`) goes through raw_json_text(), so that it never
// needs to know which encoding a row has.
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <SQLiteCpp/Database.h>

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

// Reads one row and returns raw_json_text() of it, or nullopt when there
// is no such row. Throws raw_decode_error as above, SQLite::Exception on a
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
