//! Throttling of `/install` and `/callback`: per client address and overall,
//! with [`governor`]'s GCRA limiters; an over-limit request is answered
//! `429 Too Many Requests` with `Retry-After`, before its handler runs.
//!
//! Each `/callback` that gets past its state check sends a real
//! `POST /oauth/token` upstream, and spends the app's request budget, which
//! refreshes need too. The per-client limit stops one client from flooding;
//! the overall limit bounds what any number of clients can make the app
//! spend: at most `burst + elapsed / every` code exchanges.
//!
//! Memory: the per-client table holds at most [`RouteLimits::max_clients`]
//! addresses (IPv6 addresses by their /64, the block one subscriber gets).
//! When it is full, idle entries are swept (at most once a second: an entry
//! is idle once its client's burst is whole again); while it is still full,
//! requests are held by the overall limit alone until room frees up. A flood
//! from many addresses therefore grows nothing without bound, and what it
//! can spend stays within the overall limit.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil, Quota};

use super::respond::text;
use crate::telemetry;

/// A rate: `burst` requests at once, then one more every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    burst: NonZeroU32,
    every: Duration,
}

impl Rate {
    /// `burst` requests at once (at least 1), then one more every `every`
    /// (at least 1 ms).
    #[must_use]
    pub fn new(burst: u32, every: Duration) -> Self {
        Rate {
            burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
            every: every.max(Duration::from_millis(1)),
        }
    }

    /// Requests allowed at once.
    #[must_use]
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// How often one more is allowed.
    #[must_use]
    pub fn every(&self) -> Duration {
        self.every
    }

    fn quota(self) -> Quota {
        Quota::with_period(self.every)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(self.burst)
    }
}

/// The limits of one route: per client address, overall, and how many
/// addresses are tracked. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLimits {
    per_client: Rate,
    overall: Rate,
    max_clients: usize,
}

/// The default number of client addresses tracked per route.
pub const DEFAULT_MAX_CLIENTS: usize = 65_536;

impl RouteLimits {
    /// `per_client` for each client address, and `overall` for all
    /// together, tracking up to [`DEFAULT_MAX_CLIENTS`] addresses.
    #[must_use]
    pub fn new(per_client: Rate, overall: Rate) -> Self {
        RouteLimits {
            per_client,
            overall,
            max_clients: DEFAULT_MAX_CLIENTS,
        }
    }

    /// The defaults of `/install`: 20 at once per client, then one every
    /// 3 s (20 a minute); 200 at once overall, then 20 a second. A person
    /// installing, even retrying a few times, or an office behind one
    /// address, never meets them.
    #[must_use]
    pub fn install_default() -> Self {
        RouteLimits::new(
            Rate::new(20, Duration::from_secs(3)),
            Rate::new(200, Duration::from_millis(50)),
        )
    }

    /// The defaults of `/callback`: 20 at once per client, then one every
    /// 3 s; 30 at once overall, then one a second (3,600 installs an hour,
    /// far past any marketplace app's rate). So a flood spends at most 30
    /// code exchanges at once, then one a second, of the request budget
    /// HighLevel grants the app (100 per 10 s).
    #[must_use]
    pub fn callback_default() -> Self {
        RouteLimits::new(
            Rate::new(20, Duration::from_secs(3)),
            Rate::new(30, Duration::from_secs(1)),
        )
    }

    /// How many client addresses are tracked at most (default
    /// [`DEFAULT_MAX_CLIENTS`], about 100 bytes each; at least 1).
    #[must_use]
    pub fn max_clients(mut self, max: usize) -> Self {
        self.max_clients = max.max(1);
        self
    }

    /// The per-client rate.
    #[must_use]
    pub fn per_client(&self) -> Rate {
        self.per_client
    }

    /// The overall rate.
    #[must_use]
    pub fn overall(&self) -> Rate {
        self.overall
    }
}

/// Where a request's client address comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAddress {
    /// The peer of the TCP connection, as [`serve`](super::serve()) (or
    /// axum's `into_make_service_with_connect_info::<SocketAddr>`) records
    /// it. The default.
    #[default]
    Peer,
    /// The last address in this header, e.g. `x-forwarded-for` or
    /// `x-real-ip` as set by your reverse proxy. Trust it only behind a
    /// proxy that sets it: a client can send any value itself.
    Header(HeaderName),
}

impl ClientAddress {
    /// The address of a request, if one is known.
    fn of(&self, request: &Request) -> Option<IpAddr> {
        match self {
            ClientAddress::Peer => request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
            ClientAddress::Header(name) => last_address(request.headers(), name),
        }
    }
}

fn last_address(headers: &HeaderMap, name: &HeaderName) -> Option<IpAddr> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    value.rsplit(',').next()?.trim().parse().ok()
}

