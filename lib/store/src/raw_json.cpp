#include "headachemd/store/raw_json.hpp"

#include <cstdint>
#include <stdexcept>
#include <utility>

#include <SQLiteCpp/Statement.h>
#include <zstd.h>

#include "column_bytes.hpp"
#include "headachemd/normalize/sha256.hpp"
#include "stored_table.hpp"

namespace headachemd::store {
namespace {

// Names a row without its content: the message may reach a log, and the
// JSON is a FHIR payload (STYLE.md, logging).
std::string row_name(const raw_row& row) {
    return "resource_raw row (source '" + std::string(row.source) + "', " + std::string(row.resource_type) +
           "/" + std::string(row.id) + ")";
}

[[noreturn]] void refuse(const std::string& name, const std::string& why) {
    throw raw_decode_error(name + ": " + why +
                           "; its JSON cannot be read. Restore headache.db from a backup, or delete the row");
}
[[noreturn]] void refuse(const raw_row& row, const std::string& why) { refuse(row_name(row), why); }

std::string frame_name(std::int64_t frame) { return "raw_frame " + std::to_string(frame); }

struct dctx_deleter {
    void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

// One decompression context per thread, reused: a back-fill reads every
// row, and a context holds a window buffer not worth allocating each time.
ZSTD_DCtx* thread_dctx() {
    thread_local std::unique_ptr<ZSTD_DCtx, dctx_deleter> ctx(ZSTD_createDCtx());
    if (!ctx) throw std::runtime_error("zstd: cannot allocate a decompression context");
    return ctx.get();
}

// The frame's first four bytes, little-endian (RFC 8878, section 3.1.1).
std::uint32_t magic_of(const char* p) {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

// `name` says which row, for the error.
std::string inflate(const std::string& row, std::string_view stored) {
    const char* src = stored.data();
    const std::size_t size = stored.size();
    // A zstd frame starts with its magic number (RFC 8878, section 3.1.1);
    // anything else (plain JSON, a skippable frame) is not what we write.
    if (size < 4 || magic_of(src) != ZSTD_MAGICNUMBER)
        refuse(row, "encoding is 'zstd' but raw is not a zstd frame");
    const unsigned long long content = ZSTD_getFrameContentSize(src, size);
    if (content == ZSTD_CONTENTSIZE_ERROR) refuse(row, "the zstd frame header is truncated or corrupt");
    if (content == ZSTD_CONTENTSIZE_UNKNOWN) refuse(row, "the zstd frame does not record its size");
    if (content > max_raw_json_bytes)
        refuse(row, "the zstd frame claims " + std::to_string(content) + " bytes, more than the " +
                        std::to_string(max_raw_json_bytes) + " any stored resource can have");
    const std::size_t frame = ZSTD_findFrameCompressedSize(src, size);
    if (ZSTD_isError(frame))
        refuse(row, std::string("the zstd frame is truncated or corrupt (zstd: ") + ZSTD_getErrorName(frame) +
                        ")");
    if (frame != size) refuse(row, "raw holds bytes after its zstd frame");
    std::string out(static_cast<std::size_t>(content), '\0');
    const std::size_t got = ZSTD_decompressDCtx(thread_dctx(), out.data(), out.size(), src, size);
    if (ZSTD_isError(got))
        refuse(row, std::string("the zstd frame is corrupt (zstd: ") + ZSTD_getErrorName(got) + ")");
    if (got != out.size()) refuse(row, "the zstd frame holds fewer bytes than its header says");
    return out;
}

constexpr const char* read_sql =
    "SELECT encoding, raw FROM resource_raw WHERE source = ?1 AND resource_type = ?2 AND id = ?3";

}  // namespace

std::string raw_json_text(const raw_row& row) {
    if (row.encoding == raw_encoding_json) return std::string(row.stored);
    if (row.encoding == raw_encoding_zstd) return inflate(row_name(row), row.stored);
    refuse(row, "unknown encoding '" + std::string(row.encoding) + "' (this binary knows 'json' and 'zstd')");
}

raw_frame_content raw_frame_text(std::int64_t frame, std::string_view sizes, std::string_view stored) {
    const std::string name = frame_name(frame);
    raw_frame_content out;
    out.frame = frame;
    if (sizes.size() % 4 != 0) refuse(name, "its sizes are not a whole number of 4-byte counts");
    out.text = inflate(name, stored);
    std::size_t at = 0;
    out.items.reserve(sizes.size() / 4);
    for (std::size_t i = 0; i < sizes.size(); i += 4) {
        std::size_t len = 0;
        for (int b = 3; b >= 0; --b) len = (len << 8) | static_cast<unsigned char>(sizes[i + b]);
        if (len > out.text.size() - at)
            refuse(name, "its sizes add up to more bytes than its zstd frame holds");
        out.items.emplace_back(at, len);
        at += len;
    }
    if (at != out.text.size()) refuse(name, "its sizes add up to fewer bytes than its zstd frame holds");
    return out;
}

raw_frame_reader::raw_frame_reader(SQLite::Database& db)
    : q_(std::make_unique<SQLite::Statement>(db, "SELECT sizes, raw FROM raw_frame WHERE frame = ?1")) {}

raw_frame_reader::~raw_frame_reader() = default;

const raw_frame_content* raw_frame_reader::get(std::int64_t frame) {
    if (last_ && last_->frame == frame) return &*last_;
    last_.reset();
    q_->tryReset();
    q_->bind(1, frame);
    if (!q_->executeStep()) return nullptr;
    last_ =
        raw_frame_text(frame, detail::column_bytes(q_->getColumn(0)), detail::column_bytes(q_->getColumn(1)));
    q_->tryReset();
    return &*last_;
}

std::string raw_frame_reader::json_at(const raw_pointer& p, const std::string& name) {
    const raw_frame_content* f = nullptr;
    try {
        f = get(p.frame);
    } catch (const raw_decode_error& e) {
        throw raw_decode_error(name + ": " + e.what());  // the frame's message names the frame
    }
    if (!f) refuse(name, "it points into raw_frame " + std::to_string(p.frame) + ", which does not exist");
    if (p.at < 0 || p.len < 0 ||
        static_cast<std::uint64_t>(p.at) + static_cast<std::uint64_t>(p.len) > f->text.size())
        refuse(name, "it points past the end of raw_frame " + std::to_string(p.frame));
    std::string json = f->text.substr(static_cast<std::size_t>(p.at), static_cast<std::size_t>(p.len));
    // The row's raw_hash is the SHA-256 of the exact bytes it was written
    // from (normalize::header): a pointer that went wrong, or a damaged
    // frame, cannot pass for the stored version.
    if (normalize::sha256_hex(json) != p.raw_hash)
        refuse(name, "the bytes it points to in raw_frame " + std::to_string(p.frame) +
                         " are not the stored version (their SHA-256 differs from raw_hash)");
    return json;
}

std::optional<std::string> read_raw_json(SQLite::Database& db, std::string_view source,
                                         std::string_view resource_type, std::string_view id) {
    // Since schema 12 the resource's row points into a raw_frame; a row
    // without a pointer may still have the resource_raw row it was stored
    // with before.
    const auto table = detail::stored_table_of(resource_type);
    if (table.raw_pointer) {
        SQLite::Statement q(db, "SELECT raw_frame, raw_at, raw_len, raw_hash FROM \"" +
                                    std::string(table.name) + "\" WHERE source = ?1 AND id = ?2" +
                                    (table.shared ? " AND resource_type = ?3" : ""));
        q.bind(1, std::string(source));
        q.bind(2, std::string(id));
        if (table.shared) q.bind(3, std::string(resource_type));
        if (q.executeStep() && !q.getColumn(0).isNull()) {
            const raw_pointer p{q.getColumn(0).getInt64(), q.getColumn(1).getInt64(),
                                q.getColumn(2).getInt64(), q.getColumn(3).getString()};
            raw_frame_reader frames(db);
            return frames.json_at(p, raw_resource_name(source, resource_type, id));
        }
    }
    SQLite::Statement q(db, read_sql);
    q.bind(1, std::string(source));
    q.bind(2, std::string(resource_type));
    q.bind(3, std::string(id));
    if (!q.executeStep()) return std::nullopt;
    const std::string encoding = q.getColumn(0).getString();
    const std::string_view stored = detail::column_bytes(q.getColumn(1));
    return raw_json_text(raw_row{source, resource_type, id, encoding, stored});
}

std::string raw_resource_name(std::string_view source, std::string_view resource_type, std::string_view id) {
    return "kept JSON of (source '" + std::string(source) + "', " + std::string(resource_type) + "/" +
           std::string(id) + ")";
}

struct raw_compressor::context {
    struct deleter {
        void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
    };
    std::unique_ptr<ZSTD_CCtx, deleter> cctx{ZSTD_createCCtx()};
};

raw_compressor::raw_compressor() : ctx_(std::make_unique<context>()) {
    ZSTD_CCtx* c = ctx_->cctx.get();
    if (!c) throw std::runtime_error("zstd: cannot allocate a compression context");
    // Level 1: bench_ingest measured levels 1 and 3 at the same size (2.4x on
    // single resources) and level 1 faster (docs/dev/benchmarks.md). The
    // checksum lets a reader tell a damaged row from a valid one; the
    // content size lets it allocate exactly once.
    for (auto [param, value] : {std::pair{ZSTD_c_compressionLevel, 1}, std::pair{ZSTD_c_checksumFlag, 1},
                                std::pair{ZSTD_c_contentSizeFlag, 1}}) {
        const std::size_t rc = ZSTD_CCtx_setParameter(c, param, value);
        if (ZSTD_isError(rc)) throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(rc));
    }
}

raw_compressor::~raw_compressor() = default;

std::string_view raw_compressor::compress(std::string_view json) {
    // One large resource (up to max_resource_bytes, 64 MiB) must not pin its
    // buffer for the daemon's lifetime (bench_soak holds peak RSS to 64 MiB):
    // a buffer grown past 1 MiB is given back before a small resource.
    constexpr std::size_t keep_bytes = std::size_t{1} << 20;
    const std::size_t bound = ZSTD_compressBound(json.size());
    if (out_.capacity() > keep_bytes && bound <= keep_bytes) std::string().swap(out_);
    out_.resize(bound);
    const std::size_t n =
        ZSTD_compress2(ctx_->cctx.get(), out_.data(), out_.size(), json.data(), json.size());
    if (ZSTD_isError(n)) throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(n));
    return std::string_view(out_.data(), n);
}

}  // namespace headachemd::store
