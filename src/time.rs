//! Time helpers, in one place: the crate reads no clock, but it does
//! arithmetic on the times it is handed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 for earlier times).
pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `t + d`, or the latest representable time instead of a panic.
pub(crate) fn saturating_add(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).unwrap_or_else(|| {
        // Halve until it fits: the platform's range is finite and unknown.
        let mut step = d;
        let mut out = t;
        while step > Duration::from_secs(1) {
            step /= 2;
            if let Some(next) = out.checked_add(step) {
                out = next;
            }
        }
        out
    })
}

/// `t` rounded up to a whole second (down, at the end of the platform's range).
pub(crate) fn ceil_seconds(t: SystemTime) -> SystemTime {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let down = saturating_add(UNIX_EPOCH, Duration::from_secs(d.as_secs()));
    if d.subsec_nanos() == 0 {
        return down;
    }
    down.checked_add(Duration::from_secs(1)).unwrap_or(down)
}

/// Serde for `SystemTime` as whole Unix seconds.
pub(crate) mod unix_seconds {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(super::unix(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let secs = u64::deserialize(d)?;
        UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .ok_or_else(|| serde::de::Error::custom("time out of range"))
    }
}
