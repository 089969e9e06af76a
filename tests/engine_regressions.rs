//! Regression tests: each one replays a sequence of inputs that once lost a
//! refresh token, sent a spent one, sent after a halt, reported a token before
//! it was persisted, or panicked.

mod common;

use std::time::{Duration, SystemTime};

use common::{config, t0};
use hoopai_oauth::*;

fn tok(n: u32) -> TokenResponse {
    let mut t = TokenResponse::new(AccessToken::new(format!("access-{n}")));
    t.refresh_token = Some(RefreshToken::new(format!("refresh-{n}")));
    t.expires_in = Some(86_399);
    t.user_type = Some(UserType::Location);
    t
}

fn resp(status: u16, body: &str) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec())
        .unwrap()
}

fn ok_body(n: u32) -> String {
    format!(
        r#"{{"access_token":"access-{n}","token_type":"Bearer","expires_in":86399,"refresh_token":"refresh-{n}","userType":"Location","locationId":"loc-1"}}"#
    )
}

const INVALID_CLIENT: &str = r#"{"error":"invalid_client","error_description":"bad secret"}"#;

/// Every output of single-process `e` at `now`, each write confirmed as it
/// is polled (its store is a plain overwrite that succeeds).
fn drain(e: &mut Engine, now: SystemTime) -> Vec<Output> {
    let mut outs = vec![];
    while let Some(o) = e.poll_output(now) {
        if let Output::Persist { record, .. } = &o {
            e.handle_write(
                record.grant.as_str(),
                record.version,
                WriteOutcome::Written,
                now,
            )
            .unwrap();
        }
        outs.push(o);
    }
    outs
}

/// Every output of shared-store `e` at `now`; the test reports the writes.
fn drain_open(e: &mut Engine, now: SystemTime) -> Vec<Output> {
    std::iter::from_fn(|| e.poll_output(now)).collect()
}

/// The id and the refresh token of a send.
fn sent_token(o: &Output) -> Option<(RequestId, String)> {
    let Output::Send { id, request, .. } = o else {
        return None;
    };
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(request.body()).unwrap();
    let rt = form.into_iter().find(|(k, _)| k == "refresh_token")?.1;
    Some((*id, rt))
}

/// The refresh tokens of the records persisted.
fn persisted(outs: &[Output]) -> Vec<String> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Persist { record, .. } => {
                Some(record.refresh_token().unwrap().secret().to_owned())
            }
            _ => None,
        })
        .collect()
}

fn shared() -> EngineSettings {
    EngineSettings::default().shared_store("a", Duration::from_secs(120))
}

/// Confirms every persist (a store whose compare-and-swap always wins);
/// returns the sends.
fn drive_confirm(e: &mut Engine, now: SystemTime) -> Vec<(RequestId, String)> {
    let mut out = vec![];
    while let Some(o) = e.poll_output(now) {
        match &o {
            Output::Persist { record, .. } => e
                .handle_write(
                    record.grant.as_str(),
                    record.version,
                    WriteOutcome::Written,
                    now,
                )
                .unwrap(),
            Output::Send { .. } => out.push(sent_token(&o).unwrap()),
            _ => {}
        }
    }
    out
}

/// Shared mode: refresh-1 is spent, refresh-2 received and its write (v3)
/// still out when the store reports a v4 that holds refresh-1.
fn shared_engine_with_unconfirmed_refresh_2() -> (Engine, SystemTime, GrantRecord) {
    let mut e = Engine::new(config(), shared());
    e.insert("loc-1", TokenSet::new(tok(1), t0()), t0())
        .unwrap();
    drive_confirm(&mut e, t0());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let sent = drive_confirm(&mut e, due);
    assert_eq!(sent.len(), 1);
    let (id, rt) = sent[0].clone();
    assert_eq!(rt, "refresh-1");
    e.handle_send(id, SendOutcome::Response(resp(200, &ok_body(2))), due)
        .unwrap();
    let outs = drain_open(&mut e, due);
    let write = outs.iter().find_map(|o| match o {
        Output::Persist {
            record, replaces, ..
        } => Some((record.version, *replaces)),
        _ => None,
    });
    assert_eq!(write, Some((3, Some(2))));
    let mut stored = GrantRecord::new("loc-1", TokenSet::new(tok(1), t0()));
    stored.version = 4;
    (e, due, stored)
}

