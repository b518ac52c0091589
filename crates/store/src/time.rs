//! Timestamps as the store keeps and shows them.
//!
//! The database holds every time as unix milliseconds (an integer both SQLite
//! and PostgreSQL compare the same way). People and JSON readers get RFC 3339
//! UTC strings such as `2026-05-20T12:34:56.789Z`. This module converts between
//! the two without a calendar crate; it must never read the local clock — the
//! current time always comes from the database ([`crate::Store::now`]).

use serde::Serializer;

/// Formats unix milliseconds as an RFC 3339 UTC string with millisecond
/// precision, e.g. `2026-05-20T12:34:56.789Z`.
#[must_use]
pub fn format_timestamp(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let millis = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let second_of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// serde: unix milliseconds as an RFC 3339 string.
pub(crate) fn serialize_ms<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_timestamp(*ms))
}

/// serde: optional unix milliseconds as an RFC 3339 string or `null`.
pub(crate) fn serialize_opt_ms<S: Serializer>(
    ms: &Option<i64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => serializer.serialize_str(&format_timestamp(*ms)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::format_timestamp;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format_timestamp(1_709_164_800_123),
            "2024-02-29T00:00:00.123Z"
        );
        assert_eq!(
            format_timestamp(1_779_280_496_789),
            "2026-05-20T12:34:56.789Z"
        );
        assert_eq!(
            format_timestamp(253_402_300_799_999),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn agrees_with_day_arithmetic_for_every_day_of_400_years() {
        // Walk day by day and check the date advances by exactly one day.
        let mut previous = format_timestamp(0);
        for day in 1..146_097_i64 {
            let now = format_timestamp(day * 86_400_000);
            assert!(now > previous, "{now} does not follow {previous}");
            assert!(now.ends_with("T00:00:00.000Z"));
            previous = now;
        }
        assert_eq!(previous, "2369-12-31T00:00:00.000Z");
    }
}
