//! Claims on the request budget that every process on the store shares
//! ([`Output::Claim`](hoopai_oauth::Output::Claim)): each asked of the store
//! off the loop, with the store's deadline. A store that fails, or does not
//! answer in time, is a [`ClaimOutcome::Failed`] naming it: the engine then
//! keeps to a local share of the budget.

use std::sync::Arc;
use std::time::Duration;

use hoopai_oauth::{BudgetClaim, ClaimOutcome, StoreFailure};
use tokio::task::{JoinError, JoinSet};

use crate::store::GrantStore;

/// The claims out, each answered by a task of its own.
pub(super) struct Claims<S> {
    store: Arc<S>,
    timeout: Duration,
    out: JoinSet<(String, ClaimOutcome)>,
}

impl<S: GrantStore> Claims<S> {
    pub(super) fn new(store: Arc<S>, timeout: Duration) -> Self {
        Claims {
            store,
            timeout,
            out: JoinSet::new(),
        }
    }

    /// Asks the store; the answer comes from [`next`](Self::next).
    pub(super) fn ask(&mut self, claim: BudgetClaim) {
        let store = Arc::clone(&self.store);
        let timeout = self.timeout;
        self.out.spawn(async move {
            let outcome = match tokio::time::timeout(timeout, store.claim_budget(&claim)).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(e)) => ClaimOutcome::Failed(StoreFailure::new(e.to_string())),
                Err(_) => ClaimOutcome::Failed(StoreFailure::new(format!(
                    "the store did not answer a request-budget claim within {} ms",
                    timeout.as_millis()
                ))),
            };
            if let ClaimOutcome::Failed(failure) = &outcome {
                tracing::warn!(key = %claim.key, error = %failure, "request-budget claim failed");
            }
            (claim.key, outcome)
        });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The next answer.
    pub(super) async fn next(&mut self) -> Option<Result<(String, ClaimOutcome), JoinError>> {
        self.out.join_next().await
    }
}
