//! OAuth scopes; documented on [`Scope`].

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::token::Scopes;

/// One OAuth scope, such as `contacts.readonly` or `conversations/message.write`.
///
/// Use the named constants ([`Scope::CONTACTS_READONLY`]…) for the documented
/// scopes and [`Scope::custom`] for any other. Two scopes are equal when their
/// strings are, whichever way they were made.
///
/// ```
/// use hoopai_oauth::Scope;
///
/// assert_eq!(Scope::OAUTH_WRITE.as_str(), "oauth.write");
/// assert_eq!("oauth.write".parse::<Scope>().unwrap(), Scope::OAUTH_WRITE);
/// assert!(Scope::custom("beta/feature.readonly").is_ok());
/// assert!(Scope::custom("two scopes").is_err());
/// ```
///
/// OAuth scopes: a [`Scope`] type with a named constant for every scope in
/// HighLevel's official list, plus custom scopes.
///
/// The list follows the public "Scopes" page of the HighLevel marketplace
/// documentation (Authorization › OAuth 2.0 › Scopes), as published in 2025–2026.
/// Three scopes that earlier editions of that page listed
/// (`conversations/livechat.write`, `blogs/posts.readonly`, `blogs/list.readonly`)
/// are kept too. Scope strings are case-sensitive and kept exactly as the page
/// spells them (note `adPublishing.readOnly` and `saas/location.read`).
///
/// A scope the list does not have yet is a [`Scope::custom`]. Adding a scope to
/// an installed app takes a re-install (a new consent).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(Cow<'static, str>);

macro_rules! scopes {
    ($($name:ident = $value:literal;)*) => {
        impl Scope {
            $(
                #[doc = concat!("`", $value, "`")]
                pub const $name: Scope = Scope(Cow::Borrowed($value));
            )*

            /// Every scope of the official list, in the order the list gives them.
            pub const ALL: &'static [Scope] = &[$(Scope::$name),*];
        }

        #[cfg(test)]
        const NAMES: &[(&str, &str)] = &[$((stringify!($name), $value)),*];
    };
}

