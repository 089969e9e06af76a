//! The token service's logs carry no secret. Alone in its binary: `tracing`
//! caches callsite interest process-wide, and tests on other threads
//! without a subscriber would hide lines from this one.

mod common;

use std::sync::{Arc, Mutex};

use common::env::{Env, expired};

/// Collects what `tracing` prints.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_carry_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = Env::new().await;
    let service = env.start().await;
    env.install(&service, "loc-1").await;
    let first = env.expire(&service, "loc-1").await;
    let token = service.access_token("loc-1").await.unwrap();
    let second = env.stored_refresh("loc-1").await;
    env.server
        .fake()
        .fail_next(hoopai_oauth::fake::Fault::ServerError, 1);
    service
        .add("loc-1", expired("loc-1", &second))
        .await
        .unwrap();
    let _ = service.access_token("loc-1").await;
    service.shutdown().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("loc-1"), "the logs name the grant:\n{logs}");
    assert!(logs.contains("refreshed"), "{logs}");
    for secret in [
        first.as_str(),
        second.as_str(),
        token.secret(),
        common::fake_http::CLIENT_SECRET,
    ] {
        assert!(
            !logs.contains(secret),
            "a secret leaked into the logs:\n{logs}"
        );
    }
}
