//! The handoff file: what a test harness needs to talk to the fake, written
//! once the fake listens.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::keys::KeyForms;
use crate::seed::Seeded;
use crate::settings::Settings;

/// The handoff JSON. The keys `baseUrl`, `clientId`, `clientSecret`,
/// `redirectUri`, `code`, `companyId` and `locationId` are those of the first
/// install (its Location install, if it has one), as earlier readers expect.
pub fn document(
    settings: &Settings,
    base_url: &str,
    app_id: &str,
    installs: &[Seeded],
    key: &KeyForms,
) -> Value {
    let first = installs
        .iter()
        .find(|i| i.location_id.is_some())
        .or_else(|| installs.first());
    json!({
        "baseUrl": base_url,
        "adminUrl": format!("{base_url}/_fake"),
        "clientId": settings.client_id,
        "clientSecret": settings.client_secret,
        "appId": app_id,
        "redirectUri": settings.redirect_uri,
        "code": first.map(|i| i.code.as_str()),
        "companyId": first.map(|i| i.company_id.as_str()),
        "locationId": first.and_then(|i| i.location_id.as_deref()),
        "installs": installs,
        "webhookPublicKey": key,
        "webhookUrl": settings.webhook_url,
        "pid": std::process::id(),
    })
}

/// Writes `value` to `path` through a private temporary file renamed into
/// place, so a reader never sees a partial file.
pub fn write_private(path: &Path, value: &Value) -> Result<(), String> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    file.write_all(value.to_string().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename to {}: {e}", path.display()))
}
