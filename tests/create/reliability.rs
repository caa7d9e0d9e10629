//! Messages that say what happened and leak nothing (issue #8): a full
//! disk names the bundle, an unreadable repository says permission denied,
//! credentials in an endpoint URL never reach a log, `file://` parameters
//! are ignored with a warning each, and no colour codes go into a log file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::ID;
use crate::support::{files_under, TestEnv};

/// Incompressible bytes, the same every run.
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A commit holding `len` incompressible bytes on `refs/heads/main`.
pub(super) fn add_noise(env: &TestEnv, repository: &Path, len: usize) {
    let blob = env.git_with_input(
        repository,
        ["hash-object", "-w", "--stdin"],
        &noise(len, 0x9e37_79b9_7f4a_7c15),
    );
    let tree = env.git_with_input(
        repository,
        ["mktree"],
        format!("100644 blob {}\tnoise.bin\n", blob.trim_end()).as_bytes(),
    );
    let commit = env.git(repository, ["commit-tree", tree.trim_end(), "-m", "noise"]);
    env.git(
        repository,
        ["update-ref", "refs/heads/noise", commit.trim_end()],
    );
}

/// A small tmpfs, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: PathBuf, size: &str) -> Option<Self> {
        std::fs::create_dir_all(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(Self(path))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_names_the_bundle_and_leaves_nothing() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    add_noise(&env, &repo.path(), 3 << 20);
    let Some(disk) = SmallDisk::mount(env.root().join("small-disk"), "1m") else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the full-disk path is untested"
        );
        return;
    };
    let run = env
        .gitbak(["create", "--id", ID, "--path"])
        .args([&disk.0])
        .storages_of(&[&repo])
        .jobs(&[&repo])
        .run();
    run.assert_code(1);
    let error = run.job_error("create", &repo.relative_path);
    assert!(error.contains(&repo.step_key(ID, "001.bundle")), "{error}");
    assert!(error.contains("No space left on device"), "{error}");
    assert!(error.contains("free space"), "{error}");
    assert!(!error.contains("<stdout>"), "{error}");
    assert_eq!(
        files_under(&disk.0),
        Vec::<String>::new(),
        "left on the full disk"
    );
}

#[test]
fn an_unreadable_repository_is_permission_denied() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to run gitbak as another user");
        return;
    }
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    std::fs::set_permissions(env.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(env.backups()).unwrap();
    std::fs::set_permissions(env.backups(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(repo.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let run = env
        .gitbak(["create", "--id", ID])
        .backup_path()
        .storages_of(&[&repo])
        .jobs(&[&repo])
        .with_user(65534, 65534)
        .run();
    run.assert_code(1);
    let error = run.job_error("create", &repo.relative_path);
    assert!(error.contains("Permission denied"), "{error}");
    assert!(
        error.contains(&repo.path().display().to_string()),
        "{error}"
    );
    assert!(
        error.contains("run gitbak as the user that owns"),
        "{error}"
    );
    assert!(!error.contains("not a git repository"), "{error}");
}

#[test]
fn credentials_in_an_endpoint_never_reach_a_log() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let secret = "Sup3rS3cretPassw0rd";
    let port = crate::storage::free_port();
    for (query, expected) in [
        (
            // Unreachable: refused at start, once.
            format!("endpoint=http://admin:{secret}@127.0.0.1:{port}&use_path_style=true&region=us-east-1"),
            2,
        ),
        (format!("endpoint=http%3A%2F%2Fadmin%3A{secret}%40127.0.0.1%3A{port}&region=us-east-1&use_path_style=maybe"), 2),
    ] {
        let run = env
            .gitbak(["create", "--id", ID, "--retries", "0", "--path"])
            .args([format!("s3://backups?{query}")])
            .storages_of(&[&repo])
            .jobs(&[&repo])
            .env("AWS_ACCESS_KEY_ID", "gitbak-test")
            .env("AWS_SECRET_ACCESS_KEY", "not-the-point")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("GITBAK_LOG", "trace")
            .run();
        run.assert_code(expected);
        assert!(!run.stdout.contains(secret), "stdout:\n{}", run.stdout);
        assert!(!run.stderr.contains(secret), "stderr:\n{}", run.stderr);
        if query.contains("admin:") {
            let warnings = run.lines_with_msg(
                "ignoring the user name and password in the endpoint URL; credentials come \
                 from the provider's environment variables or config files (see README)",
            );
            assert_eq!(warnings.len(), 1, "{}", run.stdout);
        }
    }
}

#[test]
fn file_urls_ignore_their_parameters_with_one_warning_each() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let url = format!("file://{}?prefix=x/&metadata=skip", env.backups().display());
    let run = env
        .gitbak(["create", "--id", ID, "--path", &url])
        .storages_of(&[&repo])
        .jobs(&[&repo])
        .run();
    run.assert_success();
    let warnings: Vec<String> = run
        .log()
        .into_iter()
        .filter(|line| line["level"] == "warning")
        .map(|line| line["msg"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        warnings,
        [
            "ignoring parameter \"prefix\" of the file:// location, as Gitaly does",
            "ignoring parameter \"metadata\" of the file:// location, as Gitaly does"
        ]
    );
    assert!(env.backup_file(&repo.manifest_key(ID)).exists());
}

#[test]
fn no_colour_codes_when_stderr_is_not_a_terminal() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let run = env
        .gitbak(["create", "--id", ID])
        .backup_path()
        .storages_of(&[&repo])
        .jobs(&[&repo])
        .env("GITBAK_LOG", "debug")
        .run();
    run.assert_success();
    assert!(!run.stderr.is_empty(), "no debug output to check");
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
}
