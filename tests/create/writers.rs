//! One writer per repository (issue #12): a run holds
//! `gitbak-locks/<id>/<storage>` while it writes; a second run of the same
//! id on the same storage is refused while the first runs, a stale lock
//! (its process gone from this host, or older than `--lock-timeout`) is
//! replaced, runs of one id on different storages both complete, and
//! nothing is left once a run ends.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{files_under, Repo, Run, TestEnv};

const ID: &str = "20240303000000";

fn lock_file(env: &TestEnv, storage: &str) -> PathBuf {
    env.backup_file(&format!("gitbak-locks/{ID}/{storage}"))
}

/// Waits (up to 60 s) for a run to write its lock; its contents.
fn wait_for_lock(env: &TestEnv, storage: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(lock_file(env, storage)) {
            return serde_json::from_str(&text).unwrap();
        }
        assert!(Instant::now() < deadline, "no lock for {storage}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A create of `repos` that pauses before writing each manifest.
fn paused_create(env: &TestEnv, repos: &[&Repo], pause_ms: u32) -> Run {
    env.gitbak(["create", "--id", ID])
        .backup_path()
        .storages_of(repos)
        .jobs(repos)
        .env(
            "GITBAK_FAILPOINTS",
            &format!("create-before-manifest=sleep{pause_ms}"),
        )
        .run()
}

fn no_locks_left(env: &TestEnv) {
    let locks: Vec<String> = files_under(&env.backups())
        .into_iter()
        .filter(|file| file.starts_with("gitbak-locks"))
        .collect();
    assert_eq!(locks, Vec::<String>::new());
}

/// A lock as another run would have written it.
fn write_lock(env: &TestEnv, storage: &str, host: &str, pid: u64, taken_at: &str) {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let lock = json!({
        "host": host,
        "pid": pid,
        "process_started": taken_at,
        "taken_at": taken_at,
        "boot_id": boot_id.trim(),
        "start_ticks": 1,
        "gitbak_version": "0.1.0",
    });
    let path = lock_file(env, storage);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, lock.to_string()).unwrap();
}

fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    gitbak::layout::rfc3339(now)
}

#[test]
fn a_second_run_of_the_same_id_and_storage_is_refused_while_the_first_runs() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    std::thread::scope(|scope| {
        let first = scope.spawn(|| paused_create(&env, &[&repo], 3000));
        let lock = wait_for_lock(&env, "default");
        assert_eq!(lock["host"], gitbak::tempname::host());
        let pid = lock["pid"].as_u64().unwrap();
        assert!(lock["process_started"].as_str().unwrap().ends_with('Z'));

        let second = env.create(ID, &[&repo]);
        second.assert_code(1);
        let error = second.job_error("create", &repo.relative_path);
        assert!(error.contains(&format!("pid {pid} on host")), "{error}");
        assert!(
            error.contains(&format!("gitbak-locks/{ID}/default")),
            "{error}"
        );
        assert!(error.contains("wait for that run to end"), "{error}");
        let said_once = second
            .log()
            .iter()
            .filter(|line| {
                line["msg"]
                    .as_str()
                    .is_some_and(|msg| msg.contains("for every storage this run met"))
            })
            .count();
        assert_eq!(said_once, 1, "{}", second.stdout);
        // The refused run left the first one's lock alone.
        assert_eq!(wait_for_lock(&env, "default")["pid"], pid);

        first.join().unwrap().assert_success();
    });
    assert!(env.backup_file(&repo.manifest_key(ID)).is_file());
    no_locks_left(&env);
}

#[test]
fn stale_locks_are_replaced() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let host = gitbak::tempname::host();
    // Above pid_max: no such process on this host.
    write_lock(&env, "default", host, 4_194_304_999, &now_rfc3339());
    let run = env.create(ID, &[&repo]);
    run.assert_success();
    assert!(
        run.stdout.contains("replaced the stale run lock"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("no longer runs on this host"),
        "{}",
        run.stdout
    );
    no_locks_left(&env);

    // Another host's lock: live until it is older than --lock-timeout.
    let other = env.fixture("custom-hooks");
    write_lock(
        &env,
        "default",
        "elsewhere.example",
        7,
        "2024-03-03T00:00:00Z",
    );
    let refused = env
        .gitbak(["create", "--id", ID, "--lock-timeout", "100000d"])
        .backup_path()
        .storages_of(&[&other])
        .jobs(&[&other])
        .run();
    refused.assert_code(1);
    let error = refused.job_error("create", &other.relative_path);
    assert!(error.contains("pid 7 on host elsewhere.example"), "{error}");
    let run = env.create(ID, &[&other]);
    run.assert_success();
    assert!(
        run.stdout.contains("older than --lock-timeout"),
        "{}",
        run.stdout
    );
    no_locks_left(&env);
}

#[test]
fn a_killed_run_leaves_its_lock_and_the_next_run_replaces_it() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let killed = env
        .gitbak(["create", "--id", ID])
        .backup_path()
        .storages_of(&[&repo])
        .jobs(&[&repo])
        .env("GITBAK_FAILPOINTS", "create-before-manifest=kill")
        .run();
    assert_ne!(killed.code, 0);
    assert!(lock_file(&env, "default").is_file());
    let run = env.create(ID, &[&repo]);
    run.assert_success();
    assert!(
        run.stdout.contains("replaced the stale run lock"),
        "{}",
        run.stdout
    );
    no_locks_left(&env);

    // Interrupted (SIGTERM): the lock goes with the run.
    let interrupted = env
        .gitbak(["create", "--id", "20240404000000"])
        .backup_path()
        .storages_of(&[&repo])
        .jobs(&[&repo])
        .env("GITBAK_FAILPOINTS", "create-before-manifest=term")
        .run();
    interrupted.assert_code(130);
    no_locks_left(&env);
}

#[test]
fn runs_of_one_id_on_different_storages_both_complete() {
    let env = TestEnv::new();
    let first = env.fixture("branches-and-tags");
    let second = env.fixture_at(
        "second",
        "branches-and-tags",
        "fixtures/branches-and-tags.git",
        &[],
    );
    let env = &env;
    std::thread::scope(|scope| {
        let runs =
            [&first, &second].map(|repo| scope.spawn(move || paused_create(env, &[repo], 1500)));
        // Both hold their lock at once.
        wait_for_lock(env, "default");
        wait_for_lock(env, "second");
        for run in runs {
            run.join().unwrap().assert_success();
        }
    });
    for repo in [&first, &second] {
        assert!(env.backup_file(&repo.manifest_key(ID)).is_file());
    }
    assert!(env.backup_file(&format!("backup_ids/{ID}")).is_file());
    no_locks_left(env);
}

#[test]
fn immutable_runs_write_no_lock_and_list_and_prune_ignore_locks() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    // A live lock of another host: an --immutable run neither takes nor
    // heeds locks.
    write_lock(&env, "default", "elsewhere.example", 7, &now_rfc3339());
    env.gitbak(["create", "--id", ID, "--immutable"])
        .backup_path()
        .storages_of(&[&repo])
        .jobs(&[&repo])
        .run()
        .assert_success();
    let lock = std::fs::read(lock_file(&env, "default")).unwrap();

    let list = env.gitbak(["list", "--json"]).backup_path().run();
    list.assert_success();
    assert!(!list.stdout.contains("gitbak-locks"), "{}", list.stdout);
    assert!(list.stdout.contains(ID), "{}", list.stdout);
    env.gitbak(["prune", "--keep-last", "1"])
        .backup_path()
        .run()
        .assert_success();
    assert_eq!(std::fs::read(lock_file(&env, "default")).unwrap(), lock);
}
