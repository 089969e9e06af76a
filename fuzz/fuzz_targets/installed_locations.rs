//! `parse_installed_locations`: any answer gives a page or a typed error,
//! never a panic; errors show no secret; paging through a page always moves
//! on or stops.
#![no_main]

use hoopai_oauth::{InstalledLocationsQuery, parse_installed_locations};
use hoopai_oauth_fuzz::{assert_no_secret_shown, response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let answer = response(data);
    let body = String::from_utf8_lossy(answer.body()).into_owned();
    let page = match parse_installed_locations(answer) {
        Ok(page) => page,
        Err(e) => return assert_no_secret_shown(&e, &[&body]),
    };
    for first in [
        InstalledLocationsQuery::new("company"),
        InstalledLocationsQuery::new("company").page_size(2),
        InstalledLocationsQuery::new("company").skip(40),
        InstalledLocationsQuery::new("company").page_token("token-1"),
    ] {
        let Some(next) = first.next_page(&page) else {
            continue;
        };
        // Each step goes further: past the locations seen, or to a new page token.
        match (first.skipped(), next.skipped()) {
            (_, Some(after)) => assert!(
                after > first.skipped().unwrap_or(0),
                "the next page does not skip past this one"
            ),
            (_, None) => {
                let token = next.requested_page_token();
                assert!(
                    token.is_some_and(|t| !t.is_empty()),
                    "a next page without a cursor"
                );
                assert_ne!(
                    token,
                    first.requested_page_token(),
                    "the same page token again"
                );
                // The same answer to the next query ends the walk.
                assert!(
                    next.next_page(&page).is_none(),
                    "a page that repeats never ends"
                );
            }
        }
    }
});
