//! Backup times, for point-in-time restores (`restore --at`): reading the
//! `--at` argument, a manifest's `[gitbak] created_at` and the times backup
//! ids encode, and choosing the backup a point in time restores.
//!
//! Pure: no I/O and no clock. Times are whole seconds since the Unix epoch,
//! UTC. A file's modification time is never a backup's time: copying a
//! backup location changes it, and it says when a file was written, not
//! when the refs were read.

use std::fmt;

use super::manifest::Manifest;
use super::{civil_from_unix, rfc3339};

/// A moment, in whole seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn from_unix_seconds(seconds: i64) -> Self {
        Self(seconds)
    }

    pub fn unix_seconds(self) -> i64 {
        self.0
    }
}

/// RFC 3339 in UTC (`2026-01-02T03:04:05Z`), as log lines and errors show it.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&rfc3339(self.0))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a time ({reason}); give RFC 3339 such as 2026-01-02T03:04:05Z \
     or 2026-01-02T05:04:05+02:00, or YYYYMMDDhhmmss in UTC"
)]
pub struct TimeError {
    text: String,
    reason: &'static str,
}

/// `--at`: RFC 3339, or a backup-id-shaped `YYYYMMDDhhmmss` taken as UTC
/// (what gitbak's and gitaly-backup's default ids look like).
pub fn parse_point_in_time(text: &str) -> Result<Timestamp, TimeError> {
    if text.len() == 14 && text.bytes().all(|b| b.is_ascii_digit()) {
        return parse_compact(text).ok_or_else(|| TimeError {
            text: text.to_owned(),
            reason: "a date or time field is out of range",
        });
    }
    parse_rfc3339(text)
}

/// `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)`. A fraction is dropped: a
/// backup's time has whole seconds, so "at or before 05.9" is "at or
/// before 05".
pub fn parse_rfc3339(text: &str) -> Result<Timestamp, TimeError> {
    let refuse = |reason| TimeError {
        text: text.to_owned(),
        reason,
    };
    let bytes = text.as_bytes();
    let shaped = bytes.len() >= 20
        && [4, 7].iter().all(|&i| bytes[i] == b'-')
        && matches!(bytes[10], b'T' | b't' | b' ')
        && [13, 16].iter().all(|&i| bytes[i] == b':');
    if !shaped {
        return Err(refuse("not shaped like YYYY-MM-DDThh:mm:ssZ"));
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, TimeError> {
        let field = &text[range];
        if field.bytes().all(|b| b.is_ascii_digit()) {
            field.parse().map_err(|_| refuse("a field is not a number"))
        } else {
            Err(refuse("a field is not a number"))
        }
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(refuse("a '.' without fraction digits"));
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => parse_offset(rest).ok_or_else(|| refuse("the zone is not Z or ±hh:mm"))?,
    };
    let seconds = unix_seconds(year, month, day, hour, minute, second)
        .ok_or_else(|| refuse("a date or time field is out of range"))?;
    Ok(Timestamp(seconds - offset))
}

/// `+hh:mm` or `-hh:mm` as seconds east of UTC.
fn parse_offset(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != 6 || bytes[3] != b':' {
        return None;
    }
    let sign = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let two = |at: usize| -> Option<i64> {
        let field = &text[at..at + 2];
        field
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| field.parse().ok())
            .flatten()
    };
    let (hours, minutes) = (two(1)?, two(4)?);
    (hours < 24 && minutes < 60).then_some(sign * (hours * 3600 + minutes * 60))
}

/// `YYYYMMDDhhmmss` (14 ASCII digits, checked by the caller) as UTC.
fn parse_compact(text: &str) -> Option<Timestamp> {
    let number = |range: std::ops::Range<usize>| text[range].parse::<i64>().ok();
    unix_seconds(
        number(0..4)?,
        number(4..6)?,
        number(6..8)?,
        number(8..10)?,
        number(10..12)?,
        number(12..14)?,
    )
    .map(Timestamp)
}

