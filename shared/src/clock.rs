//! Timestamps as the API shows them: RFC 3339, UTC, whole seconds, with a `Z`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;

/// Seconds since the Unix epoch, now.
pub fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64
}

/// `2026-03-30T12:00:00Z` for the given epoch seconds.
pub fn rfc3339(epoch_secs: i64) -> String {
    DateTime::from_secs(epoch_secs)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// The current time as the API shows it.
pub fn now_rfc3339() -> String {
    rfc3339(now_epoch())
}

/// Parses an RFC 3339 timestamp (any offset, fractions of a second dropped) into epoch
/// seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds_in_utc_with_z() {
        assert_eq!(rfc3339(1_774_872_000), "2026-03-30T12:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn parses_rfc3339_with_offsets() {
        assert_eq!(parse_rfc3339("2026-03-30T12:00:00Z"), Some(1_774_872_000));
        assert_eq!(
            parse_rfc3339("2026-03-30T14:00:00+02:00"),
            Some(1_774_872_000)
        );
        assert_eq!(
            parse_rfc3339("2026-03-30T11:30:00-00:30"),
            Some(1_774_872_000)
        );
        assert_eq!(
            parse_rfc3339("2026-03-30T12:00:00.750Z"),
            Some(1_774_872_000)
        );
        assert_eq!(parse_rfc3339("2026-03-30T14:00:00+2:00"), None);
        assert_eq!(parse_rfc3339("2026-03-30T12:00:00+24:00"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2026-03-30"), None);
    }
}
