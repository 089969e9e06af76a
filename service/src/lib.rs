//! Async runtime for [`hoopai_oauth`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod actor;
pub mod service;
pub mod store;
pub mod transport;

pub use service::*;
pub use store::*;
pub use transport::*;
