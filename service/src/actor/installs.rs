//! The install side of the task: verified install webhooks and
//! installed-locations lists handed to the engine, which adds the Location
//! grants it mints and removes uninstalled grants (their records deleted
//! through [`Output::Delete`](hoopai_oauth::Output::Delete)). The call is
//! answered once those deletes are done.

use std::time::SystemTime;

use hoopai_oauth::{
    GrantId, InstalledLocation, LocationTokenRequest, Removal, WebhookEvent,
    diff_installed_locations,
};
use tokio::sync::oneshot;

use super::Actor;
use super::callers::Deleting;
use crate::errors::ServiceError;
use crate::reports::GrantChanges;
use crate::store::GrantStore;
use crate::transport::HttpClient;

type Reply = oneshot::Sender<Result<GrantChanges, ServiceError>>;

impl<S: GrantStore, H: HttpClient> Actor<S, H> {
    /// Hands `event` to the engine; answered once the records of the grants
    /// it removes are deleted.
    pub(super) fn webhook(&mut self, event: &WebhookEvent, reply: Reply) {
        let changes = match self.engine.handle_webhook(event, SystemTime::now()) {
            Ok(changes) => changes,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        tracing::info!(
            event_type = %event.event_type,
            added = changes.added.len(),
            removed = changes.removed.len(),
            needs_code_exchange = changes.needs_code_exchange.len(),
            "install webhook applied"
        );
        for g in &changes.removed {
            self.callers.gone(g);
        }
        let removed = changes.removed.clone();
        let changes = GrantChanges {
            added: changes.added,
            removed: changes.removed,
            needs_code_exchange: changes.needs_code_exchange,
            undeleted: Vec::new(),
        };
        self.callers
            .deleting(&removed, Deleting::Changes(changes, reply));
    }

    /// Reconciles the Location grants minted from `company_grant` with the
    /// server's list (`installed`): the engine's pure diff, then an
    /// [`Engine::add_location`](hoopai_oauth::Engine::add_location) or an
    /// uninstall for each difference.
    pub(super) fn sync(
        &mut self,
        company_grant: &GrantId,
        company_id: &str,
        installed: &[InstalledLocation],
        reply: Reply,
    ) {
        let now = SystemTime::now();
        let held: Vec<GrantId> = self
            .engine
            .grants()
            .iter()
            .filter(|g| g.minted_from() == Some(company_grant))
            .map(|g| g.id().clone())
            .collect();
        let diff = diff_installed_locations(held.iter().map(GrantId::as_str), installed);
        let mut changes = GrantChanges::default();
        for location in &diff.add {
            let request = LocationTokenRequest::new(company_id, location);
            match self
                .engine
                .add_location(location.as_str(), company_grant.clone(), &request, now)
            {
                Ok(true) => changes.added.push(GrantId::new(location)),
                // Held already (e.g. installed on its own): left as it is.
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(location = %location, error = %e, "installed location not added")
                }
            }
        }
        for location in &diff.remove {
            if let Ok(removed) = self.engine.remove(location, Removal::Uninstalled, now) {
                changes.removed.extend(removed);
            }
        }
        for g in &changes.removed {
            self.callers.gone(g);
        }
        tracing::info!(
            company = %company_grant,
            added = changes.added.len(),
            removed = changes.removed.len(),
            "installed locations synced"
        );
        let removed = changes.removed.clone();
        self.callers
            .deleting(&removed, Deleting::Changes(changes, reply));
    }
}