#[test]
fn restore_keeps_an_unconfirmed_new_refresh_token() {
    let (mut e, due, stored) = shared_engine_with_unconfirmed_refresh_2();
    e.restore(stored.clone(), due).unwrap();
    e.handle_write("loc-1", 3, WriteOutcome::Conflict(Box::new(stored)), due)
        .unwrap();
    let outs = drain_open(&mut e, due);
    assert_eq!(persisted(&outs), ["refresh-2"], "{outs:?}");
    let held = e.grants().get("loc-1").map(|g| g.record()).unwrap();
    assert_eq!(held.refresh_token().unwrap().secret(), "refresh-2");
    // The rewrite goes over the version the store holds.
    let Some(Output::Persist { replaces, .. }) = outs.first() else {
        panic!("{outs:?}")
    };
    assert_eq!(*replaces, Some(4));
}

#[test]
fn restore_then_conflict_never_sends_the_spent_token() {
    let (mut e, due, stored) = shared_engine_with_unconfirmed_refresh_2();
    e.restore(stored.clone(), due).unwrap();
    e.handle_write("loc-1", 3, WriteOutcome::Conflict(Box::new(stored)), due)
        .unwrap();
    drive_confirm(&mut e, due);
    let later = e.poll_timeout().unwrap();
    assert!(later > due);
    e.handle_timeout(later).unwrap();
    let sent = drive_confirm(&mut e, later);
    assert_eq!(
        sent.iter().map(|(_, rt)| rt.as_str()).collect::<Vec<_>>(),
        ["refresh-2"]
    );
}

#[test]
fn a_success_after_a_restore_during_the_refresh_is_adopted() {
    let mut e = Engine::new(config(), EngineSettings::default());
    e.insert("loc-1", TokenSet::new(tok(1), t0()), t0())
        .unwrap();
    drain(&mut e, t0());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let (id, rt) = drain(&mut e, due).iter().find_map(sent_token).unwrap();
    assert_eq!(rt, "refresh-1");
    // The store hands in a newer record with an older token.
    let mut stored = GrantRecord::new("loc-1", TokenSet::new(tok(0), t0()));
    stored.version = 5;
    e.restore(stored, due).unwrap();
    drain(&mut e, due);
    e.handle_send(id, SendOutcome::Response(resp(200, &ok_body(2))), due)
        .unwrap();
    let outs = drain(&mut e, due);
    assert_eq!(persisted(&outs), ["refresh-2"], "{outs:?}");
    let later = e.poll_timeout().unwrap();
    e.handle_timeout(later).unwrap();
    let sent: Vec<_> = drain(&mut e, later).iter().filter_map(sent_token).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, "refresh-2");
}

#[test]
fn a_success_sent_before_a_new_authorization_does_not_replace_it() {
    let mut e = Engine::new(config(), EngineSettings::default());
    e.insert("loc-1", TokenSet::new(tok(1), t0()), t0())
        .unwrap();
    drain(&mut e, t0());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let (id, _) = drain(&mut e, due).iter().find_map(sent_token).unwrap();
    e.insert("loc-1", TokenSet::new(tok(7), due), due).unwrap();
    drain(&mut e, due);
    e.handle_send(id, SendOutcome::Response(resp(200, &ok_body(2))), due)
        .unwrap();
    assert_eq!(persisted(&drain(&mut e, due)), Vec::<String>::new());
    let held = e.grants().get("loc-1").map(|g| g.record()).unwrap();
    assert_eq!(held.refresh_token().unwrap().secret(), "refresh-7");
}

/// A grant with refresh-1 in flight, and the record written at insert.
fn refresh_in_flight() -> (Engine, SystemTime, RequestId, GrantRecord) {
    let mut e = Engine::new(config(), EngineSettings::default());
    e.insert("loc-1", TokenSet::new(tok(1), t0()), t0())
        .unwrap();
    let Some(Output::Persist { record, .. }) = e.poll_output(t0()) else {
        panic!("no persist")
    };
    e.handle_write("loc-1", record.version, WriteOutcome::Written, t0())
        .unwrap();
    drain(&mut e, t0());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let (id, rt) = drain(&mut e, due).iter().find_map(sent_token).unwrap();
    assert_eq!(rt, "refresh-1");
    (e, due, id, record)
}

