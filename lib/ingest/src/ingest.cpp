#include "headachemd/ingest/ingest.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <system_error>
#include <variant>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "headachemd/ingest/fhir_files.hpp"
#include "headachemd/ndjson/line_splitter.hpp"
#include "headachemd/store/commit_page.hpp"

namespace headachemd::ingest {
namespace {

namespace fs = std::filesystem;
namespace nz = headachemd::normalize;

// Bulk Data exports name files after their type ("Medication.000.ndjson"),
// Synthea and the web app after the resource ("Medication-x.json"). A
// Medication must be seen before the requests that reference it.
bool is_medication_file(const fs::path& p) {
    const std::string name = p.filename().string();
    constexpr std::string_view stem = "Medication";
    return name.size() > stem.size() && name.compare(0, stem.size(), stem) == 0 &&
           (name[stem.size()] == '.' || name[stem.size()] == '-' || name[stem.size()] == '_');
}

}  // namespace

type_counts report::totals() const {
    type_counts t;
    for (const auto& [type, c] : per_type) {
        t.read += c.read;
        t.inserted += c.inserted;
        t.updated += c.updated;
        t.unchanged += c.unchanged;
        t.skipped += c.skipped;
        t.rejected += c.rejected;
    }
    return t;
}

struct ingester::impl {
    impl(store::analytics_db& db_, const store::pseudonym_key& key_, options o,
         std::shared_ptr<spdlog::logger> l, steady_now_fn sn, system_now_fn yn, report& r)
        : db(db_),
          key(key_),
          opts(std::move(o)),
          log(std::move(l)),
          steady_now(std::move(sn)),
          system_now(std::move(yn)),
          rep(r),
          views(open_views(db_, opts.views, store::utc_timestamp(system_now()), opts.keep_fhir_patient_id)),
          normalizer(
              nz::options{.keep_raw = opts.store_raw,
                          .raw_for_types = views ? views->resource_types() : std::vector<std::string>{}}),
          writer(db_, opts.store_raw, store::identity_policy{key_, opts.keep_fhir_patient_id}) {
        // Rows an earlier run (or an older version) left must obey the
        // policy of this run too, not only the rows it writes.
        db.enforce_identifier_policy(store::identity_policy{key_, opts.keep_fhir_patient_id});
    }

    store::analytics_db& db;
    store::pseudonym_key key;
    options opts;
    std::shared_ptr<spdlog::logger> log;
    steady_now_fn steady_now;
    system_now_fn system_now;
    report& rep;
    std::shared_ptr<store::view_tables> views;  // nullptr: no views
    nz::normalizer normalizer;
    store::resource_writer writer;
    // Patient keys already computed (the cache the Bulk Data apply uses too).
    store::patient_key_cache patient_keys{key, opts.source};

    // Progress bookkeeping.
    progress_fn progress;
    std::uint64_t total_bytes = 0, done_bytes = 0;
    std::chrono::steady_clock::time_point started, last_progress;

    // Problems of the current file.
    std::size_t file_problems = 0;

    void problem(const fs::path& file, std::string_view where, std::string_view message) {
        ++rep.problems;
        if (++file_problems == 1) ++rep.files_rejected;
        if (file_problems <= opts.max_problems_logged_per_file) {
            if (where.empty())
                log->error("{}: {}", file.string(), message);
            else
                log->error("{}: {}: {}", file.string(), where, message);
        } else if (file_problems == opts.max_problems_logged_per_file + 1) {
            log->error("{}: more problems in this file; only the first {} are shown", file.string(),
                       opts.max_problems_logged_per_file);
        }
    }

    const std::string& patient_key_for(const std::string& fhir_patient_id) {
        return patient_keys.get(fhir_patient_id);
    }

    void count_read(const nz::result& res) {
        for (const auto& [type, n] : res.read) rep.per_type[type].read += n;
        for (const auto& [type, n] : res.skipped) rep.per_type[type].skipped += n;
    }