/// The key an address is tracked by: an IPv4 address, or an IPv6 /64.
fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The limiters of one route.
pub(crate) struct Throttle {
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    overall: DefaultDirectRateLimiter,
    max_clients: usize,
    address: ClientAddress,
    started: Instant,
    /// Milliseconds after `started` of the last sweep of idle entries.
    last_sweep: AtomicU64,
    warned_no_address: AtomicBool,
    route: &'static str,
}

/// How long until a refused request would be let through.
fn wait(not_until: NotUntil<<DefaultClock as Clock>::Instant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

/// How often a full per-client table is swept, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl Throttle {
    pub(crate) fn new(limits: RouteLimits, address: ClientAddress, route: &'static str) -> Self {
        Throttle {
            per_client: DefaultKeyedRateLimiter::keyed(limits.per_client.quota()),
            overall: DefaultDirectRateLimiter::direct(limits.overall.quota()),
            max_clients: limits.max_clients,
            address,
            started: Instant::now(),
            last_sweep: AtomicU64::new(0),
            warned_no_address: AtomicBool::new(false),
            route,
        }
    }

    /// How many client addresses are tracked now.
    #[cfg(test)]
    pub(crate) fn clients(&self) -> usize {
        self.per_client.len()
    }

    /// Whether a request from `client` may go on now; else how long to wait.
    fn check(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        match client {
            Some(ip) if self.has_room() => {
                self.per_client.check_key(&key_of(ip)).map_err(wait)?;
            }
            Some(_) => {}
            None => {
                if !self.warned_no_address.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        route = self.route,
                        "no client address: serve the app with hoopai_oauth_service::routes::serve \
                         (or with connect info), or set OAuthRouter::client_address; only the \
                         overall limit applies"
                    );
                }
            }
        }
        self.overall.check().map_err(wait)
    }

    /// Whether the per-client table may take one more address, after a
    /// sweep of idle entries if it is full (at most once a second).
    fn has_room(&self) -> bool {
        if self.per_client.len() < self.max_clients {
            return true;
        }
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_sweep.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= u64::try_from(SWEEP_EVERY.as_millis()).unwrap_or(0);
        if due
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.per_client.retain_recent();
            self.per_client.shrink_to_fit();
        }
        self.per_client.len() < self.max_clients
    }
}

/// What a route's answer says of the request, as a metric label
/// (`hoopai_route_requests_total`).
fn outcome(route: &str, status: StatusCode) -> &'static str {
    match (route, status.as_u16()) {
        ("install", 302) => "consent_redirect",
        ("callback", 200 | 302) => "installed",
        (_, 400) => "refused",
        (_, 502) => "exchange_failed",
        (_, 500..=599) => "error",
        _ => "other",
    }
}

/// The middleware: `429` with `Retry-After` (whole seconds, at least 1)
/// when over a limit, else the route; each answer is counted by outcome.
pub(crate) async fn throttle(
    State(throttle): State<Arc<Throttle>>,
    request: Request,
    next: Next,
) -> Response {
    let client = throttle.address.of(&request);
    match throttle.check(client) {
        Ok(()) => {
            let response = next.run(request).await;
            telemetry::route(throttle.route, outcome(throttle.route, response.status()));
            response
        }
        Err(wait) => {
            telemetry::route(throttle.route, "throttled");
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let secs = secs.max(1);
            tracing::debug!(route = throttle.route, retry_after = secs, "throttled");
            let mut response = text(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests: try again later\n",
            );
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(key_of(a), key_of(b));
        assert_ne!(key_of(a), key_of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(key_of(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_table_of_clients_stays_bounded() {
        let limits = RouteLimits::new(
            Rate::new(5, Duration::from_secs(60)),
            Rate::new(1_000_000, Duration::from_millis(1)),
        )
        .max_clients(100);
        let throttle = Throttle::new(limits, ClientAddress::Peer, "test");
        // While the table has room, each client is held to its own limit.
        let first = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000));
        for _ in 0..5 {
            assert!(throttle.check(Some(first)).is_ok());
        }
        let wait = throttle.check(Some(first)).unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        for i in 1..10_000_u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            // Past the table's size, new addresses still pass (the overall
            // limit holds them) and the table does not grow.
            assert!(throttle.check(Some(ip)).is_ok());
        }
        assert!(throttle.clients() <= 100, "{}", throttle.clients());
    }

    #[test]
    fn the_last_forwarded_address_counts() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.2".parse().unwrap(),
        );
        let name = HeaderName::from_static("x-forwarded-for");
        assert_eq!(
            last_address(&headers, &name),
            Some("198.51.100.2".parse().unwrap())
        );
        headers.insert("x-forwarded-for", "junk".parse().unwrap());
        assert_eq!(last_address(&headers, &name), None);
    }
}
