//! Walks both official OpenAPI files (v2 and v3) and proves, from the files
//! themselves, that every OAuth endpoint and parameter has a request builder
//! and that every example they contain parses:
//!
//! - every path has a builder and a parser; every documented body field, query
//!   parameter and `Version` value is one the builder sends;
//! - every response example (the `examples` maps, or an example assembled from
//!   the schema's property examples, following `$ref` and `allOf`) parses:
//!   2xx into a value, the rest into a classified error;
//! - every schema of the files is reached, the unreferenced ones included, and
//!   every error DTO of the common-schema files parses on every endpoint.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write;

use common::{CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, render_request, response, spec_json};
use hoopai_oauth::{
    AccessToken, ApiVersion, Config, Error, ErrorKind, InstalledLocationsQuery,
    LocationTokenRequest, TokenRequest, UserType, installed_locations_request,
    location_token_request, parse_installed_locations, parse_location_token_response,
    parse_token_response, redact, token_request,
};
use serde_json::{Map, Value};

const COMMON_REF: &str = "../common/common-schemas.json#/components/schemas/";
const LOCAL_REF: &str = "#/components/schemas/";
const BEARER: &str = "placeholder-company-access-token-000003";

/// One API version: its OpenAPI file, the common-schema file it refers to,
/// and a config speaking it.
struct Version {
    label: &'static str,
    spec: Value,
    common: Value,
    config: Config,
}

fn versions() -> [Version; 2] {
    let config = |v| {
        Config::builder(CLIENT_ID, CLIENT_SECRET)
            .redirect_uri(REDIRECT_URI)
            .api_version(v)
            .build()
            .unwrap()
    };
    [
        Version {
            label: "v2",
            spec: spec_json("highlevel-oauth-v2.openapi.json"),
            common: spec_json("highlevel-common-schemas-v2.json"),
            config: config(ApiVersion::V2),
        },
        Version {
            label: "v3",
            spec: spec_json("highlevel-oauth-v3.openapi.json"),
            common: spec_json("highlevel-common-schemas-v3.json"),
            config: config(ApiVersion::V3),
        },
    ]
}

/// Which parser answers a path. An unknown path fails the test: every
/// endpoint of the files must have one.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Parser {
    Token,
    LocationToken,
    InstalledLocations,
}

fn parser_for(path: &str) -> Parser {
    match path {
        "/oauth/token" => Parser::Token,
        "/oauth/locationToken" | "/oauth/location-token" => Parser::LocationToken,
        "/oauth/installedLocations" | "/oauth/installed-locations" => Parser::InstalledLocations,
        other => panic!("the spec has {other}, which has no parser"),
    }
}

/// Parses `body` with `parser`; the result rendered for the report.
fn parse(parser: Parser, status: u16, body: &Value) -> Result<String, Error> {
    let resp = response(status, &[], body.to_string());
    Ok(match parser {
        Parser::Token => format!("{:#?}", parse_token_response(resp)?),
        Parser::LocationToken => format!("{:#?}", parse_location_token_response(resp)?),
        Parser::InstalledLocations => format!("{:#?}", parse_installed_locations(resp)?),
    })
}

/// Follows `$ref`s and assembles examples, remembering every schema reached.
struct Walker<'a> {
    spec: &'a Value,
    common: &'a Value,
    reached: BTreeSet<String>,
}

impl<'a> Walker<'a> {
    fn new(v: &'a Version) -> Self {
        Walker {
            spec: &v.spec,
            common: &v.common,
            reached: BTreeSet::new(),
        }
    }

