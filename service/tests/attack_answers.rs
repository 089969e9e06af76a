//! Hostile answers from the server side, over loopback: the token service
//! against a fake HighLevel that answers one refresh with an absurd
//! `Retry-After`, or an error with a 1 MiB message. See `docs/security.md`.

mod common;

use std::time::{Duration, SystemTime};

use common::env::{Env, next_event};
use hoopai_oauth::{EngineEvent, MAX_RETRY_AFTER};
use hoopai_oauth_service::ServiceEvent;

fn answer(status: u16, headers: &[(&str, &str)], body: Vec<u8>) -> http::Response<Vec<u8>> {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body).unwrap()
}

/// Attack: one 429 with `Retry-After: 10000000000` (317 years), or an HTTP
/// date in the year 9999, stops the grant's refreshes for centuries.
/// Defence: `Retry-After` is capped at one hour where it is parsed, and the
/// retry is scheduled within it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_retry_after_schedules_the_retry_within_the_cap() {
    for retry_after in ["10000000000", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        let env = Env::new().await;
        let service = env.start().await;
        env.install(&service, "loc-1").await;
        let mut events = service.events();
        env.server.script(answer(
            429,
            &[("Retry-After", retry_after)],
            br#"{"statusCode":429,"message":"Too Many Requests"}"#.to_vec(),
        ));
        let asked = SystemTime::now();
        env.expire(&service, "loc-1").await;
        let event = next_event(&mut events, |e| {
            matches!(e, ServiceEvent::Engine(EngineEvent::RetryScheduled { .. }))
        })
        .await;
        let ServiceEvent::Engine(EngineEvent::RetryScheduled { at, failure, .. }) = event else {
            unreachable!()
        };
        let wait = at.duration_since(asked).unwrap_or_default();
        assert!(
            wait <= MAX_RETRY_AFTER + Duration::from_secs(5),
            "Retry-After {retry_after:?}: the retry is due in {wait:?}"
        );
        assert!(wait >= MAX_RETRY_AFTER - Duration::from_secs(5), "{wait:?}");
        // The clamp is visible to the caller.
        let shown = format!("{failure:?}");
        assert!(shown.contains("retry_after: true"), "{shown}");
        service.shutdown().await;
    }
}

/// Attack: a server error whose `message` is 1 MiB becomes a 1 MiB
/// `Display` (in logs, in `last_failure`, in the callback's answer).
/// Defence: server text is capped at 200 characters where it is parsed.
#[tokio::test]
async fn a_one_mib_server_message_becomes_a_capped_display() {
    let env = Env::new().await;
    let service = env.start().await;
    // Just short of the largest body read (1 MiB), so it is read.
    let message = "overflow ".repeat(116_000);
    assert!(message.len() > 1000 * 1024 && message.len() < hoopai_oauth::MAX_BODY_BYTES - 100);
    env.server.script(answer(
        500,
        &[("content-type", "application/json")],
        serde_json::to_vec(&serde_json::json!({"statusCode": 500, "message": message})).unwrap(),
    ));
    let code = env
        .server
        .fake()
        .approve(&hoopai_oauth::fake::Install::location("company-1", "loc-1"));
    let err = service
        .exchange_code(code, Some(hoopai_oauth::UserType::Location))
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert!(shown.len() < 1024, "a {} byte Display", shown.len());
    assert!(format!("{err:?}").len() < 2048);
    service.shutdown().await;
}
