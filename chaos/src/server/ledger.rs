//! The server's state: the fake, the seeded dice, and the record of every
//! token issued. No I/O but the logs; the HTTP side lives in [`super::http`].

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, SystemTime};

use hoopai_oauth::fake::{FakeServer, Fault, Install};
use hoopai_oauth::parse_token_response;
use http::{Request, Response, StatusCode};

use super::ServerSettings;
use crate::fingerprint::fingerprint;
use crate::journal::{Delivery, FaultKind, Journal, Micros, Outcome, ServerLine, now_micros};

/// The company every chaos install belongs to.
pub const COMPANY: &str = "company-chaos";

/// What a refresh request will go through, drawn when it arrives.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The server's request number.
    pub req: u64,
    /// The fault to inject, if any.
    pub fault: Option<FaultKind>,
    /// The latency: half before the token is looked at, half after.
    pub latency: Duration,
    /// When the request arrived.
    pub arrived: Micros,
    /// The sender's `x-chaos-worker` header.
    pub worker: Option<String>,
    /// The sender's `x-chaos-request` header.
    pub wreq: Option<u64>,
    /// Fingerprint of the refresh token presented.
    pub fp: String,
    /// The grant of that token, if it was ever issued.
    pub grant: Option<String>,
}

/// What serving a refresh did.
#[derive(Debug, Clone)]
pub struct Served {
    /// The answer.
    pub response: Response<Vec<u8>>,
    /// What happened to the token.
    pub outcome: Outcome,
    /// When the token was spent, for a rotation.
    pub spent_at: Option<Micros>,
    /// Fingerprint of the new refresh token, for a rotation.
    pub new: Option<String>,
}

/// The fake and everything the chaos layer knows about its tokens.
#[derive(Debug)]
pub struct Ledger {
    fake: FakeServer,
    rng: fastrand::Rng,
    settings: ServerSettings,
    /// Every refresh token issued, to its grant.
    grant_of: HashMap<String, String>,
    /// The newest refresh token of every grant.
    newest: BTreeMap<String, String>,
    next_req: u64,
    log: Journal,
    issued: File,
}

