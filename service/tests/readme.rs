//! The README's "fresh token in 15 lines" is the service README's, which
//! rustdoc compiles as a doc test of this crate: the two must not drift.

/// The first ```` ```rust ```` block after `heading`.
fn block(text: &str, heading: &str) -> String {
    let section = &text[text.find(heading).expect(heading)..];
    let start = section.find("```rust").unwrap();
    let body = &section[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_owned()
}

#[test]
fn the_readme_shows_the_compiled_fifteen_lines() {
    let root = include_str!("../../README.md");
    let service = include_str!("../README.md");
    let shown = block(root, "## Async apps: a fresh token in 15 lines");
    let compiled = block(service, "## A fresh token in a few lines");
    assert_eq!(shown, compiled);
    let lines = shown.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(lines <= 15, "{lines} lines");
    assert!(service.contains("```rust,no_run\nuse hoopai_oauth::{Config, EngineSettings};"));
}
