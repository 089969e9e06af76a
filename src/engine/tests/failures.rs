//! What refused and failed refreshes do to a grant, and refresh tokens
//! rescued from failed answers.

use super::*;

#[test]
fn invalid_grant_needs_reauthorization_without_retry() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000)).unwrap();
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_send(
        id,
        SendOutcome::Response(http_answer(
            400,
            &[],
            r#"{"statusCode":400,"message":"Invalid grant: refresh token is invalid"}"#,
        )),
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
    e.handle_timeout(t(86_000)).unwrap();
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_send(
        id,
        SendOutcome::Response(http_answer(
            400,
            &[],
            r#"{"statusCode":400,"message":"Location is not active"}"#,
        )),
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
    e.handle_timeout(t(86_001 + 3600)).unwrap();
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
    e.handle_timeout(t(86_000)).unwrap();
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_send(
        id,
        SendOutcome::Response(http_answer(
            429,
            &[("Retry-After", "42")],
            r#"{"statusCode":429,"message":"Too Many Requests"}"#,
        )),
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
    e.handle_timeout(now).unwrap();
    for attempt in 1..=10u32 {
        let id = one_send(&drain(&mut e, now));
        e.handle_send(
            id,
            SendOutcome::Response(http_answer(502, &[], "<html>Bad Gateway</html>")),
            now,
        )
        .unwrap();
        let out = drain(&mut e, now);
        let [Output::Event(EngineEvent::RetryScheduled { at, attempt: a, .. })] = out.as_slice()
        else {
            panic!("{out:?}")
        };
        assert_eq!(*a, attempt);
        let full = (base * 2u32.pow(attempt - 1)).min(cap);
        let wait = at.duration_since(now).unwrap();
        assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
        now = *at;
        e.handle_timeout(now).unwrap();
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
    e.handle_timeout(t(85_800)).unwrap();
    let id = one_send(&drain(&mut e, t(85_800)));
    e.handle_send(id, SendOutcome::Response(http_answer(
            401,
            &[],
            r#"{"statusCode":401,"message":"Invalid client: client credentials are invalid","error":"Unauthorized"}"#,
        )), t(85_801))
    .unwrap();
    assert_eq!(kinds(&drain(&mut e, t(85_800))), ["config-rejected"]);
    assert!(e.stats().halted);
    // The other grant comes due: nothing is sent.
    e.handle_timeout(t(86_000)).unwrap();
    assert!(drain(&mut e, t(86_000)).is_empty());
    assert_eq!(e.poll_timeout(), None);
    assert_eq!(
        e.access_token("h", t(90_000)).unwrap(),
        TokenStatus::ConfigurationRejected
    );
    e.reconfigure(config(), t(90_000)).unwrap();
    e.handle_timeout(t(90_000)).unwrap();
    assert_eq!(sends(&drain(&mut e, t(90_000))).len(), 2);
}

#[test]
fn transport_error_retries_with_the_same_token() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000)).unwrap();
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_send(id, SendOutcome::TransportError(String::new()), t(86_001))
        .unwrap();
    let out = drain(&mut e, t(86_001));
    assert!(matches!(
        out.as_slice(),
        [Output::Event(EngineEvent::RetryScheduled {
            failure: RefreshFailure::Transport(_),
            attempt: 1,
            ..
        })]
    ));
    // Reported twice: harmless.
    e.handle_send(id, SendOutcome::TransportError(String::new()), t(86_001))
        .unwrap();
    e.handle_timeout(e.poll_timeout().unwrap()).unwrap();
    let out = drain(&mut e, t(86_001));
    assert!(
        sends(&out)[0]
            .1
            .contains("refresh-token-placeholder-00000000")
    );
}

#[test]
fn a_refresh_token_rescued_from_a_failed_answer_is_persisted_and_used() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000)).unwrap();
    let id = one_send(&drain(&mut e, t(86_000)));
    // A 200 without access_token, but with a rotated refresh token.
    e.handle_send(
        id,
        SendOutcome::Response(http_answer(
            200,
            &[],
            r#"{"refresh_token":"refresh-token-placeholder-00000009"}"#,
        )),
        t(86_001),
    )
    .unwrap();
    let out = drain(&mut e, t(86_000));
    assert_eq!(kinds(&out), ["persist", "retry"]);
    assert_eq!(
        persisted_refresh(&out).as_deref(),
        Some("refresh-token-placeholder-00000009")
    );
    e.handle_timeout(e.poll_timeout().unwrap()).unwrap();
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
    e.handle_timeout(t(86_000)).unwrap();
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_timeout(t(86_031)).unwrap();
    assert_eq!(kinds(&drain(&mut e, t(86_031))), ["retry"]);
    e.handle_send(
        id,
        SendOutcome::Response(http_answer(
            200,
            &[],
            r#"{"refresh_token":"refresh-token-placeholder-00000009"}"#,
        )),
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
