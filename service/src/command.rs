//! What a handle of the token service asks of the task that owns the
//! engine.

use std::time::{Instant, SystemTime};

use hoopai_oauth::{AccessToken, GrantId, InstalledLocation, TokenSet, WebhookEvent};
use tokio::sync::oneshot;

use crate::errors::{ServiceError, TokenError};
use crate::reports::{GrantChanges, GrantInfo, Readiness, ShutdownReport};

/// What a handle asks of the task.
/// What a discovery found: whether the grant is held now, or the store's
/// failure (the read failed or timed out, or too many reads are out).
pub(crate) type Discovered = Result<bool, String>;

pub(crate) enum Command {
    Token {
        grant: GrantId,
        /// A token an API refused: answer with another one (after a refresh).
        rejected: Option<AccessToken>,
        deadline: Instant,
        reply: oneshot::Sender<Result<AccessToken, TokenError>>,
    },
    Add {
        grant: GrantId,
        tokens: Box<TokenSet>,
        reply: oneshot::Sender<Result<(), ServiceError>>,
    },
    Remove {
        grant: GrantId,
        reply: oneshot::Sender<Result<(), ServiceError>>,
    },
    List {
        reply: oneshot::Sender<Vec<GrantInfo>>,
    },
    /// A verified install webhook for the engine.
    Webhook {
        event: Box<WebhookEvent>,
        reply: oneshot::Sender<Result<GrantChanges, ServiceError>>,
    },
    /// The installed locations of a company, read from the server.
    SyncLocations {
        company_grant: GrantId,
        company_id: String,
        installed: Vec<InstalledLocation>,
        reply: oneshot::Sender<Result<GrantChanges, ServiceError>>,
    },
    /// A token of the request budget for a request about to be sent
    /// outside the engine: spent now (`None`), or when one is free.
    TakeBudget {
        reply: oneshot::Sender<Option<SystemTime>>,
    },
    /// Shared-store mode: read and restore the record of a grant not held
    /// (added by another process); `true` if it is held then.
    Discover {
        grant: GrantId,
        reply: oneshot::Sender<Discovered>,
    },
    /// The status and headers of the answer to a request counted with
    /// `TakeBudget`.
    CountedAnswer {
        status: http::StatusCode,
        headers: Box<http::HeaderMap>,
    },
    Shutdown {
        reply: oneshot::Sender<ShutdownReport>,
    },
    /// Whether the task runs, and (`probe_store`) whether the store answers.
    Health {
        probe_store: bool,
        reply: oneshot::Sender<Readiness>,
    },
}
