//! Unit tests of the engine on hand-built answers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::secret::{AccessToken, RefreshToken};
use crate::token::{TokenResponse, TokenSet, UserType};
use crate::{Config, ErrorKind};

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

fn drain(e: &mut Engine, now: SystemTime) -> Vec<Output> {
    std::iter::from_fn(|| e.poll_output(now)).collect()
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
    if e.settings().is_shared() {
        e.handle_persisted("g", 1, t(0)).unwrap();
        out.extend(drain(&mut e, t(0)));
    }
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::Persist { replaces: None, .. },
                Output::Event(Event::Durable { version: 1, .. })
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
            Output::Event(Event::TokenReady { .. }) => "ready",
            Output::Event(Event::Refreshed { .. }) => "refreshed",
            Output::Event(Event::Adopted { .. }) => "adopted",
            Output::Event(Event::LeaseHeldElsewhere { .. }) => "lease-held",
            Output::Event(Event::Suspended { .. }) => "suspended",
            Output::Event(Event::Unauthorized { .. }) => "unauthorized",
            Output::Event(Event::ReauthorizationNeeded { .. }) => "reauth",
            Output::Event(Event::ConfigurationRejected { .. }) => "config-rejected",
            Output::Event(Event::RetryScheduled { .. }) => "retry",
            Output::Event(Event::Durable { .. }) => "durable",
            Output::Event(Event::RemovedElsewhere { .. }) => "removed-elsewhere",
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
    e.handle_timeout(due - Duration::from_secs(1));
    assert!(drain(&mut e, due - Duration::from_secs(1)).is_empty());
    e.handle_timeout(due);
    let out = drain(&mut e, due);
    let id = one_send(&out);
    assert!(
        sends(&out)[0]
            .1
            .contains("refresh_token=refresh-token-placeholder-00000000")
    );
    assert!(sends(&out)[0].1.contains("user_type=Location"));
    // Answered 5 s later: the expiry counts from the send.
    e.handle_response(id, json_answer(1), due + Duration::from_secs(5))
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
    e.handle_timeout(t(86_000));
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_token_result(id, Ok(answer(1, false)), t(86_001))
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
    let err = e.handle_response(bogus, json_answer(1), t(1)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownRequest);
    assert_eq!(
        e.handle_transport_error(RequestId::new(1, 999), t(1))
            .unwrap_err()
            .kind(),
        ErrorKind::UnknownRequest
    );
    assert_eq!(
        e.access_token("nope", t(1)).unwrap_err().kind(),
        ErrorKind::UnknownGrant
    );
    assert_eq!(
        e.handle_persisted("g", 9, t(1)).unwrap_err().kind(),
        ErrorKind::UnknownRequest
    );
    assert_eq!(
        e.handle_persisted("nope", 1, t(1)).unwrap_err().kind(),
        ErrorKind::UnknownGrant
    );
    let mut record = e.record("g").unwrap();
    record.schema = 99;
    assert_eq!(
        e.restore(record, t(1)).unwrap_err().kind(),
        ErrorKind::StaleRecord
    );
    let record = e.record("g").unwrap();
    assert_eq!(
        e.restore(record, t(1)).unwrap_err().kind(),
        ErrorKind::StaleRecord
    );
    // An answered id is no longer in flight.
    e.handle_timeout(t(86_000));
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_response(id, json_answer(1), t(86_001)).unwrap();
    assert_eq!(
        e.handle_response(id, json_answer(1), t(86_002))
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
    e.handle_timeout(late);
    out.extend(drain(&mut e, late));
    let id = one_send(&out);
    e.handle_response(id, json_answer(1), late).unwrap();
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
    e.handle_timeout(due);
    let id = one_send(&drain(&mut e, due));
    e.handle_timeout(due + Duration::from_secs(31));
    let out = drain(&mut e, due + Duration::from_secs(31));
    assert_eq!(kinds(&out), ["retry"]);
    // The answer shows up after the engine gave up on it.
    e.handle_response(id, json_answer(1), due + Duration::from_secs(32))
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
    e.handle_timeout(due);
    let first = one_send(&drain(&mut e, due));
    e.handle_timeout(due + Duration::from_secs(31));
    drain(&mut e, due + Duration::from_secs(31));
    let retry_at = e.poll_timeout().unwrap();
    e.handle_timeout(retry_at);
    let second = one_send(&drain(&mut e, retry_at));
    // The first reached the server and spent the token: the retry is refused...
    e.handle_response(
        second,
        http_answer(
            400,
            &[],
            r#"{"statusCode":400,"message":"Invalid grant: refresh token is invalid"}"#,
        ),
        retry_at,
    )
    .unwrap();
    assert_eq!(kinds(&drain(&mut e, retry_at)), ["persist", "reauth"]);
    // ...and the first one's answer, late, restores the grant.
    e.handle_response(first, json_answer(1), retry_at + Duration::from_secs(1))
        .unwrap();
    let out = drain(&mut e, retry_at + Duration::from_secs(1));
    assert_eq!(kinds(&out), ["persist", "refreshed"]);
    assert!(matches!(e.record("g").unwrap().status, GrantStatus::Active));
}

#[test]
fn invalid_grant_needs_reauthorization_without_retry() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000));
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_response(
        id,
        http_answer(
            400,
            &[],
            r#"{"statusCode":400,"message":"Invalid grant: refresh token is invalid"}"#,
        ),
        t(86_001),
    )
    .unwrap();
    let out = drain(&mut e, t(86_000));
    assert_eq!(kinds(&out), ["persist", "reauth"]);
    let Output::Persist { record, .. } = &out[0] else {
        unreachable!()
    };
    assert!(matches!(
        record.status,
        GrantStatus::ReauthorizationNeeded { .. }
    ));
    assert_eq!(e.poll_timeout(), None);
    assert_eq!(
        e.access_token("g", t(90_000)).unwrap(),
        TokenStatus::ReauthorizationNeeded
    );
    assert!(drain(&mut e, t(90_000)).is_empty());
}

