//! What gitbak needs from the machine: a git of at least 2.45, checked
//! before anything is read or written, with an error that names the
//! version found, the minimum and the way out.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::support::TestEnv;

/// A `git` that says it is `version` and otherwise runs the real git.
fn git_claiming(env: &TestEnv, version: &str) -> PathBuf {
    let wrapper = env.root().join(format!("git-{version}"));
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'git version {version}'; exit 0; fi\n\
             exec git \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}

#[test]
fn an_old_git_is_refused_before_anything_is_touched() {
    let env = TestEnv::new();
    let repo = env.fixture("linear");
    let old = git_claiming(&env, "2.39.2");
    let old = old.to_str().unwrap();
    for command in ["create", "restore"] {
        let run = env
            .gitbak([command, "--git", old])
            .backup_path()
            .storages_of(&[&repo])
            .jobs(&[&repo])
            .run();
        run.assert_code(2);
        for part in ["git 2.39.2", old, "needs git 2.45.0 or newer", "--git"] {
            assert!(
                run.stderr.contains(part),
                "{command}: {part}: {}",
                run.stderr
            );
        }
        assert!(!env.backups().exists(), "{command} wrote a backup");
    }
    // Gitaly mode reports it as gitaly-backup reports errors: one JSON line, exit 1.
    let run = env
        .gitaly_backup(["create", "-path", env.backups().to_str().unwrap()])
        .env("GITBAK_GIT", old)
        .env("GITBAK_STORAGE", &repo.storage_arg())
        .stdin(repo.job_line())
        .run();
    run.assert_code(1);
    assert_eq!(run.stderr, "");
    let log = run.log();
    assert_eq!(log.len(), 1, "{}", run.stdout);
    assert_eq!(log[0]["level"], "error");
    let message = log[0]["msg"].as_str().unwrap();
    assert!(message.contains("git 2.39.2"), "{message}");
    assert!(!env.backups().exists());
}

#[test]
fn the_minimum_git_runs_and_a_missing_one_is_named() {
    let env = TestEnv::new();
    let repo = env.fixture("linear");
    let minimum = git_claiming(&env, "2.45.0");
    env.gitbak(["create", "--git", minimum.to_str().unwrap()])
        .backup_path()
        .storages_of(&[&repo])
        .jobs(&[&repo])
        .run()
        .assert_success();
    let missing = env.root().join("no-such-git");
    let run = env
        .gitbak(["restore", "--git", missing.to_str().unwrap()])
        .backup_path()
        .storages_of(&[&repo])
        .jobs(&[&repo])
        .run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("cannot run git") && run.stderr.contains("no-such-git"),
        "{}",
        run.stderr
    );
}