/// Seconds since the epoch of a UTC civil time, `None` when a field is out
/// of range (a 31st of April, hour 24). Leap seconds are refused: no
/// backup records one.
fn unix_seconds(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
) -> Option<i64> {
    if !(1..=12).contains(&month) || !(0..24).contains(&hour) {
        return None;
    }
    if !(0..60).contains(&minute) || !(0..60).contains(&second) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // The day is valid when it maps back to itself (no 30 February).
    let (y, m, d, ..) = civil_from_unix(days * 86_400);
    if (y, i64::from(m), i64::from(d)) != (year, month, day) {
        return None;
    }
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Howard Hinnant's days-from-civil: days since 1970-01-01. A day past
/// its month's end counts on into the next (31 February is 3 March), as
/// calendar arithmetic (`retention`'s months) needs.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * shifted_month + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The time a backup id names, if it is a timestamp: gitbak's and
/// gitaly-backup's default `YYYYMMDDhhmmss` (UTC), or the ids GitLab's
/// backup task passes, `<unix seconds>_<YYYY>_<MM>_<DD>[_<version>]`, whose
/// leading seconds are when the backup started.
pub fn backup_id_time(id: &str) -> Option<Timestamp> {
    if id.len() == 14 && id.bytes().all(|b| b.is_ascii_digit()) {
        return parse_compact(id);
    }
    let mut parts = id.splitn(5, '_');
    let digits = |part: Option<&str>, width: Option<usize>| {
        part.is_some_and(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_digit())
                && width.is_none_or(|width| part.len() == width)
        })
    };
    let seconds = parts.next().filter(|part| digits(Some(part), None))?;
    let date_shaped = [4, 2, 2]
        .into_iter()
        .all(|width| digits(parts.next(), Some(width)));
    // A version may follow; an empty one means the id is something else.
    if !date_shaped || parts.next().is_some_and(str::is_empty) {
        return None;
    }
    seconds.parse().ok().map(Timestamp)
}

/// When a backup was taken: its manifest's `[gitbak] created_at` (when
/// gitbak read the refs), else the time its id names. `None`: unknown, so
/// the backup cannot be chosen by time.
pub fn backup_time(id: Option<&str>, manifest: &Manifest) -> Option<Timestamp> {
    let recorded = manifest
        .gitbak
        .as_ref()
        .and_then(|info| parse_rfc3339(&info.created_at).ok());
    recorded.or_else(|| id.and_then(backup_id_time))
}

/// Which of a repository's backups a point in time restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtChoice {
    /// The index of the newest backup taken at or before the time.
    Chosen(usize),
    /// Every backup with a known time is newer; the oldest of them, and
    /// when it was taken.
    AllLater { oldest: usize, taken: Timestamp },
    /// No backup has a known time; how many backups there are.
    NoKnownTime { backups: usize },
}