#[test]
fn removed_then_restored_grant_still_adopts_its_answer() {
    let (mut e, due, id, record) = refresh_in_flight();
    e.remove("loc-1", Removal::Released, due).unwrap();
    e.restore(record, due).unwrap();
    // Its refresh is still out: no second one.
    assert!(sends_of(&drain(&mut e, due)).is_empty());
    e.handle_send(id, SendOutcome::Response(resp(200, &ok_body(2))), due)
        .unwrap();
    assert_eq!(persisted(&drain(&mut e, due)), ["refresh-2"]);
    let later = e.poll_timeout().unwrap();
    e.handle_timeout(later).unwrap();
    assert_eq!(sends_of(&drain(&mut e, later)), ["refresh-2"]);
}

#[test]
fn removed_grant_answer_is_kept_with_its_refresh_token() {
    let (mut e, due, id, _) = refresh_in_flight();
    e.remove("loc-1", Removal::Released, due).unwrap();
    assert!(drain(&mut e, due).is_empty());
    e.handle_send(id, SendOutcome::Response(resp(200, &ok_body(2))), due)
        .unwrap();
    let outs = drain(&mut e, due);
    assert!(
        matches!(
            outs.as_slice(),
            [Output::Event(EngineEvent::AnswerAfterRemoval {
                refresh_token_kept: true,
                ..
            })]
        ),
        "{outs:?}"
    );
    // Forgotten for good now: a second answer is unknown.
    let again = e.handle_send(id, SendOutcome::Response(resp(200, &ok_body(2))), due);
    assert_eq!(again.unwrap_err().kind(), ErrorKind::UnknownRequest);
    assert_eq!(e.poll_timeout(), None);
}

#[test]
fn a_grant_released_while_its_new_refresh_token_is_unwritten_keeps_it() {
    // Found by engine_properties: refresh-2 received, its write failing,
    // the grant released and restored from the store's older record (which
    // holds the spent refresh-1). The engine dropped refresh-2 and sent
    // refresh-1: the install was lost.
    let (mut e, due, id, record) = refresh_in_flight();
    e.handle_send(id, SendOutcome::Response(resp(200, &ok_body(2))), due)
        .unwrap();
    let write = std::iter::from_fn(|| e.poll_output(due)).find_map(|o| match o {
        Output::Persist { record, .. } => Some(record.version),
        _ => None,
    });
    let version = write.expect("the write of refresh-2");
    e.handle_write(
        "loc-1",
        version,
        WriteOutcome::Failed(StoreFailure::new("the store is down")),
        due,
    )
    .unwrap();
    assert!(
        drain_open(&mut e, due)
            .iter()
            .all(|o| !matches!(o, Output::Send { .. }))
    );
    e.remove("loc-1", Removal::Released, due).unwrap();
    e.restore(record, due).unwrap();
    // Its write is queued again at once; refresh-2 is the one sent next.
    let outs = drain(&mut e, due);
    assert!(sends_of(&outs).is_empty(), "{outs:?}");
    assert_eq!(persisted(&outs), ["refresh-2"], "{outs:?}");
    let mut sent = vec![];
    while sent.is_empty() {
        let later = e.poll_timeout().unwrap();
        e.handle_timeout(later).unwrap();
        sent = sends_of(&drain(&mut e, later));
    }
    assert_eq!(sent, ["refresh-2"]);
}

#[test]
fn removed_then_reinstalled_grant_keeps_its_new_authorization() {
    let (mut e, due, id, _) = refresh_in_flight();
    e.remove("loc-1", Removal::Released, due).unwrap();
    e.insert("loc-1", TokenSet::new(tok(7), due), due).unwrap();
    drain(&mut e, due);
    e.handle_send(id, SendOutcome::Response(resp(200, &ok_body(2))), due)
        .unwrap();
    assert!(persisted(&drain(&mut e, due)).is_empty());
    let held = e.grants().get("loc-1").map(|g| g.record()).unwrap();
    assert_eq!(held.refresh_token().unwrap().secret(), "refresh-7");
}

fn sends_of(outs: &[Output]) -> Vec<String> {
    outs.iter()
        .filter_map(sent_token)
        .map(|(_, rt)| rt)
        .collect()
}

#[test]
fn first_write_of_a_never_stored_record_is_create_only() {
    let mut e = Engine::new(config(), shared());
    let rec = GrantRecord::new("loc-1", TokenSet::new(tok(1), t0()));
    e.restore(rec, t0()).unwrap();
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let outs = drain_open(&mut e, due);
    let write = outs.iter().find_map(|o| match o {
        Output::Persist {
            replaces, record, ..
        } => Some((*replaces, record.version, record.lease.is_some())),
        _ => None,
    });
    assert_eq!(write, Some((None, 1, true)));
    e.handle_write("loc-1", 1, WriteOutcome::Written, due)
        .unwrap();
    assert_eq!(sends_of(&drain_open(&mut e, due)), ["refresh-1"]);
}