    static std::shared_ptr<store::view_tables> open_views(store::analytics_db& d,
                                                          const std::vector<store::view_file>& files,
                                                          const std::string& now, bool keep_fhir_patient_id) {
        if (files.empty()) return nullptr;
        // The identifier rule of the fixed tables applies to views too.
        auto loaded =
            store::load_views(files, keep_fhir_patient_id ? views::privacy::minimal : views::privacy::none);
        if (!loaded.errors.empty()) {
            std::string message = "refused view definition(s):";
            for (const auto& e : loaded.errors) message += " " + e + ";";
            message.pop_back();
            throw std::invalid_argument(message);
        }
        return std::make_shared<store::view_tables>(d, std::move(loaded.views), now);
    }

    // Before the files: a view made while resources of its type were
    // already stored is filled from the JSON kept of them (raw_frame)
    // (store::view_tables::backfill). Done first so that the files then
    // cost only what changed: a view left pending evaluates every resource
    // of every batch, unchanged ones too. An ingest-only database has no
    // full pull that could ever complete such a view. A failure (headache.db
    // locked past busy_timeout) is logged and the files are still read; the
    // view stays pending and the next run goes on where this one stopped.
    void backfill_views() {
        if (!views) return;
        store::backfill_options o;
        o.after_batch = [this] { log_view_failures("view back-fill"); };
        // Every stored resource's key columns as ingest maps them: the keyed
        // hash of (its source, FHIR id).
        const store::source_key_mapper keys = [this](std::string_view source, std::string_view id) {
            return store::patient_key_for(key, source, id);
        };
        try {
            for (const auto& r : views->backfill(store::utc_timestamp(system_now()), keys, o))
                if (r.resources > 0) log->info("{}", store::backfill_summary(r));
        } catch (const store::store_error& failure) {
            (void)views->take_failures();  // of a batch that was rolled back
            log->warn("back-filling the views stopped ({}); the next run goes on", failure.what());
        }
    }

    // A resource a view could not evaluate is stored without view rows; the
    // log names the view, the type and the stored id, never the resource.
    void log_view_failures(const fs::path& file) {
        if (!views) return;
        for (const auto& f : views->take_failures())
            log->warn("{}: view {}: {}/{} has no rows: {}{}{}", file.string(), f.view, f.resource_type,
                      f.resource_id, f.json_path, f.json_path.empty() ? "" : ": ", f.message);
    }

    // Writes every record of `res` in one transaction. Throws store_error.
    void write(const nz::result& res, const fs::path& file) {
        if (res.records.empty()) return;
        const std::string now = store::utc_timestamp(system_now());
        try {
            std::map<std::string, type_counts, std::less<>> counts;  // applied only after COMMIT
            store::page_hooks hooks;
            hooks.patient_key = [this](const nz::record& r) -> const std::string& {
                static const std::string no_key;
                const nz::header& h = nz::header_of(r);
                return h.patient_ref.empty() ? no_key : patient_key_for(h.patient_ref);
            };
            hooks.on_row = [&counts](const nz::record& r, store::upsert_outcome outcome) {
                auto& c = counts[nz::resource_type_of(r)];
                if (outcome == store::upsert_outcome::inserted)
                    ++c.inserted;
                else if (outcome == store::upsert_outcome::updated)
                    ++c.updated;
                else
                    ++c.unchanged;
            };
            hooks.views = views.get();
            hooks.view_patient_key = [this](std::string_view id) { return patient_key_for(std::string(id)); };
            // A Bundle's references to its own entries (a Synthea
            // transaction's urn:uuid subjects) resolve in the views as the
            // normalizer resolved them for the typed rows: same map, same id.
            if (!res.full_urls.empty())
                hooks.view_references =
                    [&res](std::string_view ref) -> std::optional<views::resolved_reference> {
                    const auto it = res.full_urls.find(ref);
                    if (it == res.full_urls.end()) return std::nullopt;
                    return views::resolved_reference{it->second.type, it->second.id};
                };
            try {
                store::commit_page(db, writer, res.records, opts.source, now, hooks);
            } catch (...) {
                if (views) (void)views->take_failures();  // of a batch that was rolled back
                throw;
            }
            log_view_failures(file);
            for (const auto& [type, c] : counts) {
                auto& t = rep.per_type[type];
                t.inserted += c.inserted;
                t.updated += c.updated;
                t.unchanged += c.unchanged;
            }
        } catch (const store::store_error&) {
            throw;
        } catch (const std::exception& e) {
            store::rethrow_as_store_error(e, db.path(),
                                          ("writing rows from " + file.string() + " to").c_str());
        }
    }

