//! A sans-IO fake of the HighLevel OAuth endpoints, for tests, examples and
//! users' own test harnesses (feature `fake-server`).
//!
//! [`FakeServer::handle`] maps an `http::Request<Vec<u8>>` and the time `now` to
//! the `http::Response<Vec<u8>>` the real server would give, in API v2 and v3:
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /oauth/token` | codes and rotating refresh tokens, both single-use |
//! | `POST /oauth/locationToken` (v3 `/oauth/location-token`) | a Location token minted from a Company token |
//! | `GET /oauth/installedLocations` (v3 `/oauth/installed-locations`) | the company's locations, page by page |
//! | `GET …/oauth/chooselocation` | the consent page, approved at once: a `302` to the redirect URI |
//! | `GET /locations/{locationId}` | one ordinary API call: the bearer is checked as the API checks it |
//!
//! It also sends what HighLevel sends: signed INSTALL and UNINSTALL webhooks
//! ([`FakeServer::webhook`], [`FakeServer::approve_with_webhook`],
//! [`FakeServer::uninstall`]), and it can enforce a rate limit
//! ([`FakeServer::set_rate_limit`]).
//!
//! The version is chosen per request: the `Version: v3` header or a v3 path
//! selects v3 (camelCase bodies, AIP errors on the installed-locations list).
//! Every date HighLevel has published for the v2 API
//! ([`PUBLISHED_API_VERSIONS`]) selects v2, and so does any other well-formed
//! `YYYY-MM-DD` date later than the first of them (counted in
//! [`FakeStats::unpublished_versions`]); anything else (an earlier date, a
//! value that is not a date, `V3`) gets `400 Invalid parameter: version`.
//! Every path is matched by its end, so a base URL with a path prefix works.
//!
//! The fake has no clock and no randomness: tokens are counter-based
//! placeholders (at least 32 characters, unique per client id), and the same
//! calls at the same times always give the same bytes. Its bodies follow the
//! official schemas, so the crate's own parsers read them.
//!
//! Scripted faults ([`FakeServer::fail_next`]) answer the next requests in
//! place of the real handling, whatever the endpoint, so nothing is spent.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use hoopai_oauth::fake::{FakeServer, Install};
//! use hoopai_oauth::{Config, TokenRequest, parse_token_response, token_request};
//!
//! let mut fake = FakeServer::new("app-client", "app-secret");
//! let code = fake.approve(&Install::location("company-1", "loc-1"));
//! let config = Config::builder("app-client", "app-secret").build()?;
//! let request = token_request(&config, &TokenRequest::authorization_code(code))?;
//! let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
//! let token = parse_token_response(fake.handle(&request, now))?;
//! assert_eq!(token.location_id.as_deref(), Some("loc-1"));
//! assert!(fake.is_live_refresh_token(token.refresh_token.as_ref().unwrap().secret()));
//! # Ok::<(), hoopai_oauth::Error>(())
//! ```

mod agency;
mod api;
mod consent;
mod rate;
mod token;
mod webhook;
mod wire;

pub use rate::FakeRateLimit;
pub use webhook::{DEFAULT_WEBHOOK_URL, FAKE_WEBHOOK_SEED, FakeWebhook};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use crate::secret::{AuthorizationCode, ClientSecret};
use crate::token::{DEFAULT_LIFETIME, UserType};

use wire::Reply;

/// The `Version` header values HighLevel has published for its v2 API:
/// `2021-07-28` (the OAuth endpoints, `tests/data/spec/highlevel-oauth-v2.openapi.json`,
/// and most of the API), `2021-04-15` (calendars and conversations in the
/// same OpenAPI repository, GoHighLevel/highlevel-api-docs) and `2023-02-21`
/// (what the official Node SDK, `@gohighlevel/api-client` 3.x, sends by
/// default). `v3` selects the v3 API.
pub const PUBLISHED_API_VERSIONS: [&str; 3] = ["2021-04-15", "2021-07-28", "2023-02-21"];

