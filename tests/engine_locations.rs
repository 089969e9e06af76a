//! Location grants minted from a Company grant, driven by install webhooks,
//! against the fake with its rate limit on.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::sim::{Sim, rel};
use hoopai_oauth::fake::{FakeRateLimit, FakeWebhook, Install};
use hoopai_oauth::{EngineSettings, ErrorKind, GrantId, TokenStatus};

const COMPANY: &str = "company-1";

fn locations(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("loc-{i:04}")).collect()
}

/// A Company install approving `locs`, its code exchange, and the bulk
/// INSTALL webhook listing them.
fn bulk_install(sim: &mut Sim, node: usize, locs: &[String]) {
    let refs: Vec<&str> = locs.iter().map(String::as_str).collect();
    sim.install(node, &Install::company(COMPANY, &refs));
    // The code exchange went out beside the engine: it counts all the same.
    assert_eq!(
        sim.nodes[node].engine.count_request(None, sim.now).unwrap(),
        None
    );
    let delivery = sim
        .fake
        .webhook(&FakeWebhook::install_bulk(COMPANY, locs), sim.now);
    sim.webhook(node, &delivery).expect("bulk INSTALL accepted");
    sim.settle();
}

/// The most requests sent in any window of `window` (sliding).
fn busiest(times: &[std::time::SystemTime], window: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for (i, t) in times.iter().enumerate() {
        while *t >= times[start] + window {
            start += 1;
        }
        best = best.max(i + 1 - start);
    }
    best
}

#[test]
fn bulk_install_of_1000_locations_mints_at_the_budget() {
    let mut sim = Sim::new();
    sim.fake.set_rate_limit(Some(FakeRateLimit::highlevel()));
    let a = sim.add_engine("a", EngineSettings::default());
    let locs = locations(1000);
    sim.set_quiet(true);
    let start = sim.now;
    bulk_install(&mut sim, a, &locs);
    sim.run_for(Duration::from_secs(200));
    let ready: Vec<_> = locs
        .iter()
        .map(|l| sim.ready_at.get(l.as_str()).copied())
        .collect();
    assert!(
        ready.iter().all(Option::is_some),
        "not every location is ready"
    );
    let all_ready = ready
        .iter()
        .flatten()
        .max()
        .unwrap()
        .duration_since(start)
        .unwrap();
    // The budget's floor: 1,000 requests at 100 per 10 s.
    let floor = Duration::from_secs(1000 / 100 * 10);
    let ratio = all_ready.as_secs_f64() / floor.as_secs_f64();
    let stats = sim.fake.stats();
    assert_eq!(stats.rate_limited, 0, "429s during the bulk install");
    assert!(
        ratio <= 1.1,
        "all ready after {all_ready:?}, floor {floor:?}"
    );
    assert_eq!(stats.location_tokens, 1000);
    let mint_window = busiest(&sim.send_times, Duration::from_secs(10));
    let mints_sent = sim.sends;
    for l in &locs {
        assert!(matches!(
            sim.nodes[a].engine.access_token(l, sim.now).unwrap(),
            TokenStatus::Ready(_)
        ));
        assert_eq!(
            sim.store.records[l.as_str()]
                .minted_from
                .as_ref()
                .map(GrantId::as_str),
            Some(COMPANY)
        );
    }

    // A day later each location refreshes with its own refresh token, at
    // times spread over the refresh-ahead window: no storm, no 429.
    let before = sim.send_times.len();
    sim.run_for(Duration::from_secs(86_400));
    let refreshes = sim.send_times[before..].to_vec();
    let mut per_second: BTreeMap<u64, usize> = BTreeMap::new();
    for t in &refreshes {
        *per_second
            .entry(t.duration_since(start).unwrap().as_secs())
            .or_default() += 1;
    }
    let stats = sim.fake.stats();
    assert_eq!(stats.rate_limited, 0, "429s during the refreshes");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    let first = refreshes.first().map(|t| rel(*t)).unwrap_or_default();
    let last = refreshes.last().map(|t| rel(*t)).unwrap_or_default();
    let summary = format!(
        "locations:                   1000\n\
         mints sent:                  {mints_sent}\n\
         budget floor:                {floor:?}\n\
         all ready after:             {all_ready:?} ({ratio:.2}x the floor)\n\
         429s:                        {}\n\
         most requests in any 10 s:   {mint_window}\n\
         sends that waited for budget: {}\n\
         refreshes the next day:      {} from {first} to {last}\n\
         distinct seconds:            {}\n\
         most in one second:          {}\n\
         most in any 10 s:            {}\n",
        stats.rate_limited,
        sim.nodes[a].engine.stats().waited_for_budget,
        refreshes.len(),
        per_second.len(),
        per_second.values().max().copied().unwrap_or(0),
        busiest(&refreshes, Duration::from_secs(10)),
    );
    snap!(summary);
}

