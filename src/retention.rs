//! Retention: which backups of one repository a policy keeps, and why.
//!
//! restic's rules (`forget`, peers.md §1.1): `--keep-last`, `--keep-hourly`
//! … `--keep-yearly` each keep the newest backup of each of their n most
//! recent periods that have one, walking from the newest backup back; a
//! rule with budget left when the walk reaches the oldest backup keeps that
//! one too ("oldest"); `--keep-within` keeps every backup taken within the
//! duration before the newest backup, not before now, so a backup job that
//! stopped never eats the history it left. Rules are ORed. Periods are UTC
//! calendar periods, weeks ISO weeks (Monday to Sunday).
//!
//! On top of restic: the newest backup is always kept, a backup whose time
//! is unknown is always kept, and a backup taken after `now` (the instant
//! the policy is evaluated at) is kept and counts for no rule.
//!
//! Pure: no I/O and no clock; `now` is passed in. Which files a removed
//! backup frees is the catalogue's business, not this module's.

mod duration;
#[cfg(test)]
mod tests;

pub use duration::Duration;

use crate::layout::civil_from_unix;
use crate::layout::time::{days_from_civil, Timestamp};

/// How many periods a `--keep-*` rule keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Periods(u32),
    Unlimited,
}

impl Count {
    /// `7`, or `unlimited`; `0` means the rule is not given.
    pub fn parse(text: &str) -> Result<Option<Self>, RetentionError> {
        if text == "unlimited" {
            return Ok(Some(Self::Unlimited));
        }
        match text.parse::<u32>() {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(Self::Periods(n))),
            Err(_) => Err(RetentionError::Count {
                text: text.to_owned(),
            }),
        }
    }
}

/// The calendar periods a count rule buckets backups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Period {
    /// Every backup is its own period.
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    pub const ALL: [Period; 6] = [
        Self::Last,
        Self::Hourly,
        Self::Daily,
        Self::Weekly,
        Self::Monthly,
        Self::Yearly,
    ];

    /// The rule's name, as in `--keep-<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Last => "last",
            Self::Hourly => "hourly",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
        }
    }

    /// A number naming the period `time` falls in (restic's buckets);
    /// `position` makes every backup its own period for `Last`.
    fn bucket(self, time: Timestamp, position: usize) -> i64 {
        let (year, month, day, hour, ..) = civil_from_unix(time.unix_seconds());
        let (month, day, hour) = (i64::from(month), i64::from(day), i64::from(hour));
        match self {
            Self::Last => position as i64,
            Self::Hourly => ((year * 100 + month) * 100 + day) * 100 + hour,
            Self::Daily => (year * 100 + month) * 100 + day,
            Self::Weekly => {
                let (iso_year, week) = iso_week(time);
                iso_year * 100 + week
            }
            Self::Monthly => year * 100 + month,
            Self::Yearly => year,
        }
    }
}

/// ISO 8601 week-numbering year and week of a UTC time: weeks start on
/// Monday, and week 1 is the one holding the year's first Thursday.
pub fn iso_week(time: Timestamp) -> (i64, i64) {
    let days = time.unix_seconds().div_euclid(86_400);
    // 1970-01-01 was a Thursday: weekday 0 is Monday.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (iso_year, ..) = civil_from_unix(thursday * 86_400);
    let week = (thursday - days_from_civil(iso_year, 1, 1)) / 7 + 1;
    (iso_year, week)
}

/// A retention policy: the `--keep-*` options of `gitbak prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: Option<Count>,
    pub hourly: Option<Count>,
    pub daily: Option<Count>,
    pub weekly: Option<Count>,
    pub monthly: Option<Count>,
    pub yearly: Option<Count>,
    /// `--keep-within`: counted back from the newest backup.
    pub within: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    #[error(
        "no retention policy given, and gitbak never removes every backup; pass at least one \
         of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, \
         --keep-yearly (a number above 0, or unlimited) or --keep-within (such as 30d)"
    )]
    EmptyPolicy,
    #[error("{text:?} is not a count; give a number such as 7, or unlimited")]
    Count { text: String },
    #[error(
        "{text:?} is not a duration ({reason}); give numbers with units y (years), m (months), \
         w (weeks), d (days), h (hours), such as 30d or 1y6m"
    )]
    Duration { text: String, reason: &'static str },
}

impl Policy {
    /// The count of `period`'s rule, if given.
    pub fn count(&self, period: Period) -> Option<Count> {
        match period {
            Period::Last => self.last,
            Period::Hourly => self.hourly,
            Period::Daily => self.daily,
            Period::Weekly => self.weekly,
            Period::Monthly => self.monthly,
            Period::Yearly => self.yearly,
        }
    }

