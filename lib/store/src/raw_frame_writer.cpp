#include "raw_frame_writer.hpp"

#include <sqlite3.h>

#include <limits>
#include <stdexcept>

namespace headachemd::store::detail {
namespace {

void rearm(SQLite::Statement& s) { (void)s.tryReset(); }

// sqlite3_commit_hook: non-zero turns the COMMIT into a ROLLBACK. Neither
// hook may use the connection (https://sqlite.org/c3ref/commit_hook.html);
// they read and clear memory only.
int refuse_open_frames(void* self) { return static_cast<raw_frame_writer*>(self)->pending() ? 1 : 0; }
void forget_open_frames(void* self) { static_cast<raw_frame_writer*>(self)->discard(); }

void put_u32(std::string& out, std::size_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

raw_frame_writer::raw_frame_writer(SQLite::Database& db)
    : db_(db),
      insert_(db,
              "INSERT INTO raw_frame (frame, source, patient_key, resource_type, resources, sizes, raw) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
      max_(db, "SELECT coalesce(max(frame), 0) FROM raw_frame"),
      drop_(db, "DELETE FROM raw_frame WHERE frame = ?1 AND resources <= 1"),
      count_down_(db, "UPDATE raw_frame SET resources = resources - 1 WHERE frame = ?1") {
    sqlite3_commit_hook(db_.getHandle(), refuse_open_frames, this);
    sqlite3_rollback_hook(db_.getHandle(), forget_open_frames, this);
}

raw_frame_writer::~raw_frame_writer() {
    sqlite3_commit_hook(db_.getHandle(), nullptr, nullptr);
    sqlite3_rollback_hook(db_.getHandle(), nullptr, nullptr);
}

std::int64_t raw_frame_writer::next_frame() {
    // Numbers are handed out in memory inside the write transaction (BEGIN
    // IMMEDIATE: no other writer can take one meanwhile), so a row can be
    // written with its pointer before its frame row exists.
    if (next_ == 0) {
        rearm(max_);
        max_.executeStep();
        next_ = max_.getColumn(0).getInt64() + 1;
        rearm(max_);
    }
    return next_++;
}

raw_frame_writer::open_frame& raw_frame_writer::open_for(std::string_view source,
                                                         std::string_view patient_key,
                                                         std::string_view type) {
    // A page's resources come one patient and type after another: the last
    // frame is nearly always the one.
    if (last_ && last_->resource_type == type && last_->patient_key == patient_key && last_->source == source)
        return *last_;
    key_.assign(source).push_back('\x1f');
    key_.append(patient_key).push_back('\x1f');
    key_.append(type);
    auto [it, fresh] = open_.try_emplace(key_);
    if (fresh) {
        it->second.frame = next_frame();
        it->second.source = source;
        it->second.patient_key = patient_key;
        it->second.resource_type = type;
        by_number_[it->second.frame] = &it->second;
    }
    last_ = &it->second;
    return it->second;
}

raw_frame_writer::slot raw_frame_writer::reserve(std::string_view source, std::string_view patient_key,
                                                 std::string_view resource_type, std::string_view json) {
    if (json.size() > std::numeric_limits<std::uint32_t>::max())
        throw std::length_error("a resource's JSON is larger than a raw frame can hold");
    open_frame* f = &open_for(source, patient_key, resource_type);
    if (!f->json.empty() && f->json.size() + json.size() > frame_bytes) {
        // Full: written now, and a new frame opened under the same key.
        write(*f);
        by_number_.erase(f->frame);
        f->frame = next_frame();
        f->json.clear();
        f->sizes.clear();
        f->live = 0;
        by_number_[f->frame] = f;
    }
    return slot{f->frame, static_cast<std::int64_t>(f->json.size()), static_cast<std::int64_t>(json.size())};
}

void raw_frame_writer::keep(std::string_view json) {
    if (!last_) throw std::logic_error("raw_frame_writer::keep without reserve");
    last_->json.append(json);
    put_u32(last_->sizes, json.size());
    ++last_->live;
}

void raw_frame_writer::release(std::int64_t frame) {
    if (auto it = by_number_.find(frame); it != by_number_.end()) {
        // Still open (the same resource twice in one write): its bytes stay,
        // unpointed; a frame nothing points into is not written.
        --it->second->live;
        return;
    }
    rearm(drop_);
    drop_.bind(1, frame);
    if (drop_.exec() == 0) {
        rearm(count_down_);
        count_down_.bind(1, frame);
        count_down_.exec();
    }
}

void raw_frame_writer::write(open_frame& f) {
    if (f.live <= 0) return;
    const std::string_view packed = compressor_.compress(f.json);
    rearm(insert_);
    insert_.bind(1, f.frame);
    insert_.bindNoCopy(2, f.source);
    if (f.patient_key.empty())
        insert_.bind(3);
    else
        insert_.bindNoCopy(3, f.patient_key);
    insert_.bindNoCopy(4, f.resource_type);
    insert_.bind(5, f.live);
    insert_.bindNoCopy(6, f.sizes.data(), static_cast<int>(f.sizes.size()));
    insert_.bindNoCopy(7, packed.data(), static_cast<int>(packed.size()));
    insert_.exec();
}

void raw_frame_writer::flush() {
    // Taken out first: nothing is pending while the frames are written, so
    // the commit hook lets a COMMIT after them through (and a throw leaves
    // nothing open for a transaction that is to roll back).
    std::map<std::string, open_frame> frames;
    frames.swap(open_);
    discard();
    for (auto& [key, f] : frames) write(f);
}

void raw_frame_writer::discard() {
    open_.clear();
    by_number_.clear();
    last_ = nullptr;
    next_ = 0;
}

}  // namespace headachemd::store::detail