/// The newest backup (`(id, time)`) taken at or before `at`; equal times
/// go to the greatest id, as gitaly's "latest" breaks ties by key.
pub fn choose_at(backups: &[(&str, Option<Timestamp>)], at: Timestamp) -> AtChoice {
    let timed = || {
        backups
            .iter()
            .enumerate()
            .filter_map(|(index, (id, time))| time.map(|time| (time, *id, index)))
    };
    if let Some((.., index)) = timed().filter(|(time, ..)| *time <= at).max() {
        return AtChoice::Chosen(index);
    }
    match timed().min() {
        Some((taken, _, index)) => AtChoice::AllLater {
            oldest: index,
            taken,
        },
        None => AtChoice::NoKnownTime {
            backups: backups.len(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::manifest::GitbakInfo;

    const T: fn(i64) -> Timestamp = Timestamp::from_unix_seconds;

    #[test]
    fn points_in_time_parse() {
        for (text, want) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2021-09-30T06:54:13Z", 1_632_984_853),
            ("2021-09-30t06:54:13z", 1_632_984_853),
            ("2021-09-30 06:54:13Z", 1_632_984_853),
            ("2021-09-30T08:54:13+02:00", 1_632_984_853),
            ("2021-09-29T21:54:13-09:00", 1_632_984_853),
            ("2021-09-30T06:54:13.999Z", 1_632_984_853),
            ("2021-09-30T06:54:13.5+00:00", 1_632_984_853),
            ("2000-02-29T00:00:00Z", 951_782_400),
            ("1969-12-31T23:59:59Z", -1),
            ("20210930065413", 1_632_984_853),
            ("20000229000000", 951_782_400),
        ] {
            assert_eq!(parse_point_in_time(text), Ok(T(want)), "{text}");
        }
    }

    #[test]
    fn malformed_times_are_refused() {
        for text in [
            "",
            "yesterday",
            "2021-09-30",
            "2021-09-30T06:54:13",
            "2021-09-30T06:54Z",
            "2021-09-30T06:54:13+0200",
            "2021-09-30T06:54:13+24:00",
            "2021-09-30T06:54:13.Z",
            "2021-02-29T00:00:00Z",
            "2021-04-31T00:00:00Z",
            "2021-13-01T00:00:00Z",
            "2021-09-30T24:00:00Z",
            "2021-09-30T06:60:00Z",
            "2021-09-30T06:54:60Z",
            "2021-+9-30T06:54:13Z",
            "20210230000000",
            "2021093006541",
            "1632984853",
        ] {
            let error = parse_point_in_time(text).unwrap_err();
            assert!(error.to_string().contains("RFC 3339"), "{text}: {error}");
        }
    }

    #[test]
    fn backup_ids_that_name_times() {
        for (id, want) in [
            ("20210930065413", Some(1_632_984_853)),
            ("19700101000000", Some(0)),
            ("1700000000_2026_01_01_17.0.0", Some(1_700_000_000)),
            ("1700000000_2023_11_14", Some(1_700_000_000)),
            ("1700000000_2023_11_14_16.6.0-ee", Some(1_700_000_000)),
            ("20210931000000", None),
            ("nightly", None),
            ("1700000000", None),
            ("1700000000_2023_11", None),
            ("1700000000_23_11_14", None),
            ("1700000000_2023_11_14_", None),
            ("x1700000000_2023_11_14", None),
            ("_2023_11_14", None),
        ] {
            assert_eq!(backup_id_time(id), want.map(T), "{id}");
        }
    }

    #[test]
    fn created_at_wins_over_the_id() {
        let with_created_at = |created_at: &str| Manifest {
            gitbak: Some(GitbakInfo {
                created_at: created_at.into(),
                ..GitbakInfo::default()
            }),
            ..Manifest::default()
        };
        let gitaly = Manifest::default();
        for (id, manifest, want) in [
            (
                Some("20210930065413"),
                with_created_at("2021-09-30T07:00:00Z"),
                Some(1_632_985_200),
            ),
            (
                Some("nightly"),
                with_created_at("2021-09-30T07:00:00Z"),
                Some(1_632_985_200),
            ),
            // Unreadable created_at: the id is all there is.
            (
                Some("20210930065413"),
                with_created_at("soon"),
                Some(1_632_984_853),
            ),
            (Some("20210930065413"), gitaly.clone(), Some(1_632_984_853)),
            (Some("nightly"), gitaly.clone(), None),
            (None, gitaly, None),
        ] {
            assert_eq!(backup_time(id, &manifest), want.map(T), "{id:?}");
        }
    }

    #[test]
    fn the_newest_backup_at_or_before_is_chosen() {
        let backups = [
            ("b", Some(T(200))),
            ("a", Some(T(100))),
            ("nightly", None),
            ("c", Some(T(300))),
            ("c2", Some(T(300))),
        ];
        for (at, want) in [
            (
                T(99),
                AtChoice::AllLater {
                    oldest: 1,
                    taken: T(100),
                },
            ),
            (T(100), AtChoice::Chosen(1)),
            (T(150), AtChoice::Chosen(1)),
            (T(200), AtChoice::Chosen(0)),
            (T(299), AtChoice::Chosen(0)),
            // Equal times: the greatest id.
            (T(300), AtChoice::Chosen(4)),
            (T(i64::MAX), AtChoice::Chosen(4)),
        ] {
            assert_eq!(choose_at(&backups, at), want, "{at}");
        }
        assert_eq!(
            choose_at(&[("nightly", None)], T(0)),
            AtChoice::NoKnownTime { backups: 1 }
        );
        assert_eq!(choose_at(&[], T(0)), AtChoice::NoKnownTime { backups: 0 });
    }

    #[test]
    fn timestamps_display_as_rfc3339_utc() {
        assert_eq!(T(1_632_984_853).to_string(), "2021-09-30T06:54:13Z");
    }
}