#[test]
fn an_unanswered_lease_write_is_taken_again_when_it_ends() {
    let mut e = Engine::new(config(), shared());
    e.insert("loc-1", TokenSet::new(tok(1), t0()), t0())
        .unwrap();
    drive_confirm(&mut e, t0());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let first = drain_open(&mut e, due);
    let Some(Output::Persist { record, .. }) = first.first() else {
        panic!("{first:?}")
    };
    let until = record.lease.clone().unwrap().until;
    // The write's outcome never comes; the engine does not wait forever.
    assert_eq!(e.poll_timeout(), Some(until));
    e.handle_timeout(until).unwrap();
    let again = drain_open(&mut e, until);
    let Some(Output::Persist {
        record, replaces, ..
    }) = again.first()
    else {
        panic!("{again:?}")
    };
    // Over version 1, the last known written: the store's version 2 may be
    // another engine's write that won over the unreported one.
    assert_eq!((record.version, *replaces), (3, Some(1)));
    assert!(record.lease.as_ref().unwrap().until > until);
    assert!(sends_of(&again).is_empty());
}

#[test]
fn a_lease_confirmed_too_late_is_taken_again_instead_of_sending() {
    let mut e = Engine::new(config(), shared());
    e.insert("loc-1", TokenSet::new(tok(1), t0()), t0())
        .unwrap();
    drive_confirm(&mut e, t0());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let outs = drain_open(&mut e, due);
    let (v, until) = outs
        .iter()
        .find_map(|o| match o {
            Output::Persist { record, .. } => {
                Some((record.version, record.lease.clone().unwrap().until))
            }
            _ => None,
        })
        .unwrap();
    // Confirmed when less than a request timeout of the lease is left.
    let late = until - Duration::from_secs(30);
    e.handle_write("loc-1", v, WriteOutcome::Written, late)
        .unwrap();
    let outs = drain_open(&mut e, late);
    assert!(sends_of(&outs).is_empty(), "{outs:?}");
    let Some(Output::Persist { record, .. }) = outs.first() else {
        panic!("{outs:?}")
    };
    assert!(record.lease.as_ref().unwrap().until >= late + Duration::from_secs(60));
    e.handle_write("loc-1", record.version, WriteOutcome::Written, late)
        .unwrap();
    assert_eq!(sends_of(&drain_open(&mut e, late)), ["refresh-1"]);
}

fn access(status: TokenStatus) -> Option<String> {
    match status {
        TokenStatus::Ready(a) => Some(a.secret().to_owned()),
        _ => None,
    }
}

#[test]
fn a_new_token_is_ready_only_once_its_write_is_confirmed() {
    let mut e = Engine::new(config(), EngineSettings::default());
    e.insert("loc-1", TokenSet::new(tok(1), t0()), t0())
        .unwrap();
    drain(&mut e, t0());
    // Refresh ahead: the old token is still good.
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let (id, _) = drain(&mut e, due).iter().find_map(sent_token).unwrap();
    e.handle_send(id, SendOutcome::Response(resp(200, &ok_body(2))), due)
        .unwrap();
    let ask = |e: &mut Engine, at| access(e.access_token("loc-1", at).unwrap());
    assert_eq!(ask(&mut e, due).as_deref(), Some("access-1"));
    // Polled, not yet confirmed: still the old one.
    let Some(Output::Persist { record, .. }) = e.poll_output(due) else {
        panic!("the new tokens are written first")
    };
    assert_eq!(ask(&mut e, due).as_deref(), Some("access-1"));
    e.handle_write("loc-1", record.version, WriteOutcome::Written, due)
        .unwrap();
    assert_eq!(ask(&mut e, due).as_deref(), Some("access-2"));
    drain(&mut e, due);

    // Refresh after expiry: wait, then a TokenReady once the write is confirmed.
    let exp = due + Duration::from_secs(86_399);
    e.handle_timeout(exp).unwrap();
    assert_eq!(ask(&mut e, exp), None);
    let (id, _) = drain(&mut e, exp).iter().find_map(sent_token).unwrap();
    e.handle_send(id, SendOutcome::Response(resp(200, &ok_body(3))), exp)
        .unwrap();
    assert_eq!(e.access_token("loc-1", exp).unwrap(), TokenStatus::Pending);
    let outs = drain(&mut e, exp);
    assert!(
        matches!(
            outs.as_slice(),
            [
                Output::Persist { .. },
                Output::Event(EngineEvent::Refreshed { .. }),
                Output::Event(EngineEvent::TokenReady { .. }),
            ]
        ),
        "{outs:?}"
    );
    assert_eq!(ask(&mut e, exp).as_deref(), Some("access-3"));
}

