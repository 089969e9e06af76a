//! The HTTP side of `chaos-server`: hyper on a small tokio runtime, one task
//! per connection. A connection can be closed without an answer (the task
//! drops it) and an answer can be held (the task sleeps).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::ServerSettings;
use super::ledger::{Ledger, Plan};
use crate::journal::{Delivery, FaultKind, ServerLine, duration_micros, now_micros};

/// The header naming the worker instance that sent a request.
pub const WORKER_HEADER: &str = "x-chaos-worker";
/// The header carrying the worker's request id.
pub const REQUEST_HEADER: &str = "x-chaos-request";

/// The largest request body read.
const MAX_BODY: usize = 1 << 20;

type Body = Full<Bytes>;

/// Serves until the process is killed.
///
/// # Errors
/// The address is not loopback, the port cannot be bound, or a log cannot
/// be created.
pub fn run(settings: ServerSettings) -> io::Result<()> {
    if !settings.listen.ip().is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a loopback address", settings.listen),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(settings))
}

fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn serve(settings: ServerSettings) -> io::Result<()> {
    let listener = TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    let addr_file = settings.addr_file.clone();
    let client_timeout = settings.client_timeout();
    let ledger = Arc::new(Mutex::new(Ledger::new(settings)?));
    lock(&ledger).log().write(&ServerLine::Listening {
        t: now_micros(),
        addr: addr.to_string(),
    });
    // Written whole, then renamed: a reader never sees half an address.
    let partial = addr_file.with_extension("partial");
    std::fs::write(&partial, addr.to_string())?;
    std::fs::rename(&partial, &addr_file)?;
    loop {
        let (stream, _) = listener.accept().await?;
        let ledger = Arc::clone(&ledger);
        tokio::spawn(async move {
            let abort = Arc::new(Notify::new());
            let service = {
                let abort = Arc::clone(&abort);
                service_fn(move |request| {
                    let (ledger, abort) = (Arc::clone(&ledger), Arc::clone(&abort));
                    async move {
                        Ok::<_, Infallible>(answer(request, ledger, &abort, client_timeout).await)
                    }
                })
            };
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            // Dropping the connection closes the socket with nothing written.
            tokio::select! {
                _ = connection => {}
                () = abort.notified() => {}
            }
        });
    }
}

fn plain(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

fn to_hyper(response: Response<Vec<u8>>) -> Response<Body> {
    response.map(|b| Full::new(Bytes::from(b)))
}

/// Closes the connection without an answer: never returns.
async fn drop_connection(abort: &Notify) -> Response<Body> {
    abort.notify_one();
    std::future::pending().await
}

async fn answer(
    request: Request<Incoming>,
    ledger: Arc<Mutex<Ledger>>,
    abort: &Notify,
    client_timeout: Duration,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => return plain(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let request = Request::from_parts(parts, bytes);
    let path = request.uri().path().to_owned();
    match (request.method().clone(), path.as_str()) {
        (Method::POST, "/admin/approve") => {
            let query: HashMap<String, String> =
                serde_urlencoded::from_str(request.uri().query().unwrap_or("")).unwrap_or_default();
            match query.get("location") {
                Some(location) if !location.is_empty() => {
                    plain(StatusCode::OK, lock(&ledger).approve(location))
                }
                _ => plain(StatusCode::BAD_REQUEST, "location is missing"),
            }
        }
        (Method::GET, "/admin/newest") => {
            let newest = lock(&ledger).newest();
            match serde_json::to_vec(&newest) {
                Ok(body) => plain(StatusCode::OK, body),
                Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "unserializable"),
            }
        }
        (Method::POST, p) if p.ends_with("/oauth/token") => match refresh_token_of(&request) {
            Some(token) => {
                // A task of its own: it runs to its end, and logs, even if
                // the client goes away and hyper drops this future.
                let task = tokio::spawn(refresh(request, token, ledger, client_timeout));
                match task.await {
                    Ok(Reply::Answer(response)) => to_hyper(response),
                    Ok(Reply::Drop) => drop_connection(abort).await,
                    Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "refresh task failed"),
                }
            }
            None => to_hyper(lock(&ledger).serve_other(&request)),
        },
        _ => to_hyper(lock(&ledger).serve_other(&request)),
    }
}

/// What to do with a refresh's connection.
enum Reply {
    /// Write this answer.
    Answer(Response<Vec<u8>>),
    /// Close the connection without an answer.
    Drop,
}

/// The refresh token of a `grant_type=refresh_token` form, if it is one.
fn refresh_token_of(request: &Request<Vec<u8>>) -> Option<String> {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(request.body()).ok()?;
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    (field("grant_type")?.as_str() == "refresh_token")
        .then(|| field("refresh_token"))
        .flatten()
}

fn header(request: &Request<Vec<u8>>, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn refresh(
    request: Request<Vec<u8>>,
    token: String,
    ledger: Arc<Mutex<Ledger>>,
    client_timeout: Duration,
) -> Reply {
    let ledger = &*ledger;
    let worker = header(&request, WORKER_HEADER);
    let wreq = header(&request, REQUEST_HEADER).and_then(|v| v.parse().ok());
    let plan: Plan = lock(ledger).plan_refresh(&token, worker, wreq);
    let first_half = plan.latency / 2;
    tokio::time::sleep(first_half).await;
    if plan.fault == Some(FaultKind::DropBeforeSpend) {
        lock(ledger).log_refresh(&plan, None, now_micros(), Delivery::Dropped);
        return Reply::Drop;
    }
    let served = lock(ledger).serve_refresh(&request, &plan);
    match plan.fault {
        Some(FaultKind::DropAfterSpend) => {
            lock(ledger).log_refresh(&plan, Some(&served), now_micros(), Delivery::Dropped);
            Reply::Drop
        }
        Some(FaultKind::HoldAfterSpend) => {
            tokio::time::sleep(client_timeout + Duration::from_millis(500)).await;
            let gave_up = plan.arrived + duration_micros(client_timeout);
            lock(ledger).log_refresh(&plan, Some(&served), gave_up, Delivery::Held);
            Reply::Answer(served.response)
        }
        _ => {
            tokio::time::sleep(plan.latency - first_half).await;
            lock(ledger).log_refresh(&plan, Some(&served), now_micros(), Delivery::Sent);
            Reply::Answer(served.response)
        }
    }
}
