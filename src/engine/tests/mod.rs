//! Unit tests of the engine on hand-built answers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::secret::{AccessToken, RefreshToken};
use crate::token::{TokenResponse, TokenSet, UserType};
use crate::{Config, ErrorKind};

mod failures;
mod removal;
mod shared_store;

const T0: u64 = 1_767_225_600;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

fn config() -> Config {
    Config::builder("client-id-1234", "placeholder-client-secret")
        .build()
        .unwrap()
}

fn answer(n: u32, with_refresh: bool) -> TokenResponse {
    let mut r = TokenResponse::new(AccessToken::new(format!("access-token-placeholder-{n:08}")));
    r.expires_in = Some(86_399);
    if with_refresh {
        r.refresh_token = Some(RefreshToken::new(format!(
            "refresh-token-placeholder-{n:08}"
        )));
    }
    r.user_type = Some(UserType::Location);
    r.location_id = Some("loc-1".into());
    r
}

fn http_answer(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response<Vec<u8>> {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.as_bytes().to_vec()).unwrap()
}

fn json_answer(n: u32) -> http::Response<Vec<u8>> {
    http_answer(
        200,
        &[],
        &format!(
            r#"{{"access_token":"access-token-placeholder-{n:08}","token_type":"Bearer","expires_in":86399,"refresh_token":"refresh-token-placeholder-{n:08}","userType":"Location","locationId":"loc-1"}}"#
        ),
    )
}

/// Every output at `now`. A single-process engine's writes are confirmed
/// as they are polled (a plain overwrite that succeeds); a shared-store
/// engine's are left for the test to report.
fn drain(e: &mut Engine, now: SystemTime) -> Vec<Output> {
    let confirm = !e.settings.is_shared();
    let mut out = vec![];
    while let Some(o) = e.poll_output(now) {
        if let (true, Output::Persist { record, .. }) = (confirm, &o) {
            e.handle_write(
                record.grant.as_str(),
                record.version,
                WriteOutcome::Written,
                now,
            )
            .unwrap();
        }
        out.push(o);
    }
    out
}

fn engine(settings: EngineSettings) -> Engine {
    Engine::new(config(), settings)
}

/// An engine holding grant "g" with tokens #0 obtained at t(0); outputs
/// drained (the write, then its confirmation as an event).
fn with_grant(settings: EngineSettings) -> Engine {
    let mut e = engine(settings);
    e.insert("g", TokenSet::new(answer(0, true), t(0)), t(0))
        .unwrap();
    let mut out = drain(&mut e, t(0));
    if e.settings.is_shared() {
        e.handle_write("g", 1, WriteOutcome::Written, t(0)).unwrap();
        out.extend(drain(&mut e, t(0)));
    }
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::Persist { replaces: None, .. },
                Output::Event(EngineEvent::Durable { version: 1, .. })
            ]
        ),
        "{out:?}"
    );
    e
}

fn sends(out: &[Output]) -> Vec<(RequestId, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { id, request, .. } => {
                Some((*id, String::from_utf8(request.body().clone()).unwrap()))
            }
            _ => None,
        })
        .collect()
}

fn one_send(out: &[Output]) -> RequestId {
    let s = sends(out);
    assert_eq!(s.len(), 1, "{out:?}");
    s[0].0
}

fn kinds(out: &[Output]) -> Vec<&'static str> {
    out.iter()
        .map(|o| match o {
            Output::Send { .. } => "send",
            Output::Persist { .. } => "persist",
            Output::Event(EngineEvent::TokenReady { .. }) => "ready",
            Output::Event(EngineEvent::Refreshed { .. }) => "refreshed",
            Output::Event(EngineEvent::Adopted { .. }) => "adopted",
            Output::Event(EngineEvent::LeaseHeldElsewhere { .. }) => "lease-held",
            Output::Event(EngineEvent::Suspended { .. }) => "suspended",
            Output::Event(EngineEvent::Unauthorized { .. }) => "unauthorized",
            Output::Event(EngineEvent::ReauthorizationNeeded { .. }) => "reauth",
            Output::Event(EngineEvent::ConfigurationRejected { .. }) => "config-rejected",
            Output::Event(EngineEvent::RetryScheduled { .. }) => "retry",
            Output::Event(EngineEvent::Durable { .. }) => "durable",
            Output::Event(EngineEvent::RemovedElsewhere { .. }) => "removed-elsewhere",
            Output::Event(EngineEvent::WriteFailed { .. }) => "write-failed",
            Output::Event(EngineEvent::WriteRecovered { .. }) => "write-recovered",
            Output::Event(EngineEvent::AnswerAfterRemoval { .. }) => "answer-after-removal",
            Output::Event(EngineEvent::RescuedTokenAdopted { .. }) => "rescued-adopted",
            Output::Event(EngineEvent::RateLimitClamped { .. }) => "clamped",
            Output::Event(EngineEvent::SharedBudgetFallback { .. }) => "budget-fallback",
            Output::Event(EngineEvent::SharedBudgetRecovered) => "budget-recovered",
            Output::Claim(_) => "claim",
            Output::Load { .. } => "load",
            Output::Delete { .. } => "delete",
        })
        .collect()
}

