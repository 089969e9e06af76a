//! Liveness and readiness of the token service, as kept between checks:
//! what [`TokenService::readiness`](crate::TokenService::readiness) and
//! [`TokenService::is_alive`](crate::TokenService::is_alive) answer, and
//! the `/healthz` and `/readyz` routes with them (feature `axum`).
//!
//! Each answer is kept for [`HEALTH_CACHE`], and the callers that ask
//! meanwhile share it (one check at a time), so a flood of checks makes at
//! most one store call, and one ask of the service's task, per second:
//! they cannot take what refreshes need.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::reports::{Readiness, StoreProbe};

/// How long an answer of [`TokenService::readiness`](crate::TokenService::readiness)
/// and [`TokenService::is_alive`](crate::TokenService::is_alive) is kept
/// before the next check.
pub const HEALTH_CACHE: Duration = Duration::from_secs(1);

/// The answer when the service's task is not running (or not answering).
pub(crate) const NOT_RUNNING: Readiness = Readiness {
    running: false,
    store: StoreProbe::NotAsked,
};

/// The last answers, one check at a time.
#[derive(Default)]
pub(crate) struct HealthCache {
    readiness: Mutex<Option<(Instant, Readiness)>>,
    alive: Mutex<Option<(Instant, bool)>>,
}

impl HealthCache {
    /// The readiness kept, or `check`'s answer (`None`: the task did not
    /// answer), kept from now on.
    pub(crate) async fn readiness(
        &self,
        check: impl Future<Output = Option<Readiness>>,
    ) -> Readiness {
        let mut kept = self.readiness.lock().await;
        if let Some((at, answer)) = *kept
            && at.elapsed() < HEALTH_CACHE
        {
            return answer;
        }
        let answer = check.await.unwrap_or(NOT_RUNNING);
        *kept = Some((Instant::now(), answer));
        answer
    }

    /// Whether the task answered, kept, or `check`'s answer.
    pub(crate) async fn alive(&self, check: impl Future<Output = Option<Readiness>>) -> bool {
        let mut kept = self.alive.lock().await;
        if let Some((at, alive)) = *kept
            && at.elapsed() < HEALTH_CACHE
        {
            return alive;
        }
        let alive = check.await.is_some_and(|r| r.running);
        *kept = Some((Instant::now(), alive));
        alive
    }
}
