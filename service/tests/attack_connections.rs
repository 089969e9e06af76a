//! Attacks on the served app's connections over loopback, with raw TCP
//! sockets: headers sent a byte at a time, bodies sent slower still, and
//! connections left idle. Without timeouts each holds a connection (and a
//! task) for as long as the attacker likes; 200 of them stayed open past
//! 70 s. See `docs/security.md`.

mod common;

use std::time::{Duration, Instant};

use common::app::{App, Limits};
use common::fake_http::FakeHttp;
use hoopai_oauth::{EngineSettings, Scope};
use hoopai_oauth_service::{OAuthRouter, ServiceSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short limits, so the test is quick: the defaults are 10 s, 10 s and 30 s.
fn limits() -> Limits {
    Limits::default()
        .header_read_timeout(Duration::from_secs(1))
        .body_timeout(Duration::from_secs(1))
        .request_timeout(Duration::from_secs(2))
}

async fn app() -> App {
    App::start_with(
        FakeHttp::start().await,
        ServiceSettings::new(EngineSettings::default()),
        |config| config,
        |_, _, service| {
            let routes = OAuthRouter::new(service, [Scope::CONTACTS_READONLY]);
            axum::Router::new().nest("/oauth", routes.into_router())
        },
        limits(),
    )
    .await
}

fn addr(app: &App) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Feeds `bytes` one every `every` until the server closes the connection
/// (or `give_up` passes); returns how long the connection lived and what
/// the server sent.
async fn trickle(
    mut stream: TcpStream,
    head: &'static [u8],
    bytes: Vec<u8>,
    every: Duration,
    give_up: Duration,
) -> (Duration, Vec<u8>) {
    let began = Instant::now();
    let _ = stream.write_all(head).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let mut rest = bytes.iter();
    while began.elapsed() < give_up {
        match tokio::time::timeout(every, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (began.elapsed(), answer),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {
                let Some(byte) = rest.next() else { continue };
                if stream.write_all(&[*byte]).await.is_err() {
                    return (began.elapsed(), answer);
                }
            }
        }
    }
    (began.elapsed(), answer)
}

/// Opens `n` connections that each run `attack`; returns the longest life.
async fn many<F, Fut>(app: &App, n: usize, attack: F) -> Vec<(Duration, Vec<u8>)>
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = (Duration, Vec<u8>)> + Send + 'static,
{
    let mut tasks = Vec::new();
    for _ in 0..n {
        let stream = TcpStream::connect(addr(app)).await.unwrap();
        tasks.push(tokio::spawn(attack(stream)));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

const GIVE_UP: Duration = Duration::from_secs(15);

/// Attack: request heads sent a byte every 200 ms, forever. Defence: the
/// header read timeout closes each connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_at_the_header_timeout() {
    let app = app().await;
    let lives = many(&app, 100, |stream| {
        trickle(
            stream,
            b"GET /oauth/install HTTP/1.1\r\nHost: app\r\n",
            b"X-Slow: a".repeat(100),
            Duration::from_millis(200),
            GIVE_UP,
        )
    })
    .await;
    for (life, _) in &lives {
        assert!(*life < Duration::from_secs(4), "a slow head lived {life:?}");
    }
    app.service.shutdown().await;
}

/// Attack: a webhook body of 100 KB announced, then sent a byte every
/// 300 ms (never silent long enough for the body timeout). Defence: the
/// request timeout answers `408` and the connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_at_the_request_timeout() {
    let app = app().await;
    let lives = many(&app, 100, |stream| {
        trickle(
            stream,
            b"POST /oauth/webhook HTTP/1.1\r\nHost: app\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
            b"x".repeat(1000),
            Duration::from_millis(300),
            GIVE_UP,
        )
    })
    .await;
    for (life, answer) in &lives {
        assert!(*life < Duration::from_secs(5), "a slow body lived {life:?}");
        let answer = String::from_utf8_lossy(answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    app.service.shutdown().await;
}

/// Attack: a body that stops after its first byte. Defence: the body
/// timeout ends the read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_at_the_body_timeout() {
    let app = app().await;
    let lives = many(&app, 50, |stream| {
        trickle(
            stream,
            b"POST /oauth/webhook HTTP/1.1\r\nHost: app\r\nContent-Length: 100000\r\n\r\n{",
            Vec::new(),
            Duration::from_millis(200),
            GIVE_UP,
        )
    })
    .await;
    for (life, answer) in &lives {
        assert!(
            *life < Duration::from_secs(3),
            "a stalled body lived {life:?}"
        );
        let answer = String::from_utf8_lossy(answer);
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    }
    app.service.shutdown().await;
}

/// Attack: connections opened and left silent, before a request or after
/// one (kept alive). Defence: the header timeout is also the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let app = app().await;
    for head in [
        &b""[..],
        b"GET /oauth/nothing HTTP/1.1\r\nHost: app\r\n\r\n",
    ] {
        let lives = many(&app, 50, |stream| {
            trickle(
                stream,
                head,
                Vec::new(),
                Duration::from_millis(200),
                GIVE_UP,
            )
        })
        .await;
        for (life, answer) in &lives {
            assert!(
                *life < Duration::from_secs(3),
                "an idle connection lived {life:?} after {:?}",
                String::from_utf8_lossy(answer)
            );
        }
    }
    app.service.shutdown().await;
}
