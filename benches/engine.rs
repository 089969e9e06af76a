//! A full refresh cycle of 100,000 grants with ~1 KiB JWT-sized tokens: the
//! engine emits the requests, takes the answers, and the persists are drained.
//!
//! `cargo bench --bench engine` prints, before divan's table:
//! - resident memory (`/proc/self/statm`) of the engine loaded with the grants,
//!   against the raw bytes of the tokens it holds;
//!
//! and divan times (one iteration = the whole cycle of `GRANTS` grants; divide
//! by `GRANTS`, or read the items/s throughput):
//! - `cycle_with_parse`: answers handed in as `http::Response` bytes
//!   (`handle_send` with `SendOutcome::Response`: JSON parse included);
//! - `cycle_pre_parsed`: the same answers handed in already parsed
//!   (`SendOutcome::Parsed`): engine bookkeeping only (request building,
//!   scheduling, record building, write confirmation included);
//! - `parse_only`: `parse_token_response` of the same bodies, for reference.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use divan::Bencher;
use divan::counter::ItemsCount;
use hoopai_oauth::{
    AccessToken, Config, Engine, EngineSettings, GrantRecord, Output, RefreshToken, RequestId,
    Scopes, SendOutcome, TokenResponse, TokenSet, UserType, WriteOutcome, parse_token_response,
};

const GRANTS: usize = 100_000;
/// Length of each token, like a HighLevel JWT.
const TOKEN_LEN: usize = 1024;

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn config() -> Config {
    Config::builder(
        "6578278e879ad2646715ba9c-lq3w8xd2",
        "placeholder-client-secret",
    )
    .build()
    .expect("config")
}

/// A JWT-shaped placeholder of exactly `TOKEN_LEN` bytes, unique per
/// (kind, generation, grant).
fn jwt(kind: u8, generation: usize, grant: usize) -> String {
    const HEADER: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.";
    const FILL: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let mut s = String::with_capacity(TOKEN_LEN);
    s.push_str(HEADER);
    s.push_str(&format!("{kind:02x}{generation:06x}{grant:08x}."));
    let mut x = (grant as u64) << 20 | (generation as u64) << 4 | u64::from(kind);
    while s.len() < TOKEN_LEN {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s.push(FILL[(x >> 58) as usize] as char);
    }
    s
}

fn answer(generation: usize, grant: usize) -> TokenResponse {
    let mut t = TokenResponse::new(AccessToken::new(jwt(0, generation, grant)));
    t.token_type = Some("Bearer".into());
    t.expires_in = Some(86_399);
    t.refresh_token = Some(RefreshToken::new(jwt(1, generation, grant)));
    t.scope = Some(Scopes::new(
        "contacts.readonly contacts.write conversations.readonly conversations.write \
         locations.readonly oauth.readonly oauth.write",
    ));
    t.user_type = Some(UserType::Location);
    t.company_id = Some("5DP4iH6HLkQsiKESj6rh".into());
    t.location_id = Some(format!("loc{grant:017}"));
    t.user_id = Some("Uf3kJ0aL2mQ9xR7tY1wZ".into());
    t.plan_id = Some("plan-basic".into());
    t.extra.insert(
        "refreshTokenId".into(),
        serde_json::Value::String(format!("rt{generation:06}{grant:016}")),
    );
    t
}

fn grant_name(i: usize) -> String {
    format!("loc{i:017}")
}

/// An engine holding `GRANTS` grants, all due for refresh one day after `t0`.
fn loaded() -> (Engine, usize) {
    // Every grant comes due at once and is answered in one go: no cap.
    // Nor any pacing: one budget token per grant.
    let settings = EngineSettings::default()
        .max_in_flight(GRANTS)
        .request_budget(GRANTS as u32, Duration::from_secs(10));
    let mut engine = Engine::new(config(), settings);
    let mut token_bytes = 0;
    for i in 0..GRANTS {
        let tokens = TokenSet::new(answer(0, i), t0());
        token_bytes += tokens.access_token().len() + tokens.refresh_token().map_or(0, |r| r.len());
        engine
            .restore(GrantRecord::new(grant_name(i), tokens), t0())
            .expect("restore");
    }
    (engine, token_bytes)
}

fn due() -> SystemTime {
    t0() + Duration::from_secs(86_400)
}

