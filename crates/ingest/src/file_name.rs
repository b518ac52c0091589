//! File names as districts' tools write them: Infinite Campus's Data Extract
//! Utility appends the export time (`students_20261123.csv`,
//! `students_20261123140509.csv`, `students_2026112314050927.csv`), and the
//! vendor's import wants the same file every night under one *logical name*
//! (`students.csv`). The roster guard compares row counts per logical name.
//!
//! A suffix of 8, 14 or 16 digits after the last `_` and before the extension
//! is a date suffix; it must be a real date and time, or the file is reported,
//! because a misnamed file would be compared with the wrong previous file.
//! Names in, names out: this never touches the file system.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::problem::{Problem, ProblemKind};

/// The date and time a tool appended to a file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateSuffix {
    /// 1900–2999.
    pub year: u16,
    /// 1–12.
    pub month: u8,
    /// 1–31, valid for the month.
    pub day: u8,
    /// Hour, minute and second (`_yyyymmddhhmmss`), when given.
    pub time: Option<(u8, u8, u8)>,
    /// Hundredths of a second (`_yyyymmddhhmmssSS`), when given.
    pub hundredths: Option<u8>,
}

impl DateSuffix {
    /// Parses the digits of a suffix (8, 14 or 16 of them).
    ///
    /// # Errors
    /// A plain-English reason when the digits are not a real date and time.
    pub fn parse(digits: &str) -> Result<Self, String> {
        if !matches!(digits.len(), 8 | 14 | 16) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{digits:?} is not yyyymmdd, yyyymmddhhmmss or yyyymmddhhmmssSS"
            ));
        }
        let number = |range: std::ops::Range<usize>| -> u16 {
            digits[range]
                .bytes()
                .fold(0, |acc, b| acc * 10 + u16::from(b - b'0'))
        };
        let year = number(0..4);
        let month = number(4..6) as u8;
        let day = number(6..8) as u8;
        if !(1900..=2999).contains(&year) {
            return Err(format!("the year {year} is not plausible"));
        }
        if !(1..=12).contains(&month) {
            return Err(format!("there is no month {month:02}"));
        }
        let days_in_month = match month {
            2 if is_leap_year(year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if day == 0 || day > days_in_month {
            return Err(format!(
                "{} has no day {day:02}",
                month_year_name(year, month)
            ));
        }
        let time = if digits.len() >= 14 {
            let (hour, minute, second) = (
                number(8..10) as u8,
                number(10..12) as u8,
                number(12..14) as u8,
            );
            if hour > 23 || minute > 59 || second > 59 {
                return Err(format!(
                    "{hour:02}:{minute:02}:{second:02} is not a time of day"
                ));
            }
            Some((hour, minute, second))
        } else {
            None
        };
        let hundredths = (digits.len() == 16).then(|| number(14..16) as u8);
        Ok(Self {
            year,
            month,
            day,
            time,
            hundredths,
        })
    }
}

impl fmt::Display for DateSuffix {
    /// `2026-11-23`, `2026-11-23 14:05:09` or `2026-11-23 14:05:09.27`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)?;
        if let Some((hour, minute, second)) = self.time {
            write!(f, " {hour:02}:{minute:02}:{second:02}")?;
        }
        if let Some(hundredths) = self.hundredths {
            write!(f, ".{hundredths:02}")?;
        }
        Ok(())
    }
}

/// Serialised as its display form, `2026-11-23 14:05:09.27`.
impl Serialize for DateSuffix {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn is_leap_year(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn month_year_name(year: u16, month: u8) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    format!("{} {year}", MONTHS[usize::from(month - 1)])
}

/// A file name split into its logical name and date suffix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileName {
    /// The name as uploaded.
    pub name: String,
    /// The name with a valid date suffix removed (`students.csv`); the name as
    /// uploaded when there is no valid suffix.
    pub logical_name: String,
    /// The valid date suffix, if any.
    pub date_suffix: Option<DateSuffix>,
    /// The digits of a suffix that looked like a date but is not a real one
    /// (`20261345`), with the reason.
    pub bad_date_suffix: Option<(String, String)>,
}