    void advance(std::uint64_t bytes) {
        done_bytes += bytes;
        if (!progress) return;
        const auto now = steady_now();
        if (now - last_progress < std::chrono::milliseconds(500)) return;
        last_progress = now;
        progress(done_bytes, total_bytes, std::chrono::duration<double>(now - started).count());
    }

    void ingest_json(const found_file& f) {
        if (f.size > opts.max_file_bytes) {
            problem(f.path, "",
                    fmt::format("file is {} bytes, over the {}-byte limit for one JSON document; "
                                "split it or export NDJSON",
                                f.size, opts.max_file_bytes));
            return;
        }
        simdjson::padded_string json;
        if (auto err = simdjson::padded_string::load(f.path.string()).get(json)) {
            problem(f.path, "", std::string("cannot read the file: ") + simdjson::error_message(err));
            return;
        }
        nz::result res = normalizer.normalize_document(json);
        count_read(res);
        if (!res.ok()) {
            // A Bundle is atomic: rejecting part of a transaction would store
            // a state the EHR never had.
            for (const auto& p : res.problems) problem(f.path, p.where, p.message);
            for (const auto& [type, n] : res.read) {
                auto& c = rep.per_type[type];
                const std::size_t skipped = res.skipped.count(type) ? res.skipped.find(type)->second : 0;
                c.skipped -= std::min(c.skipped, skipped);
                c.rejected += n;
            }
            if (res.read.size() > 0 || res.records.size() > 0)
                log->error("{}: nothing from this file was written", f.path.string());
            return;
        }
        write(res, f.path);
    }

    void ingest_ndjson(const found_file& f) {
        std::ifstream in(f.path, std::ios::binary);
        if (!in) {
            problem(f.path, "", std::string("cannot open the file: ") + std::strerror(errno));
            return;
        }
        if (f.size == 0) {
            problem(f.path, "", "empty file: expected one FHIR resource per line");
            return;
        }
        // Read in chunks so a multi-gigabyte export never sits in memory
        // whole; the splitter joins a line that straddles chunks and drops
        // one over the resource limit without holding it (the one splitter
        // the Bulk Data download uses too). Small exports are read in one
        // go. Lines are parsed in place, so the chunk is followed by
        // simdjson's padding, as are the lines the splitter joins.
        const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(f.size + 1, 8u << 20));
        std::unique_ptr<char[]> buf(new char[chunk + simdjson::SIMDJSON_PADDING]);
        ndjson::line_splitter lines(normalizer_limit(), simdjson::SIMDJSON_PADDING);
        std::size_t lines_in_batch = 0;
        nz::result batch;
        auto flush = [&] {
            count_read(batch);
            for (const auto& p : batch.problems) problem(f.path, p.where, p.message);
            write(batch, f.path);
            batch = nz::result{};
            lines_in_batch = 0;
        };
        auto take = [&](const ndjson::split_event& e) {
            if (const auto* too_long = std::get_if<ndjson::line_too_long>(&e)) {
                batch.problems.push_back(
                    {fmt::format("line {}", too_long->number),
                     fmt::format("line is longer than {} bytes; left out", too_long->max_line_bytes)});
                return;
            }
            const auto& l = std::get<ndjson::line>(e);
            normalizer.normalize_line(
                simdjson::padded_string_view(l.text.data(), l.text.size(),
                                             l.text.size() + simdjson::SIMDJSON_PADDING),
                l.number, batch);
            if (++lines_in_batch >= opts.ndjson_batch_lines) flush();
        };
        for (;;) {
            in.read(buf.get(), static_cast<std::streamsize>(chunk));
            const std::size_t got = static_cast<std::size_t>(in.gcount());
            if (got == 0) break;
            std::memset(buf.get() + got, 0, simdjson::SIMDJSON_PADDING);
            lines.feed(std::string_view(buf.get(), got));
            while (auto e = lines.next()) take(*e);
            advance(got);
            if (got < chunk) break;
        }
        if (auto e = lines.finish()) take(*e);
        flush();
    }

