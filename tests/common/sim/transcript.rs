//! The transcript: lines of what happens, with tokens named by labels
//! (`A1`, `R1`, …) in order of appearance, never by their secrets.

use super::*;

/// `+Dd HH:MM:SS` since [`t0`].
pub fn rel(t: SystemTime) -> String {
    match t.duration_since(t0()) {
        Ok(d) => {
            let s = d.as_secs();
            format!(
                "+{}d {:02}:{:02}:{:02}",
                s / 86_400,
                s / 3600 % 24,
                s / 60 % 60,
                s % 60
            )
        }
        Err(e) => format!("-{}s", e.duration().as_secs()),
    }
}

impl Sim {
    /// The transcript so far.
    pub fn transcript(&self) -> &str {
        &self.log
    }

    /// Stops (or resumes) writing the transcript; checks go on.
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// Writes a line into the transcript.
    pub fn note(&mut self, who: &str, text: impl AsRef<str>) {
        if !self.quiet {
            let _ = writeln!(self.log, "{}  {:<5} {}", rel(self.now), who, text.as_ref());
        }
    }

    pub(super) fn label(&mut self, kind: usize, secret: &str) -> String {
        if let Some(l) = self.labels.get(secret) {
            return l.clone();
        }
        self.counters[kind] += 1;
        let l = format!("{}{}", ["A", "R"][kind], self.counters[kind]);
        self.labels.insert(secret.to_owned(), l.clone());
        l
    }

    /// The label of a refresh token (`R…`).
    pub fn refresh_label(&mut self, secret: &str) -> String {
        self.label(1, secret)
    }

    /// The label of an access token (`A…`).
    pub fn access_label(&mut self, secret: &str) -> String {
        self.label(0, secret)
    }

    /// A short text for a token status.
    pub fn status_text(&mut self, status: &TokenStatus) -> String {
        match status {
            TokenStatus::Ready(a) => format!("ready {}", self.access_label(a.secret())),
            TokenStatus::Pending => "pending".into(),
            TokenStatus::Suspended { until } => format!("suspended until {}", rel(*until)),
            TokenStatus::Unauthorized { until } => format!("unauthorized until {}", rel(*until)),
            TokenStatus::ReauthorizationNeeded => "re-authorization needed".into(),
            TokenStatus::ConfigurationRejected => "configuration rejected".into(),
            other => format!("{other:?}"),
        }
    }

    pub(super) fn answer_text(&mut self, response: &http::Response<Vec<u8>>) -> String {
        let copy = http::Response::builder()
            .status(response.status())
            .body(response.body().clone())
            .expect("copy");
        let mut with_headers = copy;
        *with_headers.headers_mut() = response.headers().clone();
        let status = response.status().as_u16();
        match parse_token_response(with_headers) {
            Ok(t) => {
                if let Some(r) = &t.refresh_token {
                    self.issued
                        .insert(t.access_token.secret().to_owned(), r.secret().to_owned());
                }
                let a = self.access_label(t.access_token.secret());
                let r = t
                    .refresh_token
                    .as_ref()
                    .map(|r| self.refresh_label(r.secret()))
                    .unwrap_or_else(|| "none".into());
                format!(
                    "{status} access={a} refresh={r} expires_in={}",
                    t.expires_in.unwrap_or_default()
                )
            }
            Err(e) => {
                let wait = e
                    .retry_after(self.now)
                    .map(|d| format!(" retry-after={}s", d.as_secs()))
                    .unwrap_or_default();
                format!("{status} {}{wait}", e.kind())
            }
        }
    }

    pub(super) fn record_text(&mut self, record: &GrantRecord) -> String {
        let status = match &record.status {
            GrantStatus::Active => "active".to_owned(),
            GrantStatus::Suspended { until } => format!("suspended until {}", rel(*until)),
            GrantStatus::Unauthorized { until, .. } => {
                format!("unauthorized until {}", rel(*until))
            }
            GrantStatus::ReauthorizationNeeded { .. } => "re-authorization needed".to_owned(),
            other => format!("{other:?}"),
        };
        let a = match record.access_token().secret() {
            "" => "none".to_owned(),
            a => self.access_label(a),
        };
        let r = record
            .refresh_token()
            .map(|r| self.refresh_label(r.secret()))
            .unwrap_or_else(|| "none".to_owned());
        let lease = record
            .lease
            .as_ref()
            .map(|l| format!(" lease={}..{}", l.holder, rel(l.until)))
            .unwrap_or_default();
        format!(
            "v{} {status} access={a} refresh={r} expires={}{lease}",
            record.version,
            rel(record.expires_at())
        )
    }
}