    fn resolve(&mut self, r: &str) -> &'a Value {
        let (doc, name) = if let Some(name) = r.strip_prefix(LOCAL_REF) {
            (self.spec, name)
        } else if let Some(name) = r.strip_prefix(COMMON_REF) {
            (self.common, name)
        } else {
            panic!("unknown $ref {r}")
        };
        self.reached.insert(r.to_owned());
        let schema = &doc["components"]["schemas"][name];
        assert!(schema.is_object(), "{r} does not resolve");
        schema
    }

    /// The example of a schema: its own `example` if it has one, else one
    /// assembled from its parts. Parts are walked either way, so every schema
    /// they refer to counts as reached.
    fn example(&mut self, schema: &'a Value) -> Value {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let target = self.resolve(r);
            return self.example(target);
        }
        let mut assembled = Value::Null;
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            let mut merged = Map::new();
            for part in parts {
                if let Value::Object(m) = self.example(part) {
                    merged.extend(m);
                }
            }
            assembled = Value::Object(merged);
        } else if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            let mut out = Map::new();
            for (name, prop) in props {
                let v = self.example(prop);
                if !v.is_null() {
                    out.insert(name.clone(), v);
                }
            }
            assembled = Value::Object(out);
        } else if let Some(items) = schema.get("items") {
            let item = self.example(items);
            assembled = Value::Array(if item.is_null() { vec![] } else { vec![item] });
        }
        schema.get("example").cloned().unwrap_or(assembled)
    }

    fn property_names(&mut self, schema: &'a Value) -> BTreeSet<String> {
        let schema = match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => self.resolve(r),
            None => schema,
        };
        schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }
}

/// Every schema name of a version, as `$ref` strings.
fn all_schemas(v: &Version) -> BTreeSet<String> {
    let names = |doc: &Value, prefix: &str| -> Vec<String> {
        doc["components"]["schemas"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| format!("{prefix}{k}"))
            .collect()
    };
    names(&v.spec, LOCAL_REF)
        .into_iter()
        .chain(names(&v.common, COMMON_REF))
        .collect()
}

// ---- answers -----------------------------------------------------------------------

/// Checks a parsed 2xx example against the example itself.
fn check_success(parser: Parser, body: &Value) {
    let resp = || response(200, &[], body.to_string());
    let field = |a: &str, b: &str| body.get(a).or_else(|| body.get(b)).cloned();
    match parser {
        Parser::Token | Parser::LocationToken => {
            let token = if parser == Parser::Token {
                parse_token_response(resp()).unwrap()
            } else {
                parse_location_token_response(resp()).unwrap()
            };
            assert_eq!(
                Some(Value::from(token.access_token.secret())),
                field("access_token", "accessToken")
            );
            assert_eq!(
                token.refresh_token.map(|t| Value::from(t.secret())),
                field("refresh_token", "refreshToken")
            );
            assert_eq!(token.user_id.map(Value::from), field("userId", "userId"));
            assert!(token.extra.is_empty(), "unknown fields: {:?}", token.extra);
        }
        Parser::InstalledLocations => {
            let page = parse_installed_locations(resp()).unwrap();
            let list = field("locations", "items").unwrap();
            let ids: Vec<&str> = list
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["_id"].as_str().unwrap())
                .collect();
            let parsed: Vec<&str> = page.locations.iter().map(|l| l.id.as_str()).collect();
            assert_eq!(parsed, ids);
            let total = body
                .get("count")
                .or_else(|| body.pointer("/pagination/totalRecords"))
                .and_then(Value::as_u64);
            assert_eq!(page.total, total);
            assert!(page.extra.is_empty(), "unknown fields: {:?}", page.extra);
            for l in &page.locations {
                assert!(l.extra.is_empty(), "unknown fields: {:?}", l.extra);
            }
        }
    }
}

