//! The `expiry-time="…"` authorized_keys option: parsing it to a unix time and
//! deciding whether it has passed.
//!
//! sshd accepts `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, optionally followed
//! by `Z` or `UTC`. Without the suffix sshd reads the time in the server's local
//! time zone; **Ferry always reads it as UTC** (its servers run in UTC, and one
//! answer on every node is worth more than following each host's zone). A date
//! without a time means midnight at the start of that day. As in sshd, a key stays
//! usable during the expiry second itself and is refused once the clock is past it.

use thiserror::Error;

/// Why an `expiry-time` value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExpiryError {
    /// Not 8, 12 or 14 digits (with an optional `Z`/`UTC` suffix).
    #[error(
        "expiry-time=\"{0}\" is not a date; write it as YYYYMMDD or YYYYMMDDHHMM[SS] in UTC, e.g. expiry-time=\"20301231\""
    )]
    Format(String),
    /// The digits do not name a real date and time (month 13, 31 February, 25:00…).
    #[error(
        "expiry-time=\"{0}\" is not a real date and time; write it as YYYYMMDD or YYYYMMDDHHMM[SS] in UTC, e.g. expiry-time=\"20301231\""
    )]
    InvalidDate(String),
}

/// Parses an `expiry-time` value (`YYYYMMDD[HHMM[SS]]`, optional `Z`/`UTC`
/// suffix, always read as UTC) to seconds since the unix epoch.
///
/// # Errors
/// [`ExpiryError`] when the text is not one of those forms or not a real date.
pub fn parse_expiry_time(text: &str) -> Result<i64, ExpiryError> {
    let format_error = || ExpiryError::Format(text.to_owned());
    let digits = strip_suffix_ignore_case(text, "UTC")
        .or_else(|| strip_suffix_ignore_case(text, "Z"))
        .unwrap_or(text);
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format_error());
    }
    let field = |range: std::ops::Range<usize>| -> i64 {
        digits
            .get(range)
            .and_then(|s| s.parse().ok())
            .unwrap_or_default()
    };
    let (year, month, day) = (field(0..4), field(4..6), field(6..8));
    let (hour, minute, second) = match digits.len() {
        8 => (0, 0, 0),
        12 => (field(8..10), field(10..12), 0),
        _ => (field(8..10), field(10..12), field(12..14)),
    };
    let valid = (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..60).contains(&second);
    if !valid {
        return Err(ExpiryError::InvalidDate(text.to_owned()));
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Whether a key with this expiry (unix seconds) may no longer be used at
/// `now_unix`. Like sshd, the key is refused only once `now` is past the expiry.
#[must_use]
pub fn expiry_has_passed(expiry_unix: i64, now_unix: i64) -> bool {
    now_unix > expiry_unix
}

fn strip_suffix_ignore_case<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let split = text.len().checked_sub(suffix.len())?;
    let (head, tail) = (text.get(..split)?, text.get(split..)?);
    (tail.eq_ignore_ascii_case(suffix) && !head.is_empty()).then_some(head)
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_only_is_midnight_utc() {
        assert_eq!(parse_expiry_time("19700101"), Ok(0));
        assert_eq!(parse_expiry_time("20301231"), Ok(1_924_905_600));
        assert_eq!(parse_expiry_time("20000229"), Ok(951_782_400));
    }

    #[test]
    fn minutes_and_seconds_and_utc_suffixes() {
        assert_eq!(parse_expiry_time("203012312359"), Ok(1_924_991_940));
        assert_eq!(parse_expiry_time("20301231235959"), Ok(1_924_991_999));
        assert_eq!(parse_expiry_time("20301231235959Z"), Ok(1_924_991_999));
        assert_eq!(parse_expiry_time("20301231utc"), Ok(1_924_905_600));
    }

    #[test]
    fn bad_forms_are_refused() {
        for bad in [
            "",
            "2030-12-31",
            "2030123",
            "203012311",
            "2030123123595",
            "Z",
            "abcdefgh",
        ] {
            assert!(
                matches!(parse_expiry_time(bad), Err(ExpiryError::Format(_))),
                "{bad:?}"
            );
        }
        for bad in [
            "20301301",
            "20300230",
            "20290229",
            "20300100",
            "203012312400",
            "203012312360",
            "20301231235960",
        ] {
            assert!(
                matches!(parse_expiry_time(bad), Err(ExpiryError::InvalidDate(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn expiry_passes_only_after_the_second() {
        let expiry = parse_expiry_time("20301231").unwrap();
        assert!(!expiry_has_passed(expiry, expiry - 1));
        assert!(!expiry_has_passed(expiry, expiry));
        assert!(expiry_has_passed(expiry, expiry + 1));
    }
}