/// How long a refresh token lives unused: a year.
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(365 * 86_400);

/// The daily request budget reported in `X-RateLimit-Limit-Daily`.
const DAILY_LIMIT: u64 = 200_000;
/// The burst window reported in `X-RateLimit-Interval-Milliseconds`.
const BURST_WINDOW_MS: u64 = 10_000;
/// The burst budget reported in `X-RateLimit-Max`.
const BURST_MAX: u64 = 100;

/// One installation, as approved on the consent page: who installed the app,
/// where, with which scopes.
///
/// Start from [`Install::company`] or [`Install::location`] and change the
/// public fields as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Install {
    /// The class of the tokens this install yields.
    pub user_type: UserType,
    /// The agency.
    pub company_id: String,
    /// The sub-account, for a Location install.
    pub location_id: Option<String>,
    /// The locations a Company token may mint Location tokens for.
    pub approved_locations: Vec<String>,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// Who installed the app.
    pub user_id: String,
    /// The plan of a paid app.
    pub plan_id: Option<String>,
    /// The agency's "install to future locations" choice (Company installs).
    pub install_to_future_locations: bool,
}

impl Install {
    /// A Company (agency) install that approves `approved_locations`. Its scope
    /// is `oauth.readonly oauth.write locations.readonly`, enough to mint
    /// Location tokens and list installations.
    #[must_use]
    pub fn company(company_id: &str, approved_locations: &[&str]) -> Self {
        Install {
            user_type: UserType::Company,
            company_id: company_id.to_owned(),
            location_id: None,
            approved_locations: approved_locations.iter().map(|s| (*s).to_owned()).collect(),
            scope: "oauth.readonly oauth.write locations.readonly".to_owned(),
            user_id: "user-1".to_owned(),
            plan_id: Some("plan-1".to_owned()),
            install_to_future_locations: false,
        }
    }

    /// A Location (sub-account) install, scope `contacts.readonly contacts.write`.
    #[must_use]
    pub fn location(company_id: &str, location_id: &str) -> Self {
        Install {
            user_type: UserType::Location,
            company_id: company_id.to_owned(),
            location_id: Some(location_id.to_owned()),
            approved_locations: vec![location_id.to_owned()],
            scope: "contacts.readonly contacts.write".to_owned(),
            user_id: "user-1".to_owned(),
            plan_id: Some("plan-1".to_owned()),
            install_to_future_locations: false,
        }
    }
}

/// A failure to serve in place of the next answer; see [`FakeServer::fail_next`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// `429` with the `X-RateLimit-*` headers (nothing remaining), and
    /// `Retry-After` when `retry_after_secs` is set.
    RateLimited {
        /// The `Retry-After` delay in seconds, if any.
        retry_after_secs: Option<u64>,
    },
    /// `500` with a NestJS body.
    ServerError,
    /// `502` with a proxy's `text/html` page.
    BadGatewayHtml,
    /// `400 {"statusCode":400,"message":"Location is not active"}`.
    LocationNotActive,
    /// `401 {"statusCode":401,"message":<message>,"error":"Unauthorized"}`,
    /// e.g. the official OpenAPI's example for `/oauth/token`, "Invalid
    /// token: access token is invalid".
    Unauthorized {
        /// The message.
        message: String,
    },
}

