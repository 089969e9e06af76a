//! Making server text safe to show: capped, printable, and with anything that
//! looks like a token redacted.

use crate::secret::redact;

/// The longest excerpt of a body that an error keeps, in characters.
pub const EXCERPT_CHARS: usize = 200;

/// Runs of token characters at least this long are redacted. HighLevel ids are
/// 20–24 characters; tokens are 31 and more (JWTs run to ~1 KiB).
const OPAQUE_RUN: usize = 28;

/// How much of a body or message is looked at: a few KiB hold any useful
/// excerpt, and a huge one costs no more than this.
const HEAD_BYTES: usize = 8 * 1024;

/// The most server messages an error keeps (a NestJS 422 lists several);
/// the rest are counted in one last line.
pub const MAX_MESSAGES: usize = 8;

/// A short, printable, redacted excerpt of a body; `None` for an empty body.
/// An HTML page is reduced to its text.
pub(crate) fn excerpt(body: &[u8]) -> Option<String> {
    let (head, cut) = head_bytes(body);
    let text = String::from_utf8_lossy(head);
    let text = if text.trim_start().starts_with('<') {
        strip_tags(&text)
    } else {
        text.into_owned()
    };
    let text = if cut { drop_partial_run(&text) } else { &text };
    let clean = cap(sanitize_message(text), cut);
    (!clean.is_empty()).then_some(clean)
}

/// A server's message (or code), made safe to show: sanitized like
/// [`sanitize_message`] and capped at [`EXCERPT_CHARS`] characters (an
/// ellipsis marks a cut), looking at no more than its first 8 KiB.
pub(crate) fn server_text(text: &str) -> String {
    let (head, cut) = head_bytes(text.as_bytes());
    // `head` ends on a character boundary (see `head_bytes`).
    let head = std::str::from_utf8(head).unwrap_or_default();
    let head = if cut { drop_partial_run(head) } else { head };
    cap(sanitize_message(head), cut)
}

/// At most [`HEAD_BYTES`] of `bytes`, ending on a UTF-8 character boundary
/// when `bytes` is UTF-8, and whether anything was cut.
fn head_bytes(bytes: &[u8]) -> (&[u8], bool) {
    if bytes.len() <= HEAD_BYTES {
        return (bytes, false);
    }
    let mut end = HEAD_BYTES;
    // Back off continuation bytes (0b10xx_xxxx) to a character start.
    while end > HEAD_BYTES - 4 && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    (&bytes[..end], true)
}

/// `text` without a run of token characters at its very end: the cut may
/// have split a credential, and a split one is too short to be redacted.
fn drop_partial_run(text: &str) -> &str {
    text.trim_end_matches(in_run)
}

/// `clean` capped at [`EXCERPT_CHARS`] characters, with an ellipsis when
/// anything was cut (here or before, `cut`).
fn cap(clean: String, cut: bool) -> String {
    let mut chars = clean.char_indices();
    match chars.nth(EXCERPT_CHARS) {
        Some((end, _)) => {
            let mut out = clean[..end].to_owned();
            out.push('…');
            out
        }
        None if cut && !clean.is_empty() => clean + "…",
        None => clean,
    }
}

/// Sanitizes an identifier such as a trace id: a UUID-like value (hex digits
/// and dashes) is kept whole, anything else is treated as a server message
/// ([`server_text`]: sanitized and capped).
pub(crate) fn identifier(text: &str) -> String {
    let uuid_like = !text.is_empty()
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if uuid_like {
        text.to_owned()
    } else {
        server_text(text)
    }
}

/// Characters that make up one opaque run (a token, an id, base64, percent-encoding).
fn in_run(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '.' | '_' | '-' | '+' | '/' | '~' | '%' | '!' | '*' | '\'' | '(' | ')'
        )
}

/// Words after which the next run is a credential whatever its length, e.g.
/// `client_secret=…`, `refresh token …`, `Bearer …`.
fn names_a_secret(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    ["token", "secret", "code", "bearer", "password", "assertion"]
        .iter()
        .any(|k| w.ends_with(k))
}

