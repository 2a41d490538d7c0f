//! Nominal time from a partition key: `YYYY-MM-DD` is a day, `YYYY-MM-DD-HH:MM`,
//! `YYYY-MM-DDTHH:MM` and `...:SS` are an hour (dagster-openlineage's heuristic, UTC). Any other
//! key (static, dynamic, multi-partition `a|b`) has no nominal time.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike};

/// A nominal time window, ms since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NominalTime {
    /// Start, inclusive.
    pub start_ms: i64,
    /// End, exclusive.
    pub end_ms: i64,
}

/// The nominal window of a time-partition key, or `None`.
pub fn from_partition(key: &str) -> Option<NominalTime> {
    if key.contains('|') {
        return None;
    }
    if key.len() == 10 {
        let day = NaiveDate::parse_from_str(key, "%Y-%m-%d").ok()?;
        let start = day.and_time(NaiveTime::MIN).and_utc();
        return Some(NominalTime {
            start_ms: start.timestamp_millis(),
            end_ms: (start + TimeDelta::days(1)).timestamp_millis(),
        });
    }
    if key.len() < 16 || !key.is_char_boundary(10) {
        return None;
    }
    let (date, time) = key.split_at(10);
    let time = time.strip_prefix(['-', 'T'])?;
    let normalized = format!("{date}T{time}");
    let parsed = NaiveDateTime::parse_from_str(&normalized, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(&normalized, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    let hour = parsed.date().and_hms_opt(parsed.hour(), 0, 0)?;
    let start = hour.and_utc();
    Some(NominalTime {
        start_ms: start.timestamp_millis(),
        end_ms: (start + TimeDelta::hours(1)).timestamp_millis(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .expect("valid")
            .timestamp_millis()
    }

    #[test]
    fn daily_partition_is_one_utc_day() {
        assert_eq!(
            from_partition("2026-11-20"),
            Some(NominalTime {
                start_ms: ms("2026-11-20T00:00:00Z"),
                end_ms: ms("2026-11-21T00:00:00Z"),
            })
        );
    }

    #[test]
    fn hourly_partitions_are_one_hour() {
        let expected = Some(NominalTime {
            start_ms: ms("2026-11-20T13:00:00Z"),
            end_ms: ms("2026-11-20T14:00:00Z"),
        });
        assert_eq!(from_partition("2026-11-20-13:00"), expected);
        assert_eq!(from_partition("2026-11-20T13:00"), expected);
        assert_eq!(from_partition("2026-11-20T13:00:00"), expected);
        assert_eq!(from_partition("2026-11-20-13:30"), expected);
    }

    #[test]
    fn other_keys_have_no_nominal_time() {
        for key in [
            "customer-42",
            "2026-11-20|eu",
            "2026-13-01",
            "2026-11-20-25:00",
            "",
            "ééééééééééé-13:00",
        ] {
            assert_eq!(from_partition(key), None, "{key}");
        }
    }
}