scopes! {
    AD_PUBLISHING_READ_ONLY = "adPublishing.readOnly";
    AD_PUBLISHING_WRITE = "adPublishing.write";
    BUSINESSES_READONLY = "businesses.readonly";
    BUSINESSES_WRITE = "businesses.write";
    CALENDARS_WRITE = "calendars.write";
    CALENDARS_READONLY = "calendars.readonly";
    CALENDARS_GROUPS_READONLY = "calendars/groups.readonly";
    CALENDARS_GROUPS_WRITE = "calendars/groups.write";
    CALENDARS_RESOURCES_READONLY = "calendars/resources.readonly";
    CALENDARS_RESOURCES_WRITE = "calendars/resources.write";
    CALENDARS_EVENTS_READONLY = "calendars/events.readonly";
    CALENDARS_EVENTS_WRITE = "calendars/events.write";
    CAMPAIGNS_READONLY = "campaigns.readonly";
    CONTACTS_READONLY = "contacts.readonly";
    CONTACTS_WRITE = "contacts.write";
    OBJECTS_SCHEMA_READONLY = "objects/schema.readonly";
    OBJECTS_SCHEMA_WRITE = "objects/schema.write";
    OBJECTS_RECORD_READONLY = "objects/record.readonly";
    OBJECTS_RECORD_WRITE = "objects/record.write";
    CONVERSATIONS_READONLY = "conversations.readonly";
    CONVERSATIONS_WRITE = "conversations.write";
    CONVERSATIONS_MESSAGE_READONLY = "conversations/message.readonly";
    CONVERSATIONS_MESSAGE_WRITE = "conversations/message.write";
    CONVERSATIONS_LIVECHAT_WRITE = "conversations/livechat.write";
    FORMS_READONLY = "forms.readonly";
    FORMS_WRITE = "forms.write";
    INVOICES_READONLY = "invoices.readonly";
    INVOICES_WRITE = "invoices.write";
    INVOICES_SCHEDULE_READONLY = "invoices/schedule.readonly";
    INVOICES_SCHEDULE_WRITE = "invoices/schedule.write";
    INVOICES_TEMPLATE_READONLY = "invoices/template.readonly";
    INVOICES_TEMPLATE_WRITE = "invoices/template.write";
    INVOICES_ESTIMATE_READONLY = "invoices/estimate.readonly";
    INVOICES_ESTIMATE_WRITE = "invoices/estimate.write";
    LINKS_READONLY = "links.readonly";
    LINKS_WRITE = "links.write";
    LOCATIONS_READONLY = "locations.readonly";
    LOCATIONS_WRITE = "locations.write";
    LOCATIONS_CUSTOM_VALUES_READONLY = "locations/customValues.readonly";
    LOCATIONS_CUSTOM_VALUES_WRITE = "locations/customValues.write";
    LOCATIONS_CUSTOM_FIELDS_READONLY = "locations/customFields.readonly";
    LOCATIONS_CUSTOM_FIELDS_WRITE = "locations/customFields.write";
    LOCATIONS_TAGS_READONLY = "locations/tags.readonly";
    LOCATIONS_TAGS_WRITE = "locations/tags.write";
    LOCATIONS_TEMPLATES_READONLY = "locations/templates.readonly";
    LOCATIONS_TASKS_READONLY = "locations/tasks.readonly";
    MEDIAS_READONLY = "medias.readonly";
    MEDIAS_WRITE = "medias.write";
    FUNNELS_REDIRECT_READONLY = "funnels/redirect.readonly";
    FUNNELS_REDIRECT_WRITE = "funnels/redirect.write";
    FUNNELS_PAGE_READONLY = "funnels/page.readonly";
    FUNNELS_FUNNEL_READONLY = "funnels/funnel.readonly";
    FUNNELS_PAGECOUNT_READONLY = "funnels/pagecount.readonly";
    OPPORTUNITIES_READONLY = "opportunities.readonly";
    OPPORTUNITIES_WRITE = "opportunities.write";
    PAYMENTS_INTEGRATION_READONLY = "payments/integration.readonly";
    PAYMENTS_INTEGRATION_WRITE = "payments/integration.write";
    PAYMENTS_ORDERS_READONLY = "payments/orders.readonly";
    PAYMENTS_ORDERS_WRITE = "payments/orders.write";
    PAYMENTS_TRANSACTIONS_READONLY = "payments/transactions.readonly";
    PAYMENTS_SUBSCRIPTIONS_READONLY = "payments/subscriptions.readonly";
    PAYMENTS_COUPONS_READONLY = "payments/coupons.readonly";
    PAYMENTS_COUPONS_WRITE = "payments/coupons.write";
    PAYMENTS_CUSTOM_PROVIDER_READONLY = "payments/custom-provider.readonly";
    PAYMENTS_CUSTOM_PROVIDER_WRITE = "payments/custom-provider.write";
    PRODUCTS_READONLY = "products.readonly";
    PRODUCTS_WRITE = "products.write";
    PRODUCTS_PRICES_READONLY = "products/prices.readonly";
    PRODUCTS_PRICES_WRITE = "products/prices.write";
    PRODUCTS_COLLECTION_READONLY = "products/collection.readonly";
    PRODUCTS_COLLECTION_WRITE = "products/collection.write";
    OAUTH_READONLY = "oauth.readonly";
    OAUTH_WRITE = "oauth.write";
    SAAS_LOCATION_WRITE = "saas/location.write";
    SAAS_LOCATION_READ = "saas/location.read";
    SAAS_COMPANY_WRITE = "saas/company.write";
    SNAPSHOTS_READONLY = "snapshots.readonly";
    SNAPSHOTS_WRITE = "snapshots.write";
    SOCIALPLANNER_ACCOUNT_READONLY = "socialplanner/account.readonly";
    SOCIALPLANNER_ACCOUNT_WRITE = "socialplanner/account.write";
    SOCIALPLANNER_CSV_READONLY = "socialplanner/csv.readonly";
    SOCIALPLANNER_CSV_WRITE = "socialplanner/csv.write";
    SOCIALPLANNER_CATEGORY_READONLY = "socialplanner/category.readonly";
    SOCIALPLANNER_OAUTH_READONLY = "socialplanner/oauth.readonly";
    SOCIALPLANNER_OAUTH_WRITE = "socialplanner/oauth.write";
    SOCIALPLANNER_POST_READONLY = "socialplanner/post.readonly";
    SOCIALPLANNER_POST_WRITE = "socialplanner/post.write";
    SOCIALPLANNER_TAG_READONLY = "socialplanner/tag.readonly";
    SOCIALPLANNER_STATISTICS_READONLY = "socialplanner/statistics.readonly";
    SURVEYS_READONLY = "surveys.readonly";
    USERS_READONLY = "users.readonly";
    USERS_WRITE = "users.write";
    WORKFLOWS_READONLY = "workflows.readonly";
    COURSES_WRITE = "courses.write";
    BLOGS_POST_WRITE = "blogs/post.write";
    BLOGS_POST_UPDATE_WRITE = "blogs/post-update.write";
    BLOGS_CHECK_SLUG_READONLY = "blogs/check-slug.readonly";
    BLOGS_CATEGORY_READONLY = "blogs/category.readonly";
    BLOGS_AUTHOR_READONLY = "blogs/author.readonly";
    BLOGS_POSTS_READONLY = "blogs/posts.readonly";
    BLOGS_LIST_READONLY = "blogs/list.readonly";
    COMPANIES_READONLY = "companies.readonly";
    ASSOCIATIONS_READONLY = "associations.readonly";
    ASSOCIATIONS_WRITE = "associations.write";
    ASSOCIATIONS_RELATION_READONLY = "associations/relation.readonly";
    ASSOCIATIONS_RELATION_WRITE = "associations/relation.write";
    EMAILS_BUILDER_READONLY = "emails/builder.readonly";
    EMAILS_BUILDER_WRITE = "emails/builder.write";
    EMAILS_SCHEDULE_READONLY = "emails/schedule.readonly";
    CUSTOM_MENU_LINK_READONLY = "custom-menu-link.readonly";
    CUSTOM_MENU_LINK_WRITE = "custom-menu-link.write";
    DOCUMENTS_CONTRACTS_LIST_READONLY = "documents_contracts/list.readonly";
    DOCUMENTS_CONTRACTS_SENDLINK_WRITE = "documents_contracts/sendlink.write";
    DOCUMENTS_CONTRACTS_TEMPLATES_LIST_READONLY = "documents_contracts_templates/list.readonly";
    DOCUMENTS_CONTRACTS_TEMPLATES_SENDLINK_WRITE = "documents_contracts_templates/sendlink.write";
    MARKETPLACE_INSTALLER_DETAILS_READONLY = "marketplace-installer-details.readonly";
    CHARGES_READONLY = "charges.readonly";
    CHARGES_WRITE = "charges.write";
    VOICE_AI_DASHBOARD_READONLY = "voice-ai-dashboard.readonly";
    VOICE_AI_AGENTS_READONLY = "voice-ai-agents.readonly";
    VOICE_AI_AGENTS_WRITE = "voice-ai-agents.write";
    VOICE_AI_AGENT_GOALS_READONLY = "voice-ai-agent-goals.readonly";
    VOICE_AI_AGENT_GOALS_WRITE = "voice-ai-agent-goals.write";
    PHONENUMBERS_READ = "phonenumbers.read";
    NUMBERPOOLS_READ = "numberpools.read";
}

