//! Two token services sharing one store in shared-store mode (as two
//! processes would): one refresh between them, no refresh token spent twice.
//! Run on SQLite (one file, two connections) and on Postgres.

mod common;

use std::time::{Duration, SystemTime};

use common::fake_http::FakeHttp;
use common::pg;
use hoopai_oauth::WriteOutcome;
use hoopai_oauth::{
    AccessToken, EngineSettings, GrantId, GrantRecord, RefreshToken, TokenResponse, TokenSet,
};
use hoopai_oauth_service::{
    GrantStore, Page, ReqwestClient, ServiceSettings, SqliteStore, StoreError, TokenService,
};

fn settings(holder: &str) -> ServiceSettings {
    ServiceSettings::new(
        EngineSettings::default()
            .expiry_skew(Duration::from_secs(1))
            .request_timeout(Duration::from_secs(1))
            .shared_store(holder, Duration::from_secs(2)),
    )
    .wait(Duration::from_secs(15))
}

async fn start<S: GrantStore>(server: &FakeHttp, holder: &str, store: S) -> TokenService {
    let settings = settings(holder);
    let http = ReqwestClient::new(settings.engine()).unwrap();
    TokenService::start(server.config(), settings, store, http)
        .await
        .unwrap()
}

fn expired(grant: &str, refresh: &str) -> TokenSet {
    let mut token = TokenResponse::new(AccessToken::new(format!(
        "access-expired-{grant}-00000000000000000000"
    )));
    token.refresh_token = Some(RefreshToken::new(refresh));
    token.expires_in = Some(86_399);
    token.location_id = Some(grant.to_owned());
    TokenSet::new(token, SystemTime::now() - Duration::from_secs(2 * 86_400))
}

/// `open` gives a new connection to the same store each call.
async fn one_refresh_between_two<S, F, Fut>(open: F)
where
    S: GrantStore,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    let server = FakeHttp::start().await;
    // A grant installed earlier, whose access token has expired: both
    // services restore it and find it due at once, so they race for it.
    let token = server.location_tokens("loc-1");
    let live = token.refresh_token.unwrap().secret().to_owned();
    let mut record = GrantRecord::new("loc-1", expired("loc-1", &live));
    record.version = 1;
    open().await.put(&record).await.unwrap();
    let calls = server
        .shared
        .token_calls
        .load(std::sync::atomic::Ordering::SeqCst);
    let a = start(&server, "worker-a", open().await).await;
    let b = start(&server, "worker-b", open().await).await;
    assert_eq!(
        (a.start_report().restored, b.start_report().restored),
        (1, 1)
    );

    let (ta, tb) = tokio::join!(a.access_token("loc-1"), b.access_token("loc-1"));
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    assert_eq!(
        ta.secret(),
        tb.secret(),
        "the loser adopted the winner's tokens"
    );
    let after = server
        .shared
        .token_calls
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(after - calls, 1, "one refresh between two services");
    assert_eq!(server.fake().stats().spent_refresh_token_reuses, 0);
    let stored = open()
        .await
        .load(&GrantId::new("loc-1"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        server
            .fake()
            .is_live_refresh_token(stored.refresh_token().unwrap().secret())
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Grants another process added after this one started: a caller of the
/// second service gets the grant's token (read from the store), and a bulk
/// INSTALL webhook delivered to the second service mints the locations
/// from the Company grant the first one exchanged (the consent callback and
/// the webhook reach different instances behind a load balancer).
async fn grants_added_elsewhere_are_found<S, F, Fut>(open: F)
where
    S: GrantStore,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    let server = FakeHttp::start().await;
    let a = start(&server, "worker-a", open().await).await;
    let b = start(&server, "worker-b", open().await).await;
    assert_eq!(b.start_report().restored, 0);

    // A Location grant added by `a` only.
    let tokens = server.location_tokens("loc-solo");
    a.add("loc-solo", TokenSet::new(tokens, SystemTime::now()))
        .await
        .unwrap();
    let token = b.access_token("loc-solo").await.unwrap();
    assert_eq!(
        token.secret(),
        a.access_token("loc-solo").await.unwrap().secret()
    );
    // A grant in no store is still unknown, at once.
    let unknown = b.access_token("loc-nowhere").await.unwrap_err();
    assert!(
        matches!(unknown, hoopai_oauth_service::TokenError::UnknownGrant(_)),
        "{unknown}"
    );

    // An agency install: `a` exchanges the code, `b` gets the webhook.
    let locations = ["loc-b1", "loc-b2", "loc-b3"];
    let (code, delivery) = server.fake().approve_with_webhook(
        &hoopai_oauth::fake::Install::company("company-9", &locations),
        SystemTime::now(),
    );
    let company = a
        .exchange_code(code, Some(hoopai_oauth::UserType::Company))
        .await
        .unwrap();
    assert_eq!(company.as_str(), "company-9");
    let verifier =
        hoopai_oauth::WebhookVerifier::new(&server.config()).add_key(server.fake().webhook_key());
    let event = verifier
        .verify_unrecorded(delivery.headers(), delivery.body(), SystemTime::now())
        .unwrap();
    let changes = b.handle_webhook(&event).await.unwrap();
    assert!(
        changes.needs_code_exchange.is_empty(),
        "{:?}",
        changes.needs_code_exchange
    );
    let mut added: Vec<&str> = changes.added.iter().map(GrantId::as_str).collect();
    added.sort_unstable();
    assert_eq!(added, locations);
    for location in locations {
        b.access_token(location).await.unwrap();
        let stored = open()
            .await
            .load(&GrantId::new(location))
            .await
            .unwrap()
            .unwrap();
        assert!(stored.version >= 1, "{location} written");
    }
    assert_eq!(server.fake().stats().location_tokens, 3);
    a.shutdown().await;
    b.shutdown().await;
}

/// A test of `scenario` on one SQLite file and one on a fresh Postgres
/// schema, each store opened again (a new connection) for every process.
macro_rules! on_both_stores {
    ($sqlite:ident, $postgres:ident, $scenario:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("grants.sqlite3");
            $scenario(|| {
                let path = path.clone();
                async move { SqliteStore::open(path).await.unwrap() }
            })
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let Some(config) = pg::config(stringify!($postgres)) else {
                return;
            };
            let scoped = pg::fresh_schema(&config).await;
            $scenario(|| {
                let scoped = scoped.clone();
                async move {
                    hoopai_oauth_service::PostgresStore::connect_with(scoped, tokio_postgres::NoTls)
                        .await
                        .unwrap()
                }
            })
            .await;
        }
    };
}

