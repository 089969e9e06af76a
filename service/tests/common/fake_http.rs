//! The core's fake HighLevel server behind a real HTTP server (axum) on a
//! loopback port, plus a few routes to test HTTP clients and API calls.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{any, get};
use hoopai_oauth::fake::FakeServer;

pub const CLIENT_ID: &str = "6578278e879ad2646715ba9c-lq3w8xd2";
pub const CLIENT_SECRET: &str = "placeholder-client-secret";

#[derive(Clone, Default)]
pub struct Shared {
    pub fake: Arc<Mutex<Option<FakeServer>>>,
    /// Added before every answer of the fake.
    pub delay: Arc<Mutex<Duration>>,
    /// Access tokens `/api/me` refuses with 401.
    pub revoked: Arc<Mutex<HashSet<String>>>,
    pub api_calls: Arc<AtomicU64>,
    /// `/api/me` calls answered 401.
    pub api_refused: Arc<AtomicU64>,
    pub token_calls: Arc<AtomicU64>,
    /// Of `token_calls`, the code exchanges (`grant_type=authorization_code`).
    pub code_calls: Arc<AtomicU64>,
    /// Answers `/oauth/token` gives, in order, before the fake answers
    /// again (a hostile or broken server).
    pub scripted: Arc<Mutex<std::collections::VecDeque<http::Response<Vec<u8>>>>>,
}

/// A running loopback server; stops when dropped.
pub struct FakeHttp {
    pub addr: SocketAddr,
    pub shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeHttp {
    pub async fn start() -> Self {
        let mut fake = FakeServer::new(CLIENT_ID, CLIENT_SECRET);
        fake.set_access_lifetime(Duration::from_secs(86_399));
        let shared = Shared {
            fake: Arc::new(Mutex::new(Some(fake))),
            ..Shared::default()
        };
        let app = Router::new()
            .route("/huge", get(huge))
            .route("/redirect", any(redirect))
            .route("/slow", get(slow))
            .route("/api/me", get(api_me))
            .fallback(fake_route)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeHttp { addr, shared, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn fake(&self) -> FakeGuard<'_> {
        FakeGuard(self.shared.fake.lock().unwrap())
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// `/oauth/token` answers `answer` once, before the fake answers again.
    pub fn script(&self, answer: http::Response<Vec<u8>>) {
        self.shared.scripted.lock().unwrap().push_back(answer);
    }

    pub fn revoke(&self, access_token: &str) {
        self.shared
            .revoked
            .lock()
            .unwrap()
            .insert(access_token.to_owned());
    }

    /// Consent for `location` (of `company-1`) and its code exchange, both
    /// handled by the fake in this process (no HTTP, nothing counted here).
    pub fn location_tokens(&self, location: &str) -> hoopai_oauth::TokenResponse {
        let code = self.fake().approve(&hoopai_oauth::fake::Install::location(
            "company-1",
            location,
        ));
        let request = hoopai_oauth::token_request(
            &self.config(),
            &hoopai_oauth::TokenRequest::authorization_code(code)
                .user_type(hoopai_oauth::UserType::Location),
        )
        .unwrap();
        let answer = self.fake().handle(&request, SystemTime::now());
        hoopai_oauth::parse_token_response(answer).unwrap()
    }

    /// A config pointed at this server.
    pub fn config(&self) -> hoopai_oauth::Config {
        hoopai_oauth::Config::builder(CLIENT_ID, CLIENT_SECRET)
            .base_url(self.base_url())
            .redirect_uri("http://127.0.0.1/oauth/callback")
            .build()
            .unwrap()
    }
}

pub struct FakeGuard<'a>(MutexGuard<'a, Option<FakeServer>>);

impl std::ops::Deref for FakeGuard<'_> {
    type Target = FakeServer;
    fn deref(&self) -> &FakeServer {
        self.0.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for FakeGuard<'_> {
    fn deref_mut(&mut self) -> &mut FakeServer {
        self.0.as_mut().unwrap()
    }
}

async fn fake_route(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let request = http::Request::from_parts(parts, bytes.to_vec());
    // Counted on arrival, before the delay.
    if request.uri().path().ends_with("/oauth/token") {
        shared.token_calls.fetch_add(1, Ordering::SeqCst);
        let code = b"grant_type=authorization_code";
        if request.body().windows(code.len()).any(|w| w == code) {
            shared.code_calls.fetch_add(1, Ordering::SeqCst);
        }
    }
    let delay = *shared.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if request.uri().path().ends_with("/oauth/token")
        && let Some(answer) = shared.scripted.lock().unwrap().pop_front()
    {
        return answer.map(Body::from);
    }
    let response = shared
        .fake
        .lock()
        .unwrap()
        .as_mut()
        .unwrap()
        .handle(&request, SystemTime::now());
    response.map(Body::from)
}

async fn huge() -> Response {
    Response::new(Body::from(vec![b'x'; 2 * 1024 * 1024]))
}

async fn redirect() -> Response {
    http::Response::builder()
        .status(302)
        .header("location", "/huge")
        .body(Body::empty())
        .unwrap()
}

async fn slow() -> Response {
    tokio::time::sleep(Duration::from_secs(30)).await;
    Response::new(Body::from("late"))
}

async fn api_me(State(shared): State<Shared>, request: Request) -> Response {
    shared.api_calls.fetch_add(1, Ordering::SeqCst);
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let refused = bearer.is_empty() || shared.revoked.lock().unwrap().contains(&bearer);
    if refused {
        shared.api_refused.fetch_add(1, Ordering::SeqCst);
    }
    let status = if refused { 401 } else { 200 };
    let body = if refused {
        r#"{"statusCode":401,"message":"Invalid JWT","error":"Unauthorized"}"#
    } else {
        r#"{"ok":true}"#
    };
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}
