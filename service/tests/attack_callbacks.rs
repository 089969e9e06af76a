//! Attacks on `/install` and `/callback` over loopback, against the real
//! routes served as an app serves them: real HTTP clients (each with a
//! cookie jar of its own, as a browser has), real sockets, the fake
//! HighLevel server counting the code exchanges it receives.
//!
//! See `docs/security.md` for each threat and its defence.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::app::App;
use common::browser::{browser, browser_from, callback, oauth_app, start_install};
use hoopai_oauth::EngineSettings;
use hoopai_oauth::fake::Install;
use hoopai_oauth_service::routes::{Rate, RouteLimits};
use hoopai_oauth_service::{OAuthRouter, ServiceSettings};

async fn app_with(routes: impl FnOnce(OAuthRouter) -> OAuthRouter) -> App {
    let settings =
        ServiceSettings::new(EngineSettings::default().request_timeout(Duration::from_secs(5)));
    oauth_app(settings, routes).await
}

fn token_calls(app: &App) -> u64 {
    app.fake.shared.token_calls.load(Ordering::SeqCst)
}

/// Attack: anyone stops every refresh by spending the app's request budget
/// on code exchanges: each `/callback?code=junk&state=S` (with a state and
/// cookie from `/install`) sends a real `POST /oauth/token` upstream.
/// Defence: the callback is throttled per client and overall; the flood is
/// answered `429` with `Retry-After` and spends no more code exchanges than
/// the overall limit allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_callbacks_spends_no_more_than_the_limit_upstream() {
    let app = app_with(|routes| routes).await;
    let limits = RouteLimits::callback_default();
    let before = token_calls(&app);
    let began = Instant::now();
    let (mut answered, mut throttled) = (0_u32, 0_u32);
    // Ten attackers on ten addresses, ten rounds each: 100 attempts.
    for round in 0..10 {
        for host in 2..12_u8 {
            let http = browser_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)));
            let Ok((_, state)) = start_install(&http, &app).await else {
                throttled += 1;
                continue;
            };
            let code = format!("junk-code-{round}-{host}-0000000000000000");
            let response = callback(&http, &app, &[("code", &code), ("state", &state)]).await;
            match response.status().as_u16() {
                429 => {
                    let wait: u64 = response.headers()["retry-after"]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert!((1..=60).contains(&wait), "{wait}");
                    throttled += 1;
                }
                502 => answered += 1,
                other => panic!("unexpected {other}"),
            }
        }
    }
    let spent = token_calls(&app) - before;
    let allowed = u64::from(limits.overall().burst())
        + began.elapsed().as_secs() / limits.overall().every().as_secs().max(1)
        + 1;
    assert!(
        spent <= allowed,
        "{spent} code exchanges upstream for 100 forged callbacks; the limit allows {allowed}"
    );
    assert_eq!(u64::from(answered), spent);
    assert!(
        throttled >= 100 - u32::try_from(allowed).unwrap(),
        "{throttled}"
    );
    app.service.shutdown().await;
}

/// One client alone is held to its own limit, well before the overall one.
#[tokio::test]
async fn one_client_is_held_to_its_own_limit() {
    let app = app_with(|routes| routes).await;
    let per_client = RouteLimits::callback_default().per_client().burst();
    let http = browser();
    let before = token_calls(&app);
    let mut statuses = Vec::new();
    for i in 0..40 {
        let code = format!("junk-code-{i}-0000000000000000");
        let response = callback(&http, &app, &[("code", &code), ("state", "S")]).await;
        statuses.push(response.status().as_u16());
    }
    let refused = statuses.iter().filter(|s| **s == 400).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        refused <= usize::try_from(per_client).unwrap() + 1,
        "{statuses:?}"
    );
    assert!(
        throttled >= 40 - usize::try_from(per_client).unwrap() - 1,
        "{statuses:?}"
    );
    // A state without its cookie never reaches the token endpoint.
    assert_eq!(token_calls(&app), before);
    app.service.shutdown().await;
}

/// Attack: a state minted by one client, sent with an attacker's code from
/// another browser, installs the attacker's sub-account (login CSRF).
/// Defence: the state is bound to the browser that started the install by
/// a signed cookie; another browser's callback is refused before any
/// exchange.
#[tokio::test]
async fn a_state_from_one_browser_is_refused_in_another() {
    let app = app_with(|routes| routes).await;
    let attacker = browser();
    let (_, state) = start_install(&attacker, &app).await.unwrap();
    let code = app
        .fake
        .fake()
        .approve(&Install::location("company-1", "attacker-loc"));
    let before = token_calls(&app);
    // The victim's browser: once with no install of its own, once in the
    // middle of one (its own state cookie).
    let victim = browser();
    for started_own in [false, true] {
        if started_own {
            start_install(&victim, &app).await.unwrap();
        }
        let response = callback(
            &victim,
            &app,
            &[("code", code.secret()), ("state", state.as_str())],
        )
        .await;
        assert_eq!(response.status(), 400, "own install started: {started_own}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains(&state) && !body.contains(code.secret()),
            "{body}"
        );
    }
    assert_eq!(token_calls(&app), before, "no code was exchanged");
    assert!(app.service.list().await.unwrap().is_empty());
    // The browser that started it completes it.
    let response = callback(
        &attacker,
        &app,
        &[("code", code.secret()), ("state", state.as_str())],
    )
    .await;
    assert_eq!(response.status(), 200);
    app.service.shutdown().await;
}

