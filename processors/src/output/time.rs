//! Timestamps as OpenLineage writes them.

use chrono::{DateTime, SecondsFormat};

/// RFC 3339 UTC with milliseconds (`2026-11-20T13:00:00.123Z`) of a ms epoch timestamp;
/// out-of-range values clamp to the epoch.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_milliseconds_in_utc() {
        assert_eq!(
            super::rfc3339_ms(1_795_241_820_175),
            "2026-11-21T06:17:00.175Z"
        );
        assert_eq!(super::rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