fn persisted_refresh(out: &[Output]) -> Option<String> {
    out.iter().rev().find_map(|o| match o {
        Output::Persist { record, .. } => record.refresh_token().map(|r| r.secret().to_owned()),
        _ => None,
    })
}

#[test]
fn refreshes_ahead_of_expiry_and_persists_before_reporting() {
    let mut e = with_grant(EngineSettings::default());
    let due = t(86_399 - 600);
    assert_eq!(e.poll_timeout(), Some(due));
    e.handle_timeout(due - Duration::from_secs(1)).unwrap();
    assert!(drain(&mut e, due - Duration::from_secs(1)).is_empty());
    e.handle_timeout(due).unwrap();
    let out = drain(&mut e, due);
    let id = one_send(&out);
    assert!(
        sends(&out)[0]
            .1
            .contains("refresh_token=refresh-token-placeholder-00000000")
    );
    assert!(sends(&out)[0].1.contains("user_type=Location"));
    // Answered 5 s later: the expiry counts from the send.
    e.handle_send(
        id,
        SendOutcome::Response(json_answer(1)),
        due + Duration::from_secs(5),
    )
    .unwrap();
    let out = drain(&mut e, due + Duration::from_secs(5));
    assert_eq!(kinds(&out), ["persist", "refreshed"]);
    let Output::Persist {
        record, replaces, ..
    } = &out[0]
    else {
        unreachable!()
    };
    assert_eq!(*replaces, Some(1));
    assert_eq!(record.version, 2);
    assert_eq!(record.expires_at(), due + Duration::from_secs(86_399));
    assert_eq!(
        persisted_refresh(&out).as_deref(),
        Some("refresh-token-placeholder-00000001")
    );
    assert_eq!(
        e.poll_timeout(),
        Some(due + Duration::from_secs(86_399 - 600))
    );
}

#[test]
fn an_answer_without_refresh_token_keeps_the_old_one() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000)).unwrap();
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_send(id, SendOutcome::Parsed(Ok(answer(1, false))), t(86_001))
        .unwrap();
    let out = drain(&mut e, t(86_001));
    assert_eq!(
        persisted_refresh(&out).as_deref(),
        Some("refresh-token-placeholder-00000000")
    );
    assert_eq!(
        e.access_token("g", t(86_002)).unwrap(),
        TokenStatus::Ready(AccessToken::new("access-token-placeholder-00000001"))
    );
}

#[test]
fn misuse_is_a_typed_error() {
    let mut e = with_grant(EngineSettings::default());
    let bogus = RequestId::new(77, 0);
    let err = e
        .handle_send(bogus, SendOutcome::Response(json_answer(1)), t(1))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownRequest);
    assert_eq!(
        e.handle_send(
            RequestId::new(1, 999),
            SendOutcome::TransportError(String::new()),
            t(1)
        )
        .unwrap_err()
        .kind(),
        ErrorKind::UnknownRequest
    );
    assert_eq!(
        e.access_token("nope", t(1)).unwrap_err().kind(),
        ErrorKind::UnknownGrant
    );
    assert_eq!(
        e.handle_write("g", 9, WriteOutcome::Written, t(1))
            .unwrap_err()
            .kind(),
        ErrorKind::UnknownRequest
    );
    assert_eq!(
        e.handle_write("nope", 1, WriteOutcome::Written, t(1))
            .unwrap_err()
            .kind(),
        ErrorKind::UnknownGrant
    );
    let mut record = e.grants().get("g").map(|g| g.record()).unwrap();
    record.schema = 99;
    assert_eq!(
        e.restore(record, t(1)).unwrap_err().kind(),
        ErrorKind::StaleRecord
    );
    let record = e.grants().get("g").map(|g| g.record()).unwrap();
    assert_eq!(
        e.restore(record, t(1)).unwrap_err().kind(),
        ErrorKind::StaleRecord
    );
    // An answered id is no longer in flight.
    e.handle_timeout(t(86_000)).unwrap();
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_send(id, SendOutcome::Response(json_answer(1)), t(86_001))
        .unwrap();
    assert_eq!(
        e.handle_send(id, SendOutcome::Response(json_answer(1)), t(86_002))
            .unwrap_err()
            .kind(),
        ErrorKind::UnknownRequest
    );
}