/// Every response of every path, every example: the report of one version.
fn answers_report<'a>(v: &'a Version, walker: &mut Walker<'a>) -> String {
    let mut out = String::new();
    for (path, ops) in v.spec["paths"].as_object().unwrap() {
        let parser = parser_for(path);
        for (method, op) in ops.as_object().unwrap() {
            for (status, resp) in op["responses"].as_object().unwrap() {
                let code: u16 = status.parse().unwrap();
                let content = &resp["content"]["application/json"];
                let mut examples: Vec<(String, Value)> = Vec::new();
                if let Some(named) = content.get("examples").and_then(Value::as_object) {
                    for (name, ex) in named {
                        examples.push((format!("example {name}"), ex["value"].clone()));
                    }
                }
                let schema = &content["schema"];
                let assembled = walker.example(schema);
                if examples.is_empty() {
                    let name = schema["$ref"].as_str().unwrap_or("inline");
                    examples.push((format!("schema {}", short(name)), assembled));
                }
                for (name, body) in examples {
                    let result = parse(parser, code, &body);
                    writeln!(out, "## {} {path} {code}, {name}", method.to_uppercase()).unwrap();
                    match result {
                        Ok(parsed) => {
                            assert!((200..300).contains(&code), "{path} {code} parsed: {body}");
                            check_success(parser, &body);
                            writeln!(out, "{parsed}\n").unwrap();
                        }
                        Err(err) => {
                            assert!(code >= 400, "{path} {code} {name}: {err}");
                            assert_ne!(err.kind(), ErrorKind::Unreadable, "{path} {code}: {err}");
                            assert_eq!(err.status().map(|s| s.as_u16()), Some(code));
                            writeln!(out, "{:?}: {err}\n", err.kind()).unwrap();
                        }
                    }
                }
            }
        }
    }
    out
}

fn short(r: &str) -> &str {
    r.rsplit('/').next().unwrap()
}

/// The schemas no path refers to, parsed by what their names say they are.
fn unreferenced_report<'a>(v: &'a Version, walker: &mut Walker<'a>) -> String {
    let mut out = String::new();
    let missing: Vec<String> = all_schemas(v)
        .difference(&walker.reached)
        .cloned()
        .collect();
    for r in missing {
        let schema = walker.resolve(&r);
        let body = walker.example(schema);
        let name = short(&r);
        let answer = if !name.contains("Successful") {
            None
        } else if name.contains("LocationAccessToken") {
            Some(Parser::LocationToken)
        } else if name.contains("InstalledLocations") {
            Some(Parser::InstalledLocations)
        } else if name.contains("AccessToken") || name.contains("AccessCode") {
            Some(Parser::Token)
        } else {
            None
        };
        let result = if let Some(parser) = answer {
            let parsed = parse(parser, 200, &body).unwrap();
            check_success(parser, &body);
            format!("{parser:?} parser:\n{parsed}")
        } else if r.starts_with(COMMON_REF) {
            // Checked on every endpoint by `every_common_error_dto_on_every_endpoint`.
            "an error DTO no path of this version refers to".to_owned()
        } else {
            panic!("{r} is not covered by any check")
        };
        writeln!(out, "## {name}\n{result}\n").unwrap();
    }
    out
}

#[test]
fn every_answer_example_parses() {
    for v in versions() {
        let mut walker = Walker::new(&v);
        let answers = answers_report(&v, &mut walker);
        // Request bodies are checked by `every_documented_parameter_has_a_builder`;
        // walk them here too so the coverage check sees the whole file.
        for ops in v.spec["paths"].as_object().unwrap().values() {
            for op in ops.as_object().unwrap().values() {
                if let Some(content) = op["requestBody"]["content"].as_object() {
                    for c in content.values() {
                        walker.example(&c["schema"]);
                    }
                }
            }
        }
        let unreferenced = unreferenced_report(&v, &mut walker);
        assert_eq!(
            walker.reached,
            all_schemas(&v),
            "{}: schemas not reached",
            v.label
        );
        snap!(
            format!("{}_answers", v.label),
            format!("{answers}\n# schemas no path refers to\n\n{unreferenced}")
        );
    }
}

