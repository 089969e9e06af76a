//! Test helpers: shapes rendered as text for snapshots, with secrets shown
//! only by name and redaction, and a check that no secret is shown.

use std::fmt::Write;

use hoopai_oauth::redact;

use crate::shape::{Failure, Shape, Value};

/// Writes a snapshot into the repository's `snapshots/` folder.
pub fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// Shown fields as they are, nested objects indented; secrets by name and
/// redaction only.
pub fn render(shape: &Shape<'_>) -> String {
    let mut out = String::new();
    render_into(&mut out, shape, 1);
    out
}

fn render_into(out: &mut String, shape: &Shape<'_>, depth: usize) {
    let pad = "  ".repeat(depth);
    for (name, value) in &shape.shown {
        let v = match value {
            Value::Text(s) => format!("{s:?}"),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::List(items) => format!("{items:?}"),
            Value::Pairs(pairs) => format!("{pairs:?}"),
            Value::Null => "null".to_owned(),
            Value::Json(json) => format!("(json) {json}"),
            Value::Object(inner) => {
                writeln!(out, "{pad}{name}:").unwrap();
                render_into(out, inner, depth + 1);
                continue;
            }
            Value::Objects(list) => {
                writeln!(out, "{pad}{name}: [{} objects]", list.len()).unwrap();
                for inner in list {
                    writeln!(out, "{pad}  -").unwrap();
                    render_into(out, inner, depth + 2);
                }
                continue;
            }
        };
        writeln!(out, "{pad}{name}: {v}").unwrap();
    }
    for (name, secret) in &shape.secrets {
        writeln!(
            out,
            "{pad}{name} (not enumerable): {}",
            redact(&secret.text())
        )
        .unwrap();
    }
}

/// A failure as thrown: message and fields.
pub fn render_failure(failure: &Failure) -> String {
    format!(
        "message: {}\n{}",
        failure.message(),
        render(&failure.shape())
    )
}

/// Every text shown anywhere in a shape, nested objects included.
fn shown_texts(shape: &Shape<'_>, out: &mut Vec<String>) {
    for (_, value) in &shape.shown {
        match value {
            Value::Text(s) | Value::Json(s) => out.push(s.clone()),
            Value::List(items) => out.extend(items.iter().cloned()),
            Value::Pairs(pairs) => {
                out.extend(pairs.iter().flat_map(|(n, v)| [n.clone(), v.clone()]));
            }
            Value::Object(inner) => shown_texts(inner, out),
            Value::Objects(list) => list.iter().for_each(|i| shown_texts(i, out)),
            Value::Number(_) | Value::Bool(_) | Value::Null => {}
        }
    }
}

/// No shown field (at any depth) and not `message` contains any of
/// `secrets` in full.
pub fn assert_none_shown(shape: &Shape<'_>, message: &str, secrets: &[&str]) {
    let mut texts = Vec::new();
    shown_texts(shape, &mut texts);
    for secret in secrets {
        assert!(
            !message.contains(secret),
            "{} in the message",
            redact(secret)
        );
        for t in &texts {
            assert!(!t.contains(secret), "{} shown in {t:?}", redact(secret));
        }
    }
}

/// No shown field and no message contains one of the shape's own secrets.
pub fn assert_no_secret_shown(shape: &Shape<'_>, message: &str) {
    let secrets: Vec<String> = shape
        .secrets
        .iter()
        .map(|(_, s)| s.text().into_owned())
        .collect();
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_none_shown(shape, message, &refs);
}
