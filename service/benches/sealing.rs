//! What sealing records at rest costs (see `docs/encryption-at-rest.md`).
//!
//! The record is a typical one: 1 KiB JWT-sized access and refresh tokens,
//! as real HighLevel tokens are, about 2.4 KiB of JSON.
//! - `record`: JSON alone (what a store without keys does), then sealed
//!   (JSON + XChaCha20-Poly1305 + base64, a fresh nonce from the OS), and
//!   opened back;
//! - `sqlite_put`: one `SqliteStore::put` of that record, plain and sealed,
//!   with `synchronous=NORMAL` (the commit reaches the WAL, not the disk:
//!   the CPU cost shows) and `FULL` (the default: each commit waits for the
//!   disk);
//! - `sqlite_load_page`: one page of 1,000 such records, plain and sealed
//!   (a restore reads pages like this one).
//!
//! Run: `cargo bench -p hoopai-oauth-service --bench sealing`.

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use hoopai_oauth::{AccessToken, GrantId, GrantRecord, RefreshToken, TokenResponse, TokenSet};
use hoopai_oauth_service::{GrantStore, Keyring, RecordKey, SqliteOptions, SqliteStore};

fn main() {
    divan::main();
}

fn keys() -> Keyring {
    Keyring::new([
        RecordKey::new("k2", [2; 32]).unwrap(),
        RecordKey::new("k1", [1; 32]).unwrap(),
    ])
    .unwrap()
}

/// A JWT-sized token: 1 KiB.
fn token(kind: &str, i: usize) -> String {
    let head = format!("{kind}-{i:08}-");
    let mut s = head.clone();
    s.extend(std::iter::repeat_n('x', 1024 - head.len()));
    s
}

fn record(i: usize) -> GrantRecord {
    let grant = format!("loc-{i:08}");
    let mut answer = TokenResponse::new(AccessToken::new(token("access", i)));
    answer.refresh_token = Some(RefreshToken::new(token("refresh", i)));
    answer.expires_in = Some(86_399);
    answer.location_id = Some(grant.clone());
    answer.company_id = Some("company-1".into());
    answer.scope = Some(hoopai_oauth::Scopes::new(
        "contacts.readonly contacts.write locations.readonly",
    ));
    let obtained = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let mut record = GrantRecord::new(grant.as_str(), TokenSet::new(answer, obtained));
    record.version = 7;
    record
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---- one record -------------------------------------------------------------

#[divan::bench_group]
mod record {
    use super::*;

    #[divan::bench]
    fn json_encode(bencher: divan::Bencher) {
        let r = record(1);
        let len = serde_json::to_string(&r).unwrap().len();
        assert!((2_000..3_000).contains(&len), "{len} bytes");
        bencher.bench_local(|| serde_json::to_string(divan::black_box(&r)).unwrap());
    }

    #[divan::bench]
    fn json_decode(bencher: divan::Bencher) {
        let text = serde_json::to_string(&record(1)).unwrap();
        bencher
            .bench_local(|| serde_json::from_str::<GrantRecord>(divan::black_box(&text)).unwrap());
    }

    #[divan::bench]
    fn seal(bencher: divan::Bencher) {
        let keys = keys();
        let r = record(1);
        bencher.bench_local(|| keys.seal_record(divan::black_box(&r)).unwrap());
    }

    #[divan::bench]
    fn open(bencher: divan::Bencher) {
        let keys = keys();
        let r = record(1);
        let sealed = keys.seal_record(&r).unwrap();
        bencher.bench_local(|| {
            keys.open_record("loc-00000001", 7, divan::black_box(&sealed))
                .unwrap()
        });
    }

    #[divan::bench]
    fn seal_and_open(bencher: divan::Bencher) {
        let keys = keys();
        let r = record(1);
        bencher.bench_local(|| {
            let sealed = keys.seal_record(divan::black_box(&r)).unwrap();
            keys.open_record("loc-00000001", 7, &sealed).unwrap()
        });
    }
}

// ---- SQLite writes ------------------------------------------------------------

fn put(bencher: divan::Bencher, sealed: bool, full: bool) {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut options = SqliteOptions::default().synchronous_full(full);
    if sealed {
        options = options.keys(keys());
    }
    let store = rt
        .block_on(SqliteStore::open_with(
            dir.path().join("grants.sqlite3"),
            options,
        ))
        .unwrap();
    let records: Vec<GrantRecord> = (0..1_000).map(record).collect();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % records.len();
        rt.block_on(store.put(&records[i])).unwrap();
    });
}

