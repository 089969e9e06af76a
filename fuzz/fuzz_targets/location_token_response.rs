//! `parse_location_token_response`: any answer gives a Location token or a
//! typed error, never a panic; errors show no secret; tokens read back from
//! their own JSON.
#![no_main]

use hoopai_oauth::parse_location_token_response;
use hoopai_oauth_fuzz::{assert_no_secret_shown, check_token, response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let answer = response(data);
    let body = String::from_utf8_lossy(answer.body()).into_owned();
    match parse_location_token_response(answer) {
        Ok(token) => check_token(&token),
        Err(e) => assert_no_secret_shown(&e, &[&body]),
    }
});
