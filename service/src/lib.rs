#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod actor;
mod command;
mod errors;
mod health;
mod installs;
mod reports;
#[cfg(feature = "axum")]
pub mod routes;
mod service;
mod settings;
mod store;
mod telemetry;
mod transport;

pub use errors::{CallError, ServiceError, TokenError};
pub use health::HEALTH_CACHE;
pub use installs::MAX_SYNC_PAGES;
pub use reports::{
    GrantChanges, GrantInfo, Readiness, ServiceEvent, ShutdownReport, StartReport, StoreProbe,
    WebhookReceived,
};
#[cfg(feature = "axum")]
pub use routes::OAuthRouter;
pub use service::TokenService;
pub use settings::ServiceSettings;
pub use store::{
    CorruptRecord, DEFAULT_PAGE_SIZE, ForgetFuture, GrantStore, Keyring, KeyringError,
    MAX_KEY_ID_LEN, MemoryStore, PRUNE_BATCH, PRUNE_EVERY, Page, RECORD_KEYS_VAR, RecordFuture,
    RecordKey, ResealReport, SEALED_PREFIX, SealError, SealErrorKind, StoreError,
    WEBHOOK_ID_CLOCK_SKEW, WebhookIds,
};
#[cfg(feature = "postgres")]
pub use store::{PostgresStore, PostgresWebhookIds, STATEMENT_TIMEOUT_MS};
#[cfg(feature = "sqlite")]
pub use store::{SqliteOptions, SqliteStore, SqliteWebhookIds};
#[cfg(feature = "reqwest")]
pub use transport::ReqwestClient;
pub use transport::{HttpClient, TransportError};

/// The code samples of `docs/metrics.md`, compiled as doc tests.
#[cfg(all(doctest, feature = "metrics"))]
#[doc = include_str!("../../docs/metrics.md")]
pub struct MetricsGuideDoctests;