#[test]
fn suspended_location_keeps_the_token_and_retries_late() {
    let mut e = with_grant(EngineSettings::default().suspended_retry(Duration::from_secs(3600)));
    e.handle_timeout(t(86_000));
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_response(
        id,
        http_answer(
            400,
            &[],
            r#"{"statusCode":400,"message":"Location is not active"}"#,
        ),
        t(86_001),
    )
    .unwrap();
    let out = drain(&mut e, t(86_000));
    assert_eq!(kinds(&out), ["persist", "suspended"]);
    assert_eq!(
        persisted_refresh(&out).as_deref(),
        Some("refresh-token-placeholder-00000000")
    );
    assert_eq!(e.poll_timeout(), Some(t(86_001 + 3600)));
    assert_eq!(
        e.access_token("g", t(86_002)).unwrap(),
        TokenStatus::Suspended {
            until: t(86_001 + 3600)
        }
    );
    e.handle_timeout(t(86_001 + 3600));
    let out = drain(&mut e, t(86_001 + 3600));
    assert!(
        sends(&out)[0]
            .1
            .contains("refresh-token-placeholder-00000000")
    );
}

#[test]
fn rate_limit_waits_for_retry_after() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000));
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_response(
        id,
        http_answer(
            429,
            &[("Retry-After", "42")],
            r#"{"statusCode":429,"message":"Too Many Requests"}"#,
        ),
        t(86_001),
    )
    .unwrap();
    assert_eq!(kinds(&drain(&mut e, t(86_000))), ["retry"]);
    assert_eq!(e.poll_timeout(), Some(t(86_043)));
}

#[test]
fn server_errors_back_off_exponentially_with_a_cap() {
    let base = Duration::from_secs(2);
    let cap = Duration::from_secs(60);
    let mut e = with_grant(EngineSettings::default().backoff(base, cap).jitter_seed(9));
    let mut now = t(86_000);
    e.handle_timeout(now);
    for attempt in 1..=10u32 {
        let id = one_send(&drain(&mut e, now));
        e.handle_response(id, http_answer(502, &[], "<html>Bad Gateway</html>"), now)
            .unwrap();
        let out = drain(&mut e, now);
        let [Output::Event(Event::RetryScheduled { at, attempt: a, .. })] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(*a, attempt);
        let full = (base * 2u32.pow(attempt - 1)).min(cap);
        let wait = at.duration_since(now).unwrap();
        assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
        now = *at;
        e.handle_timeout(now);
    }
    // Every retry presented the same refresh token.
    let out = drain(&mut e, now);
    assert!(
        sends(&out)[0]
            .1
            .contains("refresh-token-placeholder-00000000")
    );
}

