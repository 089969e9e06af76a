//! The HTTP side: hyper on tokio. Requests under `/_fake/` go to the admin
//! API; every other request goes to the fake, after the next scripted fault
//! (if any), and into the log.
//!
//! Bounds: at most `max_connections` connections served at once (more wait
//! in the accept queue), request heads of at most 64 KiB read within 10 s,
//! bodies of at most `max_body_bytes` read within 10 s (else `413` / `408`),
//! a log of at most `log_capacity` entries.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use crate::faults::Scripted;
use crate::journal::{Counters, Entry};
use crate::state::{Answer, State, json, lock};

/// How long a client may take to send a request head, and then its body.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head read.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Returned by the service to make hyper close the connection unanswered.
#[derive(Debug)]
pub struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by a scripted fault")
    }
}

impl std::error::Error for DropConnection {}

/// Serves `listener` until `stop` is notified.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    max_connections: usize,
    stop: Arc<Notify>,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let accepted = tokio::select! {
            () = stop.notified() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it
                // was accepted: wait a little, then go on.
                eprintln!("hoopai-fake: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        Counters::add(&state.counters.connections);
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |request| handle(state.clone(), request));
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            // An error here is the client's (gone, too slow, malformed) or a
            // scripted drop: nothing to do but close.
            let _ = connection.await;
        });
    }
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Result<Answer, DropConnection> {
    let path = request.uri().path();
    if path == "/_fake" || path.starts_with("/_fake/") {
        Counters::add(&state.counters.admin_requests);
        let (parts, body) = request.into_parts();
        return Ok(match read_body(&state, body).await {
            Ok(body) => crate::admin::route(&state, &parts, &body).await,
            Err(answer) => answer,
        });
    }
    let at = state.clock.now();
    let fault = lock(&state.faults).next();
    // The entry's number is given when it is logged, once answered (see
    // `record`).
    let seq = 0;
    let (parts, body) = request.into_parts();
    if fault == Some(Scripted::DropConnection) {
        Counters::add(&state.counters.connections_dropped);
        let mut entry = Entry::of_request(seq, at, &parts, &[]);
        entry.fault = Some(Scripted::DropConnection.name().to_owned());
        record(&state, entry);
        return Err(DropConnection);
    }
    let body = match read_body(&state, body).await {
        Ok(body) => body,
        Err(answer) => {
            let mut entry = Entry::of_request(seq, at, &parts, &[]);
            entry.status = Some(answer.status().as_u16());
            entry.message = answer.status().canonical_reason().map(str::to_owned);
            record(&state, entry);
            return Ok(answer);
        }
    };
    let mut entry = Entry::of_request(seq, at, &parts, &body);
    let request = Request::from_parts(parts, body);
    let response = {
        let mut fake = lock(&state.fake);
        if let Some(f) = fault.as_ref().and_then(Scripted::to_fake) {
            fake.fail_next(f, 1);
        }
        fake.handle(&request, at)
    };
    entry.fault = fault.map(|f| f.name().to_owned());
    entry.answered(&response);
    record(&state, entry);
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(parts, Full::new(Bytes::from(body))))
}

/// Logs `entry`, numbered as it is logged: the log's order is the order
/// requests were answered, so that a reader polling with `since=next` never
/// misses a request that arrived before another but was answered after it.
fn record(state: &State, mut entry: Entry) {
    let line = {
        let mut journal = lock(&state.journal);
        entry.seq = journal.next_seq();
        let line = (!state.quiet).then(|| entry.line());
        journal.push(entry);
        line
    };
    if let Some(line) = line {
        eprintln!("{line}");
    }
}

/// The whole body, or the `413` / `408` / `400` answer.
async fn read_body(state: &State, body: Incoming) -> Result<Vec<u8>, Answer> {
    match tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(body, state.max_body_bytes).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Counters::add(&state.counters.bodies_too_large);
            Err(nest(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request entity too large",
            ))
        }
        Ok(Err(_)) => Err(nest(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        )),
        Err(_) => {
            Counters::add(&state.counters.bodies_timed_out);
            Err(nest(
                StatusCode::REQUEST_TIMEOUT,
                "the request body was not received in time",
            ))
        }
    }
}

/// A NestJS-shaped error answer.
fn nest(status: StatusCode, message: &str) -> Answer {
    let body = serde_json::json!({
        "statusCode": status.as_u16(),
        "message": message,
        "error": status.canonical_reason(),
    });
    json(status, &body)
}