#[test]
fn minted_locations_refresh_and_survive_a_restart() {
    let mut sim = Sim::new();
    sim.fake.set_rate_limit(Some(FakeRateLimit::highlevel()));
    let a = sim.add_engine("a", EngineSettings::default());
    let locs = locations(2);
    bulk_install(&mut sim, a, &locs);
    sim.note("test", "restart: the relation comes back from the records");
    sim.restart(a);
    for l in &locs {
        assert_eq!(
            sim.nodes[a]
                .engine
                .grants()
                .get(l)
                .and_then(|g| g.minted_from())
                .map(GrantId::as_str),
            Some(COMPANY)
        );
    }
    assert_eq!(
        sim.nodes[a]
            .engine
            .grants()
            .iter()
            .filter(|g| g.minted_from().is_some_and(|c| c.as_str() == COMPANY))
            .count(),
        2
    );
    sim.run_for(Duration::from_secs(2 * 86_400));
    assert_eq!(sim.fake.stats().location_tokens, 2);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    snap!(sim.transcript());
}

#[test]
fn locations_without_refresh_tokens_are_minted_again() {
    let mut sim = Sim::new();
    sim.fake.set_rate_limit(Some(FakeRateLimit::highlevel()));
    sim.fake.set_location_refresh_tokens(false);
    let a = sim.add_engine("a", EngineSettings::default());
    bulk_install(&mut sim, a, &locations(1));
    let record = &sim.store.records["loc-0001"];
    assert!(record.refresh_token().is_none());
    sim.run_for(Duration::from_secs(2 * 86_400));
    // Minted three times: at install, and ahead of each expiry.
    assert_eq!(sim.fake.stats().location_tokens, 3);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    snap!(sim.transcript());
}

#[test]
fn refusals_on_minting_concern_one_location_each() {
    let mut sim = Sim::new();
    sim.fake.set_rate_limit(Some(FakeRateLimit::highlevel()));
    let a = sim.add_engine("a", EngineSettings::default());
    sim.install(a, &Install::company(COMPANY, &["loc-0001", "loc-0002"]));
    sim.fake.set_location_active("loc-0002", false);
    // loc-0003 is not approved for the Company token: 403.
    let locs = locations(3);
    let delivery = sim
        .fake
        .webhook(&FakeWebhook::install_bulk(COMPANY, &locs), sim.now);
    sim.webhook(a, &delivery).unwrap();
    sim.settle();
    let e = &mut sim.nodes[a].engine;
    assert!(matches!(
        e.access_token("loc-0001", sim.now).unwrap(),
        TokenStatus::Ready(_)
    ));
    assert!(matches!(
        e.access_token("loc-0002", sim.now).unwrap(),
        TokenStatus::Suspended { .. }
    ));
    assert_eq!(
        e.access_token("loc-0003", sim.now).unwrap(),
        TokenStatus::ReauthorizationNeeded
    );
    sim.fake.set_location_active("loc-0002", true);
    sim.run_for(Duration::from_secs(3600));
    let e = &mut sim.nodes[a].engine;
    assert!(matches!(
        e.access_token("loc-0002", sim.now).unwrap(),
        TokenStatus::Ready(_)
    ));
    assert!(!e.stats().halted);
    // Records of locations never minted (no tokens) restore too.
    sim.set_quiet(true);
    sim.restart(a);
    assert_eq!(
        sim.nodes[a]
            .engine
            .access_token("loc-0003", sim.now)
            .unwrap(),
        TokenStatus::ReauthorizationNeeded
    );
    sim.set_quiet(false);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    snap!(sim.transcript());
}