impl FileName {
    /// Splits `name` (a bare file name, no directories).
    #[must_use]
    pub fn parse(name: &str) -> Self {
        let (stem, extension) = match name.rfind('.') {
            Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
            _ => (name, ""),
        };
        let mut parsed = Self {
            name: name.to_string(),
            logical_name: name.to_string(),
            date_suffix: None,
            bad_date_suffix: None,
        };
        let Some(underscore) = stem.rfind('_') else {
            return parsed;
        };
        let (base, digits) = (&stem[..underscore], &stem[underscore + 1..]);
        if base.is_empty()
            || !matches!(digits.len(), 8 | 14 | 16)
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return parsed;
        }
        match DateSuffix::parse(digits) {
            Ok(suffix) => {
                parsed.logical_name = format!("{base}{extension}");
                parsed.date_suffix = Some(suffix);
            }
            Err(reason) => parsed.bad_date_suffix = Some((digits.to_string(), reason)),
        }
        parsed
    }

    /// The problem to report for a suffix that is not a real date, if any.
    #[must_use]
    pub fn problem(&self) -> Option<Problem> {
        let (digits, reason) = self.bad_date_suffix.as_ref()?;
        let extension = match self.name.rfind('.') {
            Some(dot) if dot > 0 => &self.name[dot..],
            _ => "",
        };
        let stem = &self.name[..self.name.len() - extension.len()];
        let base = &stem[..stem.len() - digits.len() - 1];
        Some(Problem::new(
            ProblemKind::BadDateSuffix,
            None,
            format!(
                "the file name ends in _{digits}, which looks like a date suffix but is not a real date ({reason}), so Ferry cannot tell which file this is"
            ),
            format!(
                "Rename the file to {base}{extension}, or to {base}_YYYYMMDD{extension} with the real export date, and upload it again."
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_digit_suffix() {
        let name = FileName::parse("students_20261123.csv");
        assert_eq!(name.logical_name, "students.csv");
        assert_eq!(name.date_suffix.unwrap().to_string(), "2026-11-23");
        assert!(name.problem().is_none());
    }

    #[test]
    fn fourteen_and_sixteen_digit_suffixes() {
        let name = FileName::parse("enrollments_20261123140509.csv");
        assert_eq!(name.logical_name, "enrollments.csv");
        assert_eq!(name.date_suffix.unwrap().to_string(), "2026-11-23 14:05:09");
        let name = FileName::parse("users_2024022923595999.csv");
        assert_eq!(name.logical_name, "users.csv");
        assert_eq!(
            name.date_suffix.unwrap().to_string(),
            "2024-02-29 23:59:59.99"
        );
    }

    #[test]
    fn no_suffix() {
        for plain in [
            "students.csv",
            "class_2.csv",
            "a_1234567.csv",
            "_20261123.csv",
            "x_2026112.csv",
        ] {
            let name = FileName::parse(plain);
            assert_eq!(name.logical_name, plain);
            assert!(
                name.date_suffix.is_none() && name.bad_date_suffix.is_none(),
                "{plain}"
            );
        }
        let name = FileName::parse("students_20261123");
        assert_eq!(name.logical_name, "students");
    }

    #[test]
    fn invalid_dates_are_reported() {
        for (bad, why) in [
            ("students_20261345.csv", "no month 13"),
            ("students_20260230.csv", "February 2026 has no day 30"),
            ("students_20250229.csv", "February 2025 has no day 29"),
            ("students_20261123246000.csv", "24:60:00"),
            ("students_00001123.csv", "year 0"),
        ] {
            let name = FileName::parse(bad);
            assert_eq!(name.logical_name, bad);
            assert!(name.date_suffix.is_none());
            let problem = name.problem().expect(bad);
            assert_eq!(problem.kind, ProblemKind::BadDateSuffix);
            assert!(problem.message.contains(why), "{}", problem.message);
            assert!(
                problem.what_to_do.contains("students.csv"),
                "{}",
                problem.what_to_do
            );
        }
    }

    #[test]
    fn leap_day_2000_and_1900() {
        assert!(DateSuffix::parse("20000229").is_ok());
        assert!(DateSuffix::parse("19000229").is_err());
    }
}
