//! Incremental backups through a scripted history (issue #10): ten
//! `create --incremental` runs over one repository while it changes the
//! ways repositories change (new commits, a force push and gc, branches
//! deleted and re-created, tags, HEAD moved, hooks added, changed and
//! removed, the repository emptied and refilled). Every backup restores,
//! by `--id` and by `--at`, to exactly the refs, HEAD, objects and hooks it
//! had, with gitbak and with gitaly-backup's algorithm.

use std::path::Path;

use crate::support::{Repo, RepoState, TestEnv};

/// The history: what happens to the repository before each backup.
fn change(env: &TestEnv, repository: &Path, backup: usize) {
    let git = |args: &[&str]| env.git(repository, args);
    let hooks = repository.join("custom_hooks");
    match backup {
        1 => {}
        2 => {
            env.add_commit(repository, "refs/heads/main", "second.txt");
            env.add_commit(repository, "refs/heads/main", "third.txt");
            env.add_commit(repository, "refs/heads/topic", "topic.txt");
        }
        3 => {
            // A force push that drops topic's commit, then gc prunes it.
            let main = git(&["rev-parse", "refs/heads/main~1"]);
            git(&["update-ref", "refs/heads/topic", main.trim()]);
            env.add_commit(repository, "refs/heads/topic", "rewritten.txt");
            git(&["reflog", "expire", "--expire=now", "--all"]);
            git(&["gc", "--prune=now", "--quiet"]);
        }
        4 => {
            git(&["update-ref", "-d", "refs/heads/topic"]);
            git(&["tag", "-a", "-m", "release", "v-history", "refs/heads/main"]);
        }
        5 => {
            let main = git(&["rev-parse", "refs/heads/main"]);
            git(&["update-ref", "refs/heads/topic", main.trim()]);
            git(&["symbolic-ref", "HEAD", "refs/heads/topic"]);
        }
        6 => {
            std::fs::create_dir_all(&hooks).unwrap();
            std::fs::write(hooks.join("pre-receive"), "#!/bin/sh\nexit 0\n").unwrap();
        }
        7 => {
            std::fs::write(hooks.join("pre-receive"), "#!/bin/sh\nexit 1\n").unwrap();
            env.add_commit(repository, "refs/heads/topic", "more.txt");
        }
        8 => std::fs::remove_dir_all(&hooks).unwrap(),
        9 => {
            let refs = git(&["for-each-ref", "--format=delete %(refname)"]);
            env.git_with_input(repository, ["update-ref", "--stdin"], refs.as_bytes());
        }
        10 => {
            env.add_commit(repository, "refs/heads/topic", "refilled.txt");
            git(&["tag", "refilled", "refs/heads/topic"]);
        }
        _ => unreachable!(),
    }
}

fn id(backup: usize) -> String {
    format!("202601010000{backup:02}")
}

/// `[gitbak] created_at` of a manifest: the backup's time.
fn backup_time(env: &TestEnv, repo: &Repo, id: &str) -> String {
    let text = std::fs::read_to_string(env.backup_file(&repo.manifest_key(id))).unwrap();
    let manifest: toml::Table = text.parse().unwrap();
    manifest["gitbak"]["created_at"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn ten_incremental_backups_restore_to_each_point_in_history() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let mut history = Vec::new();
    for backup in 1..=10 {
        change(&env, &repo.path(), backup);
        let id = id(backup);
        env.gitbak(["create", "--incremental", "--id", &id])
            .backup_path()
            .storages_of(&[&repo])
            .jobs(&[&repo])
            .run()
            .assert_success();
        history.push((
            id.clone(),
            RepoState::capture(&env, &repo.path()),
            backup_time(&env, &repo, &id),
        ));
        // Backup times have whole seconds: one apart, so --at tells them apart.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    // Backup 8 continues the chain begun by backup 1; backup 9 (emptied)
    // and 10 (refilled) start over, as an empty base cannot be continued.
    let manifest = std::fs::read_to_string(env.backup_file(&repo.manifest_key(&id(8)))).unwrap();
    let steps = manifest.matches("[[steps]]").count();
    assert_eq!(
        steps, 8,
        "backup 8 is not the 8th step of one chain:\n{manifest}"
    );

    for (index, (id, state, time)) in history.iter().enumerate() {
        for (how, args) in [
            ("--id", ["--id", id.as_str()]),
            ("--at", ["--at", time.as_str()]),
        ] {
            let restored = repo.on_root(env.storage_root(&format!("by-{}-{index}", &how[2..])));
            env.restore(&[&restored], &args).assert_success();
            state.assert_same(
                &RepoState::capture(&env, &restored.path()),
                &format!("backup {} restored by {how} {}", index + 1, args[1]),
            );
        }
        let elsewhere = env
            .storage_root(&format!("gitaly-{index}"))
            .join(&repo.relative_path);
        crate::compat::restore_like_gitaly(&env, &repo.manifest_key(id), &elsewhere);
        state.assert_same(
            &RepoState::capture(&env, &elsewhere),
            &format!("backup {} restored by gitaly-backup's algorithm", index + 1),
        );
    }

    // Before the first backup there is nothing to restore, and the
    // repository stays as it is.
    let before = RepoState::capture(&env, &repo.path());
    let run = env.restore(&[&repo], &["--at", "2020-01-01T00:00:00Z"]);
    run.assert_code(1);
    assert_eq!(RepoState::capture(&env, &repo.path()), before);
}