#[test]
fn company_token_rotating_while_mints_are_in_flight() {
    let mut sim = Sim::new();
    // A small budget and a short Company token, so that the Company token
    // comes due while the mints still wait for the budget.
    sim.fake
        .set_rate_limit(Some(FakeRateLimit::new(4, Duration::from_secs(10))));
    sim.fake.set_access_lifetime(Duration::from_secs(60));
    let settings = EngineSettings::default()
        .request_budget(4, Duration::from_secs(10))
        .refresh_ahead_spread(Duration::ZERO);
    let a = sim.add_engine("a", settings);
    let locs = locations(10);
    let refs: Vec<&str> = locs.iter().map(String::as_str).collect();
    sim.install(a, &Install::company(COMPANY, &refs));
    sim.run_for(Duration::from_secs(20));
    let delivery = sim
        .fake
        .webhook(&FakeWebhook::install_bulk(COMPANY, &locs), sim.now);
    sim.webhook(a, &delivery).unwrap();
    sim.run_for(Duration::from_secs(40));
    let stats = sim.fake.stats();
    assert_eq!(stats.location_tokens, 10);
    assert_eq!(stats.spent_refresh_token_reuses, 0);
    assert_eq!(stats.rate_limited, 0);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
    snap!(sim.transcript());
}

#[test]
fn uninstall_during_a_refresh() {
    let mut sim = Sim::new();
    sim.fake.set_rate_limit(Some(FakeRateLimit::highlevel()));
    let a = sim.add_engine("a", EngineSettings::default());
    bulk_install(&mut sim, a, &locations(2));
    // loc-0001's own refresh is out when the location is uninstalled.
    let due = sim.nodes[a].engine.poll_timeout().unwrap();
    sim.fate(common::sim::Fate::Hold);
    sim.run_until(due);
    sim.note("test", "uninstall loc-0001 while its refresh is out");
    let delivery = sim
        .fake
        .uninstall(&FakeWebhook::uninstall_location("loc-0001"), sim.now);
    let changes = sim.webhook(a, &delivery).unwrap();
    assert_eq!(changes.removed, [GrantId::new("loc-0001")]);
    assert!(sim.nodes[a].engine.grants().get("loc-0001").is_none());
    assert!(!sim.store.records.contains_key("loc-0001"));
    sim.release();
    sim.run_for(Duration::from_secs(3600));
    sim.note(
        "test",
        "uninstall the agency: the Company grant and its locations go",
    );
    let delivery = sim
        .fake
        .uninstall(&FakeWebhook::uninstall_company(COMPANY), sim.now);
    let changes = sim.webhook(a, &delivery).unwrap();
    assert_eq!(
        changes.removed,
        [GrantId::new(COMPANY), GrantId::new("loc-0002")]
    );
    assert!((sim.nodes[a].engine.stats().grants == 0));
    assert!(sim.store.records.is_empty());
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    snap!(sim.transcript());
}

