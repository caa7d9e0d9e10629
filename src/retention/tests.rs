//! Retention decisions, table-tested: restic's documented examples, each
//! rule's periods and boundaries, and gitbak's own additions.

use super::*;
use crate::layout::time::parse_rfc3339;

fn at(text: &str) -> Timestamp {
    parse_rfc3339(text).unwrap()
}

fn policy(spec: &str) -> Policy {
    let mut policy = Policy::default();
    for rule in spec.split_whitespace() {
        let (name, value) = rule.split_once('=').unwrap();
        if name == "within" {
            policy.within = Some(Duration::parse(value).unwrap());
            continue;
        }
        let count = Count::parse(value).unwrap();
        match name {
            "last" => policy.last = count,
            "hourly" => policy.hourly = count,
            "daily" => policy.daily = count,
            "weekly" => policy.weekly = count,
            "monthly" => policy.monthly = count,
            "yearly" => policy.yearly = count,
            other => panic!("no rule {other}"),
        }
    }
    policy.check().unwrap();
    policy
}

/// The times `apply` keeps out of `times` (RFC 3339, used as ids too).
fn kept(spec: &str, times: &[&str], now: &str) -> Vec<String> {
    let backups: Vec<(&str, Option<Timestamp>)> =
        times.iter().map(|time| (*time, Some(at(time)))).collect();
    let decisions = apply(&policy(spec), &backups, at(now));
    times
        .iter()
        .zip(&decisions)
        .filter(|(_, decision)| decision.keep())
        .map(|(time, _)| (*time).to_owned())
        .collect()
}

/// Reasons, as `Display` shows them, per time.
fn reasons(spec: &str, times: &[&str], now: &str) -> Vec<(String, String)> {
    let backups: Vec<(&str, Option<Timestamp>)> =
        times.iter().map(|time| (*time, Some(at(time)))).collect();
    apply(&policy(spec), &backups, at(now))
        .iter()
        .zip(times)
        .map(|(decision, time)| {
            let shown: Vec<String> = decision.reasons.iter().map(Reason::to_string).collect();
            ((*time).to_owned(), shown.join(", "))
        })
        .collect()
}

const NOW: &str = "2030-01-01T00:00:00Z";

#[test]
fn restic_documented_example_twelve_sundays_keep_daily_4() {
    // doc/060_forget.rst: one backup every Sunday for 12 weeks.
    let sundays = [
        "2019-09-01T11:00:00Z",
        "2019-09-08T11:00:00Z",
        "2019-09-15T11:00:00Z",
        "2019-09-22T11:00:00Z",
        "2019-09-29T11:00:00Z",
        "2019-10-06T11:00:00Z",
        "2019-10-13T11:00:00Z",
        "2019-10-20T11:00:00Z",
        "2019-10-27T11:00:00Z",
        "2019-11-03T11:00:00Z",
        "2019-11-10T11:00:00Z",
        "2019-11-17T11:00:00Z",
    ];
    assert_eq!(kept("daily=4", &sundays, NOW), &sundays[8..]);
}

#[test]
fn restic_documented_example_a_century_of_dailies() {
    // doc/060_forget.rst: daily backups for 100 years and
    // --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 75
    // keep 7 dailies, 4 more weeklies (the dailies include one), 11 or 12
    // monthlies and 74 or 75 yearlies. Ending on Sunday 31 December, the
    // newest backup is also the week's, month's and year's: 11 and 74.
    let last_day = at("2023-12-31T03:00:00Z").unix_seconds() / 86_400;
    let backups: Vec<(String, Option<Timestamp>)> = (0..36_525)
        .map(|back| {
            let time = Timestamp::from_unix_seconds((last_day - back) * 86_400 + 3 * 3600);
            (time.to_string(), Some(time))
        })
        .collect();
    let borrowed: Vec<(&str, Option<Timestamp>)> = backups
        .iter()
        .map(|(id, time)| (id.as_str(), *time))
        .collect();
    let decisions = apply(
        &policy("daily=7 weekly=5 monthly=12 yearly=75"),
        &borrowed,
        at(NOW),
    );
    let count = |period: Period| {
        decisions
            .iter()
            .filter(|decision| {
                let rules: Vec<Period> = decision
                    .reasons
                    .iter()
                    .filter_map(|reason| match reason {
                        Reason::Period { period, .. } => Some(*period),
                        _ => None,
                    })
                    .collect();
                rules.first() == Some(&period)
            })
            .count()
    };
    assert_eq!(count(Period::Daily), 7);
    assert_eq!(count(Period::Weekly), 4);
    assert_eq!(count(Period::Monthly), 11);
    assert_eq!(count(Period::Yearly), 74);
    assert_eq!(decisions.iter().filter(|d| d.keep()).count(), 96);
    // The oldest yearly is the last day of 1949, the 75th year back.
    let oldest_kept = borrowed
        .iter()
        .zip(&decisions)
        .filter(|(_, decision)| decision.keep())
        .map(|((id, _), _)| *id)
        .min()
        .unwrap();
    assert_eq!(oldest_kept, "1949-12-31T03:00:00Z");
}