#[test]
fn invalid_client_halts_every_grant_until_reconfigured() {
    let mut e = with_grant(EngineSettings::default());
    e.insert("h", TokenSet::new(answer(5, true), t(200)), t(200))
        .unwrap();
    drain(&mut e, t(200));
    e.handle_timeout(t(85_800));
    let id = one_send(&drain(&mut e, t(85_800)));
    e.handle_response(
        id,
        http_answer(
            401,
            &[],
            r#"{"statusCode":401,"message":"Invalid client: client credentials are invalid","error":"Unauthorized"}"#,
        ),
        t(85_801),
    )
    .unwrap();
    assert_eq!(kinds(&drain(&mut e, t(85_800))), ["config-rejected"]);
    assert!(e.is_halted());
    // The other grant comes due: nothing is sent.
    e.handle_timeout(t(86_000));
    assert!(drain(&mut e, t(86_000)).is_empty());
    assert_eq!(e.poll_timeout(), None);
    assert_eq!(
        e.access_token("h", t(90_000)).unwrap(),
        TokenStatus::ConfigurationRejected
    );
    e.reconfigure(config(), t(90_000));
    e.handle_timeout(t(90_000));
    assert_eq!(sends(&drain(&mut e, t(90_000))).len(), 2);
}

#[test]
fn transport_error_retries_with_the_same_token() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000));
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_transport_error(id, t(86_001)).unwrap();
    let out = drain(&mut e, t(86_001));
    assert!(matches!(
        out.as_slice(),
        [Output::Event(Event::RetryScheduled {
            failure: Failure::Transport,
            attempt: 1,
            ..
        })]
    ));
    // Reported twice: harmless.
    e.handle_transport_error(id, t(86_001)).unwrap();
    e.handle_timeout(e.poll_timeout().unwrap());
    let out = drain(&mut e, t(86_001));
    assert!(
        sends(&out)[0]
            .1
            .contains("refresh-token-placeholder-00000000")
    );
}

// ---- shared-store mode ----------------------------------------------------------

/// Shared-store mode; re-reads of the store while waiting are left out
/// (an hour apart), see `engine_rotation_safety::a_lease_held_elsewhere_is_not_waited_out`.
fn shared(holder: &str) -> EngineSettings {
    EngineSettings::default()
        .request_timeout(Duration::from_secs(30))
        .reread_interval(Duration::from_secs(3600))
        .shared_store(holder, Duration::from_secs(120))
}

#[test]
fn shared_mode_sends_only_after_the_lease_is_confirmed() {
    let mut e = with_grant(shared("a"));
    e.handle_timeout(t(86_000));
    let out = drain(&mut e, t(86_000));
    assert_eq!(kinds(&out), ["persist"]);
    let Output::Persist {
        record, replaces, ..
    } = &out[0]
    else {
        unreachable!()
    };
    assert_eq!(*replaces, Some(1));
    assert_eq!(record.version, 2);
    assert_eq!(
        record.lease,
        Some(Lease {
            holder: "a".into(),
            until: t(86_120)
        })
    );
    e.handle_persisted("g", 2, t(86_000)).unwrap();
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_response(id, json_answer(1), t(86_001)).unwrap();
    let out = drain(&mut e, t(86_001));
    assert_eq!(kinds(&out), ["persist", "refreshed"]);
    let Output::Persist {
        record, replaces, ..
    } = &out[0]
    else {
        unreachable!()
    };
    assert_eq!(
        (*replaces, record.version, &record.lease),
        (Some(2), 3, &None)
    );
}

#[test]
fn shared_mode_conflict_adopts_newer_tokens_instead_of_refreshing() {
    let mut e = with_grant(shared("a"));
    e.handle_timeout(t(86_000));
    drain(&mut e, t(86_000));
    // Another engine refreshed first and wrote version 3.
    let mut theirs = GrantRecord::new("g", TokenSet::new(answer(7, true), t(85_990)));
    theirs.version = 3;
    e.handle_persist_conflict("g", theirs, t(86_000)).unwrap();
    let out = drain(&mut e, t(86_000));
    assert_eq!(kinds(&out), ["adopted"]);
    assert_eq!(
        e.access_token("g", t(86_001)).unwrap(),
        TokenStatus::Ready(AccessToken::new("access-token-placeholder-00000007"))
    );
    assert_eq!(e.poll_timeout(), Some(t(85_990 + 86_399 - 600)));
}