#[test]
fn every_common_error_dto_on_every_endpoint() {
    let mut out = String::new();
    for v in versions() {
        let mut walker = Walker::new(&v);
        for r in all_schemas(&v)
            .into_iter()
            .filter(|r| r.starts_with(COMMON_REF))
        {
            let schema = walker.resolve(&r);
            let body = walker.example(schema);
            let status = body["statusCode"].as_u64().unwrap() as u16;
            write!(out, "{} {} ({status}):", v.label, short(&r)).unwrap();
            for parser in [
                Parser::Token,
                Parser::LocationToken,
                Parser::InstalledLocations,
            ] {
                let err = parse(parser, status, &body).unwrap_err();
                assert_eq!(err.status().map(|s| s.as_u16()), Some(status));
                assert!(!err.messages().is_empty());
                // The same body on a 200 is still an error.
                let on_200 = parse(parser, 200, &body).unwrap_err();
                assert_eq!(on_200.kind(), err.kind(), "{r} on 200 via {parser:?}");
                write!(out, " {parser:?}={:?}", err.kind()).unwrap();
            }
            writeln!(out).unwrap();
        }
    }
    snap!(out);
}

// ---- requests ----------------------------------------------------------------------

/// The form (or query) keys of a built request.
fn form_keys(req: &http::Request<Vec<u8>>) -> BTreeSet<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(req.body()).unwrap();
    pairs.into_iter().map(|(k, _)| k).collect()
}

fn query_pairs(req: &http::Request<Vec<u8>>) -> Vec<(String, String)> {
    serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap()
}

/// A parameter example as the query string carries it.
fn as_query_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Sets one documented query parameter on the installed-locations query, from
/// its example. An unknown name fails the test: it would have no builder.
fn set_param(q: InstalledLocationsQuery, name: &str, example: &Value) -> InstalledLocationsQuery {
    let text = as_query_value(example);
    let flag = || example.as_bool().expect("a boolean example");
    match name {
        "companyId" => q, // given to `new`
        "appId" => q.app_id(text),
        "skip" => q.skip(text.parse().unwrap()),
        "limit" | "pageSize" => q.page_size(text.parse().unwrap()),
        "pageToken" => q.page_token(text),
        "query" => q.search(text),
        "isInstalled" => q.installed(flag()),
        "restrictToUserLocations" => q.restrict_to_user_locations(flag()),
        "versionId" => q.version_id(text),
        "onTrial" => q.on_trial(flag()),
        "planId" => q.plan_id(text),
        "locationId" => q.location_id(text),
        other => panic!("the query parameter {other} has no builder"),
    }
}

/// The request of one path, built from the spec's own examples where it has
/// them, with every documented parameter set.
fn build_for<'a>(
    v: &'a Version,
    walker: &mut Walker<'a>,
    path: &str,
    op: &'a Value,
) -> Vec<(String, http::Request<Vec<u8>>)> {
    let bearer = AccessToken::new(BEARER);
    match parser_for(path) {
        Parser::Token => {
            let grants = [
                (
                    "authorization_code",
                    TokenRequest::authorization_code("placeholder-code")
                        .user_type(UserType::Location),
                ),
                (
                    "refresh_token",
                    TokenRequest::refresh_token("placeholder-refresh-token")
                        .user_type(UserType::Company),
                ),
                ("client_credentials", TokenRequest::client_credentials()),
            ];
            grants
                .into_iter()
                .map(|(name, r)| (name.to_owned(), token_request(&v.config, &r).unwrap()))
                .collect()
        }
        Parser::LocationToken => {
            let content = &op["requestBody"]["content"]["application/x-www-form-urlencoded"];
            let body = walker.example(&content["schema"]);
            let get = |k: &str, fallback: &str| {
                body.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or(fallback)
                    .to_owned()
            };
            let req = LocationTokenRequest::new(
                get("companyId", "tDtDnQdgm2LXpyiqYvZ6"),
                get("locationId", "l1C08ntBrFjLS0elLIYU"),
            );
            vec![(
                "form".into(),
                location_token_request(&v.config, &bearer, &req).unwrap(),
            )]
        }
        Parser::InstalledLocations => {
            let params = op["parameters"].as_array().unwrap();
            let company = params
                .iter()
                .find(|p| p["name"] == "companyId")
                .map(|p| as_query_value(&p["schema"]["example"]))
                .unwrap();
            let mut q = InstalledLocationsQuery::new(company);
            for p in params.iter().filter(|p| p["in"] == "query") {
                q = set_param(q, p["name"].as_str().unwrap(), &p["schema"]["example"]);
            }
            vec![(
                "every parameter".into(),
                installed_locations_request(&v.config, &bearer, &q).unwrap(),
            )]
        }
    }
}

