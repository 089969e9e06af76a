//! A callback flood against the real routes over loopback, while the
//! service keeps its grants fresh at a fake HighLevel that enforces the
//! app's request budget: forged callbacks that get past the route throttle
//! reach the code exchange and compete with refreshes for that budget.
//!
//! See `docs/security.md`, "The callback spends the request budget".

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::app::App;
use common::browser::{browser_from, callback_at, oauth_app, start_install};
use hoopai_oauth::fake::FakeRateLimit;
use hoopai_oauth::{EngineSettings, TokenSet};
use hoopai_oauth_service::routes::RouteLimits;
use hoopai_oauth_service::{ServiceSettings, TokenService};

/// Grants held. Each refreshes every `LIFETIME - MARGIN` (20 s): 1.5
/// refreshes a second, half the budget; the other half is the code
/// exchanges' share.
const GRANTS: u64 = 30;
/// The access tokens' lifetime.
const LIFETIME: Duration = Duration::from_secs(30);
/// Refresh this long before expiry. A refresh that waits more than
/// `MARGIN - SKEW` (8 s) for the budget leaves its grant without a token
/// to hand out: the 30 exchanges the route lets through at once would,
/// were they not held to their share, take a whole window (10 s).
const MARGIN: Duration = Duration::from_secs(10);
/// A token is not handed out this close to its expiry.
const SKEW: Duration = Duration::from_secs(2);
/// The request budget, the engine's and the one the fake enforces: 3 a second.
const BUDGET: u32 = 30;
const WINDOW: Duration = Duration::from_secs(10);
/// Forged callbacks a second, for `FLOOD`.
const RATE: u32 = 200;
const FLOOD: Duration = Duration::from_secs(60);
/// Attackers, each on its own loopback address with its own state and cookie.
const ATTACKERS: u8 = 50;
/// The longest a caller may wait for a token. A fresh token is answered
/// from memory, on the service task's next turn; only a token that is no
/// longer fresh makes the caller wait for a refresh, and a refresh that must
/// wait for the budget waits up to a window (10 s). 2 s leaves room for a
/// busy machine and none for a budget wait.
const WAIT_BOUND: Duration = Duration::from_secs(2);

/// The answers to the flood, by status.
#[derive(Default)]
struct Answers {
    /// `429` from the route throttle.
    throttled: AtomicU64,
    /// `502`: a code exchange was sent and refused upstream.
    exchanged: AtomicU64,
    /// `408`: the request timeout (30 s) passed while the exchange waited
    /// for the budget.
    timed_out: AtomicU64,
    /// Anything else, and transport errors.
    other: AtomicU64,
}

