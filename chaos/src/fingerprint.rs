//! Short, non-secret names for tokens, the same in every process of a run.

use std::hash::{DefaultHasher, Hash, Hasher};

/// A 12-hex-digit fingerprint of `secret`: enough to tell a run's tokens
/// apart, too short and one-way to give any of it back.
///
/// `DefaultHasher::new()` is the same keyed hash in every process built by
/// one compiler, so the server, the workers and the checker agree.
#[must_use]
pub fn fingerprint(secret: &str) -> String {
    let mut h = DefaultHasher::new();
    "hoopai-oauth-chaos".hash(&mut h);
    secret.hash(&mut h);
    format!("{:012x}", h.finish() >> 16)
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn short_stable_and_distinct() {
        let a = fingerprint("rt-000000000001-0123456789abcdef");
        assert_eq!(a.len(), 12);
        assert_eq!(a, fingerprint("rt-000000000001-0123456789abcdef"));
        assert_ne!(a, fingerprint("rt-000000000002-0123456789abcdef"));
        assert!(!a.contains("rt-"));
    }
}
