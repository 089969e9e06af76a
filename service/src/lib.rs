//! Async runtime for [`hoopai_oauth`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod store;

pub use store::*;
pub mod transport;

pub use transport::*;
