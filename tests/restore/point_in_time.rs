//! `restore --at`: each repository's newest backup taken at or before a
//! time, a backup's time being its manifest's `[gitbak] created_at`, else
//! the time its id names (gitaly-backup's `YYYYMMDDhhmmss` and GitLab's
//! `<unix>_<YYYY>_<MM>_<DD>_<version>` ids). Chains are gitaly-style:
//! a full backup and increments.

use super::chain::Chain;
use crate::support::{assert_no_temp_dirs, snapshot, Repo, RepoState, TestEnv};

const FIRST: &str = "1700000000_2023_11_14_17.0.0";
const FIRST_TIME: &str = "2023-11-14T22:13:20Z";
const SECOND: &str = "1700086400_2023_11_15_17.0.0";
const SECOND_TIME: &str = "2023-11-15T22:13:20Z";
/// Its id says 00:00:00, its manifest says the refs were read at 00:05.
const THIRD: &str = "20231116000000";
const THIRD_TIME: &str = "2023-11-16T00:05:00Z";

/// Three backups of a changing repository; its state at each.
fn history(env: &TestEnv, repo: &Repo) -> [RepoState; 3] {
    let path = repo.path();
    let mut chain = Chain::new(env, repo);
    let first = RepoState::capture(env, &path);
    chain.back_up(FIRST, None);
    env.add_commit(&path, "refs/heads/main", "second.txt");
    env.git(&path, ["update-ref", "-d", "refs/heads/stale"]);
    let second = RepoState::capture(env, &path);
    chain.back_up(SECOND, None);
    let tip = env.add_commit(&path, "refs/heads/feature", "third.txt");
    env.git(&path, ["update-ref", "refs/heads/third", &tip]);
    env.git(&path, ["symbolic-ref", "HEAD", "refs/heads/feature"]);
    let third = RepoState::capture(env, &path);
    chain.back_up(THIRD, Some(THIRD_TIME));
    [first, second, third]
}

#[test]
fn restores_the_newest_backup_taken_by_a_time() {
    let env = TestEnv::new();
    let repo = env.fixture_at("default", "branches-and-tags", "group/pit.git", &[]);
    let [first, second, third] = history(&env, &repo);
    for (at, state, id, time) in [
        (FIRST_TIME, &first, FIRST, FIRST_TIME),
        ("2023-11-15T12:00:00+02:00", &first, FIRST, FIRST_TIME),
        ("2023-11-15T23:13:20+01:00", &second, SECOND, SECOND_TIME),
        // THIRD's id names this second, but its refs were read later.
        ("20231116000000", &second, SECOND, SECOND_TIME),
        ("2023-11-16T00:04:59.999Z", &second, SECOND, SECOND_TIME),
        (THIRD_TIME, &third, THIRD, THIRD_TIME),
        ("2099-01-01T00:00:00Z", &third, THIRD, THIRD_TIME),
    ] {
        // Over a changed original: the restore must undo the change.
        env.diverge(&repo.path());
        let run = env.restore(&[&repo], &["--at", at]);
        run.assert_success();
        let line = run.job_line("completed restore", &repo.relative_path);
        assert_eq!(line["backup_id"], id, "--at {at}: {line}");
        assert_eq!(line["backup_time"], time, "--at {at}: {line}");
        state.assert_same(&RepoState::capture(&env, &repo.path()), at);
        env.git_run(&repo.path(), ["fsck", "--strict", "--no-progress"], b"")
            .assert_success();
    }
    // Without --at or --id: the latest, and the line says which.
    let fresh = repo.on_root(env.storage_root("fresh"));
    let run = env.restore(&[&fresh], &[]);
    let line = run
        .assert_success()
        .job_line("completed restore", &repo.relative_path);
    assert_eq!(line["backup_id"], THIRD, "{line}");
    assert_eq!(line["backup_time"], THIRD_TIME, "{line}");
    third.assert_same(&RepoState::capture(&env, &fresh.path()), "latest");
    assert_no_temp_dirs(&repo.storage_root);
}

#[test]
fn a_time_before_the_first_backup_fails_and_leaves_the_repository_untouched() {
    let env = TestEnv::new();
    let repo = env.fixture_at("default", "branches-and-tags", "group/early.git", &[]);
    history(&env, &repo);
    env.diverge(&repo.path());
    let before = snapshot(&repo.path());

    let run = env.restore(&[&repo], &["--at", "2023-11-14T22:13:19Z"]);
    run.assert_code(1);
    let error = run.job_error("restore", &repo.relative_path);
    assert!(
        error.starts_with(
            "no backup of this repository taken at or before 2023-11-14T22:13:19Z in "
        ) && error.ends_with(&format!(": the oldest, {FIRST}, was taken at {FIRST_TIME}")),
        "{error}"
    );
    assert_eq!(snapshot(&repo.path()), before, "the repository changed");
    assert_no_temp_dirs(&repo.storage_root);
}

#[test]
fn backups_without_a_known_time_are_not_chosen_by_time() {
    let env = TestEnv::new();
    let repo = env.fixture_at("default", "linear", "group/nightly.git", &[]);
    Chain::new(&env, &repo).back_up("nightly", None);
    let before = snapshot(&repo.path());
    let run = env.restore(&[&repo], &["--at", "2099-01-01T00:00:00Z"]);
    run.assert_code(1);
    let error = run.job_error("restore", &repo.relative_path);
    assert!(
        error.contains("none of its 1 backups records when it was taken"),
        "{error}"
    );
    assert_eq!(snapshot(&repo.path()), before, "the repository changed");
    // By id it is there, and the line names no time.
    let run = env.restore(&[&repo], &["--id", "nightly"]);
    let line = run
        .assert_success()
        .job_line("completed restore", &repo.relative_path);
    assert_eq!(line["backup_id"], "nightly", "{line}");
    assert!(line.get("backup_time").is_none(), "{line}");
}

#[test]
fn at_with_id_is_a_usage_error() {
    let env = TestEnv::new();
    let repo = env.fixture_at("default", "linear", "group/both.git", &[]);
    Chain::new(&env, &repo).back_up(FIRST, None);
    env.diverge(&repo.path());
    let before = snapshot(&repo.path());
    let run = env.restore(&[&repo], &["--id", FIRST, "--at", FIRST_TIME]);
    run.assert_code(2);
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(snapshot(&repo.path()), before, "the repository changed");
}