impl Ledger {
    /// A fake for the settings' client, with the logs opened.
    ///
    /// # Errors
    /// A log cannot be created.
    pub fn new(settings: ServerSettings) -> io::Result<Self> {
        let mut fake = FakeServer::new(settings.client_id.clone(), settings.client_secret.clone());
        fake.set_access_lifetime(Duration::from_secs(settings.expires_in));
        let issued = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&settings.issued)?;
        let log = Journal::create(&settings.log)?;
        Ok(Ledger {
            fake,
            rng: fastrand::Rng::with_seed(settings.seed),
            grant_of: HashMap::new(),
            newest: BTreeMap::new(),
            next_req: 0,
            log,
            issued,
            settings,
        })
    }

    /// The log.
    #[must_use]
    pub fn log(&self) -> &Journal {
        &self.log
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    /// Approves a Location install of `location` and returns its code.
    pub fn approve(&mut self, location: &str) -> String {
        let code = self.fake.approve(&Install::location(COMPANY, location));
        let code = code.secret().to_owned();
        self.remember_secret(&code);
        code
    }

    /// The newest refresh token of every grant, as fingerprints.
    #[must_use]
    pub fn newest(&self) -> BTreeMap<String, String> {
        self.newest
            .iter()
            .map(|(g, t)| (g.clone(), fingerprint(t)))
            .collect()
    }

    /// Draws the latency and the fault of a refresh presenting `token`.
    pub fn plan_refresh(&mut self, token: &str, worker: Option<String>, wreq: Option<u64>) -> Plan {
        self.next_req += 1;
        let s = &self.settings;
        let (lo, hi) = (s.latency_min_ms, s.latency_max_ms.max(s.latency_min_ms));
        let latency = Duration::from_millis(self.rng.u64(lo..=hi));
        let roll = self.rng.f64() * 100.0;
        let table = [
            (s.p_server_error, FaultKind::ServerError),
            (s.p_rate_limited, FaultKind::RateLimited),
            (s.p_bad_gateway, FaultKind::BadGatewayHtml),
            (s.p_drop_before, FaultKind::DropBeforeSpend),
            (s.p_drop_after, FaultKind::DropAfterSpend),
            (s.p_hold, FaultKind::HoldAfterSpend),
        ];
        let mut edge = 0.0;
        let mut fault = None;
        for (p, kind) in table {
            edge += p;
            if roll < edge {
                fault = Some(kind);
                break;
            }
        }
        Plan {
            req: self.next_req,
            fault,
            latency,
            arrived: now_micros(),
            worker,
            wreq,
            fp: fingerprint(token),
            grant: self.grant_of.get(token).cloned(),
        }
    }

    /// Serves a refresh that got past its first half of latency: a scripted
    /// fault before spending, or the fake's real answer.
    pub fn serve_refresh(&mut self, request: &Request<Vec<u8>>, plan: &Plan) -> Served {
        let scripted = match plan.fault {
            Some(FaultKind::ServerError) => Some(Fault::ServerError),
            Some(FaultKind::RateLimited) => Some(Fault::RateLimited {
                retry_after_secs: Some(1),
            }),
            Some(FaultKind::BadGatewayHtml) => Some(Fault::BadGatewayHtml),
            _ => None,
        };
        let faulted = scripted.is_some();
        if let Some(fault) = scripted {
            self.fake.fail_next(fault, 1);
        }
        let now = SystemTime::now();
        let response = self.fake.handle(request, now);
        if faulted {
            return Served {
                response,
                outcome: Outcome::FaultBeforeSpend,
                spent_at: None,
                new: None,
            };
        }
        if response.status() == StatusCode::OK {
            let new = self.record_issued(&response).map(|(_, fp)| fp);
            return Served {
                response,
                outcome: Outcome::Rotated,
                spent_at: Some(crate::journal::micros(now)),
                new,
            };
        }
        let outcome = if plan.grant.is_some() {
            Outcome::RefusedSpent
        } else {
            Outcome::RefusedUnknown
        };
        Served {
            response,
            outcome,
            spent_at: None,
            new: None,
        }
    }

    /// Serves any other request (a code exchange, the consent page…) with
    /// the fake, without faults; a code exchange installs a grant.
    pub fn serve_other(&mut self, request: &Request<Vec<u8>>) -> Response<Vec<u8>> {
        let response = self.fake.handle(request, SystemTime::now());
        let is_token = request.uri().path().ends_with("/oauth/token");
        if is_token && response.status() == StatusCode::OK {
            if let Some((grant, fp)) = self.record_issued(&response) {
                self.log.write(&ServerLine::Installed {
                    t: now_micros(),
                    grant,
                    fp,
                });
            }
        }
        response
    }

    /// Logs a settled refresh.
    pub fn log_refresh(
        &self,
        plan: &Plan,
        served: Option<&Served>,
        settled: Micros,
        delivery: Delivery,
    ) {
        let outcome = served.map_or(Outcome::FaultBeforeSpend, |s| s.outcome);
        self.log.write(&ServerLine::Refresh {
            req: plan.req,
            worker: plan.worker.clone(),
            wreq: plan.wreq,
            grant: plan.grant.clone(),
            fp: plan.fp.clone(),
            arrived: plan.arrived,
            spent_at: served.and_then(|s| s.spent_at),
            settled,
            outcome,
            fault: plan.fault,
            new: served.and_then(|s| s.new.clone()),
            delivery,
        });
    }

    /// Records the tokens of a successful token answer: the secrets in the
    /// private list, the refresh token as its grant's newest. Returns the
    /// grant and the new refresh token's fingerprint.
    fn record_issued(&mut self, response: &Response<Vec<u8>>) -> Option<(String, String)> {
        let token = parse_token_response(response.clone()).ok()?;
        self.remember_secret(token.access_token.secret());
        let refresh = token.refresh_token.as_ref()?.secret().to_owned();
        self.remember_secret(&refresh);
        let grant = token.location_id.clone()?;
        self.grant_of.insert(refresh.clone(), grant.clone());
        let fp = fingerprint(&refresh);
        self.newest.insert(grant.clone(), refresh);
        Some((grant, fp))
    }

    /// Appends a secret to the private list (never to a log).
    fn remember_secret(&mut self, secret: &str) {
        let line = format!("{secret}\n");
        if let Err(e) = self.issued.write_all(line.as_bytes()) {
            eprintln!("chaos-server: cannot record an issued token: {e}");
        }
    }
}