#[test]
fn each_rule_keeps_the_newest_of_its_most_recent_periods() {
    for (spec, times, want) in [
        (
            "last=3",
            &[
                "2024-01-01T00:00:00Z",
                "2024-01-02T00:00:00Z",
                "2024-01-03T00:00:00Z",
                "2024-01-04T00:00:00Z",
                "2024-01-05T00:00:00Z",
            ][..],
            &[
                "2024-01-03T00:00:00Z",
                "2024-01-04T00:00:00Z",
                "2024-01-05T00:00:00Z",
            ][..],
        ),
        (
            "hourly=2",
            &[
                "2024-01-01T10:05:00Z",
                "2024-01-01T10:55:00Z",
                "2024-01-01T11:10:00Z",
            ],
            &["2024-01-01T10:55:00Z", "2024-01-01T11:10:00Z"],
        ),
        // ISO weeks: 28 Dec 2020 to 3 Jan 2021 is week 53 of 2020.
        (
            "weekly=2",
            &[
                "2020-12-28T00:00:00Z",
                "2021-01-03T00:00:00Z",
                "2021-01-04T00:00:00Z",
                "2021-01-10T00:00:00Z",
            ],
            &["2021-01-03T00:00:00Z", "2021-01-10T00:00:00Z"],
        ),
        (
            "monthly=2 yearly=2",
            &[
                "2022-12-15T00:00:00Z",
                "2023-01-10T00:00:00Z",
                "2023-01-20T00:00:00Z",
                "2023-02-05T00:00:00Z",
            ],
            &[
                "2022-12-15T00:00:00Z",
                "2023-01-20T00:00:00Z",
                "2023-02-05T00:00:00Z",
            ],
        ),
        // ORed: three days, and the week before's Sunday.
        (
            "daily=3 weekly=2",
            &[
                "2024-01-05T00:00:00Z",
                "2024-01-06T00:00:00Z",
                "2024-01-07T00:00:00Z",
                "2024-01-08T00:00:00Z",
                "2024-01-12T00:00:00Z",
                "2024-01-13T00:00:00Z",
                "2024-01-14T00:00:00Z",
            ],
            &[
                "2024-01-07T00:00:00Z",
                "2024-01-12T00:00:00Z",
                "2024-01-13T00:00:00Z",
                "2024-01-14T00:00:00Z",
            ],
        ),
        // Periods without a backup do not count: a gap of a week.
        (
            "daily=2",
            &[
                "2024-01-01T00:00:00Z",
                "2024-01-02T00:00:00Z",
                "2024-01-10T00:00:00Z",
            ],
            &["2024-01-02T00:00:00Z", "2024-01-10T00:00:00Z"],
        ),
        // UTC days: 23:30 and 00:30 the next day are two days.
        (
            "daily=2",
            &[
                "2024-01-01T22:00:00Z",
                "2024-01-01T23:30:00Z",
                "2024-01-02T00:30:00Z",
            ],
            &["2024-01-01T23:30:00Z", "2024-01-02T00:30:00Z"],
        ),
    ] {
        assert_eq!(kept(spec, times, NOW), want, "{spec}");
    }
}

