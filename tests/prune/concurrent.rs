//! A prune beside an incremental create, through failpoints: the create
//! pauses after writing its step and before its manifest, having chosen
//! its base, while a newer backup lands and a prune keeping only the
//! newest runs. With the grace period nothing is lost; without it, the
//! create notices its base is gone and writes no manifest.

use super::{assert_restores, create, daily_history, day, prune};
use crate::support::{Repo, RepoState, Run, TestEnv};

/// Waits until `path` exists (a create reached its failpoint).
fn wait_for(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// An incremental create of day 3 that pauses after writing its step,
/// before its manifest (it chose day 2 as its base), while day 4 (a full
/// backup) lands and a prune keeping only the newest backup runs.
fn prune_during_incremental(env: &TestEnv, repo: &Repo, grace: &str) -> (Run, RepoState) {
    daily_history(env, repo, 2);
    env.add_commit(&repo.path(), "refs/heads/main", "day-3.txt");
    let at_three = RepoState::capture(env, &repo.path());
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            env.gitbak(["create", "--incremental", "--id", &day(3)])
                .backup_path()
                .storages_of(&[repo])
                .jobs(&[repo])
                .env("GITBAK_FAILPOINTS", "create-before-manifest=sleep8000")
                .run()
        });
        wait_for(&env.backup_file(&repo.step_key(&day(3), "003.refs")));
        create(env, repo, &day(4), &[]).assert_success();
        let run = env
            .gitbak(["prune", "--keep-last", "1", "--grace", grace])
            .backup_path()
            .run();
        run.assert_success();
        (slow.join().unwrap(), at_three)
    })
}

#[test]
fn prune_beside_an_incremental_create_loses_nothing() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let (slow, at_three) = prune_during_incremental(&env, &repo, "24h");
    // The prune removed day 2's manifest, but not the files day 3 builds
    // on, nor day 3's own, which no manifest named yet: they wait.
    slow.assert_success();
    assert!(!env.backup_file(&repo.manifest_key(&day(2))).exists());
    assert_restores(&env, &repo, &day(3), &at_three);
    // Later prunes keeping it find them named again: nothing goes.
    let report = prune(&env, &["--keep-last", "2", "--now", "2100-01-01T00:00:00Z"]);
    assert_eq!(report["removed"]["data_files"]["count"], 0);
    assert_eq!(report["waiting"]["data_files"]["count"], 0);
    assert_restores(&env, &repo, &day(3), &at_three);
    assert_restores(&env, &repo, &day(4), &at_three);
}

#[test]
fn a_create_whose_base_a_prune_removed_fails_without_a_manifest() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    // --grace 0: the prune removes the base's files at once.
    let (slow, at_three) = prune_during_incremental(&env, &repo, "0");
    slow.assert_code(1);
    let error = slow.job_error("create", &repo.relative_path);
    assert!(error.contains("is gone (removed by a prune"), "{error}");
    assert!(!env.backup_file(&repo.manifest_key(&day(3))).exists());
    assert_restores(&env, &repo, &day(4), &at_three);
}
