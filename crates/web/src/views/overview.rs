//! The overview page: last 24 hours' counts, then one row per account,
//! those needing attention first, with filters, a search and pages.

use ferry_store::{OverviewPage, OverviewRow};
use maud::{Markup, html};

use super::{page, state_word, when};
use crate::auth::Principal;

/// A link to the overview with `state`, `q` and `page`.
fn link(state: &str, q: &str, page: u32) -> String {
    let mut url = format!("/overview?state={state}");
    if !q.is_empty() {
        url.push_str("&q=");
        url.extend(form_urlencoded::byte_serialize(q.as_bytes()));
    }
    if page > 1 {
        url.push_str(&format!("&page={page}"));
    }
    url
}

fn label(filter: &str) -> &str {
    match filter {
        "all" => "All",
        "attention" => "Needs attention",
        "failed" => "Hand-off failed",
        "held" => "Held",
        "no-key" => "No active key",
        "stale" => "Stale",
        "rejected" => "Rejected",
        "refused" => "Refused logins",
        "ok" => "All well",
        other => other,
    }
}

fn keys_cell(row: &OverviewRow) -> Markup {
    html! {
        @if row.keys.active > 0 { (row.keys.active) " active" }
        @else { span.state.state-failed { "none active" } }
        @if let Some(at) = row.keys.pending_until { br; span.muted { "pending until " (when(at)) } }
    }
}

/// The overview.
pub(crate) fn overview(who: &Principal, view: &OverviewPage) -> Markup {
    let c = &view.counts;
    let q = view.search.as_str();
    let body = html! {
        h1 { "Overview" }
        section.counts id="counts" {
            p {
                strong { "Last 24 hours: " }
                span id="count-delivered" { (c.delivered) } " delivered · "
                span id="count-held" { (c.held) } " held · "
                span id="count-rejected" { (c.rejected) } " rejected · "
                span id="count-failed" { (c.failed) } " hand-offs failed"
            }
            p {
                strong { "Now: " }
                span id="count-stale" { (c.stale_accounts) } " accounts stale · "
                span id="count-no-key" { (c.no_active_key) } " with no active key · "
                span id="count-refused" { (c.refused_login_accounts) } " with refused logins (24 h) · "
                (c.needing_attention) " of " (c.accounts) " need attention"
            }
        }
        section {
            nav.filters {
                @for (filter, n) in &view.filter_counts {
                    @if *filter == view.filter {
                        strong.filter.current data-filter=(filter) { (label(filter)) " (" (n) ")" }
                    } @else {
                        a.filter data-filter=(filter) href=(link(filter, q, 1)) { (label(filter)) " (" (n) ")" }
                    }
                    " "
                }
            }
            form.row method="get" action="/overview" {
                input type="hidden" name="state" value=(view.filter);
                label { "Search accounts " input id="overview-search" type="search" name="q" value=(q) placeholder="name or district"; }
                button id="overview-search-submit" type="submit" { "Search" }
            }
            table id="overview" {
                thead { tr {
                    th { "Account" } th { "Last file" } th { "Delivered (24 h)" } th { "Held" }
                    th { "Rejected (24 h)" } th { "Failed" } th { "Fresh" } th { "Keys" }
                    th { "Refused logins (24 h)" } th { "Needs" }
                } }
                tbody {
                    @for row in &view.rows {
                        tr.overview-row data-account=(row.account) {
                            td {
                                a href={ "/accounts/" (row.account) } { (row.account) }
                                @if let Some(d) = &row.display_name { br; span.muted { (d) } }
                                @if !row.enabled { br; (state_word("refused")) " disabled" }
                            }
                            td {
                                @if let Some(f) = &row.last_file {
                                    span.mono { (f.name) } br;
                                    span.muted { (when(f.received_at)) } " " (state_word(f.state.as_str()))
                                } @else { span.muted { "none yet" } }
                            }
                            td { (row.delivered) }
                            td { @if row.held > 0 { span.state.state-held { (row.held) } } @else { "0" } }
                            td { (row.rejected) }
                            td { @if row.failed > 0 { span.state.state-failed { (row.failed) } } @else { "0" } }
                            td { @if row.stale { span.state.state-failed.stale { "stale" } } @else if row.expected_every_secs.is_some() { "on time" } @else { span.muted { "not watched" } } }
                            td { (keys_cell(row)) }
                            td {
                                (row.refused_logins)
                                @if let Some(reason) = &row.refused_reason { br; span.muted { (reason) } }
                            }
                            td.attention { @for a in &row.attention { span class={ "state attention-" (a.as_str()) } { (label(a.as_str())) } " " } }
                        }
                    }
                }
            }
            @if view.rows.is_empty() { p.muted { "No account matches." } }
            p.pages {
                @if view.page > 1 { a id="overview-prev" href=(link(&view.filter, q, view.page - 1)) { "← Previous" } " " }
                "Page " (view.page) " of " (view.pages) " (" (view.total) " accounts)"
                @if view.page < view.pages { " " a id="overview-next" href=(link(&view.filter, q, view.page + 1)) { "Next →" } }
            }
            @if who.is_vendor() { p.muted { "The same as JSON: GET /api/v1/overview (same parameters); on the server: ferry status." } }
        }
    };
    page("Overview", Some(who), &body)
}
