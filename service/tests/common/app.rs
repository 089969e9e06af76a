//! The user's app over loopback: a token service with the SQLite store in a
//! temporary folder, its config pointed at [`FakeHttp`], and the OAuth routes
//! served on a loopback port of their own.

use hoopai_oauth::{Config, ConfigBuilder, GrantId, GrantRecord};
use hoopai_oauth_service::{GrantStore, ReqwestClient, ServiceSettings, SqliteStore, TokenService};

use super::fake_http::{CLIENT_ID, CLIENT_SECRET, FakeHttp};

/// The limits the app is served with (`routes::ServeLimits` when the
/// routes are built).
#[cfg(feature = "axum")]
pub type Limits = hoopai_oauth_service::routes::ServeLimits;
#[cfg(not(feature = "axum"))]
pub type Limits = ();

/// Serves `router` as an app would: with the timeouts and the client
/// addresses of `routes::serve` when the routes are built.
async fn serve(listener: tokio::net::TcpListener, router: axum::Router, limits: Limits) {
    #[cfg(feature = "axum")]
    let _ =
        hoopai_oauth_service::routes::serve(listener, router, limits, std::future::pending()).await;
    #[cfg(not(feature = "axum"))]
    let _ = (axum::serve(listener, router).await, limits);
}

pub struct App {
    pub fake: FakeHttp,
    /// `http://127.0.0.1:PORT` of the app.
    pub base: String,
    pub service: TokenService,
    pub dir: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

impl App {
    /// Starts the service and serves the router `router` builds. The config
    /// points at `fake`, with the callback on the app's own port; `config`
    /// sets the rest.
    pub async fn start(
        fake: FakeHttp,
        settings: ServiceSettings,
        config: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
        router: impl FnOnce(&FakeHttp, &Config, TokenService) -> axum::Router,
    ) -> App {
        Self::start_with(fake, settings, config, router, Limits::default()).await
    }

    /// [`start`](Self::start), served with `limits`.
    pub async fn start_with(
        fake: FakeHttp,
        settings: ServiceSettings,
        config: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
        router: impl FnOnce(&FakeHttp, &Config, TokenService) -> axum::Router,
        limits: Limits,
    ) -> App {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = config(
            Config::builder(CLIENT_ID, CLIENT_SECRET)
                .base_url(fake.base_url())
                .redirect_uri(format!("{base}/oauth/callback")),
        )
        .build()
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("grants.sqlite3"))
            .await
            .unwrap();
        let http = ReqwestClient::new(settings.engine()).unwrap();
        let service = TokenService::start(config.clone(), settings, store, http)
            .await
            .unwrap();
        let router = router(&fake, &config, service.clone());
        let task = tokio::spawn(serve(listener, router, limits));
        App {
            fake,
            base,
            service,
            dir,
            _task: task,
        }
    }

    /// Consent for `location` at the fake, then the code exchange through
    /// the service.
    pub async fn install(&self, location: &str) -> GrantId {
        super::env::install(&self.fake, &self.service, location).await
    }

    pub fn store_path(&self) -> std::path::PathBuf {
        self.dir.path().join("grants.sqlite3")
    }

    /// The record the store holds for `grant`.
    pub async fn stored(&self, grant: &str) -> Option<GrantRecord> {
        SqliteStore::open(self.store_path())
            .await
            .unwrap()
            .load(&GrantId::new(grant))
            .await
            .unwrap()
    }

    /// POSTs a delivery as the fake built it (headers and raw body) to the
    /// app's `/oauth{path}`.
    pub async fn deliver(&self, path: &str, delivery: &http::Request<Vec<u8>>) -> (u16, String) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/oauth{path}", self.base))
            .body(delivery.body().clone());
        for (name, value) in delivery.headers() {
            request = request.header(name.as_str(), value.as_bytes());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}
