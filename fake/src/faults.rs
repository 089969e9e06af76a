//! Scripted faults: answers served in place of the fake's next answers, in
//! the order they were queued, whatever the endpoint; nothing is spent.

use std::collections::VecDeque;

use hoopai_oauth::fake::Fault;
use serde::{Deserialize, Serialize};

/// The most times one fault may be queued for, and the most faults queued.
pub const MAX_TIMES: u64 = 1_000_000;
pub const MAX_QUEUED: usize = 1_000;

/// A fault as the admin API names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    tag = "fault",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Scripted {
    /// `429` with the `X-RateLimit-*` headers, and `Retry-After` if given.
    RateLimited {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// `500` with a NestJS body.
    ServerError,
    /// `502` with a proxy's HTML page.
    BadGatewayHtml,
    /// `400 Location is not active`.
    LocationNotActive,
    /// `401` with this message (default `Invalid JWT`).
    Unauthorized {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The connection is closed without an answer.
    DropConnection,
}

impl Scripted {
    /// The fake's own fault, or `None` for a dropped connection.
    pub fn to_fake(&self) -> Option<Fault> {
        Some(match self {
            Scripted::RateLimited { retry_after_secs } => Fault::RateLimited {
                retry_after_secs: *retry_after_secs,
            },
            Scripted::ServerError => Fault::ServerError,
            Scripted::BadGatewayHtml => Fault::BadGatewayHtml,
            Scripted::LocationNotActive => Fault::LocationNotActive,
            Scripted::Unauthorized { message } => Fault::Unauthorized {
                message: message.clone().unwrap_or_else(|| "Invalid JWT".to_owned()),
            },
            Scripted::DropConnection => return None,
        })
    }

    /// Its name in the admin API and the log.
    pub fn name(&self) -> &'static str {
        match self {
            Scripted::RateLimited { .. } => "rate-limited",
            Scripted::ServerError => "server-error",
            Scripted::BadGatewayHtml => "bad-gateway-html",
            Scripted::LocationNotActive => "location-not-active",
            Scripted::Unauthorized { .. } => "unauthorized",
            Scripted::DropConnection => "drop-connection",
        }
    }
}

/// One queued fault and how many more requests it answers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    #[serde(flatten)]
    pub fault: Scripted,
    pub times: u64,
}

/// The queue, first in first out.
#[derive(Debug, Default)]
pub struct Faults(VecDeque<Queued>);

impl Faults {
    pub fn push(&mut self, fault: Scripted, times: u64) -> Result<(), String> {
        if times == 0 || times > MAX_TIMES {
            return Err(format!("times must be from 1 to {MAX_TIMES}"));
        }
        if self.0.len() >= MAX_QUEUED {
            return Err(format!("at most {MAX_QUEUED} faults may be queued"));
        }
        if let Scripted::Unauthorized { message: Some(m) } = &fault
            && m.len() > 1024
        {
            return Err("an unauthorized message is at most 1024 bytes".into());
        }
        self.0.push_back(Queued { fault, times });
        Ok(())
    }

    /// The fault for the next request, if any.
    pub fn next(&mut self) -> Option<Scripted> {
        let front = self.0.front_mut()?;
        let fault = front.fault.clone();
        front.times -= 1;
        if front.times == 0 {
            self.0.pop_front();
        }
        Some(fault)
    }

    pub fn queued(&self) -> Vec<Queued> {
        self.0.iter().cloned().collect()
    }

    pub fn clear(&mut self) -> usize {
        let n = self.0.len();
        self.0.clear();
        n
    }
}