#[test]
fn forged_replayed_and_stale_webhooks_change_nothing() {
    let mut sim = Sim::new();
    sim.fake.set_rate_limit(Some(FakeRateLimit::highlevel()));
    let a = sim.add_engine("a", EngineSettings::default());
    sim.install(a, &Install::company(COMPANY, &["loc-0001", "loc-0002"]));
    assert_eq!(
        sim.nodes[a].engine.count_request(None, sim.now).unwrap(),
        None
    );
    let delivery = sim
        .fake
        .webhook(&FakeWebhook::install_location(COMPANY, "loc-0001"), sim.now);
    sim.webhook(a, &delivery).unwrap();
    sim.settle();
    let records = sim.store.records.clone();

    sim.note("test", "the same INSTALL delivered again");
    sim.run_for(Duration::from_secs(1));
    let replayed = sim.webhook(a, &delivery).unwrap_err();
    let held = sim.nodes[a].engine.stats().grants;
    let records_after = sim.store.records.clone();
    assert_eq!(held, 2);
    assert_eq!(records_after, records);

    sim.note("test", "an UNINSTALL signed with another key");
    sim.fake.set_webhook_signing_seed([7; 32]);
    let forged = sim
        .fake
        .webhook(&FakeWebhook::uninstall_company(COMPANY), sim.now);
    let forged = sim.webhook(a, &forged).unwrap_err();

    sim.note("test", "an UNINSTALL dated ten minutes ago");
    sim.fake
        .set_webhook_signing_seed(hoopai_oauth::fake::FAKE_WEBHOOK_SEED);
    let old = sim.now - Duration::from_secs(600);
    let stale = sim
        .fake
        .webhook(&FakeWebhook::uninstall_location("loc-0001"), old);
    let stale = sim.webhook(a, &stale).unwrap_err();

    assert_eq!(replayed.kind(), ErrorKind::WebhookReplayed);
    assert_eq!(forged.kind(), ErrorKind::WebhookBadSignature);
    assert_eq!(stale.kind(), ErrorKind::WebhookStale);
    sim.run_for(Duration::from_secs(60));
    assert_eq!(sim.nodes[a].engine.stats().grants, held);
    assert_eq!(sim.store.records, records_after);
    assert!(records.keys().all(|k| sim.store.records.contains_key(k)));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    snap!(sim.transcript());
}

#[test]
fn the_installed_locations_sync_is_a_pure_diff() {
    use hoopai_oauth::{diff_installed_locations, parse_installed_locations};
    let body = r#"{"locations":[
        {"_id":"loc-0001","name":"One","address":"","isInstalled":true},
        {"_id":"loc-0003","name":"Three","address":"","isInstalled":true},
        {"_id":"loc-0004","name":"Four","address":"","isInstalled":false}],
        "count":3,"installToFutureLocations":false}"#;
    let page = parse_installed_locations(http::Response::builder().status(200).body(body).unwrap())
        .unwrap();
    let diff = diff_installed_locations(["loc-0001", "loc-0002", "loc-0004"], &page.locations);
    assert_eq!(diff.add, ["loc-0003"]);
    assert_eq!(diff.remove, ["loc-0002", "loc-0004"]);
    let same = diff_installed_locations(["loc-0003", "loc-0001"], &page.locations);
    assert!(same.add.is_empty() && same.remove.is_empty());
}

/// Shared-store mode: every Location grant a webhook adds is named by a
/// record at once (no tokens, no lease), before its mint's turn. A process
/// that dies with mints queued for the budget leaves records; a restart
/// (or any process of the fleet) mints them.
#[test]
fn queued_mints_survive_a_crash_in_shared_store_mode() {
    let mut sim = Sim::new();
    sim.fake
        .set_rate_limit(Some(FakeRateLimit::new(3, Duration::from_secs(10))));
    // Two grants at a time hold a lease or a request: the other mints wait
    // for a place, with no lease record of their own.
    let settings = EngineSettings::default()
        .shared_store("a", Duration::from_secs(30))
        .request_budget(3, Duration::from_secs(10))
        .max_in_flight(2);
    let a = sim.add_engine("a", settings);
    let locs = locations(6);
    bulk_install(&mut sim, a, &locs);
    let stored = |sim: &Sim| {
        locs.iter()
            .filter(|l| sim.store.records.contains_key(l.as_str()))
            .count()
    };
    assert_eq!(stored(&sim), locs.len(), "a record names every location");
    let minted_before = sim.fake.stats().location_tokens;
    assert!(
        minted_before < 6,
        "most mints wait for the budget: {minted_before}"
    );
    sim.note("test", "crash with mints queued for the budget");
    sim.restart(a);
    // Long enough for the leases the crash left behind to end.
    sim.run_for(Duration::from_secs(600));
    for l in &locs {
        assert!(sim.ready_at.contains_key(l.as_str()), "{l} never minted");
        assert!(matches!(sim.ask(a, l), TokenStatus::Ready(_)), "{l}");
    }
    // Each location once, except a mint out at the crash (its answer died
    // with the process; its lease record let the restart mint it again).
    let minted = sim.fake.stats().location_tokens;
    assert!(minted <= 6 + minted_before, "{minted} mints");
    // (A 429 or two may come: the restarted engine's own budget does not
    // know what the crashed one spent in the same window; a fleet's shared
    // budget, kept in the store, does.)
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
}