/// What the fake has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FakeStats {
    /// Every request handled, faults included.
    pub requests: u64,
    /// Successful authorization-code exchanges.
    pub code_exchanges: u64,
    /// Successful refreshes.
    pub refreshes: u64,
    /// Refreshes that presented a refresh token already spent.
    pub spent_refresh_token_reuses: u64,
    /// Scripted faults served.
    pub faults_served: u64,
    /// Location tokens minted.
    pub location_tokens: u64,
    /// Installed-locations pages served.
    pub installed_location_pages: u64,
    /// Requests refused with `429` by the enforced rate limit.
    pub rate_limited: u64,
    /// Webhook deliveries built.
    pub webhooks_sent: u64,
    /// Uninstalls applied through [`FakeServer::uninstall`].
    pub uninstalls: u64,
    /// Answers of `GET /locations/{locationId}` with the location.
    pub api_calls: u64,
    /// Requests refused `401 Invalid JWT`: a bearer missing, unknown, expired
    /// or revoked.
    pub invalid_bearers: u64,
    /// Requests whose `Version` was a well-formed date, later than the first
    /// published one, that HighLevel has not published (served as v2; see
    /// [`PUBLISHED_API_VERSIONS`]).
    pub unpublished_versions: u64,
    /// Access tokens expired ahead of time by
    /// [`FakeServer::expire_access_token`] or [`FakeServer::expire_access_tokens_of`].
    pub access_tokens_expired: u64,
}

/// A sub-account known to the fake.
#[derive(Debug, Clone)]
struct LocationRecord {
    company_id: String,
    name: String,
    address: String,
    /// Whether the app is installed there, and with which plan.
    installed: Option<Option<String>>,
}

/// An authorization code not yet exchanged.
#[derive(Debug, Clone)]
struct CodeRecord {
    install: Install,
    /// The redirect URI of the consent, which the exchange must repeat.
    redirect_uri: Option<String>,
}

/// One grant: an install and its newest refresh token.
#[derive(Debug, Clone)]
struct GrantRecord {
    install: Install,
    /// A Company install's approved locations, for lookups (empty otherwise).
    approved: HashSet<String>,
    refresh_token: String,
}

#[derive(Debug, Clone, Copy)]
struct RefreshRecord {
    grant: usize,
    /// `None` when the expiry is beyond what `SystemTime` holds.
    expires_at: Option<SystemTime>,
    spent: bool,
    /// Revoked by an uninstall, or never handed out.
    revoked: bool,
}

#[derive(Debug, Clone, Copy)]
struct AccessRecord {
    grant: usize,
    expires_at: Option<SystemTime>,
}

/// The request counters behind the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, Default)]
struct RateWindow {
    day: u64,
    day_count: u64,
    burst: u64,
    burst_count: u64,
}

/// What kind of placeholder a token is; its prefix says so.
#[derive(Clone, Copy)]
enum Kind {
    Access,
    Refresh,
    Code,
}

/// A sans-IO fake of the HighLevel OAuth server for one marketplace app.
///
/// It accepts one client id and secret, holds installs, codes, grants and
/// tokens in hash maps (a fake with 100k grants answers as fast as one with
/// one), and answers [`handle`](Self::handle) as the real server would.
///
/// Semantics beyond the documentation, chosen to be strict:
/// - a code exchange or refresh whose `user_type` differs from the install's
///   gets `400 Invalid parameter: userType`;
/// - a code approved for a redirect URI (through the consent page) needs the
///   same `redirect_uri` at the exchange;
/// - each minted Location token is a grant of its own, with its own chain of
///   refresh tokens;
/// - access tokens stay valid until they expire, also after a refresh;
///   refresh tokens expire [a year](REFRESH_TOKEN_LIFETIME) after issue;
/// - `client_credentials` is refused with `400 Invalid parameter: grantType`;
/// - the `X-RateLimit-*` headers count requests per day and per 10 s window
///   of `now`; nothing is enforced unless [`set_rate_limit`](Self::set_rate_limit)
///   says so (or script [`Fault::RateLimited`] for a single 429);
/// - Location tokens carry a refresh token unless
///   [`set_location_refresh_tokens(false)`](Self::set_location_refresh_tokens);
/// - webhooks are signed with a key of the fake's own
///   ([`webhook_key`](Self::webhook_key)), not HighLevel's.
///
/// `now` should not go backwards: expired access tokens are forgotten.
pub struct FakeServer {
    client_id: String,
    client_secret: ClientSecret,
    app_id: String,
    salt: u64,
    access_lifetime: Duration,
    consent_install: Install,
    counter: u64,
    /// Company id to its location ids, in registration order.
    companies: HashMap<String, Vec<String>>,
    locations: HashMap<String, LocationRecord>,
    inactive: HashSet<String>,
    codes: HashMap<String, CodeRecord>,
    grants: Vec<GrantRecord>,
    refresh_tokens: HashMap<String, RefreshRecord>,
    access_tokens: HashMap<String, AccessRecord>,
    access_expiry: BinaryHeap<Reverse<(SystemTime, String)>>,
    faults: VecDeque<(Fault, usize)>,
    window: RateWindow,
    limiter: Option<rate::Limiter>,
    location_refresh_tokens: bool,
    webhooks: webhook::WebhookSender,
    stats: FakeStats,
}

