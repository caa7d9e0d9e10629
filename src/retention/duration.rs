//! Durations as restic writes them (`2y5m7d3h`, plus `w` for weeks):
//! years and months go by the calendar, so "1m before 31 March" is
//! 3 March (as Go's `AddDate`, which restic uses, normalises 31 February).
//!
//! Pure: no clock.

use std::fmt;

use super::RetentionError;
use crate::layout::civil_from_unix;
use crate::layout::time::{days_from_civil, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Duration {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl Duration {
    /// `30d`, `1y6m`, `2w`, `36h`, or `0`. Each unit at most once.
    pub fn parse(text: &str) -> Result<Self, RetentionError> {
        let refuse = |reason| RetentionError::Duration {
            text: text.to_owned(),
            reason,
        };
        if text == "0" {
            return Ok(Self::default());
        }
        if text.is_empty() {
            return Err(refuse("it is empty"));
        }
        let mut duration = Self::default();
        let mut seen = String::new();
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(refuse("a unit without a number"));
            }
            let number: u32 = rest[..digits]
                .parse()
                .map_err(|_| refuse("a number is too large"))?;
            let unit = rest[digits..]
                .chars()
                .next()
                .ok_or_else(|| refuse("a number without a unit"))?;
            if seen.contains(unit) {
                return Err(refuse("a unit given twice"));
            }
            seen.push(unit);
            let too_large = || refuse("a number is too large");
            match unit {
                'y' => duration.years = number,
                'm' => duration.months = number,
                'w' => duration.days = number.checked_mul(7).ok_or_else(too_large)?,
                'd' => duration.days = number,
                'h' => duration.hours = number,
                _ => return Err(refuse("an unknown unit")),
            }
            rest = &rest[digits + unit.len_utf8()..];
        }
        if seen.contains('w') && seen.contains('d') {
            return Err(refuse("both weeks and days"));
        }
        Ok(duration)
    }

    pub fn is_zero(self) -> bool {
        self == Self::default()
    }

    /// The instant this long before `time` (UTC calendar for years and
    /// months; a day is 24 hours).
    pub fn before(self, time: Timestamp) -> Timestamp {
        let seconds = time.unix_seconds();
        let (year, month, day, ..) = civil_from_unix(seconds);
        let months_back = i64::from(self.years) * 12 + i64::from(self.months);
        let month_index = year * 12 + i64::from(month) - 1 - months_back;
        let (year, month) = (month_index.div_euclid(12), month_index.rem_euclid(12) + 1);
        let day_start = days_from_civil(year, month, i64::from(day)) * 86_400;
        let back = i64::from(self.days) * 86_400 + i64::from(self.hours) * 3600;
        Timestamp::from_unix_seconds(day_start + seconds.rem_euclid(86_400) - back)
    }
}

/// `1y6m`, `30d`, `36h`; `0h` when zero.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (value, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if value > 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::time::parse_rfc3339;

    fn at(text: &str) -> Timestamp {
        parse_rfc3339(text).unwrap()
    }

    #[test]
    fn durations_parse_and_display() {
        for (text, want) in [
            ("30d", "30d"),
            ("1y6m", "1y6m"),
            ("2y5m7d3h", "2y5m7d3h"),
            ("3h2d", "2d3h"),
            ("2w", "14d"),
            ("24h", "24h"),
            ("0", "0h"),
            ("0d", "0h"),
        ] {
            assert_eq!(Duration::parse(text).unwrap().to_string(), want, "{text}");
        }
        for bad in [
            "",
            "7",
            "d",
            "7x",
            "1d2d",
            "1w1d",
            "-1d",
            "99999999999d",
            "1.5d",
        ] {
            let error = Duration::parse(bad).unwrap_err().to_string();
            assert!(error.contains("not a duration"), "{bad}: {error}");
        }
    }

    #[test]
    fn calendar_units_count_back_by_the_calendar() {
        for (duration, from, want) in [
            ("1d", "2024-03-01T12:00:00Z", "2024-02-29T12:00:00Z"),
            ("36h", "2024-03-01T12:00:00Z", "2024-02-29T00:00:00Z"),
            ("1m", "2024-03-15T06:00:00Z", "2024-02-15T06:00:00Z"),
            // 31 February 2023 is 3 March, as restic (Go's AddDate) has it.
            ("1m", "2023-03-31T00:00:00Z", "2023-03-03T00:00:00Z"),
            ("1y", "2024-02-29T00:00:00Z", "2023-03-01T00:00:00Z"),
            ("1y2m", "2024-01-10T00:00:00Z", "2022-11-10T00:00:00Z"),
            ("2w", "2024-01-10T00:00:00Z", "2023-12-27T00:00:00Z"),
        ] {
            let duration = Duration::parse(duration).unwrap();
            assert_eq!(
                duration.before(at(from)),
                at(want),
                "{duration} before {from}"
            );
        }
    }
}
