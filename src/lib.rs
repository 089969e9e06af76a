//! A sans-IO client for the OAuth 2.0 API of HoopAI / HighLevel (LeadConnector).
//!
//! This crate does no I/O: it builds `http::Request<Vec<u8>>` values, parses
//! `http::Response` bytes, and runs the token lifecycle as a state machine. The
//! caller's runtime moves the bytes and supplies the time.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bearer;
pub mod config;
pub mod consent;
pub mod engine;
pub mod error;
#[cfg(feature = "fake-server")]
pub mod fake;
mod form;
pub mod installed_locations;
pub mod location_token;
pub mod rate_limit;
mod response;
mod sanitize;
pub mod scope;
pub mod secret;
pub mod token;
pub mod token_endpoint;

pub use bearer::*;
pub use config::*;
pub use consent::*;
pub use engine::*;
pub use error::*;
pub use installed_locations::*;
pub use location_token::*;
pub use rate_limit::*;
pub use response::MAX_BODY_BYTES;
pub use scope::*;
pub use secret::*;
pub use token::*;
pub use token_endpoint::*;

/// The README's code samples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