/// Collapses whitespace and control characters, and redacts what may be a
/// credential: any opaque run of 28 characters or more, and any run of 6 or
/// more that contains a digit or `%` and follows a word naming a secret
/// (`token`, `secret`, `code`, `Bearer`…).
pub(crate) fn sanitize_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(1024));
    let mut run = String::new();
    let mut previous = String::new();
    let mut last_space = true;
    let flush = |run: &mut String, out: &mut String, previous: &mut String| {
        if run.is_empty() {
            return;
        }
        let len = run.chars().count();
        let after_secret_word = names_a_secret(previous)
            && len >= 6
            && run.chars().any(|c| c.is_ascii_digit() || c == '%');
        if len >= OPAQUE_RUN || after_secret_word {
            out.push_str(&redact(run));
        } else {
            out.push_str(run);
        }
        std::mem::swap(previous, run);
        run.clear();
    };
    for c in text.chars() {
        if in_run(c) {
            run.push(c);
            last_space = false;
            continue;
        }
        flush(&mut run, &mut out, &mut previous);
        if c.is_whitespace() || c.is_control() {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
        } else {
            out.push(c);
            last_space = false;
        }
    }
    flush(&mut run, &mut out, &mut previous);
    out.trim().to_owned()
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    let lower = html.to_ascii_lowercase();
    let lower = lower.as_bytes();
    let mut skip_until: Option<&str> = None;
    let mut i = 0;
    let bytes = html.as_bytes();
    while i < bytes.len() {
        if let Some(end) = skip_until {
            if lower[i..].starts_with(end.as_bytes()) {
                i += end.len();
                skip_until = None;
            } else {
                i += 1;
            }
            continue;
        }
        if lower[i..].starts_with(b"<script") {
            skip_until = Some("</script>");
            continue;
        }
        if lower[i..].starts_with(b"<style") {
            skip_until = Some("</style>");
            continue;
        }
        let c = bytes[i];
        if c == b'<' {
            in_tag = true;
            out.push(' ');
        } else if c == b'>' && in_tag {
            in_tag = false;
        } else if !in_tag {
            // Copy a whole UTF-8 character.
            let ch_len = html[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&html[i..i + ch_len]);
            i += ch_len;
            continue;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_reduced_to_text() {
        let page = b"<html><head><title>502 Bad Gateway</title><style>a{}</style></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>";
        assert_eq!(
            excerpt(page).unwrap(),
            "502 Bad Gateway 502 Bad Gateway nginx"
        );
    }

    #[test]
    fn tokens_in_text_are_redacted() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIx";
        let s = sanitize_message(&format!("token\n{jwt} is bad"));
        assert_eq!(s, format!("token {} is bad", redact(jwt)));
        assert!(!s.contains(jwt));
        assert_eq!(
            sanitize_message("Location l1C08ntBrFjLS0elLIYU"),
            "Location l1C08ntBrFjLS0elLIYU"
        );
    }

    #[test]
    fn server_text_is_capped_and_never_splits_a_credential() {
        let huge = "x ".repeat(600_000);
        let shown = server_text(&huge);
        assert_eq!(shown.chars().count(), EXCERPT_CHARS + 1);
        assert!(shown.ends_with('…'));
        // A token cut at the 8 KiB mark is dropped, not shown in part.
        let token = "T".repeat(40);
        let text = format!("{}{token}", " ".repeat(HEAD_BYTES - 10));
        assert_eq!(server_text(&text), "");
        assert_eq!(server_text("short"), "short");
        let wide = "é".repeat(HEAD_BYTES);
        assert_eq!(server_text(&wide).chars().count(), EXCERPT_CHARS + 1);
    }

    #[test]
    fn excerpt_is_capped_and_multibyte_safe() {
        let body = "é ".repeat(500);
        let e = excerpt(body.as_bytes()).unwrap();
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert_eq!(excerpt(b"   \n"), None);
        assert!(excerpt(&[0xff, 0xfe, b'<', b'x']).is_some());
    }
}
