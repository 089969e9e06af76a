//! The admin API, under `/_fake/` on the fake's own port: JSON in, JSON out;
//! a mistake gets `400 {"error": "…"}`. docs/fake-server.md lists every
//! route with its body.

use std::sync::Arc;
use std::time::Duration;

use hoopai_oauth::fake::{FakeRateLimit, FakeWebhook};
use http::request::Parts;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::faults::Scripted;
use crate::journal::Counters;
use crate::seed::Seed;
use crate::settings::{RateLimit, check_rate_limit};
use crate::state::{Answer, State, json, lock};
use crate::webhook::{Delivery, check_url};

/// The most log entries one `GET /_fake/log` returns.
const MAX_LOG_PAGE: usize = 10_000;

type Outcome = Result<Value, (StatusCode, String)>;

fn bad(message: impl Into<String>) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, message.into())
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, (StatusCode, String)> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| bad(format!("the body: {e}")))
}

/// Answers one admin request.
pub async fn route(state: &Arc<State>, parts: &Parts, body: &[u8]) -> Answer {
    let path = parts.uri.path().trim_end_matches('/');
    let method = &parts.method;
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    let delete = *method == Method::DELETE;
    let outcome = match path {
        "/_fake" | "/_fake/handoff" if get => Ok(state.handoff.clone()),
        "/_fake/webhook-key" if get => Ok(json!(state.key)),
        "/_fake/stats" if get => Ok(stats(state)),
        "/_fake/log" if get => log(state, parts.uri.query().unwrap_or("")),
        "/_fake/installs" if post => install(state, body).await,
        "/_fake/webhooks" if post => webhook(state, body).await,
        "/_fake/webhook-url" if post => webhook_url(state, body),
        "/_fake/uninstall" if post => uninstall(state, body).await,
        "/_fake/faults" if get => Ok(json!({ "queued": lock(&state.faults).queued() })),
        "/_fake/faults" if post => fault(state, body),
        "/_fake/faults" if delete => Ok(json!({ "cleared": lock(&state.faults).clear() })),
        "/_fake/expire" if post => expire(state, body),
        "/_fake/rate-limit" if post => rate_limit(state, body),
        "/_fake/rate-limit" if delete => {
            lock(&state.fake).set_rate_limit(None);
            Ok(json!({ "rateLimit": null }))
        }
        "/_fake/location-status" if post => location_status(state, body),
        "/_fake/shutdown" if post => {
            state.shutdown.notify_one();
            Ok(json!({ "stopping": true }))
        }
        "/_fake"
        | "/_fake/handoff"
        | "/_fake/webhook-key"
        | "/_fake/stats"
        | "/_fake/log"
        | "/_fake/installs"
        | "/_fake/webhooks"
        | "/_fake/webhook-url"
        | "/_fake/uninstall"
        | "/_fake/faults"
        | "/_fake/expire"
        | "/_fake/rate-limit"
        | "/_fake/location-status"
        | "/_fake/shutdown" => Err((
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not a method of {path}"),
        )),
        _ => Err((
            StatusCode::NOT_FOUND,
            format!("no admin route {path}; see docs/fake-server.md"),
        )),
    };
    match outcome {
        Ok(value) => json(StatusCode::OK, &value),
        Err((status, message)) => json(status, &json!({ "error": message })),
    }
}

/// The fake's counters and the server's.
pub fn stats(state: &State) -> Value {
    let fake: serde_json::Map<String, Value> = fake_counters(state)
        .into_iter()
        .map(|(k, v)| (camel(k), json!(v)))
        .collect();
    let c = &state.counters;
    let journal = lock(&state.journal);
    json!({
        "fake": fake,
        "server": {
            "connections": Counters::get(&c.connections),
            "connectionsDropped": Counters::get(&c.connections_dropped),
            "bodiesTooLarge": Counters::get(&c.bodies_too_large),
            "bodiesTimedOut": Counters::get(&c.bodies_timed_out),
            "adminRequests": Counters::get(&c.admin_requests),
            "webhooksDelivered": Counters::get(&c.webhooks_delivered),
            "webhooksFailed": Counters::get(&c.webhooks_failed),
            "logEvicted": journal.evicted(),
        },
        "faultsQueued": lock(&state.faults).queued().len(),
    })
}

