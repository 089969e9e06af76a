//! The invariants checked over the whole simulation: no refresh token is
//! left only at the server.

use super::*;

impl Sim {
    /// Invariant violations seen so far.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Checks that each grant's newest refresh token, issued in an answer
    /// the engines were sent, is somewhere a client can still reach: the
    /// store, an engine, a write or an answer on its way.
    pub(super) fn check_newest(&mut self) {
        let mut reachable: HashSet<String> = self
            .store
            .records
            .values()
            .filter_map(|r| r.refresh_token().map(|t| t.secret().to_owned()))
            .collect();
        for node in &self.nodes {
            for grant in self.store.records.keys() {
                if let Some(r) = node.engine.grants().get(grant).map(|g| g.record())
                    && let Some(t) = r.refresh_token()
                {
                    reachable.insert(t.secret().to_owned());
                }
            }
        }
        for d in &self.delayed {
            if let Some(t) = d.record.refresh_token() {
                reachable.insert(t.secret().to_owned());
            }
        }
        for r in self.downlink.iter().chain(self.held.iter()) {
            if let Ok(t) = serde_json::from_slice::<serde_json::Value>(r.response.body())
                && let Some(rt) = t.get("refresh_token").and_then(|v| v.as_str())
            {
                reachable.insert(rt.to_owned());
            }
        }
        // Tokens issued to someone else (a test spending one behind the
        // engines' back) are not the engines' to keep.
        let seen: HashSet<&String> = self.issued.values().collect();
        let lost: Vec<String> = self
            .fake
            .live_refresh_tokens()
            .into_iter()
            .filter(|t| seen.contains(t) && !reachable.contains(t))
            .collect();
        for live in lost {
            {
                let l = self.refresh_label(&live);
                self.violations.push(format!(
                    "{} the newest refresh token {l} is only at the server",
                    rel(self.now)
                ));
            }
        }
    }

    /// Whether engine `node` holds a live refresh token that the store does
    /// not have: a crash now would lose it with the process (its write is
    /// out, late, or failing), which no client can prevent.
    pub fn holds_unwritten(&self, node: usize) -> bool {
        let engine = &self.nodes[node].engine;
        engine.grants().iter().any(|g| {
            let record = g.record();
            let Some(held) = record.refresh_token() else {
                return false;
            };
            let stored = self
                .store
                .records
                .get(g.id().as_str())
                .and_then(|r| r.refresh_token().map(|t| t.secret().to_owned()));
            self.fake.is_live_refresh_token(held.secret())
                && stored.as_deref() != Some(held.secret())
        })
    }

    /// Checks that every refresh token the fake holds live is the one stored
    /// for its grant: nothing issued was lost.
    pub fn check_nothing_lost(&mut self) -> Result<(), String> {
        let stored: Vec<String> = self
            .store
            .records
            .values()
            .filter_map(|r| r.refresh_token().map(|t| t.secret().to_owned()))
            .collect();
        for live in self.fake.live_refresh_tokens() {
            if !stored.contains(&live) {
                let l = self.refresh_label(&live);
                return Err(format!("live refresh token {l} is in no stored record"));
            }
        }
        Ok(())
    }
}