#[test]
fn shared_mode_conflict_with_a_live_lease_waits_for_it() {
    let mut e = with_grant(shared("a"));
    e.handle_timeout(t(86_000));
    drain(&mut e, t(86_000));
    let mut theirs = e.record("g").unwrap();
    theirs.version = 2;
    theirs.lease = Some(Lease {
        holder: "b".into(),
        until: t(86_090),
    });
    e.handle_persist_conflict("g", theirs, t(86_000)).unwrap();
    assert_eq!(kinds(&drain(&mut e, t(86_000))), ["lease-held"]);
    assert_eq!(e.poll_timeout(), Some(t(86_090)));
    // At the lease's end it tries again (a new compare-and-swap on version 2).
    e.handle_timeout(t(86_090));
    let out = drain(&mut e, t(86_090));
    assert!(matches!(
        out.as_slice(),
        [Output::Persist {
            replaces: Some(2),
            ..
        }]
    ));
}

#[test]
fn shared_mode_late_tokens_overwrite_a_lease_on_the_spent_token() {
    let mut e = with_grant(shared("a"));
    e.handle_timeout(t(86_000));
    drain(&mut e, t(86_000));
    e.handle_persisted("g", 2, t(86_000)).unwrap();
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_timeout(t(86_031));
    drain(&mut e, t(86_031));
    e.handle_token_result(id, Ok(answer(1, true)), t(86_032))
        .unwrap();
    let out = drain(&mut e, t(86_032));
    assert_eq!(kinds(&out), ["persist", "refreshed"]);
    // Meanwhile another engine leased the old token (version 3).
    let mut theirs = GrantRecord::new("g", TokenSet::new(answer(0, true), t(0)));
    theirs.version = 3;
    theirs.lease = Some(Lease {
        holder: "b".into(),
        until: t(86_200),
    });
    e.handle_persist_conflict("g", theirs, t(86_033)).unwrap();
    let out = drain(&mut e, t(86_033));
    assert!(matches!(
        out.as_slice(),
        [Output::Persist {
            replaces: Some(3),
            ..
        }]
    ));
    assert_eq!(
        persisted_refresh(&out).as_deref(),
        Some("refresh-token-placeholder-00000001")
    );
}

#[test]
fn restore_of_a_leased_record_waits_for_the_lease() {
    let mut a = with_grant(shared("a"));
    a.handle_timeout(t(86_000));
    let out = drain(&mut a, t(86_000));
    let Some(Output::Persist { record, .. }) = out.into_iter().next() else {
        unreachable!()
    };
    // The process dies here. Its successor restores the leased record.
    let mut b = engine(shared("a"));
    b.restore(record, t(86_010)).unwrap();
    assert_eq!(kinds(&drain(&mut b, t(86_010))), ["lease-held"]);
    assert_eq!(b.poll_timeout(), Some(t(86_120)));
    assert!(matches!(
        b.access_token("g", t(86_010)).unwrap(),
        TokenStatus::Ready(_)
    ));
    b.handle_timeout(t(86_120));
    assert_eq!(kinds(&drain(&mut b, t(86_120))), ["persist"]);
    b.handle_persisted("g", 3, t(86_120)).unwrap();
    let out = drain(&mut b, t(86_120));
    assert!(
        sends(&out)[0]
            .1
            .contains("refresh-token-placeholder-00000000")
    );
}

#[test]
fn record_serializes_to_the_documented_shape() {
    let e = with_grant(EngineSettings::default());
    let record = e.record("g").unwrap();
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
fn removed_grants_forget_their_requests() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000));
    let id = one_send(&drain(&mut e, t(86_000)));
    e.remove("g").unwrap();
    assert_eq!(
        e.handle_response(id, json_answer(1), t(86_001))
            .unwrap_err()
            .kind(),
        ErrorKind::UnknownRequest
    );
    assert_eq!(e.poll_timeout(), None);
    assert!(e.is_empty());
}

#[test]
fn send_output_debug_hides_the_body() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000));
    let out = drain(&mut e, t(86_000));
    let debug = format!("{out:?}");
    assert!(!debug.contains("placeholder"), "{debug}");
}