#[test]
fn every_documented_parameter_has_a_builder() {
    for v in versions() {
        let mut walker = Walker::new(&v);
        let mut out = String::new();
        for (path, ops) in v.spec["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let built = build_for(&v, &mut walker, path, op);
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                for (name, req) in &built {
                    // Method and path.
                    assert_eq!(req.method().as_str(), method.to_uppercase(), "{path}");
                    assert_eq!(req.uri().path(), path);
                    // Headers: every documented `Version` value is one we send.
                    for p in params.iter().filter(|p| p["in"] == "header") {
                        assert_eq!(p["name"], "Version", "{path}: unknown header {p}");
                        let sent = req.headers().get("version").map(|h| h.to_str().unwrap());
                        let allowed: Vec<&str> = p["schema"]["enum"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|e| e.as_str().unwrap())
                            .collect();
                        assert!(
                            sent.is_some_and(|s| allowed.contains(&s)),
                            "{path}: Version {sent:?} not in {allowed:?}"
                        );
                    }
                    // A bearer exactly where the spec asks for one.
                    assert_eq!(
                        req.headers().contains_key("authorization"),
                        op.get("security").is_some(),
                        "{path}"
                    );
                    // Query parameters: exactly the documented ones, with their examples.
                    let documented: Vec<(String, String)> = params
                        .iter()
                        .filter(|p| p["in"] == "query")
                        .map(|p| {
                            (
                                p["name"].as_str().unwrap().to_owned(),
                                as_query_value(&p["schema"]["example"]),
                            )
                        })
                        .collect();
                    let mut sent = query_pairs(req);
                    let mut expected = documented.clone();
                    sent.sort();
                    expected.sort();
                    assert_eq!(sent, expected, "{path}");
                    writeln!(
                        out,
                        "## {path} ({name})\n{}",
                        render_request(req).replace(BEARER, &redact(BEARER))
                    )
                    .unwrap();
                }
                // Form bodies: the keys our requests send are the documented ones.
                if let Some(content) = op["requestBody"]["content"].as_object() {
                    let form = &content["application/x-www-form-urlencoded"]["schema"];
                    let documented = walker.property_names(form);
                    let sent: BTreeSet<String> =
                        built.iter().flat_map(|(_, r)| form_keys(r)).collect();
                    assert_eq!(sent, documented, "{path} form fields");
                    // Enumerated values are ones the builders send.
                    let schema = match form.get("$ref").and_then(Value::as_str) {
                        Some(r) => walker.resolve(r),
                        None => form,
                    };
                    for (field, prop) in schema["properties"].as_object().unwrap() {
                        if let Some(values) = prop["enum"].as_array() {
                            for value in values {
                                let value = value.as_str().unwrap();
                                let sent_somewhere = built.iter().any(|(_, r)| {
                                    let pairs: Vec<(String, String)> =
                                        serde_urlencoded::from_bytes(r.body()).unwrap();
                                    pairs.iter().any(|(k, v)| k == field && v == value)
                                });
                                assert!(sent_somewhere, "{path}: {field}={value} is never sent");
                            }
                        }
                    }
                    for (_, req) in &built {
                        let ct = req.headers()["content-type"].to_str().unwrap();
                        assert!(content.contains_key(ct), "{path}: {ct} is not documented");
                    }
                }
            }
        }
        snap!(format!("{}_requests", v.label), out);
    }
}
