// The pager of one FHIR search (or read): which URL comes next, and when a
// search must stop because its pages loop or never end. Pure: plain
// values in, decisions out; no I/O, no clock. The engine fetches, checks
// and commits each page, and asks the pager before and after.
//
// One pager per search of one resource type in one job. The sequence for
// each page: before_fetch() → (fetch url()) → fetched() → take_page() →
// (commit the page) → committed(); the search is complete when
// last_page() is true after take_page().
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "headachemd/core/result.hpp"

namespace headachemd::sync {

struct paging_rules {
    // max_pages_per_search: a chain of next links that never ends (fresh
    // ids, empty pages) escapes the loop checks and is cut here.
    int max_pages = 0;
    // A non-standard page parameter ("page"; DESIGN.md, eCW) for a server
    // that sends no next links; nullopt: the server's next links only.
    std::optional<std::string> page_param;
};

// An entry of a normalized page as the pager sees it: its id and whether it
// belongs to the searched type's table (an _include'd resource does not).
struct page_entry {
    std::string id;
    bool of_type = false;
};

class pager {
public:
    // `type`: the searched resource type, in messages. `first_url`: the
    // search URL, or the read URL when `one_resource` (Patient/{id} is one
    // page: it has no next link and is never asked for a "page 2").
    // `search_url`: the URL the page parameter is added to.
    pager(std::string type, std::string first_url, bool one_resource, std::string search_url,
          paging_rules rules);

    // The URL of the page to fetch next.
    const std::string& url() const { return url_; }
    // Pages fetched so far (empty pages count).
    int pages() const { return pages_; }
    // "<type> page <n>", how messages name the page just fetched.
    std::string where() const;

    // Before fetching url(): paging_loop when this URL was fetched before in
    // this search (a next link back to an earlier page), page_limit when
    // max_pages pages were fetched already; nullopt: fetch it.
    std::optional<error> before_fetch();
    // The page at url() arrived and is being read.
    void fetched() { ++pages_; }

    // The page's next link (already cleared for a read) and its entries in
    // page order. Decides the next URL; paging_loop when the page is taken
    // for a loop the URL check cannot see. Until committed() the ids are
    // not counted as seen.
    std::optional<error> take_page(std::optional<std::string> next_link, std::vector<page_entry> entries);
    // No page follows the one taken: the search is complete once it commits.
    bool last_page() const { return !next_; }
    // The ids of the searched type this search returned, the taken page's
    // included (for delete detection inside the last page's transaction).
    std::vector<std::string> ids_with_page() const;
    // The taken page committed: its ids are seen, and url() moves on.
    void committed();

private:
    bool seen(std::string_view id) const { return seen_set_.find(id) != seen_set_.end(); }

    std::string type_;
    std::string url_;
    bool one_resource_;
    std::string search_url_;
    paging_rules rules_;
    int pages_ = 0;
    int page_number_;            // of the page parameter; 0 when there is none
    bool server_links_ = false;  // the server pages with next links
    std::set<std::string> visited_;
    std::vector<std::string> seen_;  // ids of the type in committed pages, in order
    std::set<std::string, std::less<>> seen_set_;
    std::vector<std::string> page_ids_;  // the taken page's ids of the type
    std::optional<std::string> next_;
};

// Whether an absolute reference's base (a page's `subject` of the form
// "https://host/base/Patient/id" gives "https://host/base") names this EHR's
// FHIR base: the check that keeps a page's resources of a patient on
// another server out of this patient's rows.
bool same_fhir_base(std::string_view base, std::string_view fhir_base);

}  // namespace headachemd::sync
