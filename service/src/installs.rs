//! Installs and uninstalls: verified install webhooks handed to the engine,
//! and the installed-locations sync of a Company grant.
//!
//! Grants are named as the engine names them: a Company grant by its
//! Company id, a Location grant by its Location id (as
//! [`TokenService::exchange_code`] names them too).

use hoopai_oauth::{
    GrantId, InstallTarget, InstalledLocation, InstalledLocationsQuery, UninstallTarget,
    WebhookEvent, WebhookPayload, installed_locations_request, parse_installed_locations,
};

use crate::command::Command;
use crate::errors::ServiceError;
use crate::reports::GrantChanges;
use crate::service::TokenService;
use crate::store::StoreError;

/// At most this many installed-locations pages are read in one sync (at
/// the default 20 a page, 100,000 locations).
pub const MAX_SYNC_PAGES: usize = 5_000;

impl TokenService {
    /// Applies a verified install webhook
    /// ([`WebhookVerifier`](hoopai_oauth::WebhookVerifier)) through the
    /// engine ([`Engine::handle_webhook`](hoopai_oauth::Engine::handle_webhook)),
    /// and returns once its outputs are handled: the mints it starts are
    /// sent, and the records of the grants it removes are deleted.
    ///
    /// - INSTALL, bulk (`locationIds`): a Location grant per location not
    ///   held, minted from the Company grant named by `companyId`. If that
    ///   grant is not held yet, it is in
    ///   [`GrantChanges::needs_code_exchange`] and the mints wait for it.
    /// - INSTALL, one Location: minted the same way when its Company grant is
    ///   held; else `needs_code_exchange`.
    /// - INSTALL, a Company with no list: `needs_code_exchange` unless held.
    /// - UNINSTALL of a location: its grant. Of an agency: its Company grant
    ///   and every Location grant minted from it (Location grants installed
    ///   on their own stay: each has its own UNINSTALL).
    /// - Any other type: nothing.
    ///
    /// In shared-store mode the Company grant and the one-location grant the
    /// event names are read from the store first when this process does not
    /// hold them: another process may have added them (docs/webhooks.md,
    /// "grants another one added").
    ///
    /// The webhook route ([`crate::routes::webhook`], feature `axum`) calls
    /// this for every delivery it accepts.
    ///
    /// # Errors
    /// [`ServiceError::OAuth`] (`InvalidInput`) for ids that cannot name
    /// grants; [`ServiceError::Stopped`]. A record that could not be deleted
    /// is no error: see [`GrantChanges::undeleted`].
    pub async fn handle_webhook(&self, event: &WebhookEvent) -> Result<GrantChanges, ServiceError> {
        // Shared-store mode: the grants the event names may have been added
        // by another process (the consent callback often reaches another
        // instance than the webhook): read them from the store first.
        for grant in named_grants(event) {
            if let Err(message) = self.discover(&grant).await {
                // Not applied: the sender's retry must find the store back.
                return Err(ServiceError::Store(StoreError::Backend {
                    store: "store",
                    message: format!("reading grant {grant}: {message}"),
                }));
            }
        }
        let event = Box::new(event.clone());
        self.call(|reply| Command::Webhook { event, reply })
            .await
            .unwrap_or(Err(ServiceError::Stopped))
    }

    /// Reconciles the Location grants minted from `company_grant` with the
    /// server's list of the company's installed locations: reads every page
    /// of `GET /oauth/installedLocations` with the Company grant's access
    /// token (each page waits for a token of the engine's request budget),
    /// then
    /// adds a minted Location grant for each installed location not held,
    /// and removes each minted Location grant the list does not show as
    /// installed ([`diff_installed_locations`](hoopai_oauth::diff_installed_locations)).
    ///
    /// Use it after missed webhooks (the app was down), or at start-up. The
    /// company id is the one the Company grant's token names, else the
    /// grant's id.
    ///
    /// # Errors
    /// [`ServiceError::UnknownGrant`] if `company_grant` is not held;
    /// [`ServiceError::Token`] if it has no access token to lend;
    /// [`ServiceError::Transport`] or [`ServiceError::OAuth`] (the server's
    /// classified refusal, an unreadable page) for a page, and nothing is
    /// changed; [`ServiceError::InvalidInput`] past [`MAX_SYNC_PAGES`] pages.
    pub async fn sync_installed_locations(
        &self,
        company_grant: &str,
    ) -> Result<GrantChanges, ServiceError> {
        let held = self.list().await?;
        let company = held
            .iter()
            .find(|g| g.grant.as_str() == company_grant)
            .ok_or_else(|| ServiceError::UnknownGrant(GrantId::new(company_grant)))?;
        let company_id = company
            .company_id
            .clone()
            .unwrap_or_else(|| company_grant.to_owned());
        let token = self.access_token(company_grant).await?;
        let mut installed: Vec<InstalledLocation> = Vec::new();
        let mut query = Some(InstalledLocationsQuery::new(company_id.clone()));
        let mut pages = 0usize;
        while let Some(q) = query.take() {
            pages += 1;
            if pages > MAX_SYNC_PAGES {
                return Err(ServiceError::InvalidInput(format!(
                    "the installed-locations list of {company_id} has more than {MAX_SYNC_PAGES} pages"
                )));
            }
            let request = installed_locations_request(self.config(), &token, &q)?;
            // Each page waits its turn in the engine's request budget.
            let response = self.send_counted(request).await?;
            let page = parse_installed_locations(response)?;
            query = q.next_page(&page);
            installed.extend(page.locations);
        }
        tracing::info!(company = %company_grant, pages, listed = installed.len(), "installed locations read");
        let company_grant = GrantId::new(company_grant);
        self.call(|reply| Command::SyncLocations {
            company_grant,
            company_id,
            installed,
            reply,
        })
        .await
        .unwrap_or(Err(ServiceError::Stopped))
    }
}

/// The grants an install or uninstall webhook acts through, other than the
/// Location grants a bulk install lists: the Company grant that mints (or
/// is uninstalled), and the Location grant of a one-location event.
fn named_grants(event: &WebhookEvent) -> Vec<GrantId> {
    let mut named = Vec::new();
    match &event.payload {
        WebhookPayload::Install(install) => {
            named.extend(install.company_id.as_deref().map(GrantId::new));
            match &install.target {
                InstallTarget::Location { location_id } => named.push(GrantId::new(location_id)),
                InstallTarget::Company { company_id } | InstallTarget::Bulk { company_id, .. } => {
                    named.push(GrantId::new(company_id));
                }
                _ => {}
            }
        }
        WebhookPayload::Uninstall(uninstall) => match &uninstall.target {
            UninstallTarget::Location { location_id } => named.push(GrantId::new(location_id)),
            UninstallTarget::Company { company_id } => named.push(GrantId::new(company_id)),
            _ => {}
        },
        _ => {}
    }
    named.sort();
    named.dedup();
    named
}