    static std::size_t normalizer_limit() { return nz::options{}.max_resource_bytes; }
};

ingester::ingester(store::analytics_db& db, const store::pseudonym_key& key, options opts,
                   std::shared_ptr<spdlog::logger> log, steady_now_fn steady_now, system_now_fn system_now)
    : impl_(std::make_unique<impl>(db, key, std::move(opts), std::move(log), std::move(steady_now),
                                   std::move(system_now), report_)) {}

ingester::~ingester() = default;

void ingester::run(const std::vector<fs::path>& inputs, const progress_fn& progress) {
    impl& m = *impl_;
    m.backfill_views();
    const auto started = m.steady_now();
    std::vector<found_file> files;
    for (const fs::path& input : inputs) {
        walked_input walked = walk_input(input);
        if (walked.missing) {
            m.file_problems = 0;
            m.problem(input, "", "no such file or directory");
            continue;
        }
        for (auto& f : walked.files) {
            if (f.kind != file_kind::other) {
                files.push_back(std::move(f));
            } else if (f.in_directory) {
                m.file_problems = 0;
                m.problem(f.path, "", "not a FHIR file (expected .json, .ndjson or .jsonl); left out");
            } else {
                // A file named explicitly is read even with an odd extension.
                f.kind = file_kind::json;
                files.push_back(std::move(f));
            }
        }
        if (!walked.directory_error.empty()) {
            m.file_problems = 0;
            m.problem(input, "", "cannot read the directory: " + walked.directory_error);
        }
    }
    std::stable_partition(files.begin(), files.end(),
                          [](const found_file& f) { return is_medication_file(f.path); });

    m.progress = progress;
    m.total_bytes = 0;
    for (const auto& f : files) m.total_bytes += f.size;
    m.done_bytes = 0;
    m.started = m.last_progress = started;

    for (const auto& f : files) {
        m.file_problems = 0;
        ++report_.files;
        if (f.size == 0) {
            m.problem(f.path, "", "empty file");
            continue;
        }
        const std::uint64_t before = m.done_bytes;
        if (f.kind == file_kind::ndjson)
            m.ingest_ndjson(f);
        else
            m.ingest_json(f);
        m.done_bytes = before;
        m.advance(f.size);
        report_.bytes += f.size;
    }
    report_.seconds = std::chrono::duration<double>(m.steady_now() - started).count();
}

std::string format_report(const report& r) {
    std::string out = fmt::format("{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "resource type", "read",
                                  "inserted", "updated", "unchanged", "skipped", "rejected");
    auto row = [&out](std::string_view name, const type_counts& c) {
        out += fmt::format("{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n", name, c.read, c.inserted,
                           c.updated, c.unchanged, c.skipped, c.rejected);
    };
    for (const auto& [type, c] : r.per_type) row(type, c);
    row("total", r.totals());
    const double mb = static_cast<double>(r.bytes) / 1e6;
    const auto t = r.totals();
    const double rows = static_cast<double>(t.inserted + t.updated + t.unchanged);
    out +=
        fmt::format("{} files, {:.1f} MB in {:.2f} s: {:.1f} MB/s, {:.0f} resources/s", r.files, mb,
                    r.seconds, r.seconds > 0 ? mb / r.seconds : 0.0, r.seconds > 0 ? rows / r.seconds : 0.0);
    if (r.problems > 0)
        out +=
            fmt::format("\n{} problem(s) in {} file(s); see the errors above", r.problems, r.files_rejected);
    out += "\n";
    return out;
}

}  // namespace headachemd::ingest