impl Answers {
    fn count(&self, status: Option<u16>) {
        let counter = match status {
            Some(429) => &self.throttled,
            Some(502) => &self.exchanged,
            Some(408) => &self.timed_out,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// What the checker saw.
#[derive(Default)]
struct Checks {
    asked: u64,
    max_wait: Duration,
    /// The least life left on any grant's token at any check.
    min_life: Option<Duration>,
    /// Grants found with their token in its skew or expired.
    stale: Vec<String>,
    /// Tokens not handed out within `WAIT_BOUND`.
    refused: Vec<String>,
}

/// Holds `GRANTS` grants whose refreshes come due spread over the next
/// 20 s, as installs spread over time leave them: each token is taken as
/// obtained 0 to 19 s ago (the fake's copy lives that much longer, so the
/// service's view is, if anything, the staler).
///
/// The tokens are obtained at the fake directly, before its rate limit is
/// on: the setup spends none of the budget. The limit is on before the
/// service holds a grant, so that every answer the service ever sees
/// carries the limit the fake enforces. (Turned on later, the first
/// refreshes' answers advertised the fake's default, 100 a window; the
/// engine followed them, let code exchanges take that larger share, and
/// the next refresh drew a 429 once the limit of 30 was on.)
async fn hold_grants(app: &App) -> Vec<String> {
    app.fake.fake().set_access_lifetime(LIFETIME);
    let obtained: Vec<(String, hoopai_oauth::TokenResponse)> = (0..GRANTS)
        .map(|i| {
            let grant = format!("loc-{i:02}");
            let tokens = app.fake.location_tokens(&grant);
            (grant, tokens)
        })
        .collect();
    app.fake
        .fake()
        .set_rate_limit(Some(FakeRateLimit::new(u64::from(BUDGET), WINDOW)));
    let mut grants = Vec::new();
    for (i, (grant, tokens)) in (0..GRANTS).zip(obtained) {
        let obtained = SystemTime::now() - Duration::from_secs(i % 20);
        app.service
            .add(&grant, TokenSet::new(tokens, obtained))
            .await
            .unwrap();
        grants.push(grant);
    }
    grants
}

/// Every second until `stop`: every grant's life left (from the service's
/// view of its records), then every grant's token.
async fn check(service: TokenService, grants: Vec<String>, stop: Arc<AtomicBool>) -> Checks {
    let mut checks = Checks::default();
    while !stop.load(Ordering::Relaxed) {
        let round = Instant::now();
        let held = service.list().await.unwrap();
        // Read after the list: the life left is, if anything, understated.
        let now = SystemTime::now();
        assert_eq!(held.len(), grants.len());
        for info in held {
            let life = info.expires_at.duration_since(now).unwrap_or_default();
            checks.min_life = Some(checks.min_life.map_or(life, |m| m.min(life)));
            if life <= SKEW {
                checks.stale.push(format!("{}: {life:?} left", info.grant));
            }
        }
        for grant in &grants {
            let asked = Instant::now();
            let answer = service.access_token_within(grant, WAIT_BOUND).await;
            let waited = asked.elapsed();
            checks.asked += 1;
            checks.max_wait = checks.max_wait.max(waited);
            if let Err(e) = answer {
                checks
                    .refused
                    .push(format!("{grant}: {e} after {waited:?}"));
            }
        }
        tokio::time::sleep_until((round + Duration::from_secs(1)).into()).await;
    }
    checks
}

/// `RATE` forged callbacks a second for `FLOOD`, in turn from each
/// attacker, each with its attacker's valid state and cookie and a junk
/// code. Returns how many were sent and how many were still unanswered a
/// few seconds after the last (their exchange waits for the budget).
async fn flood(
    base: &str,
    attackers: &[(reqwest::Client, String)],
    answers: &Arc<Answers>,
) -> (u64, usize) {
    let total = u64::from(RATE) * FLOOD.as_secs();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
    let mut requests = tokio::task::JoinSet::new();
    let mut turn = attackers.iter().cycle();
    for i in 0..total {
        tick.tick().await;
        let (http, state) = turn.next().unwrap().clone();
        let base = base.to_owned();
        let answers = answers.clone();
        requests.spawn(async move {
            let code = format!("junk-code-{i:05}-0000000000000000");
            let query = [("code", code.as_str()), ("state", state.as_str())];
            let answer = callback_at(&http, &base, &query).await;
            answers.count(answer.ok().map(|r| r.status().as_u16()));
        });
        while requests.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while requests.join_next().await.is_some() {}
    })
    .await;
    let unanswered = requests.len();
    requests.shutdown().await;
    (total, unanswered)
}

/// Attack: a flood of forged callbacks, each with a valid state and
/// cookie, spends the request budget on code exchanges, so that the
/// refreshes of the grants held wait past their tokens' expiry, or the
/// server answers 429.
/// Defence: the route throttle lets through at most its overall limit;
/// behind it, the engine holds code exchanges to their share of the budget
/// and sends due refreshes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grant_stays_fresh_under_200_callbacks_a_second_for_a_minute() {
    let settings = ServiceSettings::new(
        EngineSettings::default()
            .request_budget(BUDGET, WINDOW)
            .refresh_margin(MARGIN)
            .expiry_skew(SKEW)
            .request_timeout(Duration::from_secs(5))
            .jitter_seed(11),
    );
    let app = oauth_app(settings, |routes| routes).await;
    let grants = hold_grants(&app).await;
    let versions: Vec<u64> = app
        .service
        .list()
        .await
        .unwrap()
        .iter()
        .map(|g| g.version)
        .collect();
    let mut attackers = Vec::new();
    for host in 2..2 + ATTACKERS {
        let http = browser_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)));
        let (_, state) = start_install(&http, &app).await.unwrap();
        attackers.push((http, state));
    }
    let fake_before = app.fake.fake().stats();
    let code_calls = || app.fake.shared.code_calls.load(Ordering::SeqCst);
    let codes_before = code_calls();

    let stop = Arc::new(AtomicBool::new(false));
    let checker = tokio::spawn(check(app.service.clone(), grants.clone(), stop.clone()));
    let answers = Arc::new(Answers::default());
    let began = Instant::now();
    let (sent, unanswered) = flood(&app.base, &attackers, &answers).await;
    let took = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    let checks = checker.await.unwrap();
    let exchanges = code_calls() - codes_before;
    let fake = app.fake.fake().stats();
    let refreshes = fake.refreshes - fake_before.refreshes;
    let held = app.service.list().await.unwrap();

    let throttled = Answers::get(&answers.throttled);
    let exchanged = Answers::get(&answers.exchanged);
    let timed_out = Answers::get(&answers.timed_out);
    let other = Answers::get(&answers.other);
    let limit = RouteLimits::callback_default().overall();
    let allowed = u64::from(limit.burst()) + took.as_secs() / limit.every().as_secs().max(1) + 1;
    eprintln!(
        "callback flood: {sent} callbacks in {took:.1?}; {throttled} answered 429 by the route, \
         {exchanged} 502 after their exchange, {timed_out} 408 waiting for the budget, \
         {unanswered} unanswered at the end, {other} other; {exchanges} code exchanges upstream \
         (the route allows {allowed}); {refreshes} refreshes; {} 429 from the server; \
         {} tokens asked, longest wait {:.1?}, least life left {:.1?}",
        fake.rate_limited - fake_before.rate_limited,
        checks.asked,
        checks.max_wait,
        checks.min_life.unwrap_or_default(),
    );

    assert_eq!(fake.rate_limited, 0, "the server answered 429");
    assert!(
        checks.stale.is_empty(),
        "grants not kept fresh: {:?}",
        checks.stale
    );
    assert!(
        checks.refused.is_empty(),
        "tokens not handed out in time: {:?}",
        checks.refused
    );
    assert!(
        checks.asked >= GRANTS * 30,
        "the checker ran: {}",
        checks.asked
    );
    // Each grant refreshed over and over during the flood (every 20 s).
    for (info, before) in held.iter().zip(&versions) {
        assert!(
            info.version >= before + 2,
            "{}: {} refreshes",
            info.grant,
            info.version - before
        );
    }
    // The flood got past the throttle's burst and reached the exchange,
    // no further than the throttle allows.
    assert_eq!(
        throttled + exchanged + timed_out + other + unanswered as u64,
        sent
    );
    assert_eq!(other, 0, "answers other than 429, 502, 408");
    assert!(throttled + u64::from(limit.burst()) <= sent);
    assert!(exchanged + timed_out + unanswered as u64 >= u64::from(limit.burst()));
    assert!(
        exchanges >= 1 && exchanged <= exchanges,
        "{exchanged} of {exchanges}"
    );
    assert!(
        exchanges <= allowed,
        "{exchanges} code exchanges; the route allows {allowed}"
    );

    // The tokens held at the end are live at the server.
    app.fake.fake().set_rate_limit(None);
    let api = reqwest::Client::new();
    for grant in &grants {
        let token = app.service.access_token(grant).await.unwrap();
        let response = api
            .get(app.fake.url(&format!("/locations/{grant}")))
            .bearer_auth(token.secret())
            .header("version", "2021-07-28")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{grant}");
    }
    assert_eq!(app.fake.fake().stats().invalid_bearers, 0);
    app.service.shutdown().await;
}
