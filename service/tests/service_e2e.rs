//! The token service end to end: the core's fake behind a loopback HTTP
//! server, reqwest, and the SQLite store in a temporary folder.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use common::env::{Env, expired, next_event};
use hoopai_oauth::{EngineEvent, GrantId};
use hoopai_oauth_service::{GrantStore, ServiceEvent, TokenError};

#[tokio::test]
async fn a_fresh_token_is_answered_at_once_and_stored() {
    let env = Env::new().await;
    let service = env.start().await;
    let grant = env.install(&service, "loc-1").await;
    assert_eq!(grant.as_str(), "loc-1");
    let token = service.access_token("loc-1").await.unwrap();
    assert!(token.secret().len() >= 32, "a token from the fake");
    assert_eq!(env.token_calls(), 1, "the code exchange only");
    // The store holds the fake's live refresh token.
    let stored = env.stored_refresh("loc-1").await;
    assert!(env.server.fake().is_live_refresh_token(&stored));
    let list = service.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].grant.as_str(), "loc-1");
    service.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_is_refreshed_written_then_handed_out() {
    let env = Env::new().await;
    let service = env.start().await;
    env.install(&service, "loc-1").await;
    let first = env.stored_refresh("loc-1").await;
    // Re-add the grant as if its access token had expired (same live refresh token).
    service
        .add("loc-1", expired("loc-1", &first))
        .await
        .unwrap();
    let mut events = service.events();
    let token = service.access_token("loc-1").await.unwrap();
    assert!(!token.secret().starts_with("access-expired"));
    // The refresh token was rotated, and the new one written before the token was handed out.
    let stored = env.stored_refresh("loc-1").await;
    assert_ne!(stored, first);
    assert!(env.server.fake().is_live_refresh_token(&stored));
    assert!(!env.server.fake().is_live_refresh_token(&first));
    next_event(&mut events, |e| {
        matches!(e, ServiceEvent::Engine(EngineEvent::Refreshed { .. }))
    })
    .await;
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_callers_share_one_refresh() {
    let env = Env::new().await;
    let service = env.start().await;
    env.install(&service, "loc-1").await;
    let first = env.stored_refresh("loc-1").await;
    env.server.set_delay(Duration::from_millis(300));
    // Counted before the add: the expired grant is due at once.
    let before = env.token_calls();
    service
        .add("loc-1", expired("loc-1", &first))
        .await
        .unwrap();
    let callers: Vec<_> = (0..40)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { service.access_token("loc-1").await.unwrap() })
        })
        .collect();
    let mut tokens = Vec::new();
    for c in callers {
        tokens.push(c.await.unwrap().secret().to_owned());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every caller got the same new token");
    assert_eq!(env.token_calls() - before, 1, "one refresh for 40 callers");
    assert_eq!(env.server.fake().stats().spent_refresh_token_reuses, 0);
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_refreshes_once_for_every_caller_and_retries() {
    let env = Env::new().await;
    let service = env.start().await;
    env.install(&service, "loc-1").await;
    let old = service.access_token("loc-1").await.unwrap();
    // The API revokes the token early.
    env.server.revoke(old.secret());
    let before = env.token_calls();
    let url = env.server.url("/api/me");
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let service = service.clone();
            let url = url.clone();
            tokio::spawn(async move {
                service
                    .send_authorized("loc-1", |token| {
                        http::Request::get(&url)
                            .header("authorization", format!("Bearer {}", token.secret()))
                            .body(Vec::new())
                            .unwrap()
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for c in callers {
        assert_eq!(c.await.unwrap().status(), 200);
    }
    assert_eq!(
        env.token_calls() - before,
        1,
        "one refresh shared by every caller"
    );
    // Each caller got one 200: those that sent the revoked token first got
    // a 401 and retried once; a caller that came after the refresh did not
    // need to.
    let calls = env.server.shared.api_calls.load(Ordering::SeqCst);
    let refused = env.server.shared.api_refused.load(Ordering::SeqCst);
    assert_eq!(calls - refused, 10, "one success per caller");
    assert!((1..=10).contains(&refused), "{refused} refused");
    let new = service.access_token("loc-1").await.unwrap();
    assert_ne!(new.secret(), old.secret());
    // An API that refuses every token: one refresh, one retry, and the
    // second 401 is returned as it is.
    let (api_before, token_before) = (
        env.server.shared.api_calls.load(Ordering::SeqCst),
        env.token_calls(),
    );
    let response = service
        .send_authorized("loc-1", |_token| {
            http::Request::get(&url).body(Vec::new()).unwrap()
        })
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        env.server.shared.api_calls.load(Ordering::SeqCst) - api_before,
        2
    );
    assert_eq!(env.token_calls() - token_before, 1);
    service.shutdown().await;
}

#[tokio::test]
async fn a_restart_restores_every_grant_from_sqlite() {
    let env = Env::new().await;
    let service = env.start().await;
    for loc in ["loc-1", "loc-2", "loc-3"] {
        env.install(&service, loc).await;
    }
    let token = service.access_token("loc-2").await.unwrap();
    let report = service.shutdown().await;
    assert!(report.abandoned.is_empty() && report.unwritten.is_empty());
    assert!(matches!(
        service.access_token("loc-2").await,
        Err(TokenError::Stopped)
    ));

    let calls = env.token_calls();
    let again = env.start().await;
    assert_eq!(again.start_report().restored, 3);
    assert!(again.start_report().corrupt.is_empty());
    assert_eq!(
        again.access_token("loc-2").await.unwrap().secret(),
        token.secret()
    );
    assert_eq!(
        env.token_calls(),
        calls,
        "no refresh needed after a restart"
    );
    again.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_row_is_reported_and_the_others_are_served() {
    let env = Env::new().await;
    let service = env.start().await;
    env.install(&service, "loc-1").await;
    service.shutdown().await;
    let conn = rusqlite::Connection::open(env.path()).unwrap();
    conn.execute(
        "INSERT INTO hoopai_grants (grant_id, version, record) VALUES ('loc-bad', 1, '{\"schema\":1,')",
        [],
    )
    .unwrap();
    drop(conn);
    let again = env.start().await;
    let report = again.start_report();
    assert_eq!(report.restored, 1);
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(report.corrupt[0].grant.as_str(), "loc-bad");
    assert!(again.access_token("loc-1").await.is_ok());
    assert_eq!(
        again.access_token("loc-bad").await,
        Err(TokenError::UnknownGrant(GrantId::new("loc-bad")))
    );
    again.shutdown().await;
    // The bad row is left for a human.
    let conn = rusqlite::Connection::open(env.path()).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM hoopai_grants WHERE grant_id = 'loc-bad'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn typed_reasons_reach_the_caller() {
    let env = Env::new().await;
    let service = env.start().await;
    assert_eq!(
        service.access_token("nobody").await,
        Err(TokenError::UnknownGrant(GrantId::new("nobody")))
    );
    // A refresh token the server never issued: re-authorization needed.
    service
        .add(
            "loc-spent",
            expired("loc-spent", "refresh-never-issued-00000000000000000000"),
        )
        .await
        .unwrap();
    assert_eq!(
        service.access_token("loc-spent").await,
        Err(TokenError::ReauthorizationNeeded {
            grant: GrantId::new("loc-spent")
        })
    );
    // A suspended location: the refresh token is kept, the caller told when.
    env.install(&service, "loc-2").await;
    let live = env.stored_refresh("loc-2").await;
    env.server.fake().set_location_active("loc-2", false);
    service.add("loc-2", expired("loc-2", &live)).await.unwrap();
    match service.access_token("loc-2").await {
        Err(TokenError::Suspended { grant, until }) => {
            assert_eq!(grant.as_str(), "loc-2");
            assert!(until > SystemTime::now());
        }
        other => panic!("expected Suspended, got {other:?}"),
    }
    assert_eq!(
        env.stored_refresh("loc-2").await,
        live,
        "the refresh token is kept"
    );
    // Server errors past the wait: timed out, with the last failure named.
    env.install(&service, "loc-3").await;
    env.expire(&service, "loc-3").await;
    env.server
        .fake()
        .fail_next(hoopai_oauth::fake::Fault::ServerError, 1_000);
    match service
        .access_token_within("loc-3", Duration::from_millis(1_500))
        .await
    {
        Err(TokenError::TimedOut {
            grant,
            last_failure,
            ..
        }) => {
            assert_eq!(grant.as_str(), "loc-3");
            assert!(last_failure.is_some());
        }
        other => panic!("expected TimedOut, got {other:?}"),
    }
    service.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_the_refresh_in_flight_and_writes_it() {
    let env = Env::new().await;
    let service = env.start().await;
    env.install(&service, "loc-1").await;
    let first = env.expire(&service, "loc-1").await;
    env.server.set_delay(Duration::from_millis(800));
    let asking = {
        let service = service.clone();
        tokio::spawn(async move { service.access_token("loc-1").await })
    };
    // Wait until the refresh is out.
    while env.token_calls() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = service.shutdown().await;
    assert_eq!(report.finished, 1);
    assert!(report.abandoned.is_empty() && report.unwritten.is_empty());
    let stored = env.stored_refresh("loc-1").await;
    assert_ne!(stored, first);
    assert!(
        env.server.fake().is_live_refresh_token(&stored),
        "the rotated token was written"
    );
    // The caller waiting during shutdown is told.
    assert_eq!(asking.await.unwrap(), Err(TokenError::Stopped));
}

#[tokio::test]
async fn shutdown_hands_back_what_it_could_not_finish() {
    let env = Env::new().await;
    let service = env
        .start_with(env.settings().shutdown_grace(Duration::from_millis(200)))
        .await;
    env.install(&service, "loc-1").await;
    env.expire(&service, "loc-1").await;
    env.server.set_delay(Duration::from_secs(3));
    let asking = {
        let service = service.clone();
        tokio::spawn(async move { service.access_token("loc-1").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = service.shutdown().await;
    assert_eq!(report.abandoned, vec![GrantId::new("loc-1")]);
    assert_eq!(asking.await.unwrap(), Err(TokenError::Stopped));
}

#[tokio::test]
async fn removed_grants_are_deleted_and_forgotten() {
    let env = Env::new().await;
    let service = env.start().await;
    env.install(&service, "loc-1").await;
    env.install(&service, "loc-2").await;
    service.remove("loc-1").await.unwrap();
    assert!(
        env.store()
            .await
            .load(&GrantId::new("loc-1"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        service.access_token("loc-1").await,
        Err(TokenError::UnknownGrant(GrantId::new("loc-1")))
    );
    let list: Vec<String> = service
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.grant.to_string())
        .collect();
    assert_eq!(list, vec!["loc-2"]);
    service.shutdown().await;
}
