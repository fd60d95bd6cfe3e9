// Private to lib/store: how resource_writer keeps resources' JSON in
// raw_frame rows (schema 12). The JSON of the resources one write brings
// for one (source, patient, type) goes into one open frame, in memory; the
// resource's own row is written with a pointer into it (frame, offset,
// length), and the frame row itself is written at flush(), before COMMIT.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include "headachemd/store/raw_json.hpp"

namespace headachemd::store::detail {

class raw_frame_writer {
public:
    // An open frame is written out once it holds this many bytes of JSON,
    // and a new one opened: a reader inflates a whole frame to read one
    // resource, so the frame bounds what one read costs. 1 MiB: zstd level 1
    // compresses Synthea JSON about as tightly from 128 KiB up
    // (docs/dev/benchmarks.md), and a Bundle page stays one or a few frames.
    static constexpr std::size_t frame_bytes = std::size_t{1} << 20;

    struct slot {
        std::int64_t frame = 0;
        std::int64_t at = 0;
        std::int64_t len = 0;
    };

    // Registers a commit hook and a rollback hook on `db` for its lifetime
    // (one writer per connection): a COMMIT while frames are open is refused
    // (SQLite turns it into a ROLLBACK, and the committer gets
    // SQLITE_CONSTRAINT_COMMITHOOK), so a caller that forgot flush() cannot
    // store rows pointing at frames that do not exist; a ROLLBACK forgets
    // the open frames.
    explicit raw_frame_writer(SQLite::Database& db);
    ~raw_frame_writer();
    raw_frame_writer(const raw_frame_writer&) = delete;
    raw_frame_writer& operator=(const raw_frame_writer&) = delete;

    // Where `json` will be if keep() follows: the end of the open frame of
    // (source, patient_key, type), opened (with a new frame number) when
    // there is none. Nothing is kept until keep(), so a write that changes
    // no row leaves the frame as it was.
    slot reserve(std::string_view source, std::string_view patient_key, std::string_view resource_type,
                 std::string_view json);
    // Appends the JSON the last reserve() placed: its row now points there.
    void keep(std::string_view json);
    // A row that pointed into `frame` points elsewhere now (a new version, or
    // store_raw off): counted down, and deleted when nothing points into it.
    void release(std::int64_t frame);
    // Writes every open frame that a row points into. Called before the
    // write transaction commits (store::write_page does).
    void flush();
    // Forgets the open frames: the transaction they were for rolled back.
    void discard();
    // Frames are open (a resource was placed since the last flush or
    // discard): the transaction may not commit yet.
    bool pending() const { return !open_.empty(); }

private:
    struct open_frame {
        std::int64_t frame = 0;
        std::string source, patient_key, resource_type;
        std::string json;
        std::string sizes;      // 4 bytes per kept resource, little-endian
        std::int64_t live = 0;  // rows pointing here
    };
    open_frame& open_for(std::string_view source, std::string_view patient_key, std::string_view type);
    void write(open_frame& f);
    std::int64_t next_frame();

    SQLite::Database& db_;
    SQLite::Statement insert_, max_, drop_, count_down_;
    raw_compressor compressor_;
    // By "source \x1f patient_key \x1f type"; std::map so that flush()
    // writes frames in a fixed order.
    std::map<std::string, open_frame> open_;
    std::unordered_map<std::int64_t, open_frame*> by_number_;
    std::string key_;
    open_frame* last_ = nullptr;
    std::int64_t next_ = 0;  // 0: read max(frame) on the next open
};

}  // namespace headachemd::store::detail