#[test]
fn shared_mode_a_new_token_is_ready_only_once_its_write_is_confirmed() {
    let mut e = Engine::new(config(), shared());
    e.insert("loc-1", TokenSet::new(tok(1), t0()), t0())
        .unwrap();
    drive_confirm(&mut e, t0());
    let exp = t0() + Duration::from_secs(86_399);
    assert_eq!(e.access_token("loc-1", exp).unwrap(), TokenStatus::Pending);
    let (id, _) = drive_confirm(&mut e, exp)[0].clone();
    e.handle_send(id, SendOutcome::Response(resp(200, &ok_body(2))), exp)
        .unwrap();
    let outs = drain_open(&mut e, exp);
    let Some(Output::Persist { record, .. }) = outs.first() else {
        panic!("{outs:?}")
    };
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Event(EngineEvent::TokenReady { .. }))),
        "{outs:?}"
    );
    assert_eq!(e.access_token("loc-1", exp).unwrap(), TokenStatus::Pending);
    e.handle_write("loc-1", record.version, WriteOutcome::Written, exp)
        .unwrap();
    let outs = drain_open(&mut e, exp);
    assert!(
        matches!(
            outs.as_slice(),
            [
                Output::Event(EngineEvent::Refreshed { .. }),
                Output::Event(EngineEvent::TokenReady { .. })
            ]
        ),
        "{outs:?}"
    );
    let ready = access(e.access_token("loc-1", exp).unwrap());
    assert_eq!(ready.as_deref(), Some("access-2"));
}

#[test]
fn a_lease_confirmed_after_the_client_was_rejected_sends_nothing() {
    let mut e = Engine::new(config(), shared());
    let mut other = tok(1);
    other.refresh_token = Some(RefreshToken::new("refresh-b"));
    e.insert("loc-1", TokenSet::new(tok(1), t0()), t0())
        .unwrap();
    e.insert("loc-2", TokenSet::new(other, t0()), t0()).unwrap();
    drive_confirm(&mut e, t0());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let leases: Vec<(GrantId, u64)> = drain_open(&mut e, due)
        .into_iter()
        .filter_map(|o| match o {
            Output::Persist { record, .. } => Some((record.grant, record.version)),
            _ => None,
        })
        .collect();
    assert_eq!(leases.len(), 2);
    e.handle_write(
        leases[0].0.as_str(),
        leases[0].1,
        WriteOutcome::Written,
        due,
    )
    .unwrap();
    let sent: Vec<_> = drain_open(&mut e, due)
        .iter()
        .filter_map(sent_token)
        .collect();
    assert_eq!(sent.len(), 1);
    e.handle_send(
        sent[0].0,
        SendOutcome::Response(resp(401, INVALID_CLIENT)),
        due,
    )
    .unwrap();
    let outs = drain_open(&mut e, due);
    assert!(e.stats().halted);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Event(EngineEvent::ConfigurationRejected { .. }))),
        "{outs:?}"
    );
    e.handle_write(
        leases[1].0.as_str(),
        leases[1].1,
        WriteOutcome::Written,
        due,
    )
    .unwrap();
    assert!(sends_of(&drain_open(&mut e, due)).is_empty());
    // A corrected configuration sends again.
    e.reconfigure(config(), due).unwrap();
    e.handle_timeout(due).unwrap();
    assert_eq!(drive_confirm(&mut e, due).len(), 2);
}

#[test]
fn sends_queued_before_the_client_was_rejected_are_not_sent() {
    let mut e = Engine::new(config(), EngineSettings::default());
    for i in 0..3 {
        let mut t = tok(1);
        t.refresh_token = Some(RefreshToken::new(format!("refresh-g{i}")));
        e.insert(format!("loc-{i}"), TokenSet::new(t, t0()), t0())
            .unwrap();
    }
    drain(&mut e, t0());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let (id, _) = sent_token(&e.poll_output(due).unwrap()).unwrap();
    // The answer to the first comes before the others are polled.
    e.handle_send(id, SendOutcome::Response(resp(401, INVALID_CLIENT)), due)
        .unwrap();
    let outs = drain(&mut e, due);
    assert!(e.stats().halted);
    assert!(sends_of(&outs).is_empty(), "{outs:?}");
    for i in 1..3 {
        let status = e.access_token(&format!("loc-{i}"), due).unwrap();
        assert!(matches!(status, TokenStatus::Ready(_)));
    }
    e.reconfigure(config(), due).unwrap();
    e.handle_timeout(due).unwrap();
    assert_eq!(sends_of(&drain(&mut e, due)).len(), 3);
}

