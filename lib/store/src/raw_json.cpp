#include "headachemd/store/raw_json.hpp"

#include <cstdint>
#include <stdexcept>
#include <utility>

#include <SQLiteCpp/Statement.h>
#include <zstd.h>

namespace headachemd::store {
namespace {

// Names a row without its content: the message may reach a log, and the
// JSON is a FHIR payload (STYLE.md, logging).
std::string row_name(const raw_row& row) {
    return "resource_raw row (source '" + std::string(row.source) + "', " + std::string(row.resource_type) +
           "/" + std::string(row.id) + ")";
}

[[noreturn]] void refuse(const raw_row& row, const std::string& why) {
    throw raw_decode_error(row_name(row) + ": " + why +
                           "; its JSON cannot be read. Restore headache.db from a backup, or delete the row");
}

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

std::string inflate(const raw_row& row) {
    const char* src = row.stored.data();
    const std::size_t size = row.stored.size();
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
    if (row.encoding == raw_encoding_zstd) return inflate(row);
    refuse(row, "unknown encoding '" + std::string(row.encoding) + "' (this binary knows 'json' and 'zstd')");
}

std::optional<std::string> read_raw_json(SQLite::Database& db, std::string_view source,
                                         std::string_view resource_type, std::string_view id) {
    SQLite::Statement q(db, read_sql);
    q.bind(1, std::string(source));
    q.bind(2, std::string(resource_type));
    q.bind(3, std::string(id));
    if (!q.executeStep()) return std::nullopt;
    const auto enc = q.getColumn(0);
    const auto raw = q.getColumn(1);
    // getBlob() before getBytes(): SQLite may convert the value on the first
    // access, and the byte count must describe the same form.
    const auto* bytes = static_cast<const char*>(raw.getBlob());
    const std::string_view stored(bytes ? bytes : "", static_cast<std::size_t>(raw.getBytes()));
    const std::string encoding = enc.getString();
    return raw_json_text(raw_row{source, resource_type, id, encoding, stored});
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
