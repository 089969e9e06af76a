//! Install webhooks; documented on [`WebhookVerifier`].

mod event;
mod replay;
mod signature;
pub(crate) mod timestamp;

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::sanitize::{identifier, server_text};

pub use event::{
    InstallEvent, InstallTarget, MAX_WEBHOOK_BYTES, MAX_WEBHOOK_ID_BYTES, Trial, UninstallEvent,
    UninstallTarget, WebhookEvent, WebhookPayload, WhitelabelDetails, parse_webhook,
};
pub use replay::{
    DEFAULT_SEEN_CAPACITY, DEFAULT_SEEN_MAX_BYTES, Recorded, SeenWebhooks, WebhookIdStore,
};
pub use signature::{
    HIGHLEVEL_WEBHOOK_PUBLIC_KEY, LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER, WebhookKey,
    WebhookKeys,
};

/// How far a payload `timestamp` may be from `now`, either way, by default:
/// 5 minutes, as HighLevel's webhook guide suggests (`docs/highlevel-facts.md`,
/// "Webhook signatures").
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Verifies webhook deliveries for one app: trusted keys, the app id, the
/// replay window and what to do with undated deliveries.
///
/// Build it once (it holds no per-delivery state) and share it.
///
/// Install webhooks: verify a delivery's signature over its raw bytes, parse
/// it into a typed event, check its app id and refuse replays. Sans-IO: the
/// caller hands in the headers, the body and `now`.
///
/// HighLevel tells an app about installs and uninstalls by POSTing JSON to the
/// app's webhook URL (see `docs/highlevel-facts.md`, "Install webhooks"). Each delivery is
/// signed in `x-ghl-signature`: an Ed25519 signature, base64, over the **raw**
/// body bytes, with HighLevel's published key ([`HIGHLEVEL_WEBHOOK_PUBLIC_KEY`]).
///
/// [`WebhookVerifier::verify`] does everything, in this order, and fails
/// closed at the first problem with an error of class
/// [`ErrorClass::Webhook`](crate::ErrorClass::Webhook):
///
/// 1. the signature over the raw bytes, with any key of the set
///    ([`WebhookKeys::verify`]); never skipped, whatever the headers say;
/// 2. the JSON body, read leniently ([`parse_webhook`]);
/// 3. `appId` against the client id in the [`Config`] ([`WebhookEvent::check_app_id`]);
/// 4. the payload `timestamp` within a window around `now` (default 5 minutes,
///    [`DEFAULT_REPLAY_WINDOW`]) and a `webhookId` not seen before, through a
///    [`WebhookIdStore`] such as the bounded [`SeenWebhooks`].
///
/// **Undated deliveries.** Old UNINSTALL deliveries carry no `timestamp` and
/// no `webhookId`, so nothing can tell a replay of a captured one from a new
/// one, and a replayed UNINSTALL would make the app drop the tokens of a
/// location that is installed again — an installation the customer must then
/// redo. Such deliveries are therefore refused by default
/// ([`ErrorKind::WebhookUndated`]): an
/// uninstall that is really meant shows up anyway, as the grant's next refresh
/// failing with `invalid grant` and in the installed-locations list. Apps that
/// must act on them opt in with [`WebhookVerifier::accept_undated`]; the
/// signature and app id are still checked, and a `timestamp` present is still
/// held to the window, but the seen-id check needs both fields and is skipped.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use hoopai_oauth::{Config, SeenWebhooks, WebhookPayload, WebhookVerifier};
/// use hoopai_oauth::fake::{FakeServer, FakeWebhook};
///
/// let config = Config::builder("6578278e879ad2646715ba9c-lq3w8xd2", "secret").build()?;
/// let mut fake = FakeServer::new(config.client_id(), "secret");
/// let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
/// let delivery = fake.webhook(&FakeWebhook::install_location("company-1", "loc-1"), now);
///
/// // In production the default key set (HighLevel's key) is enough; the fake
/// // signs with a key of its own.
/// let verifier = WebhookVerifier::new(&config).add_key(fake.webhook_key());
/// let mut seen = SeenWebhooks::default();
/// let event = verifier.verify(delivery.headers(), delivery.body(), now, &mut seen)?;
/// assert!(matches!(event.payload, WebhookPayload::Install(_)));
///
/// // The same delivery again is a replay.
/// let again = verifier.verify(delivery.headers(), delivery.body(), now, &mut seen);
/// assert_eq!(again.unwrap_err().kind(), hoopai_oauth::ErrorKind::WebhookReplayed);
/// # Ok::<(), hoopai_oauth::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct WebhookVerifier {
    keys: WebhookKeys,
    app_id: String,
    window: Duration,
    accept_undated: bool,
}

impl WebhookVerifier {
    /// A verifier for the app of `config` (its app id is the client id before
    /// the first `-`), trusting HighLevel's published key, with a 5-minute
    /// window, refusing undated deliveries.
    pub fn new(config: &Config) -> Self {
        WebhookVerifier {
            keys: WebhookKeys::highlevel(),
            app_id: config.app_id().to_owned(),
            window: DEFAULT_REPLAY_WINDOW,
            accept_undated: false,
        }
    }

    /// Replaces the trusted keys (HighLevel's key is dropped unless `keys`
    /// holds it).
    pub fn keys(mut self, keys: WebhookKeys) -> Self {
        self.keys = keys;
        self
    }

    /// Trusts one more key, e.g. a rotated HighLevel key or a test server's.
    pub fn add_key(mut self, key: WebhookKey) -> Self {
        self.keys.add(key);
        self
    }

