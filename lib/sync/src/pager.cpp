#include "headachemd/sync/pager.hpp"

#include "headachemd/fhir/fhir.hpp"
#include "headachemd/http/url.hpp"

namespace headachemd::sync {
namespace {

// The path of an absolute URL without trailing slashes ("/fhir" of
// "https://x/fhir/"); "" when it has none.
std::string_view path_of_url(std::string_view url) {
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) return url;
    const auto slash = url.find('/', scheme_end + 3);
    if (slash == std::string_view::npos) return {};
    std::string_view p = url.substr(slash);
    while (!p.empty() && p.back() == '/') p.remove_suffix(1);
    return p;
}

}  // namespace

// FHIR R4 §2.3.0: an absolute reference whose base is the server's own
// base is the same as the relative one. Scheme and host compare without
// regard to case (RFC 3986 §6.2.2.1), the path exactly.
bool same_fhir_base(std::string_view base, std::string_view fhir_base) {
    return http::same_origin(base, fhir_base) && path_of_url(base) == path_of_url(fhir_base);
}

pager::pager(std::string type, std::string first_url, bool one_resource, std::string search_url,
             paging_rules rules)
    : type_(std::move(type)),
      url_(std::move(first_url)),
      one_resource_(one_resource),
      search_url_(std::move(search_url)),
      rules_(std::move(rules)),
      page_number_(rules_.page_param ? 1 : 0) {}

std::string pager::where() const { return type_ + " page " + std::to_string(pages_); }

std::optional<error> pager::before_fetch() {
    if (!visited_.insert(url_).second)
        return error{errc::paging_loop, type_ + ": a next link points back to an earlier page"};
    // Empty pages count as pages: a server can chain them forever.
    if (pages_ >= rules_.max_pages)
        return error{errc::page_limit, type_ + ": the search has more than " +
                                           std::to_string(rules_.max_pages) +
                                           " pages (max_pages_per_search); the rest was not fetched"};
    return std::nullopt;
}

std::optional<error> pager::take_page(std::optional<std::string> next_link, std::vector<page_entry> entries) {
    next_ = std::move(next_link);
    page_ids_.clear();
    if (next_) server_links_ = true;
    if (server_links_ && pages_ > 1) {
        // A next link back to an earlier page under another URL (an added
        // parameter, a new session id) escapes the visited-URL check. A
        // page holding nothing but resources this pull has already stored
        // is taken for such a loop; at worst a job fails that a later pass
        // repeats.
        bool any = false, all_seen = true;
        for (const auto& en : entries) {
            if (!en.of_type) continue;
            any = true;
            all_seen = all_seen && seen(en.id);
        }
        if (any && all_seen)
            return error{errc::paging_loop,
                         where() + ": the page repeats resources of an earlier page (a next-link loop)"};
    }
    if (!one_resource_ && !next_ && !server_links_ && rules_.page_param && page_number_ > 0 &&
        !entries.empty()) {
        // A server that pages with a non-standard `page` parameter and
        // sends no next links (DESIGN.md, eCW): ask for the following page
        // until one is empty or repeats what we have. Not after the Patient
        // read: a read is one resource, and a "page 2" of it was one wasted
        // call per patient and pass against eCW's 250 a minute (bench_sync's
        // minimal count).
        bool all_seen = true;
        for (const auto& en : entries) all_seen = all_seen && seen(en.id);
        if (!all_seen)
            next_ = fhir::with_query_param(search_url_, *rules_.page_param, std::to_string(++page_number_));
    }
    for (auto& en : entries)
        if (en.of_type) page_ids_.push_back(std::move(en.id));
    return std::nullopt;
}

std::vector<std::string> pager::ids_with_page() const {
    std::vector<std::string> ids = seen_;
    ids.insert(ids.end(), page_ids_.begin(), page_ids_.end());
    return ids;
}

void pager::committed() {
    for (auto& id : page_ids_) {
        seen_set_.insert(id);
        seen_.push_back(std::move(id));
    }
    page_ids_.clear();
    if (next_) url_ = *next_;
}

}  // namespace headachemd::sync
