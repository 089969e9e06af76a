//! `parse_callback`: any redirect gives a code or a typed error, never a
//! panic; errors quote neither the code nor a long run of the input.
//!
//! Input: the first line is the state sent (none when empty or not a valid
//! state); the rest is the redirect.
#![no_main]

use hoopai_oauth::{ConsentState, parse_callback};
use hoopai_oauth_fuzz::assert_no_secret_shown;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (state, redirect) = text.split_once('\n').unwrap_or(("", &text));
    let state = ConsentState::new(state).ok();
    // The query is what follows the first `?`, or the whole input when it is
    // a bare query: decode both readings.
    let without_fragment = redirect.trim().split('#').next().unwrap_or_default();
    let decoded: Vec<(String, String)> = [
        without_fragment.split_once('?').map(|(_, q)| q),
        Some(without_fragment),
    ]
    .into_iter()
    .flatten()
    .flat_map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default())
    .collect();
    match parse_callback(redirect, state.as_ref()) {
        Ok(code) => {
            assert!(
                !code.secret().trim().is_empty(),
                "an empty code was accepted"
            );
            assert!(
                decoded
                    .iter()
                    .any(|(k, v)| k == "code" && v == code.secret()),
                "the code is not the redirect's code parameter"
            );
        }
        Err(e) => {
            let mut inputs: Vec<&str> = vec![&text];
            inputs.extend(decoded.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]));
            assert_no_secret_shown(&e, &inputs);
        }
    }
});
