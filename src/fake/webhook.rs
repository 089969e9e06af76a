//! Signed install webhooks from the fake: INSTALL (Location, Company, bulk)
//! and UNINSTALL deliveries as `http::Request<Vec<u8>>`.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey};
use http::{HeaderValue, Method, Request, header};
use serde::Serialize;

use super::{FakeServer, Install, splitmix64};
use crate::secret::AuthorizationCode;
use crate::token::UserType;
use crate::webhook::timestamp::format_rfc3339_millis;
use crate::webhook::{SIGNATURE_HEADER, WebhookKey};

/// The fake's default webhook signing key seed: fixed bytes, so the fake
/// draws no randomness and its deliveries are the same bytes every run. It
/// is a test key, published here; never trust it in production.
pub const FAKE_WEBHOOK_SEED: [u8; 32] = *b"hoopai-oauth fake webhook key 01";

/// Where the fake sends webhooks unless told otherwise.
pub const DEFAULT_WEBHOOK_URL: &str = "http://127.0.0.1/webhooks/highlevel";

/// A webhook for the fake to send; see [`FakeServer::webhook`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FakeWebhook {
    /// INSTALL for one sub-account (`installType: "Location"`).
    InstallLocation {
        /// `companyId`.
        company_id: String,
        /// `locationId`.
        location_id: String,
    },
    /// INSTALL for an agency with no location list (`installType: "Company"`).
    InstallCompany {
        /// `companyId`.
        company_id: String,
    },
    /// A bulk INSTALL: `installType: "Company"` with `locationIds`.
    InstallBulk {
        /// `companyId`.
        company_id: String,
        /// `locationIds`.
        location_ids: Vec<String>,
    },
    /// UNINSTALL for one sub-account.
    UninstallLocation {
        /// `locationId`.
        location_id: String,
    },
    /// UNINSTALL for an agency.
    UninstallCompany {
        /// `companyId`.
        company_id: String,
    },
}

impl FakeWebhook {
    /// INSTALL for one sub-account.
    #[must_use]
    pub fn install_location(company_id: &str, location_id: &str) -> Self {
        FakeWebhook::InstallLocation {
            company_id: company_id.to_owned(),
            location_id: location_id.to_owned(),
        }
    }

    /// INSTALL for an agency, with no location list.
    #[must_use]
    pub fn install_company(company_id: &str) -> Self {
        FakeWebhook::InstallCompany {
            company_id: company_id.to_owned(),
        }
    }

    /// A bulk INSTALL listing `location_ids`.
    #[must_use]
    pub fn install_bulk<S: AsRef<str>>(company_id: &str, location_ids: &[S]) -> Self {
        FakeWebhook::InstallBulk {
            company_id: company_id.to_owned(),
            location_ids: location_ids.iter().map(|s| s.as_ref().to_owned()).collect(),
        }
    }

    /// UNINSTALL for one sub-account.
    #[must_use]
    pub fn uninstall_location(location_id: &str) -> Self {
        FakeWebhook::UninstallLocation {
            location_id: location_id.to_owned(),
        }
    }

    /// UNINSTALL for an agency.
    #[must_use]
    pub fn uninstall_company(company_id: &str) -> Self {
        FakeWebhook::UninstallCompany {
            company_id: company_id.to_owned(),
        }
    }
}

/// The fake's webhook settings and counter.
#[derive(Debug, Clone)]
pub(super) struct WebhookSender {
    url: String,
    key: SigningKey,
    sent: u64,
}

impl Default for WebhookSender {
    fn default() -> Self {
        WebhookSender {
            url: DEFAULT_WEBHOOK_URL.to_owned(),
            key: SigningKey::from_bytes(&FAKE_WEBHOOK_SEED),
            sent: 0,
        }
    }
}

/// An INSTALL or UNINSTALL body, with the field names and order of the
/// documented payload.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    app_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    install_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location_ids: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    company_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_whitelabel_company: Option<bool>,
    timestamp: String,
    webhook_id: String,
}

impl FakeServer {
    /// Where webhooks are aimed (default [`DEFAULT_WEBHOOK_URL`]); any URL
    /// that `http::Uri` accepts.
    pub fn set_webhook_url(&mut self, url: impl Into<String>) {
        self.webhooks.url = url.into();
    }

    /// Signs future webhooks with the key of this 32-byte seed (default
    /// [`FAKE_WEBHOOK_SEED`]), e.g. to act a key rotation or a forger.
    pub fn set_webhook_signing_seed(&mut self, seed: [u8; 32]) {
        self.webhooks.key = SigningKey::from_bytes(&seed);
    }

    /// The public key the fake signs webhooks with: add it to the verifier's
    /// key set.
    #[must_use]
    pub fn webhook_key(&self) -> WebhookKey {
        WebhookKey::from(self.webhooks.key.verifying_key())
    }

