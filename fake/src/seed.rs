//! Installs: from flags, the config file or the admin API, approved on the
//! fake, each with its one-time authorization code.

use hoopai_oauth::fake::{FakeServer, FakeWebhook, Install};
use serde::{Deserialize, Serialize};

/// The most locations one seeded or admin-made install may register.
pub const MAX_LOCATIONS_PER_INSTALL: usize = 10_000;

/// One install to approve.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "lowercase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Seed {
    /// A Location (sub-account) install.
    Location {
        company_id: String,
        location_id: String,
        name: Option<String>,
        address: Option<String>,
        scope: Option<String>,
    },
    /// An agency (Company) install: `locations` sub-accounts (default
    /// `approved`), the first `approved` of them approved for the app.
    Agency {
        company_id: String,
        approved: usize,
        locations: Option<usize>,
        scope: Option<String>,
    },
    /// A bulk install: a Company install approving all `locations`
    /// sub-accounts, and the ones to come.
    Bulk {
        company_id: String,
        locations: usize,
        scope: Option<String>,
    },
}

/// An approved install, as the handoff file and the admin API report it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seeded {
    /// `location`, `agency` or `bulk`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `Location` or `Company`: the `user_type` of its code exchange.
    pub user_type: &'static str,
    pub company_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    /// Every sub-account the install registered, approved or not.
    pub locations: Vec<String>,
    pub approved_locations: Vec<String>,
    pub install_to_future_locations: bool,
    pub scope: String,
    /// The one-time authorization code: exchange it at `/oauth/token`.
    pub code: String,
    /// The INSTALL webhook HighLevel sends for this install.
    #[serde(skip)]
    pub webhook: FakeWebhook,
}

impl Seed {
    /// The install seeded when none is given.
    pub fn default_location() -> Self {
        Seed::Location {
            company_id: "company-1".into(),
            location_id: "loc-1".into(),
            name: Some("Downtown Dental".into()),
            address: Some("1 Main St, Springfield".into()),
            scope: None,
        }
    }

    /// `COMPANY/LOCATION`.
    pub fn parse_location(spec: &str) -> Result<Self, String> {
        let (company, location) = spec
            .split_once('/')
            .ok_or_else(|| format!("--location {spec:?}: expected COMPANY/LOCATION"))?;
        Ok(Seed::Location {
            company_id: company.to_owned(),
            location_id: location.to_owned(),
            name: None,
            address: None,
            scope: None,
        })
    }

    /// `COMPANY:APPROVED[/TOTAL]`.
    pub fn parse_agency(spec: &str) -> Result<Self, String> {
        let bad =
            || format!("--agency {spec:?}: expected COMPANY:APPROVED or COMPANY:APPROVED/TOTAL");
        let (company, counts) = spec.rsplit_once(':').ok_or_else(bad)?;
        let (approved, total) = match counts.split_once('/') {
            Some((a, t)) => (a, Some(t)),
            None => (counts, None),
        };
        Ok(Seed::Agency {
            company_id: company.to_owned(),
            approved: approved.parse().map_err(|_| bad())?,
            locations: total.map(str::parse).transpose().map_err(|_| bad())?,
            scope: None,
        })
    }

    /// `COMPANY:N`.
    pub fn parse_bulk(spec: &str) -> Result<Self, String> {
        let bad = || format!("--bulk {spec:?}: expected COMPANY:N");
        let (company, count) = spec.rsplit_once(':').ok_or_else(bad)?;
        Ok(Seed::Bulk {
            company_id: company.to_owned(),
            locations: count.parse().map_err(|_| bad())?,
            scope: None,
        })
    }

    /// Non-empty ids, and sizes within bounds.
    pub fn check(&self) -> Result<(), String> {
        let (company, counts) = match self {
            Seed::Location {
                company_id,
                location_id,
                ..
            } => {
                if location_id.is_empty() {
                    return Err("a Location install needs a locationId".into());
                }
                (company_id, (1, 1))
            }
            Seed::Agency {
                company_id,
                approved,
                locations,
                ..
            } => (company_id, (*approved, locations.unwrap_or(*approved))),
            Seed::Bulk {
                company_id,
                locations,
                ..
            } => (company_id, (*locations, *locations)),
        };
        if company.is_empty() {
            return Err("an install needs a companyId".into());
        }
        let (approved, total) = counts;
        if approved > total {
            return Err(format!(
                "{company}: {approved} approved of {total} locations"
            ));
        }
        if total > MAX_LOCATIONS_PER_INSTALL {
            return Err(format!(
                "{company}: at most {MAX_LOCATIONS_PER_INSTALL} locations per install"
            ));
        }
        Ok(())
    }

    /// Approves the install on the fake (registering its locations) and
    /// returns it with its code.
    pub fn apply(&self, fake: &mut FakeServer) -> Seeded {
        match self {
            Seed::Location {
                company_id,
                location_id,
                name,
                address,
                scope,
            } => {
                fake.add_location(
                    company_id,
                    location_id,
                    name.as_deref().unwrap_or(location_id),
                    address.as_deref().unwrap_or(""),
                );
                let mut install = Install::location(company_id, location_id);
                if let Some(scope) = scope {
                    install.scope.clone_from(scope);
                }
                let code = fake.approve(&install);
                Seeded {
                    kind: "location",
                    user_type: "Location",
                    company_id: company_id.clone(),
                    location_id: Some(location_id.clone()),
                    locations: vec![location_id.clone()],
                    approved_locations: vec![location_id.clone()],
                    install_to_future_locations: false,
                    scope: install.scope,
                    code: code.secret().to_owned(),
                    webhook: FakeWebhook::install_location(company_id, location_id),
                }
            }
            Seed::Agency {
                company_id,
                approved,
                locations,
                scope,
            } => company(
                fake,
                company_id,
                *approved,
                locations.unwrap_or(*approved),
                scope,
                false,
            ),
            Seed::Bulk {
                company_id,
                locations,
                scope,
            } => company(fake, company_id, *locations, *locations, scope, true),
        }
    }
}

/// A Company install over `total` new sub-accounts, `approved` of them approved.
fn company(
    fake: &mut FakeServer,
    company_id: &str,
    approved: usize,
    total: usize,
    scope: &Option<String>,
    bulk: bool,
) -> Seeded {
    let locations: Vec<String> = (1..=total)
        .map(|i| format!("{company_id}-loc-{i}"))
        .collect();
    for (i, id) in locations.iter().enumerate() {
        fake.add_location(
            company_id,
            id,
            &format!("Sub-account {} of {company_id}", i + 1),
            &format!("{} Main St", i + 1),
        );
    }
    let approved_locations: Vec<String> = locations.iter().take(approved).cloned().collect();
    let ids: Vec<&str> = approved_locations.iter().map(String::as_str).collect();
    let mut install = Install::company(company_id, &ids);
    install.install_to_future_locations = bulk;
    if let Some(scope) = scope {
        install.scope.clone_from(scope);
    }
    let code = fake.approve(&install);
    let webhook = if approved_locations.is_empty() {
        FakeWebhook::install_company(company_id)
    } else {
        FakeWebhook::install_bulk(company_id, &approved_locations)
    };
    Seeded {
        kind: if bulk { "bulk" } else { "agency" },
        user_type: "Company",
        company_id: company_id.to_owned(),
        location_id: None,
        locations,
        approved_locations,
        install_to_future_locations: bulk,
        scope: install.scope,
        code: code.secret().to_owned(),
        webhook,
    }
}