/// Shared-store mode: a location another process minted already, listed
/// again in a later delivery to this process, is adopted from the store
/// (the first write of its grant here conflicts), not minted again.
#[test]
fn a_location_minted_elsewhere_is_adopted_not_minted_again() {
    let mut sim = Sim::new();
    sim.fake.set_rate_limit(Some(FakeRateLimit::highlevel()));
    let shared =
        |holder: &str| EngineSettings::default().shared_store(holder, Duration::from_secs(30));
    let a = sim.add_engine("a", shared("a"));
    let b = sim.add_engine("b", shared("b"));
    let locs = locations(4);
    let refs: Vec<&str> = locs.iter().map(String::as_str).collect();
    sim.install(a, &Install::company(COMPANY, &refs));
    sim.settle();
    // `b` holds the Company grant, none of its locations.
    sim.load(b);
    let delivery = sim
        .fake
        .webhook(&FakeWebhook::install_bulk(COMPANY, &locs), sim.now);
    sim.webhook(a, &delivery).expect("bulk INSTALL accepted");
    sim.run_for(Duration::from_secs(30));
    assert_eq!(sim.fake.stats().location_tokens, 4);
    // Another delivery listing the same locations reaches `b`.
    let again = sim
        .fake
        .webhook(&FakeWebhook::install_bulk(COMPANY, &locs), sim.now);
    sim.webhook(b, &again).expect("bulk INSTALL accepted");
    sim.run_for(Duration::from_secs(30));
    assert_eq!(sim.fake.stats().location_tokens, 4, "minted again");
    for l in &locs {
        let (TokenStatus::Ready(ta), TokenStatus::Ready(tb)) = (sim.ask(a, l), sim.ask(b, l))
        else {
            panic!("{l} not ready on both");
        };
        assert_eq!(ta.secret(), tb.secret(), "{l}");
    }
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
}

/// Shared-store mode: the same bulk INSTALL reaches two processes at once
/// (another `webhookId`, or no shared memory of ids). Both write the
/// records of the new grants; the second finds the first's record, holding
/// no token yet, and adopts it. Each location is minted once.
#[test]
fn two_processes_adding_the_same_locations_mint_each_once() {
    let mut sim = Sim::new();
    sim.fake.set_rate_limit(Some(FakeRateLimit::highlevel()));
    let shared = |holder: &str| {
        EngineSettings::default()
            .shared_store(holder, Duration::from_secs(30))
            .max_in_flight(2)
    };
    let a = sim.add_engine("a", shared("a"));
    let b = sim.add_engine("b", shared("b"));
    let locs = locations(5);
    let refs: Vec<&str> = locs.iter().map(String::as_str).collect();
    sim.install(a, &Install::company(COMPANY, &refs));
    sim.settle();
    sim.load(b);
    for node in [a, b] {
        let delivery = sim
            .fake
            .webhook(&FakeWebhook::install_bulk(COMPANY, &locs), sim.now);
        sim.webhook(node, &delivery).expect("bulk INSTALL accepted");
    }
    sim.run_for(Duration::from_secs(120));
    assert_eq!(sim.fake.stats().location_tokens, 5, "each location once");
    for l in &locs {
        let (TokenStatus::Ready(ta), TokenStatus::Ready(tb)) = (sim.ask(a, l), sim.ask(b, l))
        else {
            panic!("{l} not ready on both");
        };
        assert_eq!(ta.secret(), tb.secret(), "{l}");
    }
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.check_nothing_lost().unwrap();
}
