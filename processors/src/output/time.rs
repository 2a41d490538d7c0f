//! Timestamps as OpenLineage writes them.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike};

/// RFC 3339 UTC with milliseconds (`2026-11-20T13:00:00.123Z`) of a ms epoch timestamp;
/// out-of-range values clamp to the epoch. Its digits are written into a fixed template (it is
/// in every event); years beyond four digits go through chrono.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let time = DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let Ok(year @ 0..=9999) = u32::try_from(time.year()) else {
        return time.to_rfc3339_opts(SecondsFormat::Millis, true);
    };
    let mut text = *b"0000-00-00T00:00:00.000Z";
    for (range, value) in [
        (0..4, year),
        (5..7, time.month()),
        (8..10, time.day()),
        (11..13, time.hour()),
        (14..16, time.minute()),
        (17..19, time.second()),
        (20..23, time.timestamp_subsec_millis()),
    ] {
        let mut rest = value;
        for digit in text[range].iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
    }
    String::from_utf8_lossy(&text).into_owned()
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

    #[test]
    fn writes_what_chrono_writes() {
        use chrono::{DateTime, SecondsFormat};
        let mut ms: i64 = -62_167_219_200_000; // 0000-01-01
        while ms < 253_402_300_800_000 + 86_400_000 * 400 {
            let chrono = DateTime::from_timestamp_millis(ms)
                .unwrap_or_default()
                .to_rfc3339_opts(SecondsFormat::Millis, true);
            assert_eq!(super::rfc3339_ms(ms), chrono, "{ms}");
            ms += 7_777_777_777; // ~90 days, every field moves
        }
        assert_eq!(super::rfc3339_ms(i64::MAX), "1970-01-01T00:00:00.000Z");
    }
}
