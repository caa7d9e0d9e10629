//! Mistakes caught once, at start (`cmd::preflight`): each gives one line
//! on stderr, exit 2, and no job starts (no log line on stdout); in gitaly
//! mode gitaly-backup's JSON error line and exit 1.

use crate::storage::azure::{Azurite, ACCOUNT};
use crate::storage::s3::{Moto, CREDENTIALS as MOTO_CREDENTIALS, SECRET as S3_SECRET};
use crate::support::{Repo, Run, TestEnv};

/// Exit 2, `want` in the one stderr line, and no job started.
fn assert_refused_at_start(run: &Run, want: &str) {
    run.assert_code(2);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].contains(want), "want {want:?} in {}", run.stderr);
    assert!(
        run.paths_with_msg("started create").is_empty()
            && run.paths_with_msg("started restore").is_empty(),
        "a job started: {}",
        run.stdout
    );
}

fn repos(env: &TestEnv) -> Vec<Repo> {
    (1..=3)
        .map(|n| env.fixture_at("default", "linear", &format!("group/r{n}.git"), &[]))
        .collect()
}

#[test]
fn a_missing_storage_directory_is_one_error() {
    let env = TestEnv::new();
    let repos = repos(&env);
    let refs: Vec<&Repo> = repos.iter().collect();
    let missing = env.root().join("no-such-storage");
    let run = env
        .gitbak(["create", "--id", "20260101000000"])
        .backup_path()
        .storages_of(&refs)
        .args(["--storage", &format!("gone={}", missing.display())])
        .jobs(&refs)
        .run();
    assert_refused_at_start(
        &run,
        &format!(
            "storage \"gone\": directory {} does not exist; check --storage",
            missing.display()
        ),
    );
    assert!(!env.backups().join("manifests").exists());
}

#[test]
fn a_location_that_cannot_be_written_is_one_error() {
    let env = TestEnv::new();
    let repos = repos(&env);
    let refs: Vec<&Repo> = repos.iter().collect();
    let file = env.root().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let location = file.join("backups");
    let run = env
        .gitbak(["create", "--id", "20260101000000", "--path"])
        .args([&location])
        .storages_of(&refs)
        .jobs(&refs)
        .run();
    assert_refused_at_start(
        &run,
        &format!(
            "backup location {} is not usable: cannot create it:",
            location.display()
        ),
    );
}

#[test]
fn a_missing_location_fails_a_restore_once() {
    let env = TestEnv::new();
    let repos = repos(&env);
    let refs: Vec<&Repo> = repos.iter().collect();
    let run = env.restore(&refs, &[]);
    assert_refused_at_start(
        &run,
        &format!(
            "backup location {} does not exist; check --path",
            env.backups().display()
        ),
    );
}

#[test]
fn an_unknown_restore_id_is_one_error_and_a_backup_without_marker_still_restores() {
    let env = TestEnv::new();
    let repos = repos(&env);
    let refs: Vec<&Repo> = repos.iter().collect();
    env.create("20260101000000", &refs).assert_success();
    let run = env.restore(&refs, &["--id", "20260102000000"]);
    assert_refused_at_start(&run, "backup id 20260102000000 not found in ");
    assert!(
        run.stderr
            .contains("default:group/r1.git has no manifest for it"),
        "{}",
        run.stderr
    );

    // Backups from before markers have none: the first job's manifest
    // vouches for the id, and every job line is still restored.
    std::fs::remove_file(env.backup_file("backup_ids/20260101000000")).unwrap();
    for repo in &repos {
        env.diverge(&repo.path());
    }
    let run = env.restore(&refs, &["--id", "20260101000000"]);
    run.assert_success();
    assert_eq!(
        run.paths_with_msg("completed restore").len(),
        3,
        "{}",
        run.stdout
    );
}

#[test]
fn a_bucket_that_does_not_exist_is_one_error() {
    let moto = Moto::start();
    let env = TestEnv::new();
    let repos = repos(&env);
    let refs: Vec<&Repo> = repos.iter().collect();
    let url = moto.url("no-such-bucket");
    for command in ["create", "restore"] {
        let run = env
            .gitbak([command, "--path", &url])
            .storages_of(&refs)
            .envs(MOTO_CREDENTIALS)
            .jobs(&refs)
            .run();
        assert_refused_at_start(&run, "backup location s3://no-such-bucket");
        assert!(!run.stderr.contains(S3_SECRET), "{}", run.stderr);
    }
}

#[test]
fn an_unreachable_endpoint_is_one_error() {
    let env = TestEnv::new();
    let repos = repos(&env);
    let refs: Vec<&Repo> = repos.iter().collect();
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "s3://backups?endpoint=http://127.0.0.1:{port}&use_path_style=true&region=us-east-1"
    );
    let run = env
        .gitbak(["create", "--retries", "0", "--path", &url])
        .storages_of(&refs)
        .envs(MOTO_CREDENTIALS)
        .jobs(&refs)
        .run();
    assert_refused_at_start(&run, "backup location s3://backups");
}

#[test]
fn gitaly_mode_gets_its_json_error_line() {
    let env = TestEnv::new();
    let repos = repos(&env);
    let refs: Vec<&Repo> = repos.iter().collect();
    let file = env.root().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let location = file.join("backups");
    let root = env.storage_root("default");
    let run = env
        .gitbak([
            "create",
            "-layout",
            "manifest",
            "-id",
            "20260101000000",
            "-path",
        ])
        .args([&location])
        .env("GITBAK_STORAGE", &format!("default={}", root.display()))
        .jobs(&refs)
        .run();
    run.assert_code(1);
    assert_eq!(run.stderr, "", "{}", run.description);
    let log = run.log();
    assert_eq!(log.len(), 1, "{}", run.stdout);
    assert_eq!(log[0]["level"], "error");
    assert!(
        log[0]["msg"]
            .as_str()
            .unwrap()
            .contains("is not usable: cannot create it"),
        "{}",
        run.stdout
    );
}

#[test]
fn credentials_that_do_not_work_are_one_error() {
    // Azurite checks signatures (moto does not): a wrong key is refused
    // on the first request, and never printed.
    let azurite = Azurite::start();
    azurite.create_container("backups");
    let env = TestEnv::new();
    let repos = repos(&env);
    let refs: Vec<&Repo> = repos.iter().collect();
    let url = format!(
        "azblob://backups?domain=127.0.0.1:{}&protocol=http&localemu=true",
        azurite.port
    );
    let wrong_key = "d3JvbmcgYnV0IHdlbGwtZm9ybWVkIGJhc2U2NCBrZXkgZm9yIHRoZSB0ZXN0cw==";
    let run = env
        .gitbak(["create", "--retries", "0", "--path", &url])
        .storages_of(&refs)
        .env("AZURE_STORAGE_ACCOUNT", ACCOUNT)
        .env("AZURE_STORAGE_KEY", wrong_key)
        .jobs(&refs)
        .run();
    assert_refused_at_start(&run, "backup location azblob://backups");
    assert!(!run.stderr.contains(wrong_key) && !run.stdout.contains(wrong_key));
}
