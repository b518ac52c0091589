//! The roster guard's arithmetic: whether a file that passed its checks is
//! held for an admin's review instead of being handed over.
//!
//! A truncated export (the SIS job died half-way, a filter was wrong) looks
//! like a valid CSV with fewer rows, and importing it would wipe students from
//! the vendor's system. So a file is held when it has a header and no rows, or
//! when its row count fell by more than `ingest.max_row_drop` (default 10%)
//! against the last *accepted* file of the same logical name. This module is
//! only the decision; it never looks up the previous count or holds a job
//! itself (that is the job runner's work).

use std::fmt;

use serde::Serialize;
use thiserror::Error;

use crate::problem::thousands;

/// A `max_row_drop` outside 0–1.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
#[error(
    "max_row_drop must be a fraction from 0 to 1 (0.10 holds a file that lost more than 10% of its rows); got {0}"
)]
pub struct MaxRowDropError(pub f64);

/// The largest fall in row count let through, as a fraction (0.10 = 10%).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
pub struct MaxRowDrop(f64);

impl MaxRowDrop {
    /// The default, 10%.
    pub const DEFAULT: Self = Self(0.10);

    /// # Errors
    /// [`MaxRowDropError`] unless `0.0 <= fraction <= 1.0`.
    pub fn new(fraction: f64) -> Result<Self, MaxRowDropError> {
        if (0.0..=1.0).contains(&fraction) {
            Ok(Self(fraction))
        } else {
            Err(MaxRowDropError(fraction))
        }
    }

    /// The fraction.
    #[must_use]
    pub fn fraction(self) -> f64 {
        self.0
    }
}

impl Default for MaxRowDrop {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a file is held.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum HoldReason {
    /// A header and no data rows.
    HeaderOnly,
    /// The row count fell by more than the limit.
    RowDrop {
        /// Rows in the last accepted file of the same logical name.
        previous_rows: u64,
        /// Rows in this file.
        rows: u64,
        /// The fall, as a fraction of `previous_rows`.
        drop: f64,
        /// The limit in force.
        max_row_drop: f64,
    },
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeaderOnly => f.write_str(
                "the file has a header and no rows; importing it could empty the roster",
            ),
            Self::RowDrop {
                previous_rows,
                rows,
                drop,
                max_row_drop,
            } => write!(
                f,
                "the file has {} rows, {} fewer than the {} of the last accepted file ({} fewer; more than {} is held for review)",
                thousands(*rows),
                thousands(previous_rows - rows),
                thousands(*previous_rows),
                percent(*drop),
                percent(*max_row_drop),
            ),
        }
    }
}

fn percent(fraction: f64) -> String {
    let value = fraction * 100.0;
    if (value - value.round()).abs() < 0.05 {
        format!("{value:.0}%")
    } else {
        format!("{value:.1}%")
    }
}

/// The guard's decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum GuardDecision {
    /// Hand the file over.
    Pass,
    /// Hold it until an admin approves or rejects it.
    Hold(HoldReason),
}

impl GuardDecision {
    /// True for [`GuardDecision::Hold`].
    #[must_use]
    pub fn is_hold(&self) -> bool {
        matches!(self, Self::Hold(_))
    }
}

/// Decides whether a file with `rows` data rows (header excluded) is held,
/// given the row count of the last accepted file of the same logical name
/// (`None` when there is none). A drop of exactly `max_row_drop` passes;
/// growth always passes.
#[must_use]
pub fn roster_guard(
    rows: u64,
    previous_rows: Option<u64>,
    max_row_drop: MaxRowDrop,
) -> GuardDecision {
    if rows == 0 {
        return GuardDecision::Hold(HoldReason::HeaderOnly);
    }
    let Some(previous_rows) = previous_rows else {
        return GuardDecision::Pass;
    };
    if rows >= previous_rows {
        return GuardDecision::Pass;
    }
    let drop = (previous_rows - rows) as f64 / previous_rows as f64;
    if drop > max_row_drop.fraction() {
        GuardDecision::Hold(HoldReason::RowDrop {
            previous_rows,
            rows,
            drop,
            max_row_drop: max_row_drop.fraction(),
        })
    } else {
        GuardDecision::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifteen_percent_drop_is_held() {
        let decision = roster_guard(850, Some(1000), MaxRowDrop::default());
        let GuardDecision::Hold(reason) = decision else {
            panic!("expected hold, got {decision:?}");
        };
        assert_eq!(
            reason.to_string(),
            "the file has 850 rows, 150 fewer than the 1,000 of the last accepted file (15% fewer; more than 10% is held for review)"
        );
    }

    #[test]
    fn five_percent_drop_passes() {
        assert_eq!(
            roster_guard(950, Some(1000), MaxRowDrop::default()),
            GuardDecision::Pass
        );
    }

    #[test]
    fn exactly_the_limit_passes_and_one_more_row_is_held() {
        assert_eq!(
            roster_guard(900, Some(1000), MaxRowDrop::default()),
            GuardDecision::Pass
        );
        assert!(roster_guard(899, Some(1000), MaxRowDrop::default()).is_hold());
    }

    #[test]
    fn header_only_is_held_even_without_history() {
        assert_eq!(
            roster_guard(0, None, MaxRowDrop::default()),
            GuardDecision::Hold(HoldReason::HeaderOnly)
        );
        assert!(roster_guard(0, Some(0), MaxRowDrop::default()).is_hold());
    }

    #[test]
    fn first_file_and_growth_pass() {
        assert_eq!(
            roster_guard(10, None, MaxRowDrop::default()),
            GuardDecision::Pass
        );
        assert_eq!(
            roster_guard(2000, Some(1000), MaxRowDrop::default()),
            GuardDecision::Pass
        );
        assert_eq!(
            roster_guard(1, Some(0), MaxRowDrop::default()),
            GuardDecision::Pass
        );
    }

    #[test]
    fn limits() {
        assert!(MaxRowDrop::new(1.5).is_err());
        assert!(MaxRowDrop::new(-0.1).is_err());
        assert!(MaxRowDrop::new(f64::NAN).is_err());
        let strict = MaxRowDrop::new(0.0).unwrap();
        assert!(roster_guard(999, Some(1000), strict).is_hold());
        let lax = MaxRowDrop::new(1.0).unwrap();
        assert_eq!(roster_guard(1, Some(1000), lax), GuardDecision::Pass);
    }
}