#[test]
fn a_record_whose_version_cannot_go_up_is_refused() {
    let mut e = Engine::new(config(), EngineSettings::default());
    for version in [u64::MAX, MAX_RECORD_VERSION + 1] {
        let mut rec = GrantRecord::new("loc-1", TokenSet::new(tok(1), t0()));
        rec.version = version;
        let err = e.restore(rec, t0()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StaleRecord, "{err}");
    }
    assert!((e.stats().grants == 0));
    // The highest one taken still goes up (and would then be refused).
    let mut rec = GrantRecord::new("loc-1", TokenSet::new(tok(1), t0()));
    rec.version = MAX_RECORD_VERSION;
    e.restore(rec, t0()).unwrap();
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let (id, _) = drain(&mut e, due).iter().find_map(sent_token).unwrap();
    e.handle_send(id, SendOutcome::Response(resp(200, &ok_body(2))), due)
        .unwrap();
    let outs = drain(&mut e, due);
    let Some(Output::Persist {
        record, replaces, ..
    }) = outs.first()
    else {
        panic!("{outs:?}")
    };
    assert_eq!(
        (record.version, *replaces),
        (MAX_RECORD_VERSION + 1, Some(MAX_RECORD_VERSION))
    );
}

#[test]
fn an_endless_suspended_retry_does_not_panic() {
    let settings = EngineSettings::default().suspended_retry(Duration::MAX);
    let mut e = Engine::new(config(), settings);
    e.insert("loc-1", TokenSet::new(tok(1), t0()), t0())
        .unwrap();
    drain(&mut e, t0());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let (id, _) = drain(&mut e, due).iter().find_map(sent_token).unwrap();
    let body = r#"{"statusCode":400,"message":"Location is not active"}"#;
    let at = due + Duration::from_nanos(1);
    e.handle_send(id, SendOutcome::Response(resp(400, body)), at)
        .unwrap();
    let outs = drain(&mut e, at);
    assert!(
        outs.iter().any(
            |o| matches!(o, Output::Event(EngineEvent::Suspended { until, .. }) if *until > at + Duration::from_secs(1 << 40))
        ),
        "{outs:?}"
    );
}

#[test]
fn an_endless_lease_does_not_panic() {
    let settings = EngineSettings::default().shared_store("a", Duration::MAX);
    let mut e = Engine::new(config(), settings);
    e.insert("loc-1", TokenSet::new(tok(1), t0()), t0())
        .unwrap();
    drive_confirm(&mut e, t0());
    let due = e.poll_timeout().unwrap() + Duration::from_nanos(1);
    e.handle_timeout(due).unwrap();
    assert_eq!(sends_of(&drain_confirmed(&mut e, due)), ["refresh-1"]);
}

/// Like [`drive_confirm`], returning every output.
fn drain_confirmed(e: &mut Engine, now: SystemTime) -> Vec<Output> {
    let mut outs = vec![];
    while let Some(o) = e.poll_output(now) {
        if let Output::Persist { record, .. } = &o {
            e.handle_write(
                record.grant.as_str(),
                record.version,
                WriteOutcome::Written,
                now,
            )
            .unwrap();
        }
        outs.push(o);
    }
    outs
}

#[test]
fn engine_debug_prints_no_fingerprint_of_a_spent_token() {
    let (e, _, _) = shared_engine_with_unconfirmed_refresh_2();
    let debug = format!("{e:?}");
    assert!(debug.contains("unconfirmed: Refreshed"), "{debug}");
    assert!(!debug.contains("spent"), "{debug}");
    assert!(!debug.contains("refresh-1") && !debug.contains("refresh-2"));
}

