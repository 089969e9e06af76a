//! The HTTP plumbing of the quickstart: the blocking client (ureq) and the
//! crate's fake HighLevel server served on a loopback port (tiny_http).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use hoopai_oauth::fake::FakeServer;

use super::Failure;

/// A ureq agent that hands every status back (the crate classifies errors),
/// follows no redirect (the consent redirect is read, not followed), and gives
/// up after 30 s.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Sends one request with ureq and returns the whole response, body capped
/// just above what the crate's parsers read.
pub fn send(
    agent: &ureq::Agent,
    request: http::Request<Vec<u8>>,
) -> Result<http::Response<Vec<u8>>, Failure> {
    let response = agent
        .run(request)
        .map_err(|e| Failure::Transport(e.to_string()))?;
    let (parts, mut body) = response.into_parts();
    let bytes = body
        .with_config()
        .limit(hoopai_oauth::MAX_BODY_BYTES as u64 + 1)
        .read_to_vec()
        .map_err(|e| Failure::Transport(e.to_string()))?;
    Ok(http::Response::from_parts(parts, bytes))
}

/// The fake server on a loopback port, served by tiny_http.
pub struct LocalFake {
    /// The fake itself, for setting it up.
    pub fake: Arc<Mutex<FakeServer>>,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl LocalFake {
    /// Starts serving `fake` on an ephemeral loopback port.
    pub fn start(fake: FakeServer) -> Result<Self, Failure> {
        let server = tiny_http::Server::http("127.0.0.1:0")
            .map_err(|e| Failure::Setup(format!("cannot listen on loopback: {e}")))?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .ok_or_else(|| Failure::Setup("no loopback port".into()))?;
        let server = Arc::new(server);
        let fake = Arc::new(Mutex::new(fake));
        let thread = {
            let (server, fake) = (Arc::clone(&server), Arc::clone(&fake));
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    serve(&fake, request);
                }
            })
        };
        Ok(LocalFake {
            fake,
            base_url: format!("http://127.0.0.1:{port}"),
            server,
            thread: Some(thread),
        })
    }

    /// Runs `f` on the fake (to approve installs, script faults, look inside).
    pub fn with<T>(&self, f: impl FnOnce(&mut FakeServer) -> T) -> Result<T, Failure> {
        let mut fake = self
            .fake
            .lock()
            .map_err(|_| Failure::Setup("fake server lock poisoned".into()))?;
        Ok(f(&mut fake))
    }
}

impl Drop for LocalFake {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Converts one tiny_http request to `http::Request`, lets the fake answer, and
/// writes the answer back.
fn serve(fake: &Mutex<FakeServer>, mut request: tiny_http::Request) {
    let mut body = Vec::new();
    if request.as_reader().read_to_end(&mut body).is_err() {
        let _ = request.respond(tiny_http::Response::empty(400));
        return;
    }
    let mut builder = http::Request::builder()
        .method(request.method().as_str())
        .uri(request.url());
    for h in request.headers() {
        builder = builder.header(h.field.as_str().as_str(), h.value.as_str());
    }
    let Ok(http_request) = builder.body(body) else {
        let _ = request.respond(tiny_http::Response::empty(400));
        return;
    };
    let answer = match fake.lock() {
        Ok(mut fake) => fake.handle(&http_request, SystemTime::now()),
        Err(_) => {
            let _ = request.respond(tiny_http::Response::empty(500));
            return;
        }
    };
    let (parts, body) = answer.into_parts();
    let mut response = tiny_http::Response::from_data(body).with_status_code(parts.status.as_u16());
    for (name, value) in &parts.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_str().as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    let _ = request.respond(response);
}