    /// A policy that keeps nothing by its rules is refused, as restic
    /// refuses it: it would remove everything but the newest backups.
    pub fn check(&self) -> Result<(), RetentionError> {
        let counts = Period::ALL.iter().any(|&p| self.count(p).is_some());
        let within = self.within.is_some_and(|within| !within.is_zero());
        if counts || within {
            Ok(())
        } else {
            Err(RetentionError::EmptyPolicy)
        }
    }
}

/// Why a backup is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A count rule: the `number`th period of `of` (`None`: unlimited) it
    /// kept; `oldest` when it is the oldest backup, kept because the rule
    /// had budget left although its period was already kept.
    Period {
        period: Period,
        number: u32,
        of: Option<u32>,
        oldest: bool,
    },
    /// Taken within this duration before the newest backup.
    Within(Duration),
    /// The newest backup, always kept.
    Newest,
    /// No known time: never removed.
    TimeUnknown,
    /// Taken after the instant the policy is evaluated at.
    AfterNow,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Period {
                period,
                number,
                of,
                oldest,
            } => {
                let oldest = if *oldest { "oldest " } else { "" };
                match of {
                    Some(of) => write!(f, "{oldest}{} {number}/{of}", period.name()),
                    None => write!(f, "{oldest}{} {number}/unlimited", period.name()),
                }
            }
            Self::Within(duration) => write!(f, "within {duration}"),
            Self::Newest => f.write_str("newest"),
            Self::TimeUnknown => f.write_str("time unknown"),
            Self::AfterNow => f.write_str("after --now"),
        }
    }
}

/// What the policy decided for one backup: kept when it has a reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub reasons: Vec<Reason>,
}

impl Decision {
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// One count rule's walk: its budget left and the last period it kept.
struct Walk {
    period: Period,
    of: Option<u32>,
    left: Option<u32>,
    kept: u32,
    last_bucket: Option<i64>,
}

/// The decisions for one repository's `backups` (`(id, time)`, any order;
/// the result is in the same order) under `policy`, evaluated at `now`.
/// Equal times are ordered by id, the greater id being the newer.
pub fn apply(
    policy: &Policy,
    backups: &[(&str, Option<Timestamp>)],
    now: Timestamp,
) -> Vec<Decision> {
    let mut decisions = vec![Decision::default(); backups.len()];
    let mut timed: Vec<(Timestamp, &str, usize)> = Vec::new();
    for (index, (id, time)) in backups.iter().enumerate() {
        match time {
            None => decisions[index].reasons.push(Reason::TimeUnknown),
            Some(time) if *time > now => decisions[index].reasons.push(Reason::AfterNow),
            Some(time) => timed.push((*time, id, index)),
        }
    }
    // Newest first.
    timed.sort_unstable_by(|a, b| b.cmp(a));
    let Some(&(latest, ..)) = timed.first() else {
        return decisions;
    };
    let mut walks: Vec<Walk> = Period::ALL
        .iter()
        .filter_map(|&period| {
            let count = policy.count(period)?;
            let of = match count {
                Count::Periods(n) => Some(n),
                Count::Unlimited => None,
            };
            Some(Walk {
                period,
                of,
                left: of,
                kept: 0,
                last_bucket: None,
            })
        })
        .collect();
    let within = policy
        .within
        .filter(|within| !within.is_zero())
        .map(|within| (within, within.before(latest)));
    let oldest_position = timed.len() - 1;
    for (position, &(time, _, index)) in timed.iter().enumerate() {
        let reasons = &mut decisions[index].reasons;
        for walk in walks.iter_mut().filter(|walk| walk.left != Some(0)) {
            let bucket = walk.period.bucket(time, position);
            let same_period = walk.last_bucket == Some(bucket);
            if same_period && position != oldest_position {
                continue;
            }
            walk.last_bucket = Some(bucket);
            walk.kept += 1;
            walk.left = walk.left.map(|left| left - 1);
            reasons.push(Reason::Period {
                period: walk.period,
                number: walk.kept,
                of: walk.of,
                oldest: same_period,
            });
        }
        if let Some((duration, cutoff)) = within {
            if time > cutoff {
                reasons.push(Reason::Within(duration));
            }
        }
        if position == 0 && reasons.is_empty() {
            reasons.push(Reason::Newest);
        }
    }
    decisions
}