#[test]
fn removed_and_restored_grant_keeps_its_backoff_while_an_answer_is_late() {
    let (mut e, due, id, record) = refresh_in_flight();
    // The request times out; the retry waits.
    let timeout = e.poll_timeout().unwrap();
    e.handle_timeout(timeout).unwrap();
    drain(&mut e, timeout);
    let retry = e.poll_timeout().unwrap();
    eprintln!("due {due:?} retry {retry:?}");
    assert!(retry > timeout);
    e.remove("loc-1", Removal::Released, retry).unwrap();
    e.restore(record, timeout).unwrap();
    assert!(drain(&mut e, timeout).is_empty());
    assert_eq!(e.poll_timeout(), Some(retry));
    // The late answer still wins.
    e.handle_send(id, SendOutcome::Response(resp(200, &ok_body(2))), timeout)
        .unwrap();
    assert_eq!(persisted(&drain(&mut e, timeout)), ["refresh-2"]);
    assert!(e.poll_timeout().unwrap() > due + Duration::from_secs(3600));
}

/// Send A (refresh-1) times out, retry B (refresh-1) out; A's late success
/// gives refresh-2 (Persist queued, not polled); then remove + restore.
#[test]
fn removed_before_its_write_is_polled_then_restored_still_persists_the_new_token() {
    let (mut e, due, id_a, record) = refresh_in_flight();
    let t1 = due + Duration::from_secs(61);
    e.handle_timeout(t1).unwrap();
    drain(&mut e, t1);
    let t2 = e.poll_timeout().unwrap();
    e.handle_timeout(t2).unwrap();
    let (_id_b, rt) = drain(&mut e, t2).iter().find_map(sent_token).unwrap();
    assert_eq!(rt, "refresh-1");
    e.handle_send(id_a, SendOutcome::Response(resp(200, &ok_body(2))), t2)
        .unwrap();
    // not polled yet
    e.remove("loc-1", Removal::Released, t2).unwrap();
    let outs = drain(&mut e, t2);
    e.restore(record, t2).unwrap();
    let mut outs2 = drain(&mut e, t2);
    outs2.extend(outs);
    assert_eq!(
        e.grants()
            .get("loc-1")
            .map(|g| g.record())
            .unwrap()
            .refresh_token()
            .unwrap()
            .secret(),
        "refresh-2"
    );
    // refresh-2 is held but must have been persisted
    assert_eq!(
        persisted(&outs2),
        ["refresh-2"],
        "refresh-2 never persisted"
    );
}

#[test]
fn removed_before_its_write_is_polled_then_restored_hands_out_the_new_token() {
    let (mut e, due, id_a, record) = refresh_in_flight();
    let t1 = due + Duration::from_secs(61);
    e.handle_timeout(t1).unwrap();
    drain(&mut e, t1);
    let t2 = e.poll_timeout().unwrap();
    e.handle_timeout(t2).unwrap();
    drain(&mut e, t2);
    e.handle_send(id_a, SendOutcome::Response(resp(200, &ok_body(2))), t2)
        .unwrap();
    e.remove("loc-1", Removal::Released, t2).unwrap();
    drain(&mut e, t2);
    e.restore(record, t2).unwrap();
    drain(&mut e, t2);
    // After the old token's expiry, the new one (valid ~24h) is never handed out.
    let later = t0() + Duration::from_secs(86_399 + 10);
    let st = e.access_token("loc-1", later).unwrap();
    assert!(
        matches!(st, TokenStatus::Ready(_)),
        "got {st:?}; timeout {:?}",
        e.poll_timeout()
    );
}

#[test]
fn answers_of_many_removed_grants_keep_their_refresh_tokens() {
    let mut e = Engine::new(config(), EngineSettings::default());
    let mut ids = vec![];
    for i in 0..1100u32 {
        let g = format!("loc-{i}");
        e.insert(g.as_str(), TokenSet::new(tok(1), t0()), t0())
            .unwrap();
    }
    drain(&mut e, t0());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    for o in drain(&mut e, due) {
        if let Output::Send { id, grant, .. } = o {
            ids.push((id, grant));
        }
    }
    assert!(!ids.is_empty());
    for (_, g) in &ids {
        e.remove(g.as_str(), Removal::Released, due).unwrap();
    }
    for (id, _) in &ids {
        e.handle_send(*id, SendOutcome::Response(resp(200, &ok_body(2))), due)
            .unwrap();
    }
    let kept = drain(&mut e, due)
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Event(EngineEvent::AnswerAfterRemoval {
                    refresh_token_kept: true,
                    ..
                })
            )
        })
        .count();
    assert_eq!(
        kept,
        ids.len(),
        "a removed grant's new refresh token dropped"
    );
}