on_both_stores!(
    sqlite_two_services_one_refresh,
    postgres_two_services_one_refresh,
    one_refresh_between_two
);
on_both_stores!(
    sqlite_grants_added_elsewhere_are_found,
    postgres_grants_added_elsewhere_are_found,
    grants_added_elsewhere_are_found
);

/// A store whose reads take 400 ms after they read (the record as it was
/// when the read began comes back late).
struct SlowReads(SqliteStore);

impl GrantStore for SlowReads {
    async fn load(&self, grant: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        let read = self.0.load(grant).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        read
    }
    async fn load_page(&self, after: Option<&GrantId>, limit: usize) -> Result<Page, StoreError> {
        self.0.load_page(after, limit).await
    }
    async fn compare_and_swap(
        &self,
        record: &GrantRecord,
        replaces: Option<u64>,
    ) -> Result<WriteOutcome, StoreError> {
        self.0.compare_and_swap(record, replaces).await
    }
    async fn put(&self, record: &GrantRecord) -> Result<(), StoreError> {
        self.0.put(record).await
    }
    async fn delete(&self, grant: &GrantId) -> Result<bool, StoreError> {
        self.0.delete(grant).await
    }
}

/// A caller asks for a grant not held (its store read starts, and finds no
/// record); meanwhile the same process adds the grant. The read's "no
/// record", which comes back after, must not remove what was added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_for_an_unknown_grant_does_not_undo_its_add() {
    let server = FakeHttp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grants.sqlite3");
    let store = SlowReads(SqliteStore::open(&path).await.unwrap());
    let service = start(&server, "worker-a", store).await;
    let asked = {
        let service = service.clone();
        tokio::spawn(async move { service.access_token("loc-race").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let tokens = server.location_tokens("loc-race");
    service
        .add("loc-race", TokenSet::new(tokens, SystemTime::now()))
        .await
        .unwrap();
    // The early caller found no record, or the grant once added: either
    // is a fair answer; what matters is what stays.
    let _ = asked.await.unwrap();
    let token = service.access_token("loc-race").await.unwrap();
    let stored = SqliteStore::open(&path)
        .await
        .unwrap()
        .load(&GrantId::new("loc-race"))
        .await
        .unwrap()
        .expect("the added grant is stored");
    assert_eq!(stored.tokens.access_token().secret(), token.secret());
    service.shutdown().await;
}
