//! Shared-store mode: leases, compare-and-swap conflicts, restored leases.

use super::*;

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
    e.handle_timeout(t(86_000)).unwrap();
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
    e.handle_write("g", 2, WriteOutcome::Written, t(86_000))
        .unwrap();
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_send(id, SendOutcome::Response(json_answer(1)), t(86_001))
        .unwrap();
    let out = drain(&mut e, t(86_001));
    // Reported refreshed once the write of the new tokens is confirmed.
    assert_eq!(kinds(&out), ["persist"]);
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
    e.handle_write("g", 3, WriteOutcome::Written, t(86_001))
        .unwrap();
    assert_eq!(kinds(&drain(&mut e, t(86_001))), ["refreshed"]);
}

#[test]
fn shared_mode_conflict_adopts_newer_tokens_instead_of_refreshing() {
    let mut e = with_grant(shared("a"));
    e.handle_timeout(t(86_000)).unwrap();
    drain(&mut e, t(86_000));
    // Another engine refreshed first and wrote version 3.
    let mut theirs = GrantRecord::new("g", TokenSet::new(answer(7, true), t(85_990)));
    theirs.version = 3;
    e.handle_write("g", 2, WriteOutcome::Conflict(Box::new(theirs)), t(86_000))
        .unwrap();
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
    e.handle_timeout(t(86_000)).unwrap();
    drain(&mut e, t(86_000));
    let mut theirs = e.grants().get("g").map(|g| g.record()).unwrap();
    theirs.version = 2;
    theirs.lease = Some(Lease {
        holder: "b".into(),
        until: t(86_090),
    });
    e.handle_write("g", 2, WriteOutcome::Conflict(Box::new(theirs)), t(86_000))
        .unwrap();
    assert_eq!(kinds(&drain(&mut e, t(86_000))), ["lease-held"]);
    assert_eq!(e.poll_timeout(), Some(t(86_090)));
    // At the lease's end it tries again (a new compare-and-swap on version 2).
    e.handle_timeout(t(86_090)).unwrap();
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
    e.handle_timeout(t(86_000)).unwrap();
    drain(&mut e, t(86_000));
    e.handle_write("g", 2, WriteOutcome::Written, t(86_000))
        .unwrap();
    let id = one_send(&drain(&mut e, t(86_000)));
    e.handle_timeout(t(86_031)).unwrap();
    drain(&mut e, t(86_031));
    e.handle_send(id, SendOutcome::Parsed(Ok(answer(1, true))), t(86_032))
        .unwrap();
    let out = drain(&mut e, t(86_032));
    assert_eq!(kinds(&out), ["persist"]);
    // Meanwhile another engine leased the old token (version 3).
    let mut theirs = GrantRecord::new("g", TokenSet::new(answer(0, true), t(0)));
    theirs.version = 3;
    theirs.lease = Some(Lease {
        holder: "b".into(),
        until: t(86_200),
    });
    e.handle_write("g", 3, WriteOutcome::Conflict(Box::new(theirs)), t(86_033))
        .unwrap();
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
    a.handle_timeout(t(86_000)).unwrap();
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
    b.handle_timeout(t(86_120)).unwrap();
    assert_eq!(kinds(&drain(&mut b, t(86_120))), ["persist"]);
    b.handle_write("g", 3, WriteOutcome::Written, t(86_120))
        .unwrap();
    let out = drain(&mut b, t(86_120));
    assert!(
        sends(&out)[0]
            .1
            .contains("refresh-token-placeholder-00000000")
    );
}
