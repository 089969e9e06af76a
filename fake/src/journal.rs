//! What the fake saw: one entry per request to the fake HighLevel (admin
//! calls excluded), tokens and codes as fingerprints only, in a ring of
//! bounded size; and the server's own counters.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hoopai_oauth::Fingerprint;
use http::{HeaderMap, Response, header};
use serde::Serialize;
use serde_json::Value;

/// The fingerprint of a token, as the crate prints it (`fp:…`).
fn fp(token: &str) -> String {
    Fingerprint::of(token).to_string()
}

/// The longest text kept from a request (path, header, field, message), so
/// that the log stays small whatever a client sends.
const MAX_TEXT_CHARS: usize = 200;

/// `text`, cut to [`MAX_TEXT_CHARS`] characters (marked with `…`).
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// One request and its answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// 1, 2, 3, … in the order requests were answered (and logged);
    /// never reused.
    pub seq: u64,
    /// When it arrived, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The `Version` header as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The bearer's fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer: Option<String>,
    /// Token requests: `grant_type`, `user_type`, `client_id` as sent, and
    /// fingerprints of the refresh token or code presented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Location-token requests: the `companyId` and `locationId` asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    /// The body's size in bytes.
    pub body_bytes: usize,
    /// The answer's status; absent when the connection was dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The error message of the answer, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Fingerprints of the tokens the answer issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_refresh_token: Option<String>,
    /// The scripted fault served in place of the answer, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

impl Entry {
    /// What a request shows, before it is answered.
    pub fn of_request(seq: u64, at: SystemTime, parts: &http::request::Parts, body: &[u8]) -> Self {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .map(|v| clip(&String::from_utf8_lossy(v.as_bytes())))
        };
        let bearer = bearer(&parts.headers).map(fp);
        let mut entry = Entry {
            seq,
            at_ms: at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            method: parts.method.to_string(),
            path: clip(parts.uri.path()),
            version: header("version"),
            bearer,
            grant_type: None,
            user_type: None,
            client_id: None,
            refresh_token: None,
            code: None,
            company_id: None,
            location_id: None,
            body_bytes: body.len(),
            status: None,
            message: None,
            issued_access_token: None,
            issued_refresh_token: None,
            fault: None,
        };
        if parts
            .uri
            .path()
            .trim_end_matches('/')
            .ends_with("/oauth/token")
        {
            let fields = form_or_json(&parts.headers, body);
            let get = |a: &str, b: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == a || k == b)
                    .map(|(_, v)| v.as_str())
            };
            entry.grant_type = get("grant_type", "grantType").map(clip);
            entry.user_type = get("user_type", "userType").map(clip);
            entry.client_id = get("client_id", "clientId").map(clip);
            entry.refresh_token = get("refresh_token", "refreshToken").map(fp);
            entry.code = get("code", "code").map(fp);
        } else if parts
            .uri
            .path()
            .trim_end_matches('/')
            .ends_with("/oauth/locationToken")
        {
            let fields = form_or_json(&parts.headers, body);
            let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| clip(v));
            entry.company_id = get("companyId");
            entry.location_id = get("locationId");
        }
        entry
    }

    /// Adds what the answer shows.
    pub fn answered(&mut self, response: &Response<Vec<u8>>) {
        self.status = Some(response.status().as_u16());
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(response.body()) else {
            return;
        };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(clip);
        self.message = match body.get("message") {
            Some(Value::Array(list)) => Some(clip(
                &list
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
            other => text(other).or_else(|| text(body.get("error").and_then(|e| e.get("message")))),
        };
        // Fingerprints of the whole tokens, never of clipped text.
        let raw = |k: &str| body.get(k).and_then(Value::as_str);
        let token = |a: &str, b: &str| raw(a).or_else(|| raw(b)).map(fp);
        self.issued_access_token = token("access_token", "accessToken");
        self.issued_refresh_token = token("refresh_token", "refreshToken");
    }

    /// One line for standard error.
    pub fn line(&self) -> String {
        let mut line = format!("#{} {} {}", self.seq, self.method, self.path);
        match self.status {
            Some(status) => line.push_str(&format!(" -> {status}")),
            None => line.push_str(" -> dropped"),
        }
        for (name, value) in [
            ("fault", &self.fault),
            ("version", &self.version),
            ("bearer", &self.bearer),
            ("grant", &self.grant_type),
            ("refresh_token", &self.refresh_token),
            ("code", &self.code),
            ("message", &self.message),
            ("issued_refresh_token", &self.issued_refresh_token),
        ] {
            if let Some(v) = value {
                line.push_str(&format!(" {name}={v:?}"));
            }
        }
        line
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The fields of a form or JSON body, as text.
fn form_or_json(headers: &HeaderMap, body: &[u8]) -> Vec<(String, String)> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if json {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                .collect(),
            _ => Vec::new(),
        }
    } else {
        serde_urlencoded::from_bytes(body).unwrap_or_default()
    }
}

/// The ring of entries.
#[derive(Debug)]
pub struct Journal {
    capacity: usize,
    next: u64,
    evicted: u64,
    entries: VecDeque<Entry>,
}

impl Journal {
    pub fn new(capacity: usize) -> Self {
        Journal {
            capacity,
            next: 0,
            evicted: 0,
            entries: VecDeque::new(),
        }
    }

    /// The next sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub fn push(&mut self, entry: Entry) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            self.evicted += 1;
        }
        self.entries.push_back(entry);
    }

    /// Entries after `since`, at most `limit`, oldest first.
    pub fn since(&self, since: u64, limit: usize) -> Vec<Entry> {
        self.entries
            .iter()
            .filter(|e| e.seq > since)
            .take(limit)
            .cloned()
            .collect()
    }

    /// How many entries were dropped to stay within the capacity.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// The server's own counters (the fake's are in its `FakeStats`).
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub connections_dropped: AtomicU64,
    pub bodies_too_large: AtomicU64,
    pub bodies_timed_out: AtomicU64,
    pub admin_requests: AtomicU64,
    pub webhooks_delivered: AtomicU64,
    pub webhooks_failed: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