/// Emits every request; returns (id, grant index) in emission order.
fn emit(engine: &mut Engine, now: SystemTime) -> Vec<(RequestId, usize)> {
    engine.handle_timeout(now).unwrap();
    let mut ids = Vec::with_capacity(GRANTS);
    while let Some(out) = engine.poll_output(now) {
        if let Output::Send {
            id, grant, request, ..
        } = out
        {
            let i: usize = grant.as_str()[3..].parse().expect("grant index");
            black_box(request);
            ids.push((id, i));
        }
    }
    ids
}

/// Drains what an answer produced (the persist, confirmed as written, and
/// the event).
fn drain(engine: &mut Engine, now: SystemTime) -> usize {
    let mut n = 0;
    while let Some(out) = engine.poll_output(now) {
        if let Output::Persist { record, .. } = &out {
            let (grant, version) = (record.grant.as_str(), record.version);
            engine
                .handle_write(grant, version, WriteOutcome::Written, now)
                .expect("write outcome");
        }
        black_box(out);
        n += 1;
    }
    n
}

fn body(generation: usize, grant: usize) -> http::Response<Vec<u8>> {
    let bytes = serde_json::to_vec(&answer(generation, grant)).expect("body");
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(bytes)
        .expect("response")
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn cycle_with_parse(bencher: Bencher) {
    bencher
        .counter(ItemsCount::new(GRANTS))
        .with_inputs(|| {
            let (engine, _) = loaded();
            let bodies: Vec<_> = (0..GRANTS).map(|i| Some(body(1, i))).collect();
            (engine, bodies)
        })
        .bench_local_values(|(mut engine, mut bodies)| {
            let now = due();
            let ids = emit(&mut engine, now);
            let mut outputs = 0;
            for (id, i) in ids {
                let resp = bodies[i].take().expect("one answer per grant");
                engine
                    .handle_send(id, SendOutcome::Response(resp), now)
                    .expect("answer");
                outputs += drain(&mut engine, now);
            }
            assert_eq!(outputs, 2 * GRANTS);
            engine
        });
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn cycle_pre_parsed(bencher: Bencher) {
    bencher
        .counter(ItemsCount::new(GRANTS))
        .with_inputs(|| {
            let (engine, _) = loaded();
            let answers: Vec<_> = (0..GRANTS).map(|i| Some(answer(1, i))).collect();
            (engine, answers)
        })
        .bench_local_values(|(mut engine, mut answers)| {
            let now = due();
            let ids = emit(&mut engine, now);
            let mut outputs = 0;
            for (id, i) in ids {
                let token = answers[i].take().expect("one answer per grant");
                engine
                    .handle_send(id, SendOutcome::Parsed(Ok(token)), now)
                    .expect("answer");
                outputs += drain(&mut engine, now);
            }
            assert_eq!(outputs, 2 * GRANTS);
            engine
        });
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn parse_only(bencher: Bencher) {
    bencher
        .counter(ItemsCount::new(GRANTS))
        .with_inputs(|| (0..GRANTS).map(|i| body(1, i)).collect::<Vec<_>>())
        .bench_local_values(|bodies| {
            bodies
                .into_iter()
                .map(|b| parse_token_response(b).expect("parse"))
                .collect::<Vec<_>>()
        });
}

/// Resident set size in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn memory_report() {
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    let before = rss();
    let (mut engine, token_bytes) = loaded();
    let after = rss();
    let held = after.saturating_sub(before);
    println!(
        "engine memory: {GRANTS} grants, {:.1} MiB of tokens held, resident +{:.1} MiB: {:.2}x the token bytes",
        mib(token_bytes),
        mib(held),
        held as f64 / token_bytes as f64
    );
    // A whole refresh cycle (answers made one at a time), then again.
    let now = due();
    let ids = emit(&mut engine, now);
    for (id, i) in ids {
        engine
            .handle_send(id, SendOutcome::Parsed(Ok(answer(1, i))), now)
            .expect("answer");
        drain(&mut engine, now);
    }
    let cycled = rss().saturating_sub(before);
    println!(
        "after one refresh cycle: resident +{:.1} MiB: {:.2}x the token bytes",
        mib(cycled),
        cycled as f64 / token_bytes as f64
    );
    drop(engine);
}

fn main() {
    memory_report();
    divan::main();
}