impl Scope {
    /// A scope that is not (yet) among the named constants.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the
    /// scope is empty or holds whitespace or a control character (scopes are
    /// joined with spaces, so such a value would smuggle in other scopes).
    pub fn custom(scope: impl Into<String>) -> Result<Scope, Error> {
        let scope = scope.into();
        check(&scope)?;
        Ok(Self::known(&scope).unwrap_or(Scope(Cow::Owned(scope))))
    }

    /// The named constant with this exact string, if there is one.
    #[must_use]
    pub fn known(scope: &str) -> Option<Scope> {
        Self::ALL.iter().find(|s| s.as_str() == scope).cloned()
    }

    /// Whether this scope is in the official list ([`Scope::ALL`]).
    #[must_use]
    pub fn is_known(&self) -> bool {
        Self::ALL.iter().any(|s| s == self)
    }

    /// The scope string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check(scope: &str) -> Result<(), Error> {
    if scope.is_empty() {
        return Err(Error::input("a scope is empty"));
    }
    if scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::input(format!(
            "the scope {scope:?} holds whitespace or a control character"
        )));
    }
    Ok(())
}

impl FromStr for Scope {
    type Err = Error;

    /// Reads one scope: the named constant when the string is in the official
    /// list, a custom scope otherwise. Same checks as [`Scope::custom`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::custom(s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({:?})", self.as_str())
    }
}

impl AsRef<str> for Scope {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Scope::custom(s).map_err(|e| serde::de::Error::custom(e.detail().unwrap_or("bad scope")))
    }
}

impl Scopes {
    /// Whether `scope` is granted.
    #[must_use]
    pub fn contains_scope(&self, scope: &Scope) -> bool {
        self.contains(scope.as_str())
    }

    /// The granted scopes as [`Scope`] values, named constants where known.
    /// (A granted scope never holds whitespace, so none is skipped.)
    pub fn scopes(&self) -> impl Iterator<Item = Scope> + '_ {
        self.iter().filter_map(|s| Scope::custom(s).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each constant is named after its string: camelCase split, `/ . -`
    /// become `_`, upper-cased.
    #[test]
    fn constant_names_follow_the_strings() {
        for (name, value) in NAMES {
            let mut expected = String::new();
            let mut prev_lower = false;
            for c in value.chars() {
                if c.is_ascii_uppercase() && prev_lower {
                    expected.push('_');
                }
                prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
                match c {
                    '/' | '.' | '-' => expected.push('_'),
                    c => expected.push(c.to_ascii_uppercase()),
                }
            }
            assert_eq!(*name, expected, "{value}");
        }
        assert_eq!(NAMES.len(), Scope::ALL.len());
    }
}
