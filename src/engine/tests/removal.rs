//! Grants that are removed or come and go leave nothing behind.

use super::*;

#[test]
fn removed_grants_forget_their_requests() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000)).unwrap();
    let id = one_send(&drain(&mut e, t(86_000)));
    e.remove("g", Removal::Released, t(86_000)).unwrap();
    e.handle_send(id, SendOutcome::Response(json_answer(1)), t(86_001))
        .unwrap();
    assert_eq!(kinds(&drain(&mut e, t(86_001))), ["answer-after-removal"]);
    assert_eq!(
        e.handle_send(id, SendOutcome::Response(json_answer(1)), t(86_001))
            .unwrap_err()
            .kind(),
        ErrorKind::UnknownRequest
    );
    assert_eq!(e.poll_timeout(), None);
    assert_eq!(e.stats().grants, 0);
}

#[test]
fn the_parked_list_stays_short_while_grants_come_and_go() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(85_800)).unwrap();
    let id = one_send(&drain(&mut e, t(85_800)));
    let body = r#"{"error":"invalid_client","error_description":"bad secret"}"#;
    e.handle_send(
        id,
        SendOutcome::Response(http_answer(401, &[], body)),
        t(85_801),
    )
    .unwrap();
    drain(&mut e, t(85_801));
    assert!(e.stats().halted);
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
        e.handle_timeout(now + Duration::from_secs(86_400)).unwrap();
        drain(&mut e, now + Duration::from_secs(86_400));
        if n % 3 == 0 {
            e.remove(&format!("h{}", n % 5), Removal::Released, now)
                .unwrap();
        }
    }
    assert!(
        e.parked.len() <= 2 * e.grants.capacity() + 65,
        "{}",
        e.parked.len()
    );
    e.reconfigure(config(), t(1)).unwrap();
    e.handle_timeout(t(1)).unwrap();
    assert_eq!(sends(&drain(&mut e, t(1))).len(), e.stats().grants);
}

#[test]
fn removed_grants_leave_nothing_behind_once_answered() {
    let mut e = Engine::new(config(), EngineSettings::default());
    for round in 0..5000u32 {
        let now = t(round as u64 * 100_000);
        e.insert("loc-1", TokenSet::new(answer(round, true), now), now)
            .unwrap();
        drain(&mut e, now);
        e.refresh_now("loc-1", None, now).unwrap();
        let mut id = None;
        while let Some(o) = e.poll_output(now) {
            if let Output::Send { id: i, .. } = o {
                id = Some(i);
            }
        }
        e.remove("loc-1", Removal::Released, now).unwrap();
        let _ = e.handle_send(
            id.unwrap(),
            SendOutcome::Parsed(Ok(answer(round + 1, true))),
            now,
        );
    }
    assert!(e.grants.removed_is_empty());
    assert!(
        e.grants.capacity() <= 2,
        "{} slots for one grant",
        e.grants.capacity()
    );
    assert!(e.grants.is_vacant());
}

#[test]
fn removed_grant_whose_request_was_never_sent_is_forgotten() {
    let mut e = with_grant(EngineSettings::default());
    e.handle_timeout(t(86_000)).unwrap();
    // The send is queued, not polled.
    e.remove("g", Removal::Released, t(86_000)).unwrap();
    assert!(drain(&mut e, t(86_000)).is_empty());
    assert!(e.grants.removed_is_empty());
    assert!(e.grants.is_vacant());
    assert_eq!(e.poll_timeout(), None);
}