#[divan::bench_group(sample_count = 200)]
mod sqlite_put {
    use super::*;

    #[divan::bench]
    fn plain_normal(bencher: divan::Bencher) {
        put(bencher, false, false);
    }

    #[divan::bench]
    fn sealed_normal(bencher: divan::Bencher) {
        put(bencher, true, false);
    }

    #[divan::bench]
    fn plain_full(bencher: divan::Bencher) {
        put(bencher, false, true);
    }

    #[divan::bench]
    fn sealed_full(bencher: divan::Bencher) {
        put(bencher, true, true);
    }
}

// ---- SQLite reads -------------------------------------------------------------

/// A file of 1,000 records, plain or sealed.
fn filled(sealed: bool) -> &'static (tempfile::TempDir, SqliteOptions) {
    static PLAIN: OnceLock<(tempfile::TempDir, SqliteOptions)> = OnceLock::new();
    static SEALED: OnceLock<(tempfile::TempDir, SqliteOptions)> = OnceLock::new();
    let cell = if sealed { &SEALED } else { &PLAIN };
    cell.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut options = SqliteOptions::default().synchronous_full(false);
        if sealed {
            options = options.keys(keys());
        }
        runtime().block_on(async {
            let store = SqliteStore::open_with(dir.path().join("grants.sqlite3"), options.clone())
                .await
                .unwrap();
            for i in 0..1_000 {
                store.put(&record(i)).await.unwrap();
            }
        });
        (dir, options)
    })
}

fn load_page(bencher: divan::Bencher, sealed: bool) {
    let (dir, options) = filled(sealed);
    let rt = runtime();
    let store = rt
        .block_on(SqliteStore::open_with(
            dir.path().join("grants.sqlite3"),
            options.clone(),
        ))
        .unwrap();
    bencher.bench_local(|| {
        let page = rt
            .block_on(store.load_page(None::<&GrantId>, 1_000))
            .unwrap();
        assert_eq!(page.records.len(), 1_000);
    });
}

#[divan::bench_group(sample_count = 20)]
mod sqlite_load_page {
    use super::*;

    #[divan::bench]
    fn plain(bencher: divan::Bencher) {
        load_page(bencher, false);
    }

    #[divan::bench]
    fn sealed(bencher: divan::Bencher) {
        load_page(bencher, true);
    }
}

// ---- restoring 100,000 grants ---------------------------------------------------

const GRANTS: usize = 100_000;

/// A file of 100,000 records, plain or sealed, filled in one transaction.
fn restore_file(sealed: bool) -> &'static (tempfile::TempDir, SqliteOptions) {
    static PLAIN: OnceLock<(tempfile::TempDir, SqliteOptions)> = OnceLock::new();
    static SEALED: OnceLock<(tempfile::TempDir, SqliteOptions)> = OnceLock::new();
    let cell = if sealed { &SEALED } else { &PLAIN };
    cell.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grants.sqlite3");
        let mut options = SqliteOptions::default();
        if sealed {
            options = options.keys(keys());
        }
        runtime().block_on(async {
            SqliteStore::open_with(&path, options.clone())
                .await
                .unwrap()
        });
        let keys = keys();
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare("INSERT INTO hoopai_grants (grant_id, version, record) VALUES (?1, 7, ?2)")
                .unwrap();
            for i in 0..GRANTS {
                let r = record(i);
                let text = if sealed {
                    keys.seal_record(&r).unwrap()
                } else {
                    serde_json::to_string(&r).unwrap()
                };
                insert
                    .execute(rusqlite::params![r.grant.as_str(), text])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        (dir, options)
    })
}

fn load_all(bencher: divan::Bencher, sealed: bool) {
    let (dir, options) = restore_file(sealed);
    let rt = runtime();
    let store = rt
        .block_on(SqliteStore::open_with(
            dir.path().join("grants.sqlite3"),
            options.clone(),
        ))
        .unwrap();
    bencher.bench_local(|| {
        rt.block_on(async {
            let mut after: Option<GrantId> = None;
            let mut n = 0;
            loop {
                let page = store.load_page(after.as_ref(), 1_000).await.unwrap();
                n += page.records.len();
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            assert_eq!(n, GRANTS);
        });
    });
}

#[divan::bench_group(sample_count = 5, sample_size = 1)]
mod sqlite_load_all_100k {
    use super::*;

    #[divan::bench]
    fn plain(bencher: divan::Bencher) {
        load_all(bencher, false);
    }

    #[divan::bench]
    fn sealed(bencher: divan::Bencher) {
        load_all(bencher, true);
    }
}
