#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod actor;
pub mod installs;
#[cfg(feature = "axum")]
pub mod routes;
pub mod service;
pub mod store;
pub mod transport;

pub use installs::*;
#[cfg(feature = "axum")]
pub use routes::OAuthRouter;
pub use service::*;
pub use store::*;
pub use transport::*;
