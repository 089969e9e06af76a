//! RFC 3339 timestamps (`2026-01-01T00:00:00.000Z`), as webhook payloads carry
//! them (JavaScript's `toISOString()`), read and written without a clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Reads an RFC 3339 date-time with the `time` crate: `YYYY-MM-DDTHH:MM:SS`,
/// an optional fraction (kept to the nanosecond), then `Z` or `±HH:MM`.
/// Surrounding white space is ignored. `None` for anything else, and for a
/// time the platform's `SystemTime` cannot hold.
#[must_use]
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let at = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    let whole = Duration::from_secs(at.unix_timestamp().unsigned_abs());
    let fraction = Duration::from_nanos(u64::from(at.nanosecond()));
    if at.unix_timestamp() >= 0 {
        UNIX_EPOCH.checked_add(whole)?.checked_add(fraction)
    } else {
        UNIX_EPOCH.checked_sub(whole)?.checked_add(fraction)
    }
}

/// Writes `t` as RFC 3339 in UTC with milliseconds, as JavaScript's
/// `toISOString()` does: `2026-01-01T00:00:00.000Z`. Times before 1970, and
/// past the year 9999, are written as the epoch.
#[must_use]
pub(crate) fn format_rfc3339_millis(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let at = i64::try_from(since.as_secs())
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .filter(|at| at.year() <= 9999)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let millis = if at == OffsetDateTime::UNIX_EPOCH && since.as_secs() != 0 {
        0
    } else {
        since.subsec_millis()
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn reads_the_shapes_servers_send() {
        // 2026-01-01T00:00:00Z is 1,767,225,600 s after the epoch.
        let t0 = 1_767_225_600;
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00Z"), Some(at(t0, 0)));
        assert_eq!(
            parse_rfc3339("2026-01-01T00:00:00.123Z"),
            Some(at(t0, 123_000_000))
        );
        assert_eq!(
            parse_rfc3339("2026-01-01T00:00:00.123456789123Z"),
            Some(at(t0, 123_456_789))
        );
        assert_eq!(parse_rfc3339("2026-01-01T05:30:00+05:30"), Some(at(t0, 0)));
        assert_eq!(parse_rfc3339("2025-12-31T19:00:00-05:00"), Some(at(t0, 0)));
        assert_eq!(parse_rfc3339(" 2026-01-01t00:00:00z "), Some(at(t0, 0)));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00Z"),
            Some(at(1_709_208_000, 0))
        );
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+0100",
            "2026-01-01T00:00:00ZZ",
            "２０２６-01-01T00:00:00Z",
            "1767225600",
            "2026/01/01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn writes_what_it_reads() {
        for secs in [
            0,
            951_782_400,
            1_767_225_600,
            4_102_444_799,
            253_402_300_799,
        ] {
            let t = at(secs, 987_000_000);
            let text = format_rfc3339_millis(t);
            assert_eq!(parse_rfc3339(&text), Some(t), "{text}");
        }
        assert_eq!(
            format_rfc3339_millis(at(1_767_225_600, 5_000_000)),
            "2026-01-01T00:00:00.005Z"
        );
    }
}
