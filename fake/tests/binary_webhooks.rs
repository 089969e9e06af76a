//! Webhooks from the binary: signed INSTALL and UNINSTALL deliveries over
//! HTTP to a receiver, verified with the key the handoff gives (in each of
//! its forms); an uninstall that revokes; a tampered body refused.
mod common;

use std::time::SystemTime;

use common::{Fake, Receiver};
use hoopai_oauth::{
    Config, ErrorKind, InstallTarget, SeenWebhooks, TokenRequest, UninstallTarget, WebhookKey,
    WebhookKeys, WebhookPayload, WebhookVerifier, parse_token_response, token_request,
};
use serde_json::{Value, json};

fn verifier(fake: &Fake, key: WebhookKey) -> WebhookVerifier {
    let cfg = Config::builder(fake.handoff["clientId"].as_str().unwrap(), "unused")
        .build()
        .unwrap();
    WebhookVerifier::new(&cfg).keys(WebhookKeys::empty().with(key))
}

/// The key in each form the handoff gives.
fn keys(handoff: &Value) -> Vec<(&'static str, WebhookKey)> {
    let forms = &handoff["webhookPublicKey"];
    let text = |name: &str| forms[name].as_str().unwrap().to_owned();
    let raw: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&text("rawHex")[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    vec![
        (
            "spkiBase64",
            WebhookKey::from_spki(&text("spkiBase64")).unwrap(),
        ),
        ("pem", WebhookKey::from_spki(&text("pem")).unwrap()),
        (
            "rawHex",
            WebhookKey::from_bytes(&raw.try_into().unwrap()).unwrap(),
        ),
    ]
}

#[test]
fn a_bulk_install_webhook_is_signed_with_the_handed_out_key() {
    let receiver = Receiver::start();
    let fake = Fake::start(&["--quiet"]);
    let (status, made) = fake.admin(
        "POST",
        "installs",
        Some(json!({"type": "bulk", "companyId": "agency-7", "locations": 3, "webhook": true, "url": receiver.url})),
    );
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["webhook"]["delivered"], true);
    assert_eq!(made["webhook"]["status"], 200);
    let (headers, body) = receiver.next();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, made["webhook"]["body"].as_str().unwrap().as_bytes());
    let keys = keys(&fake.handoff);
    assert!(
        keys.windows(2).all(|w| w[0].1 == w[1].1),
        "the forms name one key"
    );
    for (form, key) in keys {
        let event = verifier(&fake, key)
            .verify(
                &headers,
                &body,
                SystemTime::now(),
                &mut SeenWebhooks::new(16),
            )
            .unwrap_or_else(|e| panic!("{form}: {e}"));
        let WebhookPayload::Install(install) = event.payload else {
            panic!("{form}: not an INSTALL");
        };
        assert_eq!(
            install.target,
            InstallTarget::Bulk {
                company_id: "agency-7".into(),
                location_ids: vec![
                    "agency-7-loc-1".into(),
                    "agency-7-loc-2".into(),
                    "agency-7-loc-3".into()
                ],
            }
        );
    }
    // The key is also served by the admin API.
    assert_eq!(
        fake.admin("GET", "webhook-key", None).1,
        fake.handoff["webhookPublicKey"]
    );

    // A tampered body is refused.
    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'7').unwrap();
    tampered[at] = b'8';
    let (_, key) = &self::keys(&fake.handoff)[0];
    let err = verifier(&fake, *key)
        .verify(
            &headers,
            &tampered,
            SystemTime::now(),
            &mut SeenWebhooks::new(16),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WebhookBadSignature);
}

#[test]
fn an_uninstall_revokes_and_says_so() {
    let receiver = Receiver::start();
    let fake = Fake::start(&["--quiet", "--webhook-url", &receiver.url]);
    let cfg = fake.config();
    let token = parse_token_response(
        fake.send(token_request(&cfg, &TokenRequest::authorization_code(fake.code(0))).unwrap())
            .unwrap(),
    )
    .unwrap();
    let (status, answer) = fake.admin("POST", "uninstall", Some(json!({"locationId": "loc-1"})));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["webhook"]["delivered"], true);
    let (headers, body) = receiver.next();
    let (_, key) = keys(&fake.handoff).remove(0);
    let event = verifier(&fake, key)
        .verify(
            &headers,
            &body,
            SystemTime::now(),
            &mut SeenWebhooks::new(16),
        )
        .unwrap();
    let WebhookPayload::Uninstall(uninstall) = event.payload else {
        panic!("not an UNINSTALL");
    };
    assert_eq!(
        uninstall.target,
        UninstallTarget::Location {
            location_id: "loc-1".into()
        }
    );
    let refresh = TokenRequest::refresh_token(token.refresh_token.as_ref().unwrap().secret());
    let err = parse_token_response(fake.send(token_request(&cfg, &refresh).unwrap()).unwrap())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidGrant);
}

#[test]
fn events_of_every_kind_and_failed_deliveries() {
    let receiver = Receiver::start();
    let fake = Fake::start(&["--quiet"]);
    let (status, err) = fake.admin(
        "POST",
        "webhooks",
        Some(json!({"event": "install-location", "companyId": "c", "locationId": "l"})),
    );
    assert_eq!(status, 400);
    assert!(
        err["error"].as_str().unwrap().starts_with("no webhook URL"),
        "{err}"
    );
    let (status, _) = fake.admin("POST", "webhook-url", Some(json!({"url": receiver.url})));
    assert_eq!(status, 200);
    let mut types = Vec::new();
    for event in [
        json!({"event": "install-location", "companyId": "c", "locationId": "l"}),
        json!({"event": "install-company", "companyId": "c"}),
        json!({"event": "install-bulk", "companyId": "c", "locationIds": ["l1", "l2"]}),
        json!({"event": "uninstall-location", "locationId": "l"}),
        json!({"event": "uninstall-company", "companyId": "c"}),
        json!({"event": "custom", "body": {"type": "LocationCreate", "id": "l3", "companyId": "c"}}),
    ] {
        let (status, delivery) = fake.admin("POST", "webhooks", Some(event));
        assert_eq!(
            (status, &delivery["delivered"]),
            (200, &json!(true)),
            "{delivery}"
        );
        let (_, body) = receiver.next();
        let value: Value = serde_json::from_slice(&body).unwrap();
        types.push(format!(
            "{} {}",
            value["type"].as_str().unwrap(),
            value
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    snap!("webhook_events", types.join("\n"));

    // Nothing listens there: the delivery fails, and says why.
    let (status, delivery) = fake.admin(
        "POST",
        "webhooks",
        Some(json!({"event": "install-company", "companyId": "c", "url": "http://127.0.0.1:9/nothing"})),
    );
    assert_eq!(status, 200);
    assert_eq!(delivery["delivered"], false);
    assert!(delivery["error"].is_string(), "{delivery}");
    let (status, err) = fake.admin(
        "POST",
        "webhook-url",
        Some(json!({"url": "https://app.example/hooks"})),
    );
    assert_eq!(status, 400);
    assert!(
        err["error"].as_str().unwrap().contains("plain http://"),
        "{err}"
    );
    let (_, stats) = fake.admin("GET", "stats", None);
    assert_eq!(
        (
            stats["server"]["webhooksDelivered"].clone(),
            stats["server"]["webhooksFailed"].clone()
        ),
        (json!(6), json!(1))
    );
}