/// The fake's counters, named as in the `stats` line printed at exit.
pub fn fake_counters(state: &State) -> Vec<(&'static str, u64)> {
    let s = lock(&state.fake).stats();
    vec![
        ("requests", s.requests),
        ("code_exchanges", s.code_exchanges),
        ("refreshes", s.refreshes),
        ("spent_refresh_token_reuses", s.spent_refresh_token_reuses),
        ("location_tokens", s.location_tokens),
        ("installed_location_pages", s.installed_location_pages),
        ("api_calls", s.api_calls),
        ("invalid_bearers", s.invalid_bearers),
        ("access_tokens_expired", s.access_tokens_expired),
        ("faults_served", s.faults_served),
        ("rate_limited", s.rate_limited),
        ("unpublished_versions", s.unpublished_versions),
        ("webhooks_sent", s.webhooks_sent),
        ("uninstalls", s.uninstalls),
    ]
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn log(state: &State, query: &str) -> Outcome {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Query {
        since: Option<u64>,
        limit: Option<usize>,
    }
    let q: Query = serde_urlencoded::from_str(query).map_err(|e| bad(format!("the query: {e}")))?;
    let limit = q.limit.unwrap_or(1000).min(MAX_LOG_PAGE);
    let journal = lock(&state.journal);
    let entries = journal.since(q.since.unwrap_or(0), limit);
    let next = entries.last().map_or(q.since.unwrap_or(0), |e| e.seq);
    Ok(json!({ "entries": entries, "next": next, "evicted": journal.evicted() }))
}

/// Where a webhook goes: the request's `url`, else the fake's default.
fn target(state: &State, url: Option<&str>) -> Result<http::Uri, (StatusCode, String)> {
    let default = lock(&state.webhook_url).clone();
    let url = url.map(str::to_owned).or(default).ok_or_else(|| {
        bad("no webhook URL: give \"url\", set one with POST /_fake/webhook-url, or start with --webhook-url")
    })?;
    check_url(&url).map_err(bad)
}

async fn send(state: &State, request: http::Request<Vec<u8>>, url: http::Uri) -> Delivery {
    let delivery = state.sender.deliver(request, url).await;
    let counter = if delivery.delivered {
        &state.counters.webhooks_delivered
    } else {
        &state.counters.webhooks_failed
    };
    Counters::add(counter);
    delivery
}

/// Takes `"webhook"` and `"url"` out of an install request.
fn split_install(body: &[u8]) -> Result<(Seed, bool, Option<String>), (StatusCode, String)> {
    let mut value: Value = parse(body)?;
    let map = value
        .as_object_mut()
        .ok_or_else(|| bad("the body must be a JSON object"))?;
    let webhook = match map.remove("webhook") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(bad("\"webhook\" must be true or false")),
    };
    let url = match map.remove("url") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(bad("\"url\" must be a string")),
    };
    let seed: Seed = serde_json::from_value(value).map_err(|e| bad(format!("the body: {e}")))?;
    seed.check().map_err(bad)?;
    Ok((seed, webhook, url))
}

