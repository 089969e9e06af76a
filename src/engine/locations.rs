//! Location grants minted from Company grants: which Company grant each is
//! minted from, the mints waiting for a Company token, and which requests
//! out are mints. Also the pure comparison of the grants held with the
//! installed-locations list.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::installed_locations::InstalledLocation;

use super::output::RequestId;
use super::record::GrantId;
use super::table::Tag;

/// The relations between Company grants and the Location grants minted from
/// them, and the mints waiting for a Company token.
#[derive(Debug, Default)]
pub(crate) struct Locations {
    /// Location grant -> the Company grant it is minted from.
    parent: HashMap<GrantId, GrantId>,
    /// Company grant -> the Location grants minted from it.
    children: HashMap<GrantId, BTreeSet<GrantId>>,
    /// Company grant -> Location grants waiting for its access token.
    blocked: HashMap<GrantId, Vec<Tag>>,
    /// Mint requests out (and given up on), by raw request id.
    mints: HashSet<u64>,
}

impl Locations {
    /// `child` is minted from `parent`.
    pub(crate) fn link(&mut self, child: GrantId, parent: GrantId) {
        self.unlink(&child);
        self.children
            .entry(parent.clone())
            .or_default()
            .insert(child.clone());
        self.parent.insert(child, parent);
    }

    /// `child` is minted from nothing (any more).
    pub(crate) fn unlink(&mut self, child: &GrantId) {
        if let Some(parent) = self.parent.remove(child.as_str())
            && let Some(set) = self.children.get_mut(parent.as_str())
        {
            set.remove(child.as_str());
            if set.is_empty() {
                self.children.remove(parent.as_str());
            }
        }
    }

    /// Sets (or clears) the Company grant of a grant restored from a record.
    pub(crate) fn relink(&mut self, child: &GrantId, parent: Option<GrantId>) {
        match parent {
            Some(p) => self.link(child.clone(), p),
            None => self.unlink(child),
        }
    }

    /// The Company grant `grant` is minted from.
    pub(crate) fn parent_of(&self, grant: &str) -> Option<&GrantId> {
        self.parent.get(grant)
    }

    /// The Location grants minted from `company_grant`, in id order.
    pub(crate) fn children_of(&self, company_grant: &str) -> Vec<GrantId> {
        self.children
            .get(company_grant)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The mint of the grant `t` waits for `company_grant`'s access token.
    pub(crate) fn block(&mut self, company_grant: GrantId, t: Tag) {
        self.blocked.entry(company_grant).or_default().push(t);
    }

    /// The mints waiting for `company_grant`, taken.
    pub(crate) fn unblock(&mut self, company_grant: &str) -> Vec<Tag> {
        self.blocked.remove(company_grant).unwrap_or_default()
    }

    /// Request `id` is a mint. Past a bound, mints no slot still knows
    /// (`known`) are forgotten.
    pub(crate) fn note_mint(
        &mut self,
        id: RequestId,
        bound: usize,
        known: impl Fn(RequestId) -> bool,
    ) {
        if self.mints.len() > bound {
            self.mints.retain(|raw| known(RequestId::from_u64(*raw)));
        }
        self.mints.insert(id.as_u64());
    }

    /// Whether request `id` is a mint.
    pub(crate) fn is_mint(&self, id: RequestId) -> bool {
        self.mints.contains(&id.as_u64())
    }

    /// Forgets that `id` was a mint (its answer is in); returns whether it was.
    pub(crate) fn mint_answered(&mut self, id: RequestId) -> bool {
        self.mints.remove(&id.as_u64())
    }
}

/// What an install webhook changed in the engine
/// ([`Engine::handle_webhook`](crate::Engine::handle_webhook)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstallChanges {
    /// Location grants added, to be minted from their Company grant.
    pub added: Vec<GrantId>,
    /// Grants removed (each with an [`Output::Delete`](crate::Output::Delete)).
    pub removed: Vec<GrantId>,
    /// Grants the event names that the engine cannot add itself: a Location
    /// or Company install whose tokens come from the code exchange
    /// ([`Engine::insert`](crate::Engine::insert)).
    pub needs_code_exchange: Vec<GrantId>,
}

/// How the grants held for a company differ from the installed-locations
/// list ([`diff_installed_locations`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocationDiff {
    /// Locations installed at the server that have no grant: add them
    /// ([`Engine::add_location`](crate::Engine::add_location)).
    pub add: Vec<String>,
    /// Locations with a grant that the server does not list as installed:
    /// remove them ([`Removal::Uninstalled`](crate::Removal::Uninstalled)).
    pub remove: Vec<String>,
}

/// Compares the location ids held for a company with the server's
/// installed-locations list (every page of `GET /oauth/installedLocations`,
/// see docs/highlevel-facts.md, "Installed locations"). A location counts
/// as installed unless the list says `isInstalled: false`. Pure; each id
/// appears once, in sorted order.
#[must_use]
pub fn diff_installed_locations<'a>(
    held: impl IntoIterator<Item = &'a str>,
    installed: &[InstalledLocation],
) -> LocationDiff {
    let held: BTreeSet<&str> = held.into_iter().collect();
    let listed: BTreeSet<&str> = installed
        .iter()
        .filter(|l| l.is_installed != Some(false) && !l.id.is_empty())
        .map(|l| l.id.as_str())
        .collect();
    LocationDiff {
        add: listed.difference(&held).map(|s| (*s).to_owned()).collect(),
        remove: held.difference(&listed).map(|s| (*s).to_owned()).collect(),
    }
}
