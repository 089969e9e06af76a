//! The simulated network: scripted fates of sends, requests in flight,
//! answers on their way or held, sends of slow drivers.

use super::*;

impl Sim {
    /// Forgets the scripted fates not used yet.
    pub fn clear_fates(&mut self) {
        self.fates.clear();
    }

    /// Scripts the fate of the next sends, in order; later sends are normal.
    pub fn fate(&mut self, fate: Fate) {
        self.fates.push_back(fate);
    }

    /// Delivers every held answer now.
    pub fn release(&mut self) {
        for reply in std::mem::take(&mut self.held) {
            self.deliver(reply);
        }
    }

    /// Whether answers are on their way to `node` (late or held).
    pub fn answers_pending(&self, node: usize) -> bool {
        self.downlink
            .iter()
            .chain(self.held.iter())
            .any(|r| r.node == node)
            || self.outbox.iter().any(|o| o.node == node)
    }

    pub(super) fn deliver(&mut self, reply: Reply) {
        let name = self.nodes[reply.node].name.clone();
        if reply.late {
            self.note(&name, format!("late answer to {} arrives", reply.id));
        }
        let grant = self
            .flights
            .iter()
            .find(|f| f.node == reply.node && f.id == reply.id)
            .map(|f| f.grant.clone());
        self.flights
            .retain(|f| !(f.node == reply.node && f.id == reply.id));
        let result = self.nodes[reply.node].engine.handle_send(
            reply.id,
            SendOutcome::Response(reply.response),
            self.now,
        );
        if let (true, Some(grant)) = (self.ask_on_answer, grant.clone()) {
            // Before the outputs of the answer are polled.
            self.ask(reply.node, grant.as_str());
        }
        match (result, grant) {
            (Err(e), Some(g)) if self.deleted.contains(&g) => {
                let kept = if e.rescued_refresh_token().is_some() {
                    " (refresh token rescued in the error)"
                } else {
                    ""
                };
                self.note(
                    &name,
                    format!(
                        "answer to {} of deleted {g} refused: {}{kept}",
                        reply.id,
                        e.kind()
                    ),
                );
            }
            (Err(e), _) => self.violations.push(format!(
                "{} {name}: answer to {} refused: {e}",
                rel(self.now),
                reply.id
            )),
            _ => {}
        }
        self.pump(reply.node);
    }

    /// A queued send's turn: dispatched, or reported expired past its
    /// `not_after`.
    pub(super) fn dispatch(&mut self, o: Outgoing) {
        let name = self.nodes[o.node].name.clone();
        if self.now > o.not_after {
            self.note(
                &name,
                format!("send {} {} expired in the queue", o.id, o.grant),
            );
            let result =
                self.nodes[o.node]
                    .engine
                    .handle_send(o.id, SendOutcome::NotDispatched, self.now);
            if let Err(e) = result
                && e.kind() != hoopai_oauth::ErrorKind::UnknownRequest
            {
                self.violations.push(format!(
                    "{} {name}: handle_send_expired refused: {e}",
                    rel(self.now)
                ));
            }
        } else {
            self.on_send(o.node, o.id, o.grant, o.request);
        }
        self.pump(o.node);
    }

    pub(super) fn on_send(
        &mut self,
        node: usize,
        id: RequestId,
        grant: GrantId,
        request: http::Request<Vec<u8>>,
    ) {
        self.sends += 1;
        self.send_times.push(self.now);
        let name = self.nodes[node].name.clone();
        let path = request.uri().path();
        if path.ends_with("/oauth/locationToken") || path.ends_with("/oauth/location-token") {
            self.on_mint(node, id, grant, request);
            return;
        }
        let form: Vec<(String, String)> =
            serde_urlencoded::from_bytes(request.body()).unwrap_or_default();
        let refresh = form
            .iter()
            .find(|(k, _)| k == "refresh_token" || k == "refreshToken")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let r = self.refresh_label(&refresh);
        if !self.fake.is_live_refresh_token(&refresh) {
            self.violations.push(format!(
                "{} {name}: sent {r}, which is not live, for {grant}",
                rel(self.now)
            ));
        }
        if let Some(other) = self.flights.iter().find(|f| f.grant == grant) {
            let other = format!("{} of {}", other.id, self.nodes[other.node].name);
            self.violations.push(format!(
                "{} {name}: second refresh of {grant} while {other} is in flight",
                rel(self.now)
            ));
        }
        let fate = self.fates.pop_front().unwrap_or(Fate::Normal);
        let how = match fate {
            Fate::Normal => String::new(),
            Fate::Drop => " (lost on the way)".into(),
            Fate::Late(d) => format!(" (answer will take {}s)", d.as_secs()),
            Fate::Hold => " (answer held)".into(),
        };
        self.note(&name, format!("send {id} {grant} refresh={r}{how}"));
        self.flights.push(Flight {
            node,
            id,
            grant,
            dropped: fate == Fate::Drop,
        });
        if fate == Fate::Drop {
            return;
        }
        let response = self.fake.handle(&request, self.now);
        let summary = self.answer_text(&response);
        self.note("fake", format!("{id} -> {summary}"));
        let at = match fate {
            Fate::Late(d) => self.now + d,
            _ => self.now,
        };
        let reply = Reply {
            node,
            id,
            at,
            late: fate != Fate::Normal,
            response,
        };
        if fate == Fate::Hold {
            self.held.push(reply);
        } else {
            self.downlink.push(reply);
        }
    }

    /// A Location-token mint: presents the Company grant's access token, no
    /// refresh token. Answered at once.
    pub(super) fn on_mint(
        &mut self,
        node: usize,
        id: RequestId,
        grant: GrantId,
        request: http::Request<Vec<u8>>,
    ) {
        let name = self.nodes[node].name.clone();
        let bearer = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        let a = self.access_label(&bearer);
        if let Some(other) = self.flights.iter().find(|f| f.grant == grant) {
            let other = format!("{} of {}", other.id, self.nodes[other.node].name);
            self.violations.push(format!(
                "{} {name}: second request for {grant} while {other} is in flight",
                rel(self.now)
            ));
        }
        self.note(&name, format!("send {id} {grant} mint bearer={a}"));
        self.flights.push(Flight {
            node,
            id,
            grant,
            dropped: false,
        });
        let response = self.fake.handle(&request, self.now);
        let summary = self.answer_text(&response);
        self.note("fake", format!("{id} -> {summary}"));
        self.downlink.push(Reply {
            node,
            id,
            at: self.now,
            late: false,
            response,
        });
    }
}
