//! `gitbak prune` on real backups: it removes exactly what the policy
//! says, in its order (manifests, then files after the grace period, then
//! markers), every kept backup still restores, and what it must never
//! touch stays; `concurrent`: beside an incremental create it loses
//! nothing; `s3`: on object storage it leaves what it leaves locally.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{files_under, Repo, RepoState, Run, TestEnv};

mod concurrent;
mod s3;

pub(super) fn day(day: u32) -> String {
    format!("202601{day:02}000000")
}

/// `create --incremental --max-chain 3 --id <day>` after a change each
/// day: chains 1-3, 4-6, 7…; the state of each day.
pub(super) fn daily_history(env: &TestEnv, repo: &Repo, days: u32) -> Vec<RepoState> {
    (1..=days)
        .map(|d| {
            env.add_commit(&repo.path(), "refs/heads/main", &format!("day-{d}.txt"));
            create(env, repo, &day(d), &["--incremental", "--max-chain", "3"]).assert_success();
            RepoState::capture(env, &repo.path())
        })
        .collect()
}

pub(super) fn create(env: &TestEnv, repo: &Repo, id: &str, extra: &[&str]) -> Run {
    env.gitbak(["create", "--id", id])
        .args(extra)
        .backup_path()
        .storages_of(&[repo])
        .jobs(&[repo])
        .run()
}

/// `prune --json <args>`, which must exit 0; its report.
pub(super) fn prune(env: &TestEnv, args: &[&str]) -> Value {
    let run = env
        .gitbak(["prune", "--json"])
        .args(args)
        .backup_path()
        .run();
    run.assert_success();
    serde_json::from_str(&run.stdout).unwrap()
}

pub(super) fn files(env: &TestEnv) -> BTreeSet<String> {
    files_under(&env.backups()).into_iter().collect()
}

pub(super) fn size(env: &TestEnv, key: &str) -> u64 {
    std::fs::metadata(env.backup_file(key)).unwrap().len()
}

/// Restores backup `id` to a fresh storage root; it must equal `state`.
pub(super) fn assert_restores(env: &TestEnv, repo: &Repo, id: &str, state: &RepoState) {
    let fresh = repo.on_root(env.storage_root(&format!("restored-{id}")));
    env.restore(&[&fresh], &["--id", id]).assert_success();
    state.assert_same(
        &RepoState::capture(env, &fresh.path()),
        &format!("backup {id}"),
    );
    env.git_run(&fresh.path(), ["fsck", "--strict", "--no-progress"], b"")
        .assert_success();
}

/// The files of `days`' steps (bundle and refs; no hooks in the fixture).
pub(super) fn step_files(repo: &Repo, days: &[u32]) -> Vec<String> {
    days.iter()
        .flat_map(|&d| {
            ["bundle", "refs"]
                .map(|ext| repo.step_key(&day(d), &format!("{:03}.{ext}", (d - 1) % 3 + 1)))
        })
        .collect()
}

#[test]
fn prune_removes_what_the_policy_says_and_kept_backups_restore() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let states = daily_history(&env, &repo, 6);
    let before = files(&env);

    let report = prune(&env, &["--keep-last", "2", "--now", "2026-02-01T00:00:00Z"]);
    let verdicts: Vec<(String, String, String)> = report["repositories"][0]["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|backup| {
            let reasons: Vec<String> = backup["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    format!(
                        "{} {}/{}",
                        r["rule"].as_str().unwrap(),
                        r["number"],
                        r["of"]
                    )
                })
                .collect();
            (
                backup["id"].as_str().unwrap()[6..8].to_owned(),
                backup["action"].as_str().unwrap().to_owned(),
                reasons.join(","),
            )
        })
        .collect();
    let verdict =
        |d: &str, action: &str, why: &str| (d.to_owned(), action.to_owned(), why.to_owned());
    assert_eq!(
        verdicts,
        [
            verdict("01", "remove", ""),
            verdict("02", "remove", ""),
            verdict("03", "remove", ""),
            verdict("04", "remove", ""),
            verdict("05", "keep", "last 2/2"),
            verdict("06", "keep", "last 1/2"),
        ]
    );
    // Manifests and markers of 1-4 are gone; every data file waits out
    // the grace period, recorded for the next prune.
    let removed_manifests: BTreeSet<String> = (1..=4).map(|d| repo.manifest_key(&day(d))).collect();
    let removed_markers: BTreeSet<String> =
        (1..=4).map(|d| format!("backup_ids/{}", day(d))).collect();
    let mut want: BTreeSet<String> = before
        .difference(&removed_manifests)
        .cloned()
        .collect::<BTreeSet<_>>()
        .difference(&removed_markers)
        .cloned()
        .collect();
    want.insert("gitbak-prune/unreferenced.json".into());
    assert_eq!(files(&env), want);
    assert_eq!(report["removed"]["manifests"]["count"], 4);
    assert_eq!(report["removed"]["markers"], 4);
    assert_eq!(report["removed"]["data_files"]["count"], 0);
    let freed: Vec<String> = step_files(&repo, &[1, 2, 3]);
    let freed_bytes: u64 = freed.iter().map(|key| size(&env, key)).sum();
    assert_eq!(report["waiting"]["data_files"]["count"], 6);
    assert_eq!(report["waiting"]["data_files"]["bytes"], freed_bytes);
    for (d, state) in [(5, &states[4]), (6, &states[5])] {
        assert_restores(&env, &repo, &day(d), state);
    }

    // A day later the unreferenced files go; backup 4's stay, as 5 and 6
    // continue its chain.
    let report = prune(&env, &["--keep-last", "2", "--now", "2026-02-02T00:00:01Z"]);
    assert_eq!(report["removed"]["data_files"]["count"], 6);
    assert_eq!(report["removed"]["data_files"]["bytes"], freed_bytes);
    assert_eq!(report["removed"]["bytes"], freed_bytes);
    assert_eq!(report["removed"]["manifests"]["count"], 0);
    let mut remaining = want;
    for key in &freed {
        remaining.remove(key);
    }
    assert_eq!(files(&env), remaining);
    assert!(step_files(&repo, &[4, 5, 6])
        .iter()
        .all(|key| remaining.contains(key)));
    for (d, state) in [(5, &states[4]), (6, &states[5])] {
        assert_restores(&env, &repo, &day(d), state);
    }
}