    /// How far a payload `timestamp` may be from `now`, either way (default
    /// [`DEFAULT_REPLAY_WINDOW`]). A [`WebhookIdStore`] must remember ids at
    /// least this long.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Whether to accept deliveries with no readable `timestamp` or no
    /// `webhookId` (default `false`; see [`WebhookVerifier`] for the risk).
    /// When accepted, a `timestamp` present is still held to the window.
    pub fn accept_undated(mut self, accept: bool) -> Self {
        self.accept_undated = accept;
        self
    }

    /// The trusted keys.
    #[must_use]
    pub fn trusted_keys(&self) -> &WebhookKeys {
        &self.keys
    }

    /// The app id deliveries must carry.
    #[must_use]
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The replay window.
    #[must_use]
    pub fn replay_window(&self) -> Duration {
        self.window
    }

    /// Verifies one delivery and returns its event: signature over the raw
    /// `body`, then parsing, then `appId`, then the timestamp window and the
    /// `webhookId` through `seen`. Hand in the body exactly as received.
    ///
    /// # Errors
    /// An error of class [`ErrorClass::Webhook`](crate::ErrorClass::Webhook):
    /// see [`WebhookKeys::verify`], [`parse_webhook`],
    /// [`WebhookEvent::check_app_id`], [`check_fresh`](Self::check_fresh) and
    /// [`accept`](Self::accept).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
        seen: &mut impl WebhookIdStore,
    ) -> Result<WebhookEvent, Error> {
        let event = self.verify_unrecorded(headers, body, now)?;
        let recorded = match event.replay_key() {
            Some((id, timestamp)) => seen.record(id, timestamp, now, self.window),
            None => Recorded::New,
        };
        self.accept(event, recorded)
    }

    /// [`verify`](Self::verify) for a whole request, as a server framework or
    /// the fake hands it over.
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub fn verify_request<B: AsRef<[u8]>>(
        &self,
        request: &http::Request<B>,
        now: SystemTime,
        seen: &mut impl WebhookIdStore,
    ) -> Result<WebhookEvent, Error> {
        self.verify(request.headers(), request.body().as_ref(), now, seen)
    }

    /// Every check but the seen-id one: signature, parsing, `appId`,
    /// timestamp window. For apps whose [`WebhookIdStore`] is async: record
    /// [`WebhookEvent::replay_key`] in the store, then call
    /// [`accept`](Self::accept) with the answer.
    ///
    /// # Errors
    /// As [`verify`](Self::verify), but never
    /// [`ErrorKind::WebhookReplayed`].
    pub fn verify_unrecorded(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<WebhookEvent, Error> {
        self.keys.verify(headers, body)?;
        let event = parse_webhook(body)?;
        event.check_app_id(&self.app_id)?;
        self.check_fresh(&event, now)?;
        Ok(event)
    }

    /// Checks the payload `timestamp` against the window around `now`, and
    /// that the event can be checked for replays at all.
    ///
    /// # Errors
    /// - [`ErrorKind::WebhookStale`]: the timestamp is more than the window
    ///   before or after `now`;
    /// - [`ErrorKind::WebhookUndated`]: no readable `timestamp` or no
    ///   `webhookId`, unless [`accept_undated`](Self::accept_undated).
    pub fn check_fresh(&self, event: &WebhookEvent, now: SystemTime) -> Result<(), Error> {
        match event.timestamp {
            Some(t) => {
                if let Ok(age) = now.duration_since(t)
                    && age > self.window
                {
                    return Err(Error::webhook(
                        ErrorKind::WebhookStale,
                        format!(
                            "the payload timestamp is {}s before now; the window is {}s",
                            age.as_secs(),
                            self.window.as_secs()
                        ),
                    ));
                }
                if let Ok(ahead) = t.duration_since(now)
                    && ahead > self.window
                {
                    return Err(Error::webhook(
                        ErrorKind::WebhookStale,
                        format!(
                            "the payload timestamp is {}s after now; the window is {}s",
                            ahead.as_secs(),
                            self.window.as_secs()
                        ),
                    ));
                }
            }
            None if !self.accept_undated => {
                return Err(Error::webhook(
                    ErrorKind::WebhookUndated,
                    format!(
                        "the {} event has no readable timestamp (RFC 3339), so a replay cannot be ruled out",
                        server_text(&event.event_type)
                    ),
                ));
            }
            None => {}
        }
        if event.webhook_id.is_none() && !self.accept_undated {
            return Err(Error::webhook(
                ErrorKind::WebhookUndated,
                format!(
                    "the {} event has no webhookId, so a replay cannot be ruled out",
                    server_text(&event.event_type)
                ),
            ));
        }
        Ok(())
    }

    /// Finishes a delivery checked by
    /// [`verify_unrecorded`](Self::verify_unrecorded), given what the store
    /// answered for its [`replay_key`](WebhookEvent::replay_key). An event
    /// without a replay key (only accepted with
    /// [`accept_undated`](Self::accept_undated)) has nothing to record: pass
    /// [`Recorded::New`].
    ///
    /// # Errors
    /// - [`ErrorKind::WebhookReplayed`] for [`Recorded::Duplicate`];
    /// - [`ErrorKind::WebhookStale`] for [`Recorded::BeyondMemory`].
    pub fn accept(&self, event: WebhookEvent, recorded: Recorded) -> Result<WebhookEvent, Error> {
        let id = || identifier(event.webhook_id.as_deref().unwrap_or(""));
        match recorded {
            Recorded::New => Ok(event),
            Recorded::Duplicate => Err(Error::webhook(
                ErrorKind::WebhookReplayed,
                format!("webhookId {:?} was already accepted", id()),
            )),
            Recorded::BeyondMemory => Err(Error::webhook(
                ErrorKind::WebhookStale,
                format!(
                    "webhookId {:?} is older than the seen-id store remembers, so it cannot be shown to be new",
                    id()
                ),
            )),
        }
    }
}
