//! The objects JavaScript gets from the engine, from a real engine driven
//! against the crate's fake server: a code exchange inserted, its record
//! persisted, a refresh sent and answered, a spent refresh token refused,
//! a failing write, and the token statuses, views and figures on the way.
//! Snapshots live in the repository's `snapshots/` folder.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hoopai_oauth::fake::{FakeServer, Install};
use hoopai_oauth::{
    Config, Engine, EngineSettings, GrantRecord, Output, SendOutcome, StoreFailure, TokenRequest,
    TokenSet, UserType, WriteOutcome, parse_token_response, token_request,
};

use super::{MAX_SAFE_INTEGER, check_version, grant_view, output, stats, token_status};
use crate::testing::{assert_none_shown, render, snapshot};

const CLIENT_ID: &str = "6578278e879ad2646715ba9c-wasm";
const CLIENT_SECRET: &str = "wasm-client-secret-placeholder";

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

/// Every secret the test handles, to look for in what is shown.
struct Secrets(Vec<String>);

impl Secrets {
    fn of_record(&mut self, r: &GrantRecord) {
        self.0.push(r.access_token().secret().to_owned());
        if let Some(rt) = r.refresh_token() {
            self.0.push(rt.secret().to_owned());
        }
    }
    fn refs(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }
}

#[test]
fn outputs_events_and_statuses_of_a_refresh_cycle() {
    let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
    let code = fake.approve(&Install::location("company-1", "loc-1"));
    let config = Config::builder(CLIENT_ID, CLIENT_SECRET)
        .base_url("http://127.0.0.1:8080")
        .build()
        .unwrap();
    let mut secrets = Secrets(vec![CLIENT_SECRET.to_owned()]);
    let request = TokenRequest::authorization_code(code).user_type(UserType::Location);
    let answer = fake.handle(&token_request(&config, &request).unwrap(), t0());
    let tokens = TokenSet::new(parse_token_response(answer).unwrap(), t0());
    let mut engine = Engine::new(config, EngineSettings::default().jitter_seed(7));
    let mut text = String::new();
    let mut now = t0();
    engine.insert("loc-1", tokens, now).unwrap();

    let mut show = |title: &str, shape: &crate::shape::Shape<'_>, secrets: &Secrets| {
        assert_none_shown(shape, "", &secrets.refs());
        writeln!(text, "{title}:\n{}", render(shape)).unwrap();
    };
    let status = engine.access_token("loc-1", now).unwrap();
    show(
        "status before the first write",
        &token_status(&status),
        &secrets,
    );
    let mut failed_once = false;
    let mut refreshes = 0;
    let mut spent = None;
    loop {
        while let Some(out) = engine.poll_output(now) {
            if let Output::Persist { record, .. } = &out {
                secrets.of_record(record);
            }
            let shape = output(&out).unwrap();
            show(&format!("output at +{} s", unix(now)), &shape, &secrets);
            match out {
                Output::Persist { record, .. } => {
                    // The first write after the refresh fails once.
                    let outcome = if refreshes == 1 && !failed_once {
                        failed_once = true;
                        WriteOutcome::Failed(StoreFailure::new("disk full"))
                    } else {
                        WriteOutcome::Written
                    };
                    engine
                        .handle_write(record.grant.as_str(), record.version, outcome, now)
                        .unwrap();
                }
                Output::Send { id, request, .. } => {
                    refreshes += 1;
                    let form = String::from_utf8(request.body().clone()).unwrap();
                    spent = form
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("refresh_token="))
                        .map(str::to_owned);
                    let answer = fake.handle(&request, now);
                    engine
                        .handle_send(id, SendOutcome::Response(answer), now)
                        .unwrap();
                }
                _ => {}
            }
        }
        let status = engine.access_token("loc-1", now).unwrap();
        if let hoopai_oauth::TokenStatus::Ready(t) = &status {
            secrets.0.push(t.secret().to_owned());
        }
        show(
            &format!("status at +{} s", unix(now)),
            &token_status(&status),
            &secrets,
        );
        if refreshes >= 1 && engine.stats().unwritten == 0 {
            break;
        }
        now = engine.poll_timeout().unwrap();
        engine.handle_timeout(now).unwrap();
    }
    let view = engine.grants().get("loc-1").unwrap();
    show("grant view", &grant_view(&view), &secrets);
    show("stats", &stats(&engine.stats()), &secrets);

    // The spent refresh token again, sent outside the engine: the kind a
    // JavaScript caller sees in the event of a lost grant.
    let spent = spent.unwrap();
    let config = Config::builder(CLIENT_ID, CLIENT_SECRET)
        .base_url("http://127.0.0.1:8080")
        .build()
        .unwrap();
    let again = token_request(&config, &TokenRequest::refresh_token(spent.as_str())).unwrap();
    let refused = parse_token_response(fake.handle(&again, now)).unwrap_err();
    assert_eq!(refused.kind().as_str(), "invalid grant");
    snapshot("wasm_engine__refresh_cycle", &text);
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(t0()).unwrap_or_default().as_secs()
}

#[test]
fn versions_javascript_cannot_hold_exactly_are_refused() {
    let config = Config::builder(CLIENT_ID, CLIENT_SECRET).build().unwrap();
    let mut token =
        hoopai_oauth::TokenResponse::new(hoopai_oauth::AccessToken::new("at-placeholder"));
    token.refresh_token = Some(hoopai_oauth::RefreshToken::new("rt-placeholder"));
    let mut engine = Engine::new(config, EngineSettings::default());
    engine
        .insert("g", TokenSet::new(token, t0()), t0())
        .unwrap();
    let mut record = engine.grants().get("g").unwrap().record();
    record.version = MAX_SAFE_INTEGER;
    assert!(check_version(&record).is_ok());
    record.version = MAX_SAFE_INTEGER + 1;
    let why = check_version(&record).unwrap_err();
    assert!(why.contains("9007199254740991"), "{why}");
}