#[test]
fn a_dry_run_removes_nothing_and_shows_why() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    daily_history(&env, &repo, 4);
    let before = files(&env);
    let run = env
        .gitbak([
            "prune",
            "--dry-run",
            "--keep-daily",
            "1",
            "--keep-within",
            "1d",
        ])
        .backup_path()
        .run();
    run.assert_success();
    assert_eq!(files(&env), before);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], format!("default:{}", repo.relative_path));
    let fields = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        fields(lines[2])[..4],
        ["remove", &day(1), "2026-01-01T00:00:00Z", "full"]
    );
    // Day 3 is within a day of day 4: 3 is exactly a day earlier, so not.
    assert_eq!(fields(lines[4])[..2], ["remove", &day(3)]);
    assert_eq!(
        fields(lines[5]),
        [
            "keep",
            &day(4),
            "2026-01-04T00:00:00Z",
            "full",
            "daily",
            "1/1,",
            "within",
            "1d"
        ]
    );
    assert!(
        lines[6].starts_with("Would remove 3 manifests"),
        "{}",
        run.stdout
    );
}

#[test]
fn an_empty_policy_is_refused() {
    let env = TestEnv::new();
    for args in [
        &["prune"][..],
        &["prune", "--keep-last", "0"],
        &["prune", "--keep-within", "0d"],
    ] {
        let run = env.gitbak(args).backup_path().run();
        run.assert_code(2);
        assert!(
            run.stderr.contains("no retention policy given"),
            "{}",
            run.stderr
        );
    }
    let run = env
        .gitbak(["prune", "--keep-daily", "seven"])
        .backup_path()
        .run();
    run.assert_code(2);
    assert!(run.stderr.contains("unlimited"), "{}", run.stderr);
}

#[test]
fn what_prune_never_removes() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    daily_history(&env, &repo, 2);
    let other = env.fixture("custom-hooks");
    create(&env, &other, &day(1), &[]).assert_success();
    env.add_commit(&other.path(), "refs/heads/main", "later.txt");
    create(&env, &other, &day(2), &[]).assert_success();
    // Another host's temporary file, old; one of a dead gitbak of this
    // host (pid above pid_max); the pointer and legacy layouts; gitbak's
    // own objects; something foreign; and an unreadable manifest.
    let host = gitbak_host();
    let keep = [
        "g/p/LATEST",
        "g/p/20210930065413/LATEST",
        "g/p/20210930065413/001.bundle",
        "h/q.bundle",
        "h/q.refs",
        "gitbak-locks/run",
        "notes.txt",
    ];
    for key in keep {
        let path = env.backup_file(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, key).unwrap();
    }
    let step_dir = repo.step_key(&day(1), "");
    let theirs = format!("{step_dir}.001.bundle~elsewhere~77-0.gitbak.tmp");
    let dead = format!("{step_dir}.001.refs~{host}~4194304999-0.gitbak.tmp");
    for key in [&theirs, &dead] {
        let file = std::fs::File::create(env.backup_file(key)).unwrap();
        file.set_modified(std::time::UNIX_EPOCH).unwrap();
    }
    std::fs::write(env.backup_file(&other.manifest_key(&day(3))), "steps = [[").unwrap();
    let other_files = files(&env)
        .into_iter()
        .filter(|key| key.starts_with(&format!("default/{}", other.relative_path)))
        .collect::<Vec<_>>();

    let run = env
        .gitbak(["prune", "--keep-last", "1"])
        .backup_path()
        .run();
    run.assert_success();
    assert!(run.stderr.contains("is unreadable"), "{}", run.stderr);
    // This host's dead run's file goes at once; the other host's waits.
    let after = files(&env);
    assert!(
        !after.contains(&dead) && after.contains(&theirs),
        "{after:?}"
    );
    // Once the grace period is over, everything unreferenced goes.
    let report = prune(&env, &["--keep-last", "1", "--now", "2100-01-01T00:00:00Z"]);
    assert_eq!(report["removed"]["temporary_files"]["count"], 1);
    let after = files(&env);
    assert!(!after.contains(&theirs));
    for key in keep.iter().map(|k| k.to_string()).chain(other_files) {
        assert!(after.contains(&key), "{key} removed: {report}");
    }
    assert!(after.contains(&repo.manifest_key("+latest")));
    // Day 1 of the first repository went; its files stay: day 2
    // continues its chain.
    assert!(!after.contains(&repo.manifest_key(&day(1))));
    assert!(after.contains(&repo.step_key(&day(1), "001.bundle")));
}

/// This host's name as gitbak tags temporary files with it.
fn gitbak_host() -> String {
    gitbak::tempname::host().to_owned()
}
