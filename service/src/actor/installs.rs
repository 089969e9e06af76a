//! The install side of the task: verified install webhooks and
//! installed-locations lists handed to the engine, which adds the Location
//! grants it mints and removes uninstalled grants (their records deleted
//! through [`Output::Delete`](hoopai_oauth::Output::Delete)).

use std::time::SystemTime;

use hoopai_oauth::{
    GrantId, InstalledLocation, LocationTokenRequest, WebhookEvent, diff_installed_locations,
};

use super::Actor;
use crate::installs::GrantChanges;
use crate::service::ServiceError;
use crate::store::GrantStore;
use crate::transport::HttpClient;

impl<S: GrantStore, H: HttpClient> Actor<S, H> {
    /// Hands `event` to the engine, then drains its outputs: mints are
    /// sent, records of removed grants deleted.
    pub(super) async fn webhook(
        &mut self,
        event: &WebhookEvent,
    ) -> Result<GrantChanges, ServiceError> {
        self.undeleted.clear();
        let changes = self.engine.handle_webhook(event, SystemTime::now())?;
        self.grants.extend(changes.added.iter().cloned());
        self.drain().await;
        tracing::info!(
            event_type = %event.event_type,
            added = changes.added.len(),
            removed = changes.removed.len(),
            needs_code_exchange = changes.needs_code_exchange.len(),
            "install webhook applied"
        );
        Ok(GrantChanges {
            added: changes.added,
            removed: changes.removed,
            needs_code_exchange: changes.needs_code_exchange,
            undeleted: std::mem::take(&mut self.undeleted),
        })
    }

    /// Reconciles the Location grants minted from `company_grant` with the
    /// server's list (`installed`): the engine's pure diff, then an
    /// [`Engine::add_location`](hoopai_oauth::Engine::add_location) or an
    /// [`Engine::uninstall`](hoopai_oauth::Engine::uninstall) for each
    /// difference.
    pub(super) async fn sync(
        &mut self,
        company_grant: &GrantId,
        company_id: &str,
        installed: &[InstalledLocation],
    ) -> GrantChanges {
        self.undeleted.clear();
        let now = SystemTime::now();
        let held = self.engine.locations_of(company_grant.as_str());
        let diff = diff_installed_locations(held.iter().map(GrantId::as_str), installed);
        let mut changes = GrantChanges::default();
        for location in &diff.add {
            let request = LocationTokenRequest::new(company_id, location);
            match self
                .engine
                .add_location(location.as_str(), company_grant.clone(), &request, now)
            {
                Ok(true) => {
                    self.grants.insert(GrantId::new(location));
                    changes.added.push(GrantId::new(location));
                }
                // Held already (e.g. installed on its own): left as it is.
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(location = %location, error = %e, "installed location not added")
                }
            }
        }
        for location in &diff.remove {
            if let Ok(removed) = self.engine.uninstall(location, now) {
                changes.removed.extend(removed);
            }
        }
        self.drain().await;
        changes.undeleted = std::mem::take(&mut self.undeleted);
        tracing::info!(
            company = %company_grant,
            added = changes.added.len(),
            removed = changes.removed.len(),
            "installed locations synced"
        );
        changes
    }
}
