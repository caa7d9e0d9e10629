//! `restore --all`: every repository the location has a backup of, from
//! the catalogue rather than a job list; `--id` and `--at` narrow it, and
//! storages this node does not have are skipped with one line each.

use crate::support::{Repo, RepoState, TestEnv};

/// A create whose refs are read at the time its id names.
fn create_at(env: &TestEnv, id: &str, repos: &[&Repo]) {
    env.gitbak(["create", "--id", id])
        .backup_path()
        .storages_of(repos)
        .jobs(repos)
        .env("GITBAK_NOW", id)
        .run()
        .assert_success();
}

#[test]
fn restores_every_backed_up_repository_without_a_job_list() {
    let env = TestEnv::new();
    let a = env.fixture_at("default", "branches-and-tags", "group/a.git", &[]);
    let b = env.fixture_at("default", "linear", "group/b.git", &[]);
    let elsewhere = env.fixture_at("other", "linear", "group/c.git", &[]);
    create_at(&env, "20260101020000", &[&a, &b, &elsewhere]);
    let a_first = RepoState::capture(&env, &a.path());
    env.add_commit(&a.path(), "refs/heads/main", "later.txt");
    create_at(&env, "20260102020000", &[&a]);
    let a_second = RepoState::capture(&env, &a.path());
    let b_state = RepoState::capture(&env, &b.path());

    // Disaster: the node's repositories are gone (its storage directory is
    // back, empty); "other" is not configured here.
    std::fs::remove_dir_all(a.storage_root.join("group")).unwrap();
    let run = env
        .gitbak(["restore", "--all"])
        .backup_path()
        .storages_of(&[&a])
        .run();
    run.assert_success();
    a_second.assert_same(&RepoState::capture(&env, &a.path()), "latest of a");
    b_state.assert_same(&RepoState::capture(&env, &b.path()), "latest of b");
    assert!(!elsewhere.on_root(a.storage_root.clone()).path().exists());
    let skipped = run.lines_with_msg(
        "restore --all: skipping 1 repositories of storage \"other\", which is not configured \
         on this node; run gitbak on the node that has it, or add --storage other=DIR",
    );
    assert_eq!(skipped.len(), 1, "{}", run.stdout);
    assert_eq!(
        run.paths_with_msg("completed restore").len(),
        2,
        "{}",
        run.stdout
    );

    // --id: the repositories with a backup under that id, at that backup.
    let run = env
        .gitbak(["restore", "--all", "--id", "20260101020000"])
        .backup_path()
        .storages_of(&[&a])
        .run();
    run.assert_success();
    a_first.assert_same(&RepoState::capture(&env, &a.path()), "a at --id");
    b_state.assert_same(&RepoState::capture(&env, &b.path()), "b at --id");

    // --at before the second backup: a goes back to its first.
    env.gitbak(["restore", "--all"])
        .backup_path()
        .storages_of(&[&a])
        .run()
        .assert_success();
    let run = env
        .gitbak(["restore", "--all", "--at", "2026-01-01T12:00:00Z"])
        .backup_path()
        .storages_of(&[&a])
        .run();
    run.assert_success();
    a_first.assert_same(&RepoState::capture(&env, &a.path()), "a at --at");
}

#[test]
fn an_id_no_repository_has_is_one_error() {
    let env = TestEnv::new();
    let a = env.fixture_at("default", "linear", "group/a.git", &[]);
    env.create("20260101020000", &[&a]).assert_success();
    let run = env
        .gitbak(["restore", "--all", "--id", "20250101020000"])
        .backup_path()
        .storages_of(&[&a])
        .run();
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "restore --all: no repository of a configured storage has a backup with id \
             20250101020000; `gitbak list` shows the ids"
        ),
        "{}",
        run.stderr
    );
    assert!(run.paths_with_msg("started restore").is_empty());
}

#[test]
fn all_without_storages_is_a_usage_error() {
    let env = TestEnv::new();
    let _ = Repo::new("default", env.storage_root("default"), "x.git");
    let run = env.gitbak(["restore", "--all"]).backup_path().run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("--all needs storages"),
        "{}",
        run.stderr
    );
}