impl fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeServer")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("access_lifetime", &self.access_lifetime)
            .field("locations", &self.locations.len())
            .field("pending_codes", &self.codes.len())
            .field("grants", &self.grants.len())
            .field("queued_faults", &self.faults)
            .field("rate_limit", &self.limiter.as_ref().map(|l| l.rule))
            .field("location_refresh_tokens", &self.location_refresh_tokens)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl FakeServer {
    /// A fake that accepts exactly this client id and secret; others get 401.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        let client_id = client_id.into();
        let app_id = client_id.split('-').next().unwrap_or(&client_id).to_owned();
        FakeServer {
            salt: fnv1a(client_id.as_bytes()),
            client_id,
            client_secret: ClientSecret::new(client_secret.into()),
            app_id,
            access_lifetime: DEFAULT_LIFETIME,
            consent_install: Install::location("company-1", "loc-1"),
            counter: 0,
            companies: HashMap::new(),
            locations: HashMap::new(),
            inactive: HashSet::new(),
            codes: HashMap::new(),
            grants: Vec::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            access_expiry: BinaryHeap::new(),
            faults: VecDeque::new(),
            window: RateWindow::default(),
            limiter: None,
            location_refresh_tokens: true,
            webhooks: webhook::WebhookSender::default(),
            stats: FakeStats::default(),
        }
    }

    /// The lifetime reported as `expires_in` for new access tokens (default
    /// 86,399 s), in whole seconds.
    pub fn set_access_lifetime(&mut self, lifetime: Duration) {
        self.access_lifetime = lifetime;
    }

    /// Enforces `limit` on every request from now on (`None`, the default,
    /// enforces nothing). A refused request gets `429` with a NestJS body
    /// (`ThrottlerException: Too Many Requests`), `X-RateLimit-Remaining: 0`
    /// and the other documented `X-RateLimit-*` headers, and is not handled.
    /// While a limit is set, `X-RateLimit-Max`, `-Interval-Milliseconds` and
    /// `-Remaining` report it.
    pub fn set_rate_limit(&mut self, limit: Option<FakeRateLimit>) {
        self.limiter = limit.map(rate::Limiter::new);
    }

    /// Whether minted Location tokens come with a refresh token (default
    /// `true`, as newer docs show). Without one, the answer has no
    /// `refresh_token` and the Location grant can only be minted again from
    /// the Company token.
    pub fn set_location_refresh_tokens(&mut self, with_refresh_token: bool) {
        self.location_refresh_tokens = with_refresh_token;
    }

    /// The app id: the client id before its first `-`.
    #[must_use]
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// Registers a sub-account under a company, for installed-locations
    /// listings and approvals. Registering it again updates its name, address
    /// and company.
    pub fn add_location(&mut self, company_id: &str, location_id: &str, name: &str, address: &str) {
        match self.locations.get_mut(location_id) {
            Some(rec) => {
                if rec.company_id != company_id {
                    if let Some(list) = self.companies.get_mut(&rec.company_id) {
                        list.retain(|l| l != location_id);
                    }
                    self.companies
                        .entry(company_id.to_owned())
                        .or_default()
                        .push(location_id.to_owned());
                    company_id.clone_into(&mut rec.company_id);
                }
                name.clone_into(&mut rec.name);
                address.clone_into(&mut rec.address);
            }
            None => {
                self.locations.insert(
                    location_id.to_owned(),
                    LocationRecord {
                        company_id: company_id.to_owned(),
                        name: name.to_owned(),
                        address: address.to_owned(),
                        installed: None,
                    },
                );
                self.companies
                    .entry(company_id.to_owned())
                    .or_default()
                    .push(location_id.to_owned());
            }
        }
    }

    /// The consent step: approves an install and returns its one-time
    /// authorization code.
    ///
    /// The install's locations (its `location_id`, or a Company install's
    /// `approved_locations`) are marked installed; locations not registered
    /// with [`add_location`](Self::add_location) are registered, named by their id.
    pub fn approve(&mut self, install: &Install) -> AuthorizationCode {
        AuthorizationCode::new(self.approve_for(install.clone(), None))
    }

    /// What `GET …/oauth/chooselocation` approves (default: a Location install
    /// of `loc-1` in `company-1`). A `scope` in the consent URL replaces its scope.
    pub fn set_consent_install(&mut self, install: Install) {
        self.consent_install = install;
    }

    /// Scripts `fault` as the answer to the next `times` requests, after the
    /// faults already queued (first in, first out).
    pub fn fail_next(&mut self, fault: Fault, times: usize) {
        if times > 0 {
            self.faults.push_back((fault, times));
        }
    }

    /// Suspends or reactivates a location. Refreshes of its grants, code
    /// exchanges and Location-token mints for it get
    /// `400 "Location is not active"`, and the refresh token is not spent: the
    /// same one works again after reactivation.
    pub fn set_location_active(&mut self, location_id: &str, active: bool) {
        if active {
            self.inactive.remove(location_id);
        } else {
            self.inactive.insert(location_id.to_owned());
        }
    }

    /// Whether this refresh token was issued and is not yet spent.
    #[must_use]
    pub fn is_live_refresh_token(&self, refresh_token: &str) -> bool {
        self.refresh_tokens
            .get(refresh_token)
            .is_some_and(|r| !r.spent && !r.revoked)
    }

    /// Whether this refresh token was ever issued, spent or not.
    #[must_use]
    pub fn was_issued_refresh_token(&self, refresh_token: &str) -> bool {
        self.refresh_tokens.contains_key(refresh_token)
    }

    /// Every unspent refresh token, one per grant not revoked, in the order
    /// the grants began.
    #[must_use]
    pub fn live_refresh_tokens(&self) -> Vec<String> {
        self.grants
            .iter()
            .map(|g| &g.refresh_token)
            .filter(|t| self.is_live_refresh_token(t))
            .cloned()
            .collect()
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> FakeStats {
        self.stats.clone()
    }

    /// Answers one request as the real server would, at time `now`.
    pub fn handle(&mut self, request: &Request<Vec<u8>>, now: SystemTime) -> Response<Vec<u8>> {
        self.stats.requests += 1;
        if let wire::VersionHeader::V2 { published: false } = wire::version_header(request) {
            self.stats.unpublished_versions += 1;
        }
        self.forget_expired_access_tokens(now);
        let (daily_remaining, remaining) = self.count_request(now);
        let mut burst = Burst {
            max: BURST_MAX,
            interval_ms: BURST_WINDOW_MS,
            remaining,
        };
        if let Some(limiter) = &mut self.limiter {
            burst.max = limiter.rule.max;
            burst.interval_ms = limiter.rule.interval_ms();
            match limiter.admit(now) {
                Ok(left) => burst.remaining = left,
                Err(wait) => {
                    self.stats.rate_limited += 1;
                    burst.remaining = 0;
                    return limiter.refusal(wait).into_response(daily_remaining, burst);
                }
            }
        }
        let reply = match self.next_fault() {
            Some(fault) => {
                self.stats.faults_served += 1;
                Reply::fault(&fault)
            }
            None => self.route(request, now),
        };
        if reply.exhausted {
            burst.remaining = 0;
        }
        if reply.invalid_bearer {
            self.stats.invalid_bearers += 1;
        }
        reply.into_response(daily_remaining, burst)
    }

    fn route(&mut self, request: &Request<Vec<u8>>, now: SystemTime) -> Reply {
        let path = request.uri().path();
        let trimmed = path.trim_end_matches('/');
        let is = |suffix: &str| trimmed.ends_with(suffix);
        let method = request.method();
        if *method == Method::POST && is("/oauth/token") {
            self.token_endpoint(request, now)
        } else if *method == Method::POST && is("/oauth/locationToken") {
            self.location_token_endpoint(request, now, false)
        } else if *method == Method::POST && is("/oauth/location-token") {
            self.location_token_endpoint(request, now, true)
        } else if *method == Method::GET && is("/oauth/installedLocations") {
            self.installed_locations_endpoint(request, now, false)
        } else if *method == Method::GET && is("/oauth/installed-locations") {
            self.installed_locations_endpoint(request, now, true)
        } else if *method == Method::GET && is("/oauth/chooselocation") {
            self.consent_page(request)
        } else if let (true, Some(location_id)) =
            (*method == Method::GET, api::location_id(trimmed))
        {
            self.location_endpoint(request, now, &location_id)
        } else {
            Reply::nest(StatusCode::NOT_FOUND, &format!("Cannot {method} {path}"))
        }
    }

    fn next_fault(&mut self) -> Option<Fault> {
        let (fault, left) = self.faults.front_mut()?;
        let fault = fault.clone();
        *left -= 1;
        if *left == 0 {
            self.faults.pop_front();
        }
        Some(fault)
    }

    /// Counts the request in its day and burst window; returns what remains.
    fn count_request(&mut self, now: SystemTime) -> (u64, u64) {
        let ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let w = &mut self.window;
        let day = ms / 86_400_000;
        if w.day != day || w.day_count == 0 {
            w.day = day;
            w.day_count = 0;
        }
        let burst = ms / BURST_WINDOW_MS;
        if w.burst != burst || w.burst_count == 0 {
            w.burst = burst;
            w.burst_count = 0;
        }
        w.day_count += 1;
        w.burst_count += 1;
        (
            DAILY_LIMIT.saturating_sub(w.day_count),
            BURST_MAX.saturating_sub(w.burst_count),
        )
    }

    fn forget_expired_access_tokens(&mut self, now: SystemTime) {
        while let Some(Reverse((at, _))) = self.access_expiry.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, token))) = self.access_expiry.pop() {
                self.access_tokens.remove(&token);
            }
        }
    }

    // ---- state changes shared by the endpoints ---------------------------------

    /// A new placeholder token: its kind, a counter and a mix of both with the
    /// client id, 32 characters or more.
    fn next_token(&mut self, kind: Kind) -> String {
        self.counter += 1;
        let n = self.counter;
        let (prefix, salt) = match kind {
            Kind::Access => ("at", 0x6163_6365_7373_0001),
            Kind::Refresh => ("rt", 0x7265_6672_6573_0002),
            Kind::Code => ("cd", 0x636f_6465_0000_0003),
        };
        format!(
            "{prefix}-{n:012x}-{:016x}",
            splitmix64(n ^ self.salt ^ salt)
        )
    }

    fn approve_for(&mut self, install: Install, redirect_uri: Option<String>) -> String {
        let installed: Vec<String> = match (&install.user_type, &install.location_id) {
            (UserType::Company, _) | (_, None) => install.approved_locations.clone(),
            (_, Some(location)) => vec![location.clone()],
        };
        self.companies
            .entry(install.company_id.clone())
            .or_default();
        for location in installed {
            if !self.locations.contains_key(&location) {
                self.add_location(&install.company_id, &location, &location, "");
            }
            if let Some(rec) = self.locations.get_mut(&location) {
                rec.installed = Some(install.plan_id.clone());
            }
        }
        let code = self.next_token(Kind::Code);
        self.codes.insert(
            code.clone(),
            CodeRecord {
                install,
                redirect_uri,
            },
        );
        code
    }

    /// Starts a grant for `install` and issues its first tokens; returns the
    /// grant's index with them.
    fn start_grant(&mut self, install: Install, now: SystemTime) -> (usize, Issued) {
        let grant = self.grants.len();
        let refresh_token = self.next_token(Kind::Refresh);
        let approved = if install.user_type == UserType::Company {
            install.approved_locations.iter().cloned().collect()
        } else {
            HashSet::new()
        };
        self.grants.push(GrantRecord {
            install,
            approved,
            refresh_token: refresh_token.clone(),
        });
        (grant, self.issue(grant, refresh_token, now))
    }

    /// Spends the grant's refresh token and issues the next pair.
    fn rotate(&mut self, grant: usize, now: SystemTime) -> Option<Issued> {
        let old = &self.grants.get(grant)?.refresh_token;
        if let Some(rec) = self.refresh_tokens.get_mut(old) {
            rec.spent = true;
        }
        let refresh_token = self.next_token(Kind::Refresh);
        refresh_token.clone_into(&mut self.grants.get_mut(grant)?.refresh_token);
        Some(self.issue(grant, refresh_token, now))
    }

    fn issue(&mut self, grant: usize, refresh_token: String, now: SystemTime) -> Issued {
        let access_token = self.next_token(Kind::Access);
        let expires_at = now.checked_add(self.access_lifetime);
        if let Some(at) = expires_at {
            self.access_expiry.push(Reverse((at, access_token.clone())));
        }
        self.access_tokens
            .insert(access_token.clone(), AccessRecord { grant, expires_at });
        self.refresh_tokens.insert(
            refresh_token.clone(),
            RefreshRecord {
                grant,
                expires_at: now.checked_add(REFRESH_TOKEN_LIFETIME),
                spent: false,
                revoked: false,
            },
        );
        let refresh_token_id = format!(
            "{:08x}{:016x}",
            self.counter & 0xffff_ffff,
            splitmix64(self.counter ^ self.salt)
        );
        Issued {
            access_token,
            refresh_token,
            refresh_token_id,
        }
    }

    /// Whether a Company grant approves every registered location of its company.
    fn approves_all(&self, grant: &GrantRecord) -> bool {
        self.companies
            .get(&grant.install.company_id)
            .is_some_and(|all| !all.is_empty() && all.iter().all(|l| grant.approved.contains(l)))
    }

    fn is_inactive(&self, install: &Install) -> bool {
        install
            .location_id
            .as_ref()
            .is_some_and(|l| self.inactive.contains(l))
    }
}

/// The burst figures of one answer's `X-RateLimit-*` headers.
struct Burst {
    max: u64,
    interval_ms: u64,
    remaining: u64,
}

/// Tokens just issued.
struct Issued {
    access_token: String,
    refresh_token: String,
    refresh_token_id: String,
}

impl Reply {
    /// Finishes a reply with the rate-limit headers.
    fn into_response(self, daily_remaining: u64, burst: Burst) -> Response<Vec<u8>> {
        let mut resp = Response::new(self.body);
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        if let Some(ct) = self.content_type {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        h.insert("x-ratelimit-limit-daily", HeaderValue::from(DAILY_LIMIT));
        h.insert(
            "x-ratelimit-daily-remaining",
            HeaderValue::from(daily_remaining),
        );
        h.insert(
            "x-ratelimit-interval-milliseconds",
            HeaderValue::from(burst.interval_ms),
        );
        h.insert("x-ratelimit-max", HeaderValue::from(burst.max));
        h.insert("x-ratelimit-remaining", HeaderValue::from(burst.remaining));
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            h.insert(header::LOCATION, location);
        }
        resp
    }
}

/// FNV-1a, to make one client's tokens differ from another's.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The SplitMix64 finalizer: a fixed bijection that makes counters look opaque.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