#[test]
fn many_callers_one_refresh() {
    let mut e = with_grant(EngineSettings::default());
    let late = t(90_000); // past expiry, before any handle_timeout
    let mut out = Vec::new();
    for _ in 0..100 {
        assert_eq!(e.access_token("g", late).unwrap(), TokenStatus::Pending);
        out.extend(drain(&mut e, late));
    }
    e.handle_timeout(late).unwrap();
    out.extend(drain(&mut e, late));
    let id = one_send(&out);
    e.handle_send(id, SendOutcome::Response(json_answer(1)), late)
        .unwrap();
    assert_eq!(
        kinds(&drain(&mut e, late)),
        ["persist", "refreshed", "ready"]
    );
    assert!(matches!(
        e.access_token("g", late).unwrap(),
        TokenStatus::Ready(_)
    ));
}

#[test]
fn late_success_after_timeout_is_adopted() {
    let mut e = with_grant(EngineSettings::default().request_timeout(Duration::from_secs(30)));
    let due = t(86_399 - 600);
    e.handle_timeout(due).unwrap();
    let id = one_send(&drain(&mut e, due));
    e.handle_timeout(due + Duration::from_secs(31)).unwrap();
    let out = drain(&mut e, due + Duration::from_secs(31));
    assert_eq!(kinds(&out), ["retry"]);
    // The answer shows up after the engine gave up on it.
    e.handle_send(
        id,
        SendOutcome::Response(json_answer(1)),
        due + Duration::from_secs(32),
    )
    .unwrap();
    let out = drain(&mut e, due + Duration::from_secs(32));
    assert_eq!(kinds(&out), ["persist", "refreshed"]);
    assert_eq!(
        persisted_refresh(&out).as_deref(),
        Some("refresh-token-placeholder-00000001")
    );
    // No retry is left scheduled with the spent token.
    assert_eq!(
        e.poll_timeout(),
        Some(due + Duration::from_secs(86_399 - 600))
    );
}

#[test]
fn late_success_after_the_retry_went_out_wins_over_its_invalid_grant() {
    let mut e = with_grant(EngineSettings::default().request_timeout(Duration::from_secs(30)));
    let due = t(86_399 - 600);
    e.handle_timeout(due).unwrap();
    let first = one_send(&drain(&mut e, due));
    e.handle_timeout(due + Duration::from_secs(31)).unwrap();
    drain(&mut e, due + Duration::from_secs(31));
    let retry_at = e.poll_timeout().unwrap();
    e.handle_timeout(retry_at).unwrap();
    let second = one_send(&drain(&mut e, retry_at));
    // The first reached the server and spent the token: the retry is refused...
    e.handle_send(
        second,
        SendOutcome::Response(http_answer(
            400,
            &[],
            r#"{"statusCode":400,"message":"Invalid grant: refresh token is invalid"}"#,
        )),
        retry_at,
    )
    .unwrap();
    assert_eq!(kinds(&drain(&mut e, retry_at)), ["persist", "reauth"]);
    // ...and the first one's answer, late, restores the grant.
    e.handle_send(
        first,
        SendOutcome::Response(json_answer(1)),
        retry_at + Duration::from_secs(1),
    )
    .unwrap();
    let out = drain(&mut e, retry_at + Duration::from_secs(1));
    assert_eq!(kinds(&out), ["persist", "refreshed"]);
    assert!(matches!(
        e.grants().get("g").map(|g| g.record()).unwrap().status,
        GrantStatus::Active
    ));
}

#[test]
fn record_serializes_to_the_documented_shape() {
    let e = with_grant(EngineSettings::default());
    let record = e.grants().get("g").map(|g| g.record()).unwrap();
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["schema"], 1);
    assert_eq!(json["grant"], "g");
    assert_eq!(json["version"], 1);
    assert_eq!(json["status"]["state"], "active");
    assert!(json.get("lease").is_none());
    assert_eq!(json["tokens"]["expires_at"], T0 + 86_399);
    let back: GrantRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back, record);
    let debug = format!("{record:?}");
    assert!(
        !debug.contains("refresh-token-placeholder-00000000"),
        "{debug}"
    );
}

#[test]
fn send_output_debug_hides_the_body() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000)).unwrap();
    let out = drain(&mut e, t(86_000));
    let debug = format!("{out:?}");
    assert!(!debug.contains("placeholder"), "{debug}");
}