    /// A signed INSTALL or UNINSTALL delivery sent at `now`: `POST` to the
    /// webhook URL, `Content-Type: application/json`, `x-ghl-signature` (the
    /// Ed25519 signature of the body, standard base64), with `appId`,
    /// `timestamp` (`now`, RFC 3339 with milliseconds) and a fresh
    /// `webhookId`. The fake's state does not change; see
    /// [`approve_with_webhook`](Self::approve_with_webhook) and
    /// [`uninstall`](Self::uninstall) for deliveries that go with a change.
    pub fn webhook(&mut self, event: &FakeWebhook, now: SystemTime) -> Request<Vec<u8>> {
        let company_of =
            |location: &str| self.locations.get(location).map(|l| l.company_id.clone());
        let (event_type, install_type, location_id, location_ids, company_id) = match event {
            FakeWebhook::InstallLocation {
                company_id,
                location_id,
            } => (
                "INSTALL",
                Some("Location"),
                Some(location_id.clone()),
                None,
                Some(company_id.clone()),
            ),
            FakeWebhook::InstallCompany { company_id } => (
                "INSTALL",
                Some("Company"),
                None,
                None,
                Some(company_id.clone()),
            ),
            FakeWebhook::InstallBulk {
                company_id,
                location_ids,
            } => (
                "INSTALL",
                Some("Company"),
                None,
                Some(location_ids.as_slice()),
                Some(company_id.clone()),
            ),
            FakeWebhook::UninstallLocation { location_id } => (
                "UNINSTALL",
                None,
                Some(location_id.clone()),
                None,
                company_of(location_id),
            ),
            FakeWebhook::UninstallCompany { company_id } => {
                ("UNINSTALL", None, None, None, Some(company_id.clone()))
            }
        };
        let install = event_type == "INSTALL";
        let webhook_id = self.next_webhook_id();
        let payload = Payload {
            event_type,
            app_id: &self.app_id,
            version_id: install.then_some(self.app_id.as_str()),
            install_type,
            location_id: location_id.as_deref(),
            location_ids,
            company_id: company_id.as_deref(),
            user_id: install.then_some("user-1"),
            plan_id: None,
            is_whitelabel_company: install.then_some(false),
            timestamp: format_rfc3339_millis(now),
            webhook_id,
        };
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        self.signed_webhook(body)
    }

    /// Any body, signed as the fake signs webhooks, e.g. an event type of your
    /// own or a body to tamper with.
    #[must_use]
    pub fn signed_webhook(&self, body: Vec<u8>) -> Request<Vec<u8>> {
        let signature = BASE64.encode(self.webhooks.key.sign(&body).to_bytes());
        let mut request = Request::new(body);
        *request.method_mut() = Method::POST;
        if let Ok(uri) = self.webhooks.url.parse() {
            *request.uri_mut() = uri;
        }
        let headers = request.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(value) = HeaderValue::from_str(&signature) {
            headers.insert(SIGNATURE_HEADER, value);
        }
        request
    }

    /// The consent step of [`approve`](Self::approve), and the INSTALL
    /// webhook HighLevel sends for it: a Location install gives a Location
    /// INSTALL; a Company install gives a bulk INSTALL listing its approved
    /// locations (a Company INSTALL when it approves none).
    pub fn approve_with_webhook(
        &mut self,
        install: &Install,
        now: SystemTime,
    ) -> (AuthorizationCode, Request<Vec<u8>>) {
        let code = self.approve(install);
        let event = match (&install.user_type, &install.location_id) {
            (UserType::Company, _) | (_, None) if install.approved_locations.is_empty() => {
                FakeWebhook::install_company(&install.company_id)
            }
            (UserType::Company, _) | (_, None) => {
                FakeWebhook::install_bulk(&install.company_id, &install.approved_locations)
            }
            (_, Some(location)) => FakeWebhook::install_location(&install.company_id, location),
        };
        (code, self.webhook(&event, now))
    }

    /// Uninstalls the app and returns the UNINSTALL webhook for it.
    ///
    /// For a location: it is marked not installed, and every grant of it
    /// (Location tokens minted for it included) is revoked: its refresh token
    /// then gets `400 Invalid grant` and its access tokens `401 Invalid JWT`.
    /// For an agency (`UninstallCompany`): the same for every grant of the
    /// company and all its locations.
    pub fn uninstall(&mut self, event: &FakeWebhook, now: SystemTime) -> Request<Vec<u8>> {
        let (company, location) = match event {
            FakeWebhook::UninstallLocation { location_id } => (None, Some(location_id.as_str())),
            FakeWebhook::UninstallCompany { company_id } => (Some(company_id.as_str()), None),
            _ => (None, None),
        };
        if company.is_some() || location.is_some() {
            let locations: Vec<String> = match (company, location) {
                (Some(c), _) => self.companies.get(c).cloned().unwrap_or_default(),
                (_, Some(l)) => vec![l.to_owned()],
                _ => Vec::new(),
            };
            for l in &locations {
                if let Some(rec) = self.locations.get_mut(l) {
                    rec.installed = None;
                }
            }
            let revoked: Vec<usize> = self
                .grants
                .iter()
                .enumerate()
                .filter(|(_, g)| match (company, &g.install.location_id) {
                    (Some(c), _) => g.install.company_id == c,
                    (None, Some(l)) => location == Some(l.as_str()),
                    (None, None) => false,
                })
                .map(|(i, _)| i)
                .collect();
            for grant in &revoked {
                if let Some(g) = self.grants.get(*grant)
                    && let Some(rec) = self.refresh_tokens.get_mut(&g.refresh_token)
                {
                    rec.revoked = true;
                }
            }
            // Company tokens can no longer mint for these locations.
            for g in &mut self.grants {
                for l in &locations {
                    g.approved.remove(l);
                }
            }
            self.access_tokens
                .retain(|_, a| !revoked.contains(&a.grant));
            self.stats.uninstalls += 1;
        }
        self.webhook(event, now)
    }

    /// A webhook id shaped like a UUID, unique per fake and delivery.
    fn next_webhook_id(&mut self) -> String {
        self.webhooks.sent += 1;
        self.stats.webhooks_sent += 1;
        let a = splitmix64(self.webhooks.sent ^ self.salt ^ 0x7765_6268_6f6f_6b00);
        let b = splitmix64(a);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48 & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }
}