#[test]
fn removed_then_restored_grant_keeps_an_unconfirmed_new_refresh_token() {
    let mut e = Engine::new(config(), shared());
    e.insert("loc-1", TokenSet::new(tok(1), t0()), t0())
        .unwrap();
    drive_confirm(&mut e, t0());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    let (id_a, _) = drive_confirm(&mut e, due)[0].clone();
    let t1 = e.poll_timeout().unwrap(); // request timeout
    e.handle_timeout(t1).unwrap();
    drive_confirm(&mut e, t1);
    let t2 = e.poll_timeout().unwrap(); // backoff over
    e.handle_timeout(t2).unwrap();
    let sent = drive_confirm(&mut e, t2);
    assert_eq!(sent[0].1, "refresh-1");
    // A's late success: refresh-2, written (polled) but not confirmed yet.
    e.handle_send(id_a, SendOutcome::Response(resp(200, &ok_body(2))), t2)
        .unwrap();
    let outs = drain_open(&mut e, t2);
    let v = outs
        .iter()
        .find_map(|o| match o {
            Output::Persist { record, .. } => Some(record.version),
            _ => None,
        })
        .unwrap();
    e.remove("loc-1", Removal::Released, t2).unwrap();
    let mut stored = GrantRecord::new("loc-1", TokenSet::new(tok(1), t0()));
    stored.version = v + 1;
    // Same record the non-removed path keeps refresh-2 for (see restore_keeps_an_unconfirmed_new_refresh_token).
    e.restore(stored, t2).unwrap();
    let outs = drain_open(&mut e, t2);
    assert_eq!(
        e.grants()
            .get("loc-1")
            .map(|g| g.record())
            .unwrap()
            .refresh_token()
            .unwrap()
            .secret(),
        "refresh-2",
        "reattach path adopted the stored refresh-1; outs {outs:?}"
    );
}

#[test]
fn events_of_a_removed_grant_never_reach_its_reinstall() {
    let (mut e, due, id, _) = refresh_in_flight();
    e.handle_send(id, SendOutcome::Response(resp(400, r#"{"error":"invalid_grant","error_description":"Invalid grant: refresh token is invalid"}"#)), due).unwrap();
    // not polled; uninstall and re-install
    e.remove("loc-1", Removal::Released, due).unwrap();
    e.insert("loc-1", TokenSet::new(tok(7), due), due).unwrap();
    let outs = drain(&mut e, due);
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Event(EngineEvent::ReauthorizationNeeded { .. }))),
        "{outs:?}"
    );
    assert_eq!(
        e.access_token("loc-1", due).unwrap(),
        TokenStatus::Ready(AccessToken::new("access-7"))
    );
}

#[test]
fn success_for_a_request_the_engine_never_knew_hands_back_its_refresh_token() {
    let (_, due, id, _) = refresh_in_flight();
    // Another engine (e.g. after a restart) gets the answer.
    let mut other = Engine::new(config(), EngineSettings::default());
    let err = other
        .handle_send(id, SendOutcome::Response(resp(200, &ok_body(2))), due)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownRequest);
    assert_eq!(err.rescued_refresh_token().unwrap().secret(), "refresh-2");
    // A failure without a token in it has none to hand back.
    let err = other
        .handle_send(
            id,
            SendOutcome::Response(resp(500, r#"{"message":"boom"}"#)),
            due,
        )
        .unwrap_err();
    assert!(err.rescued_refresh_token().is_none());
}

#[test]
fn a_late_conflict_of_an_older_write_leaves_the_newer_write_standing() {
    let mut e = Engine::new(config(), shared());
    e.insert("loc-1", TokenSet::new(tok(1), t0()), t0())
        .unwrap();
    drive_confirm(&mut e, t0());
    let stored = e.grants().get("loc-1").map(|g| g.record()).unwrap();
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due).unwrap();
    drain_open(&mut e, due); // lease v2: its outcome does not come in time
    let until = e.poll_timeout().unwrap();
    e.handle_timeout(until).unwrap();
    drain_open(&mut e, until); // lease v3, over v1
    // Now the old write's outcome: it lost, and the store holds v1.
    e.handle_write("loc-1", 2, WriteOutcome::Conflict(Box::new(stored)), until)
        .unwrap();
    assert!(drain_open(&mut e, until).is_empty());
    // The newer write won: its refresh goes out.
    e.handle_write("loc-1", 3, WriteOutcome::Written, until)
        .unwrap();
    assert_eq!(sends_of(&drain_open(&mut e, until)), ["refresh-1"]);
}