#[test]
fn a_refresh_token_rescued_from_a_failed_answer_is_persisted_and_used() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000));
    let id = one_send(&drain(&mut e, t(86_000)));
    // A 200 without access_token, but with a rotated refresh token.
    e.handle_response(
        id,
        http_answer(
            200,
            &[],
            r#"{"refresh_token":"refresh-token-placeholder-00000009"}"#,
        ),
        t(86_001),
    )
    .unwrap();
    let out = drain(&mut e, t(86_000));
    assert_eq!(kinds(&out), ["persist", "retry"]);
    assert_eq!(
        persisted_refresh(&out).as_deref(),
        Some("refresh-token-placeholder-00000009")
    );
    e.handle_timeout(e.poll_timeout().unwrap());
    let out = drain(&mut e, t(86_000));
    assert!(
        sends(&out)[0]
            .1
            .contains("refresh-token-placeholder-00000009")
    );
}

#[test]
fn a_late_failure_still_gives_up_its_rescued_token() {
    let mut e = with_grant(EngineSettings::default().request_timeout(Duration::from_secs(30)));
    e.handle_timeout(t(86_000));
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_timeout(t(86_031));
    assert_eq!(kinds(&drain(&mut e, t(86_031))), ["retry"]);
    e.handle_response(
        id,
        http_answer(
            200,
            &[],
            r#"{"refresh_token":"refresh-token-placeholder-00000009"}"#,
        ),
        t(86_032),
    )
    .unwrap();
    let out = drain(&mut e, t(86_031));
    assert_eq!(kinds(&out), ["persist"]);
    assert_eq!(
        persisted_refresh(&out).as_deref(),
        Some("refresh-token-placeholder-00000009")
    );
}

#[test]
fn the_parked_list_stays_short_while_grants_come_and_go() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(85_800));
    let id = one_send(&drain(&mut e, t(85_800)));
    let body = r#"{"error":"invalid_client","error_description":"bad secret"}"#;
    e.handle_response(id, http_answer(401, &[], body), t(85_801))
        .unwrap();
    drain(&mut e, t(85_801));
    assert!(e.is_halted());
    // Each new authorization unparks the grant; its refresh parks it again.
    for n in 1..2_000u32 {
        let now = t(86_000 + u64::from(n) * 100_000);
        e.insert("g", TokenSet::new(answer(n, true), now), now)
            .unwrap();
        e.insert(
            format!("h{}", n % 5),
            TokenSet::new(answer(n, true), now),
            now,
        )
        .unwrap();
        e.handle_timeout(now + Duration::from_secs(86_400));
        drain(&mut e, now + Duration::from_secs(86_400));
        if n % 3 == 0 {
            e.remove(&format!("h{}", n % 5)).unwrap();
        }
    }
    assert!(
        e.parked.len() <= 2 * e.slots.len() + 65,
        "{}",
        e.parked.len()
    );
    e.reconfigure(config(), t(1));
    e.handle_timeout(t(1));
    assert_eq!(sends(&drain(&mut e, t(1))).len(), e.len());
}

#[test]
fn removed_grants_leave_nothing_behind_once_answered() {
    let mut e = Engine::new(config(), EngineSettings::default());
    for round in 0..5000u32 {
        let now = t(round as u64 * 100_000);
        e.insert("loc-1", TokenSet::new(answer(round, true), now), now)
            .unwrap();
        while e.poll_output(now).is_some() {}
        e.refresh_now("loc-1", now).unwrap();
        let mut id = None;
        while let Some(o) = e.poll_output(now) {
            if let Output::Send { id: i, .. } = o {
                id = Some(i);
            }
        }
        e.remove("loc-1").unwrap();
        let _ = e.handle_token_result(id.unwrap(), Ok(answer(round + 1, true)), now);
    }
    assert!(e.removed.is_empty());
    assert!(e.slots.len() <= 2, "{} slots for one grant", e.slots.len());
    assert!(e.slots.iter().all(Option::is_none));
    assert_eq!(e.free.len(), e.slots.len());
}

#[test]
fn removed_grant_whose_request_was_never_sent_is_forgotten() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000));
    // The send is queued, not polled.
    e.remove("g").unwrap();
    assert!(drain(&mut e, t(86_000)).is_empty());
    assert!(e.removed.is_empty());
    assert!(e.slots.iter().all(Option::is_none));
    assert_eq!(e.poll_timeout(), None);
}