async fn install(state: &State, body: &[u8]) -> Outcome {
    let (seed, with_webhook, url) = split_install(body)?;
    let url = if with_webhook {
        Some(target(state, url.as_deref())?)
    } else {
        None
    };
    let at = state.clock.now();
    let (seeded, request) = {
        let mut fake = lock(&state.fake);
        let seeded = seed.apply(&mut fake);
        let request = url.is_some().then(|| fake.webhook(&seeded.webhook, at));
        (seeded, request)
    };
    let mut answer = json!(seeded);
    if let (Some(request), Some(url)) = (request, url) {
        answer["webhook"] = json!(send(state, request, url).await);
    }
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(
    tag = "event",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
enum Event {
    InstallLocation {
        company_id: String,
        location_id: String,
    },
    InstallCompany {
        company_id: String,
    },
    InstallBulk {
        company_id: String,
        location_ids: Vec<String>,
    },
    UninstallLocation {
        location_id: String,
    },
    UninstallCompany {
        company_id: String,
    },
    /// Any JSON body, signed as is (another event type, a body to tamper with).
    Custom {
        body: Value,
    },
}

#[derive(Deserialize)]
struct WebhookRequest {
    #[serde(flatten)]
    event: Event,
    url: Option<String>,
}

async fn webhook(state: &State, body: &[u8]) -> Outcome {
    let req: WebhookRequest = parse(body)?;
    let url = target(state, req.url.as_deref())?;
    let at = state.clock.now();
    let event = match req.event {
        Event::InstallLocation {
            company_id,
            location_id,
        } => FakeWebhook::install_location(&company_id, &location_id),
        Event::InstallCompany { company_id } => FakeWebhook::install_company(&company_id),
        Event::InstallBulk {
            company_id,
            location_ids,
        } => FakeWebhook::install_bulk(&company_id, &location_ids),
        Event::UninstallLocation { location_id } => FakeWebhook::uninstall_location(&location_id),
        Event::UninstallCompany { company_id } => FakeWebhook::uninstall_company(&company_id),
        Event::Custom { body } => {
            let bytes = serde_json::to_vec(&body).map_err(|e| bad(e.to_string()))?;
            let request = lock(&state.fake).signed_webhook(bytes);
            return Ok(json!(send(state, request, url).await));
        }
    };
    // Stamped with appId, the time and a fresh webhookId.
    let request = lock(&state.fake).webhook(&event, at);
    Ok(json!(send(state, request, url).await))
}

fn webhook_url(state: &State, body: &[u8]) -> Outcome {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        url: Option<String>,
    }
    let Body { url } = parse(body)?;
    if let Some(url) = &url {
        check_url(url).map_err(bad)?;
    }
    lock(&state.webhook_url).clone_from(&url);
    Ok(json!({ "webhookUrl": url }))
}

async fn uninstall(state: &State, body: &[u8]) -> Outcome {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Body {
        location_id: Option<String>,
        company_id: Option<String>,
        #[serde(default = "yes")]
        send: bool,
        url: Option<String>,
    }
    fn yes() -> bool {
        true
    }
    let b: Body = parse(body)?;
    let event = match (&b.location_id, &b.company_id) {
        (Some(l), None) => FakeWebhook::uninstall_location(l),
        (None, Some(c)) => FakeWebhook::uninstall_company(c),
        _ => return Err(bad("give either \"locationId\" or \"companyId\"")),
    };
    let url = if b.send {
        Some(target(state, b.url.as_deref())?)
    } else {
        None
    };
    let request = lock(&state.fake).uninstall(&event, state.clock.now());
    let mut answer =
        json!({ "uninstalled": { "locationId": b.location_id, "companyId": b.company_id } });
    if let Some(url) = url {
        answer["webhook"] = json!(send(state, request, url).await);
    }
    Ok(answer)
}

fn fault(state: &State, body: &[u8]) -> Outcome {
    let mut value: Value = parse(body)?;
    let times = match value.as_object_mut().and_then(|m| m.remove("times")) {
        None => 1,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad("\"times\" must be a whole number"))?,
    };
    let fault: Scripted =
        serde_json::from_value(value).map_err(|e| bad(format!("the body: {e}")))?;
    let mut faults = lock(&state.faults);
    faults.push(fault, times).map_err(bad)?;
    Ok(json!({ "queued": faults.queued() }))
}

fn expire(state: &State, body: &[u8]) -> Outcome {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Body {
        access_token: Option<String>,
        id: Option<String>,
    }
    let b: Body = parse(body)?;
    let mut fake = lock(&state.fake);
    let expired = match (b.access_token, b.id) {
        (Some(token), None) => usize::from(fake.expire_access_token(&token)),
        (None, Some(id)) => fake.expire_access_tokens_of(&id),
        _ => {
            return Err(bad(
                "give either \"accessToken\" or \"id\" (a location or company id)",
            ));
        }
    };
    Ok(json!({ "expired": expired }))
}

fn rate_limit(state: &State, body: &[u8]) -> Outcome {
    let limit: RateLimit = parse(body)?;
    check_rate_limit(&limit).map_err(bad)?;
    let mut rule = FakeRateLimit::new(limit.max, Duration::from_millis(limit.interval_ms));
    if limit.retry_after {
        rule = rule.with_retry_after();
    }
    lock(&state.fake).set_rate_limit(Some(rule));
    Ok(
        json!({ "rateLimit": { "max": limit.max, "intervalMs": limit.interval_ms, "retryAfter": limit.retry_after } }),
    )
}

fn location_status(state: &State, body: &[u8]) -> Outcome {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Body {
        location_id: String,
        active: bool,
    }
    let b: Body = parse(body)?;
    lock(&state.fake).set_location_active(&b.location_id, b.active);
    Ok(json!({ "locationId": b.location_id, "active": b.active }))
}
