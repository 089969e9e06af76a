//! What JavaScript sees of a verified webhook: `{ type, appId?, webhookId?,
//! timestampMs?, payload }`, the payload an object whose `kind` is
//! `install`, `uninstall` or `other`.

use hoopai_oauth::{InstallTarget, UninstallTarget, WebhookEvent, WebhookPayload};
use serde_json::{Map, Value as Json};

use crate::shape::{Shape, Value};

fn json(map: &Map<String, Json>) -> Value<'static> {
    Value::Json(serde_json::to_string(map).unwrap_or_else(|_| "{}".to_owned()))
}

/// A verified event as a plain object.
#[must_use]
pub fn event(e: &WebhookEvent) -> Shape<'static> {
    let mut s = Shape::default();
    s.text("type", e.event_type.as_str());
    s.opt_text("appId", e.app_id.as_deref());
    s.opt_text("webhookId", e.webhook_id.as_deref());
    if let Some(t) = e.timestamp {
        s.time("timestampMs", t);
    }
    s.object("payload", payload(&e.payload));
    s
}

fn payload(p: &WebhookPayload) -> Shape<'static> {
    let mut s = Shape::default();
    match p {
        WebhookPayload::Install(install) => {
            s.text("kind", "install");
            let mut t = Shape::default();
            match &install.target {
                InstallTarget::Location { location_id } => {
                    t.text("type", "location");
                    t.text("locationId", location_id.as_str());
                }
                InstallTarget::Company { company_id } => {
                    t.text("type", "company");
                    t.text("companyId", company_id.as_str());
                }
                InstallTarget::Bulk {
                    company_id,
                    location_ids,
                } => {
                    t.text("type", "bulk");
                    t.text("companyId", company_id.as_str());
                    t.value("locationIds", Value::List(location_ids.clone()));
                }
                _ => {
                    t.text("type", "other");
                    t.text("detail", "a kind this module does not know");
                }
            }
            s.object("target", t);
            s.opt_text(
                "installType",
                install.install_type.as_ref().map(|u| u.as_str()),
            );
            s.opt_text("companyId", install.company_id.as_deref());
            s.opt_text("versionId", install.version_id.as_deref());
            s.opt_text("userId", install.user_id.as_deref());
            s.opt_text("planId", install.plan_id.as_deref());
            s.opt_text("companyName", install.company_name.as_deref());
            if let Some(b) = install
                .is_whitelabel_company
                .as_ref()
                .and_then(|b| b.as_bool())
            {
                s.flag("isWhitelabelCompany", b);
            }
            s.value("extra", json(&install.extra));
        }
        WebhookPayload::Uninstall(uninstall) => {
            s.text("kind", "uninstall");
            let mut t = Shape::default();
            match &uninstall.target {
                UninstallTarget::Location { location_id } => {
                    t.text("type", "location");
                    t.text("locationId", location_id.as_str());
                }
                UninstallTarget::Company { company_id } => {
                    t.text("type", "company");
                    t.text("companyId", company_id.as_str());
                }
                _ => {
                    t.text("type", "other");
                    t.text("detail", "a kind this module does not know");
                }
            }
            s.object("target", t);
            s.opt_text("companyId", uninstall.company_id.as_deref());
            s.value("extra", json(&uninstall.extra));
        }
        WebhookPayload::Other(body) => {
            s.text("kind", "other");
            s.value("body", json(body));
        }
        _ => s.text("kind", "unknown"),
    }
    s
}