/// Attack: 10,000 `/install` from one client evict a real user's state (and
/// each scans a full table under a lock). Defence: no table; the state
/// lives in the user's signed cookie. Shown with the install throttle
/// lifted, so nothing but the design holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_installs_from_one_client_evict_no_one() {
    let lifted = RouteLimits::new(
        Rate::new(1_000_000, Duration::from_millis(1)),
        Rate::new(1_000_000, Duration::from_millis(1)),
    );
    let app = app_with(|routes| routes.install_limits(lifted)).await;
    let user = browser();
    let (consent, state) = start_install(&user, &app).await.unwrap();
    let flooder = browser_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let began = Instant::now();
    for _ in 0..10_000 {
        start_install(&flooder, &app).await.unwrap();
    }
    let took = began.elapsed();
    // The user's consent completes: the fake approves and redirects back.
    let response = user.get(&consent).send().await.unwrap();
    let back = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.contains(&state));
    let response = user.get(&back).send().await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    assert!(app.service.access_token("loc-1").await.is_ok());
    eprintln!("10,000 installs took {took:?}");
    app.service.shutdown().await;
}

/// With the default limits, the flood is simply throttled.
#[tokio::test]
async fn an_install_flood_is_throttled() {
    let app = app_with(|routes| routes).await;
    let flooder = browser();
    let mut statuses = Vec::new();
    for _ in 0..100 {
        statuses.push(match start_install(&flooder, &app).await {
            Ok(_) => 302,
            Err(status) => status,
        });
    }
    let burst = usize::try_from(RouteLimits::install_default().per_client().burst()).unwrap();
    let passed = statuses.iter().filter(|s| **s == 302).count();
    assert!(passed <= burst + 1, "{passed} passed");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 100 - passed);
    app.service.shutdown().await;
}

/// Attack: `/callback` echoes `error_description` (HTML and all) in a
/// `text/plain` 400 without `nosniff`. Defence: fixed texts, `nosniff`,
/// `no-store`; nothing the caller sent comes back.
#[tokio::test]
async fn callbacks_reflect_nothing() {
    let app = app_with(|routes| routes.allow_missing_state(true)).await;
    let http = browser();
    let (_, state) = start_install(&http, &app).await.unwrap();
    let script = "<script>alert(document.cookie)</script>";
    let image = "<img src=x onerror=alert(1)>";
    for query in [
        vec![
            ("error", script),
            ("error_description", image),
            ("state", state.as_str()),
        ],
        vec![("error", script), ("error_description", image)],
        vec![("code", script), ("state", image)],
        vec![("code", script), ("code", image)],
    ] {
        let response = callback(&http, &app, &query).await;
        assert_eq!(response.status(), 400, "{query:?}");
        let headers = response.headers().clone();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
        assert_eq!(headers["cache-control"], "no-store");
        let body = response.text().await.unwrap();
        for sent in ["<", ">", "alert", "onerror", "script"] {
            assert!(!body.contains(sent), "{body:?} holds {sent:?}");
        }
    }
    app.service.shutdown().await;
}

/// Attack: the server's error message (1 MiB here) becomes the callback's
/// 502 body, and a log line and `last_failure` as big. Defence: server text
/// is capped where it is parsed, and the route answers a fixed text.
#[tokio::test]
async fn a_one_mib_server_message_stays_out_of_the_callback_answer() {
    let app = app_with(|routes| routes).await;
    // Just short of the largest body read (1 MiB), so it is read.
    let message = "<b>overflow</b> ".repeat(60 * 1024);
    app.fake.script(
        http::Response::builder()
            .status(500)
            .header("content-type", "application/json")
            .body(
                serde_json::to_vec(&serde_json::json!({"statusCode": 500, "message": message}))
                    .unwrap(),
            )
            .unwrap(),
    );
    let http = browser();
    let (consent, _) = start_install(&http, &app).await.unwrap();
    let back = http.get(&consent).send().await.unwrap().headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let response = http.get(&back).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let body = response.text().await.unwrap();
    assert!(body.len() < 200 && !body.contains("overflow"), "{body}");
    app.service.shutdown().await;
}
