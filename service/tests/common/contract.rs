//! The contract every `GrantStore` passes: one generic suite, run against
//! each store by `tests/store_contract.rs`.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hoopai_oauth::{BudgetClaim, ClaimOutcome, WriteOutcome};
use hoopai_oauth::{GrantId, MAX_RECORD_VERSION};
use hoopai_oauth_service::{GrantStore, StoreError};
use tokio::sync::Barrier;

use super::{record, refresh_of};

/// Writes a row as raw text, bypassing the store (to plant corrupted rows).
pub trait Raw: Send + Sync {
    /// Stores `text` as the row of `grant` at `version`.
    fn write_raw(&self, grant: &str, version: i64, text: &str) -> impl Future<Output = ()> + Send;
}

fn id(s: &str) -> GrantId {
    GrantId::new(s)
}

pub async fn empty_store<S: GrantStore>(store: S) {
    assert_eq!(store.load(&id("loc-1")).await.unwrap(), None);
    let page = store.load_page(None, 100).await.unwrap();
    assert!(page.records.is_empty() && page.corrupt.is_empty());
    assert_eq!(page.next, None);
    assert!(!store.delete(&id("loc-1")).await.unwrap());
}

pub async fn create_only<S: GrantStore>(store: S) {
    let first = record("loc-1", 1, "a");
    assert_eq!(
        store.compare_and_swap(&first, None).await.unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(store.load(&id("loc-1")).await.unwrap(), Some(first.clone()));
    // A second create loses to the first, and is handed it.
    let second = record("loc-1", 1, "b");
    match store.compare_and_swap(&second, None).await.unwrap() {
        WriteOutcome::Conflict(current) => assert_eq!(*current, first),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        refresh_of(&store.load(&id("loc-1")).await.unwrap().unwrap()),
        refresh_of(&first)
    );
}

pub async fn update_and_conflict<S: GrantStore>(store: S) {
    let v1 = record("loc-1", 1, "v1");
    store.compare_and_swap(&v1, None).await.unwrap();
    let v2 = record("loc-1", 2, "v2");
    assert_eq!(
        store.compare_and_swap(&v2, Some(1)).await.unwrap(),
        WriteOutcome::Written
    );
    // A writer still at version 1 loses and gets version 2.
    let stale = record("loc-1", 2, "stale");
    match store.compare_and_swap(&stale, Some(1)).await.unwrap() {
        WriteOutcome::Conflict(current) => assert_eq!(*current, v2),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Versions may jump (the engine bumps by one or more).
    let v7 = record("loc-1", 7, "v7");
    assert_eq!(
        store.compare_and_swap(&v7, Some(2)).await.unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(store.load(&id("loc-1")).await.unwrap(), Some(v7));
    // Other grants are untouched.
    assert_eq!(store.load(&id("loc-2")).await.unwrap(), None);
}

pub async fn missing<S: GrantStore>(store: S) {
    let v2 = record("loc-1", 2, "v2");
    assert_eq!(
        store.compare_and_swap(&v2, Some(1)).await.unwrap(),
        WriteOutcome::NoRecord
    );
    assert_eq!(
        store.load(&id("loc-1")).await.unwrap(),
        None,
        "a missing row is not created"
    );
    // Deleted under a writer: also missing.
    store
        .compare_and_swap(&record("loc-1", 1, "v1"), None)
        .await
        .unwrap();
    assert!(store.delete(&id("loc-1")).await.unwrap());
    assert_eq!(
        store.compare_and_swap(&v2, Some(1)).await.unwrap(),
        WriteOutcome::NoRecord
    );
}

pub async fn invalid_writes<S: GrantStore>(store: S) {
    store
        .compare_and_swap(&record("loc-1", 3, "v3"), None)
        .await
        .unwrap();
    for (version, replaces) in [
        (3, Some(3)),
        (2, Some(3)),
        (MAX_RECORD_VERSION + 1, Some(3)),
    ] {
        match store
            .compare_and_swap(&record("loc-1", version, "bad"), replaces)
            .await
        {
            Err(StoreError::InvalidWrite { grant, reason }) => {
                assert_eq!(grant.as_str(), "loc-1");
                assert!(!reason.is_empty());
            }
            other => {
                panic!("version {version} over {replaces:?}: expected InvalidWrite, got {other:?}")
            }
        }
    }
    assert!(matches!(
        store
            .put(&record("loc-1", MAX_RECORD_VERSION + 1, "bad"))
            .await,
        Err(StoreError::InvalidWrite { .. })
    ));
    // The highest version is kept exactly.
    let top = record("loc-1", MAX_RECORD_VERSION, "top");
    assert_eq!(
        store.compare_and_swap(&top, Some(3)).await.unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(
        store.load(&id("loc-1")).await.unwrap().unwrap().version,
        MAX_RECORD_VERSION
    );
}

pub async fn put_and_delete<S: GrantStore>(store: S) {
    store.put(&record("loc-1", 5, "five")).await.unwrap();
    // `put` overwrites whatever is stored, even an older version number.
    store.put(&record("loc-1", 2, "two")).await.unwrap();
    let stored = store.load(&id("loc-1")).await.unwrap().unwrap();
    assert_eq!(
        (stored.version, refresh_of(&stored)),
        (2, refresh_of(&record("loc-1", 2, "two")))
    );
    // Compare-and-swap sees what `put` wrote.
    assert_eq!(
        store
            .compare_and_swap(&record("loc-1", 3, "three"), Some(2))
            .await
            .unwrap(),
        WriteOutcome::Written
    );
    assert!(store.delete(&id("loc-1")).await.unwrap());
    assert!(!store.delete(&id("loc-1")).await.unwrap());
    assert_eq!(store.load(&id("loc-1")).await.unwrap(), None);
    // A deleted grant can be created again.
    assert_eq!(
        store
            .compare_and_swap(&record("loc-1", 1, "again"), None)
            .await
            .unwrap(),
        WriteOutcome::Written
    );
}

pub async fn round_trip<S: GrantStore>(store: S) {
    // Every field survives, byte for byte: unicode ids, long tokens, statuses, leases.
    let mut r = record("loc-ünïcode/1 'quoted'", 1, &"x".repeat(2000));
    r.lease = Some(hoopai_oauth::Lease {
        holder: "worker-7".into(),
        until: super::t0() + std::time::Duration::from_secs(120),
    });
    r.status = hoopai_oauth::GrantStatus::Suspended {
        until: super::t0() + std::time::Duration::from_secs(3600),
    };
    store.compare_and_swap(&r, None).await.unwrap();
    let back = store.load(&r.grant).await.unwrap().unwrap();
    assert_eq!(back, r);
    assert_eq!(refresh_of(&back), refresh_of(&r));
    assert_eq!(back.access_token().secret(), r.access_token().secret());
}

pub async fn paging<S: GrantStore>(store: S) {
    const N: usize = 2_500;
    for i in 0..N {
        store
            .put(&record(&format!("loc-{i:05}"), 1, "p"))
            .await
            .unwrap();
    }
    for limit in [1_000, 500, 2_500, 7] {
        let mut seen = Vec::new();
        let mut after: Option<GrantId> = None;
        let mut pages = 0;
        loop {
            let page = store.load_page(after.as_ref(), limit).await.unwrap();
            pages += 1;
            assert!(page.records.len() <= limit);
            assert!(page.corrupt.is_empty());
            seen.extend(page.records.iter().map(|r| r.grant.to_string()));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let expected: Vec<String> = (0..N).map(|i| format!("loc-{i:05}")).collect();
        assert_eq!(seen, expected, "limit {limit}: every grant once, in order");
        assert!(pages >= N.div_ceil(limit), "limit {limit}: {pages} pages");
    }
}

pub async fn corrupt_rows<S: GrantStore, R: Raw>(store: S, raw: R) {
    let good = record("loc-good", 1, "good");
    store.put(&good).await.unwrap();
    let other_grant = serde_json::to_string(&record("loc-someone-else", 1, "x")).unwrap();
    let mut schema2 = serde_json::to_value(record("loc-schema", 1, "s")).unwrap();
    schema2["schema"] = 2.into();
    let mut wrong_type = serde_json::to_value(record("loc-type", 1, "t")).unwrap();
    let secret = "refresh-placeholder-should-never-be-printed-0000000000";
    wrong_type["version"] = secret.into();
    let rows = [
        (
            "loc-not-json",
            1,
            "{not json".to_owned(),
            "not a grant record",
        ),
        ("loc-schema", 1, schema2.to_string(), "schema 2"),
        ("loc-other", 1, other_grant, "names grant"),
        (
            "loc-version",
            9,
            serde_json::to_string(&record("loc-version", 1, "v")).unwrap(),
            "version is 9",
        ),
        ("loc-type", 1, wrong_type.to_string(), "not a grant record"),
    ];
    for (grant, version, text, _) in &rows {
        raw.write_raw(grant, *version, text).await;
    }
    // `load`: a typed error naming the grant, never a panic, no secret.
    for (grant, _, _, why) in &rows {
        match store.load(&id(grant)).await {
            Err(StoreError::Corrupt(c)) => {
                assert_eq!(c.grant.as_str(), *grant);
                assert!(c.reason.contains(why), "{grant}: {}", c.reason);
                let shown = StoreError::Corrupt(c).to_string();
                assert!(shown.contains(grant), "{shown}");
                assert!(!shown.contains(secret), "{shown}");
            }
            other => panic!("{grant}: expected Corrupt, got {other:?}"),
        }
    }
    // `load_page`: the bad rows are reported, the good one still loads.
    let page = store.load_page(None, 100).await.unwrap();
    assert_eq!(page.records, vec![good.clone()]);
    let bad: BTreeSet<&str> = page.corrupt.iter().map(|c| c.grant.as_str()).collect();
    let expected: BTreeSet<&str> = rows.iter().map(|r| r.0).collect();
    assert_eq!(bad, expected);
    // A write that loses to a corrupt row says so; the row is left as it was.
    match store
        .compare_and_swap(&record("loc-not-json", 6, "new"), Some(5))
        .await
    {
        Err(StoreError::Corrupt(c)) => assert_eq!(c.grant.as_str(), "loc-not-json"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        store.load(&id("loc-not-json")).await,
        Err(StoreError::Corrupt(_))
    ));
    // A corrupt row can be replaced by version, or deleted.
    assert_eq!(
        store
            .compare_and_swap(&record("loc-not-json", 2, "fixed"), Some(1))
            .await
            .unwrap(),
        WriteOutcome::Written
    );
    assert!(store.load(&id("loc-not-json")).await.unwrap().is_some());
    assert!(store.delete(&id("loc-schema")).await.unwrap());
}

/// Many tasks race compare-and-swap on one grant, version after version:
/// exactly one wins each version, and every loser is handed the winner's record.
pub async fn racing_writers<S: GrantStore>(store: S) {
    const TASKS: usize = 16;
    const ROUNDS: u64 = 20;
    let store = Arc::new(store);
    store
        .compare_and_swap(&record("loc-1", 1, "start"), None)
        .await
        .unwrap();
    for round in 1..=ROUNDS {
        let barrier = Arc::new(Barrier::new(TASKS));
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            tasks.push(tokio::spawn(async move {
                let mine = record("loc-1", round + 1, &format!("r{round}-t{t}"));
                barrier.wait().await;
                (
                    t,
                    mine.clone(),
                    store.compare_and_swap(&mine, Some(round)).await.unwrap(),
                )
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            let (t, mine, outcome) = task.await.unwrap();
            match outcome {
                WriteOutcome::Written => winners.push(mine),
                WriteOutcome::Conflict(current) => losers.push((t, *current)),
                other => panic!("round {round}: task {t}: {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one winner");
        let stored = store.load(&id("loc-1")).await.unwrap().unwrap();
        assert_eq!(
            stored, winners[0],
            "round {round}: the winner's record is stored"
        );
        for (t, current) in losers {
            assert_eq!(
                current.version,
                round + 1,
                "round {round}: task {t} saw the new version"
            );
            assert_eq!(refresh_of(&current), refresh_of(&winners[0]));
        }
    }
}

/// Many tasks race to create the same grant: one create wins.
pub async fn racing_create<S: GrantStore>(store: S) {
    const TASKS: usize = 16;
    let store = Arc::new(store);
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let mine = record("loc-new", 1, &format!("t{t}"));
            barrier.wait().await;
            (
                mine.clone(),
                store.compare_and_swap(&mine, None).await.unwrap(),
            )
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (mine, outcome) = task.await.unwrap();
        match outcome {
            WriteOutcome::Written => winners.push(mine),
            WriteOutcome::Conflict(current) => assert_eq!(current.version, 1),
            other => panic!("a create: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(
        store.load(&id("loc-new")).await.unwrap().unwrap(),
        winners[0]
    );
}

/// Grant ids a store cannot keep are refused on write with a typed error
/// (never retried as a database failure); the longest it keeps round-trips.
pub async fn grant_id_limits<S: GrantStore>(store: S) {
    use hoopai_oauth::MAX_GRANT_ID_BYTES;
    // The longest id, in multi-byte characters (3 bytes each) plus ASCII.
    let longest = format!("{}{}", "€".repeat(80), "x".repeat(MAX_GRANT_ID_BYTES - 240));
    assert_eq!(longest.len(), MAX_GRANT_ID_BYTES);
    let r = record(&longest, 1, "longest");
    assert_eq!(
        store.compare_and_swap(&r, None).await.unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(store.load(&r.grant).await.unwrap(), Some(r.clone()));
    let page = store.load_page(None, 10).await.unwrap();
    assert_eq!(page.records, vec![r]);

    let token_like = format!("refresh-{}", "y".repeat(MAX_GRANT_ID_BYTES));
    for (grant, why) in [(token_like.as_str(), "longer than"), ("loc-\0-nul", "NUL")] {
        let r = record(grant, 1, "bad");
        for outcome in [
            store.compare_and_swap(&r, None).await.map(|_| ()),
            store.put(&r).await,
        ] {
            match outcome {
                Err(e @ StoreError::InvalidWrite { .. }) => {
                    let shown = e.to_string();
                    assert!(shown.contains(why), "{shown}");
                    assert!(!shown.contains(&token_like), "the id is shortened: {shown}");
                    assert!(!shown.contains('\0'), "{shown:?}");
                }
                other => panic!("{grant:?}: expected InvalidWrite, got {other:?}"),
            }
        }
    }
    // Nothing can be stored under an id with NUL: found nowhere.
    assert_eq!(store.load(&id("loc-\0-nul")).await.unwrap(), None);
    assert!(!store.delete(&id("loc-\0-nul")).await.unwrap());
    assert_eq!(store.load_page(None, 10).await.unwrap().records.len(), 1);
}

fn granted(outcome: ClaimOutcome) -> (u32, u32, u32, Duration) {
    match outcome {
        ClaimOutcome::Granted {
            sends,
            others,
            holders,
            next_free_in,
        } => (sends, others, holders, next_free_in),
        other => panic!("{other:?}"),
    }
}

/// The shared request budget: sends take what is left of `max`, counted
/// requests keep to `others_max`, holders are counted, tokens come back
/// after the window, and keys are apart.
pub async fn budget_claims<S: GrantStore>(store: S) {
    let window = Duration::from_millis(1_500);
    let claim = |key: &str, holder: &str, sends, others| {
        BudgetClaim::new(key, holder, (sends, others), (10, 4), window)
    };
    let (s, o, h, _) = granted(store.claim_budget(&claim("app", "a", 6, 0)).await.unwrap());
    assert_eq!((s, o, h), (6, 0, 1));
    // Counted requests: at most 4 of the window, and only what is left.
    let (s, o, h, _) = granted(store.claim_budget(&claim("app", "b", 0, 9)).await.unwrap());
    assert_eq!((s, o, h), (0, 4, 2));
    let (s, o, h, next) = granted(store.claim_budget(&claim("app", "a", 5, 1)).await.unwrap());
    assert_eq!((s, o, h), (0, 0, 2), "the budget is spent");
    assert!(
        next > Duration::ZERO && next <= window,
        "tokens come back within the window: {next:?}"
    );
    // Another key is another budget.
    let (s, o, _, _) = granted(
        store
            .claim_budget(&claim("app/loc-1", "a", 10, 0))
            .await
            .unwrap(),
    );
    assert_eq!((s, o), (10, 0));
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    let (s, o, h, _) = granted(store.claim_budget(&claim("app", "c", 3, 3)).await.unwrap());
    assert_eq!(
        (s, o, h),
        (3, 3, 3),
        "the window ended; the holders are remembered longer"
    );
}

/// Many tasks claim at once on one key: together they are granted exactly
/// the budget, never more.
pub async fn racing_budget_claims<S: GrantStore>(store: S) {
    const TASKS: usize = 16;
    let store = Arc::new(store);
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let claim = BudgetClaim::new(
                "race",
                format!("holder-{t}"),
                (5, 2),
                (40, 10),
                Duration::from_secs(60),
            );
            barrier.wait().await;
            granted(store.claim_budget(&claim).await.unwrap())
        }));
    }
    let (mut sends, mut others) = (0, 0);
    for task in tasks {
        let (s, o, _, _) = task.await.unwrap();
        sends += s;
        others += o;
    }
    assert_eq!(others, 10, "counted requests keep to their share");
    assert_eq!(sends + others, 40, "the whole budget is granted, no more");
}