#[test]
fn budget_left_at_the_oldest_keeps_it() {
    let times = [
        "2024-01-01T08:00:00Z",
        "2024-01-01T20:00:00Z",
        "2024-01-02T08:00:00Z",
        "2024-01-02T20:00:00Z",
        "2024-01-03T20:00:00Z",
    ];
    let want = [
        ("2024-01-01T08:00:00Z", "oldest daily 4/5"),
        ("2024-01-01T20:00:00Z", "daily 3/5"),
        ("2024-01-02T08:00:00Z", ""),
        ("2024-01-02T20:00:00Z", "daily 2/5"),
        ("2024-01-03T20:00:00Z", "daily 1/5"),
    ];
    let got = reasons("daily=5", &times, NOW);
    let got: Vec<(&str, &str)> = got.iter().map(|(t, r)| (t.as_str(), r.as_str())).collect();
    assert_eq!(got, want);
    // Unlimited always has budget: every day's newest, and the oldest.
    assert_eq!(
        kept("daily=unlimited", &times, NOW),
        [times[0], times[1], times[3], times[4]]
    );
    // No budget left: the oldest goes.
    assert_eq!(kept("daily=3", &times, NOW), [times[1], times[3], times[4]]);
}

#[test]
fn within_counts_back_from_the_newest_backup_not_from_now() {
    let times: Vec<String> = (1..=20)
        .map(|day| format!("2024-01-{day:02}T00:00:00Z"))
        .collect();
    let times: Vec<&str> = times.iter().map(String::as_str).collect();
    // Backups stopped on 20 January; a year later nothing more goes.
    // 13 January is exactly 7 days before the newest: not within.
    assert_eq!(
        kept("within=7d", &times, "2025-01-20T00:00:00Z"),
        &times[13..]
    );
    assert_eq!(kept("within=1m", &times, NOW), &times[..]);
    let shown = reasons("within=7d last=1", &times, NOW);
    assert_eq!(shown[19].1, "last 1/1, within 7d");
    assert_eq!(shown[14].1, "within 7d");
    assert_eq!(shown[0].1, "");
}

#[test]
fn unknown_times_later_backups_and_the_newest_are_always_kept() {
    let backups = [
        ("nightly", None),
        ("20240101000000", Some(at("2024-01-01T00:00:00Z"))),
        ("20240102000000", Some(at("2024-01-02T00:00:00Z"))),
        ("20240103000000", Some(at("2024-01-03T00:00:00Z"))),
        // After --now: kept, and not counted by keep-last.
        ("20240110000000", Some(at("2024-01-10T00:00:00Z"))),
    ];
    let decisions = apply(&policy("last=1"), &backups, at("2024-01-05T00:00:00Z"));
    let shown: Vec<String> = decisions
        .iter()
        .map(|decision| {
            let reasons: Vec<String> = decision.reasons.iter().map(Reason::to_string).collect();
            reasons.join(", ")
        })
        .collect();
    assert_eq!(shown, ["time unknown", "", "", "last 1/1", "after --now"]);
    // Equal times: the greater id is the newer.
    let tied = [
        ("b", Some(at("2024-01-01T00:00:00Z"))),
        ("a", Some(at("2024-01-01T00:00:00Z"))),
    ];
    let decisions = apply(&policy("last=1"), &tied, at(NOW));
    assert!(decisions[0].keep() && !decisions[1].keep());
    assert!(apply(&policy("last=1"), &[], at(NOW)).is_empty());
}

#[test]
fn empty_policies_are_refused() {
    assert_eq!(Policy::default().check(), Err(RetentionError::EmptyPolicy));
    let zero = Policy {
        last: Count::parse("0").unwrap(),
        within: Some(Duration::parse("0d").unwrap()),
        ..Policy::default()
    };
    assert_eq!(zero.check(), Err(RetentionError::EmptyPolicy));
    assert!(RetentionError::EmptyPolicy
        .to_string()
        .contains("--keep-daily"));
    assert!(Count::parse("-1").is_err() && Count::parse("seven").is_err());
    assert_eq!(Count::parse("unlimited"), Ok(Some(Count::Unlimited)));
}

#[test]
fn iso_weeks_at_year_boundaries() {
    for (time, want) in [
        ("2020-12-31T00:00:00Z", (2020, 53)),
        ("2021-01-03T23:59:59Z", (2020, 53)),
        ("2021-01-04T00:00:00Z", (2021, 1)),
        ("2024-12-30T00:00:00Z", (2025, 1)),
        ("2026-01-01T00:00:00Z", (2026, 1)),
        ("2026-01-05T00:00:00Z", (2026, 2)),
        ("1970-01-01T00:00:00Z", (1970, 1)),
    ] {
        assert_eq!(iso_week(at(time)), want, "{time}");
    }
}
