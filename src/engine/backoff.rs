//! Retry delays: exponential backoff with "equal jitter", drawn from a seeded
//! SplitMix64 sequence. The seed is the caller's; nothing here is entropy.

use std::time::Duration;

/// SplitMix64: a tiny, fast, deterministic sequence of 64-bit values.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A fraction in `[0, 1)`.
    pub(crate) fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The delay before retry number `attempt` (1-based): `base · 2^(attempt-1)`,
/// capped at `cap`, then jittered to between half and all of it.
pub(crate) fn backoff(
    base: Duration,
    cap: Duration,
    attempt: u32,
    rng: &mut SplitMix64,
) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    let full = base
        .checked_mul(1u32 << exp.min(31))
        .unwrap_or(cap)
        .min(cap);
    let half = full / 2;
    half + half.mul_f64(rng.next_unit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        // Known first value for seed 0 (reference implementation).
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let base = Duration::from_secs(2);
        let cap = Duration::from_secs(60);
        let mut rng = SplitMix64::new(1);
        for attempt in 1..40 {
            let full = (base * 2u32.pow((attempt - 1).min(20))).min(cap);
            let d = backoff(base, cap, attempt, &mut rng);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
    }
}
