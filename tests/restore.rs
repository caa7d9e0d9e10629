//! `gitbak restore`: full-backup round trips for every fixture, choosing
//! the backup, and failures that must leave repositories as they were;
//! `point_in_time` (`--at`) and `broken_chain` (increments that cannot be
//! replayed), on gitaly-style chains built by `chain`.

mod all;
mod broken_chain;
mod chain;
mod point_in_time;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{assert_no_temp_dirs, snapshot, Repo, RepoState, TestEnv};

const ID: &str = "20240101000000";

fn assert_fsck_clean(env: &TestEnv, repository: &Path) {
    env.git_run(repository, ["fsck", "--strict", "--no-progress"], b"")
        .assert_success();
}

/// Backs up `repo`, restores it into a fresh storage root, then changes
/// the original and restores over it: both restores must give exactly the
/// repository as it was at backup time (spec §4.5: extra refs deleted,
/// moved refs reset, HEAD and formats as recorded, hooks from the backup).
fn assert_round_trip(env: &TestEnv, repo: &Repo) {
    let at_backup = RepoState::capture(env, &repo.path());
    env.create(ID, &[repo]).assert_success();

    let fresh = repo.on_root(env.storage_root("fresh"));
    let run = env.restore(&[&fresh], &[]);
    run.assert_success()
        .job_line("completed restore", &repo.relative_path);
    at_backup.assert_same(
        &RepoState::capture(env, &fresh.path()),
        "restored into a fresh storage",
    );
    assert_fsck_clean(env, &fresh.path());
    assert_no_temp_dirs(&fresh.storage_root);

    let branch = env.diverge(&repo.path());
    let diverged = RepoState::capture(env, &repo.path());
    assert!(
        diverged.refs.contains(branch) && diverged != at_backup,
        "diverge() changed nothing"
    );
    env.restore(&[repo], &[])
        .assert_success()
        .job_line("completed restore", &repo.relative_path);
    let restored = RepoState::capture(env, &repo.path());
    assert!(
        !restored.refs.contains(branch),
        "{branch} survived the restore:\n{}",
        restored.refs
    );
    at_backup.assert_same(&restored, "restored over the changed original");
    assert_fsck_clean(env, &repo.path());
    assert_no_temp_dirs(&repo.storage_root);
}

#[test]
fn round_trip_linear() {
    let env = TestEnv::new();
    assert_round_trip(&env, &env.fixture("linear"));
}

#[test]
fn round_trip_branches_and_tags() {
    let env = TestEnv::new();
    assert_round_trip(&env, &env.fixture("branches-and-tags"));
}

#[test]
fn round_trip_empty() {
    let env = TestEnv::new();
    let repo = env.fixture("empty");
    assert_round_trip(&env, &repo);
    assert_eq!(
        env.git(&repo.path(), ["for-each-ref"]),
        "",
        "the restored empty repository has refs"
    );
}

#[test]
fn round_trip_unborn_head() {
    let env = TestEnv::new();
    let repo = env.fixture("unborn-head");
    assert_round_trip(&env, &repo);
    assert_eq!(
        env.git(&repo.path(), ["symbolic-ref", "HEAD"]),
        "refs/heads/does-not-exist\n"
    );
}

#[test]
fn round_trip_sha256() {
    let env = TestEnv::new();
    let repo = env.fixture("sha256");
    assert_round_trip(&env, &repo);
    assert_eq!(
        env.git(&repo.path(), ["rev-parse", "--show-object-format"]),
        "sha256\n"
    );
}

#[test]
fn round_trip_reftable() {
    let env = TestEnv::new();
    let repo = env.fixture("reftable");
    assert_round_trip(&env, &repo);
    assert_eq!(
        env.git(&repo.path(), ["rev-parse", "--show-ref-format"]),
        "reftable\n"
    );
}

#[test]
fn round_trip_custom_hooks() {
    let env = TestEnv::new();
    let repo = env.fixture("custom-hooks");
    let hooks = snapshot(&repo.path().join("custom_hooks"));
    assert_eq!(hooks.len(), 4, "fixture changed: {hooks:?}");
    assert_round_trip(&env, &repo);
    assert!(
        !repo.path().join("custom_hooks/post-update").exists(),
        "a hook added after the backup survived"
    );
}

#[test]
fn round_trip_many_refs() {
    // The full 50 000 refs: the one test at GitLab scale.
    let env = TestEnv::new();
    let repo = env.fixture("many-refs");
    assert_eq!(
        env.git(&repo.path(), ["for-each-ref"]).lines().count(),
        50_000
    );
    assert_round_trip(&env, &repo);
}

#[test]
fn round_trip_fork_alternates() {
    // The fresh storage has no object pool: fsck there proves the backup
    // carried the objects the fork borrowed from its pool.
    let env = TestEnv::new();
    let repo = env.fixture("fork-alternates");
    assert_round_trip(&env, &repo);
}

#[test]
fn round_trip_detached_head() {
    // No head_reference in the manifest; HEAD comes back detached at the
    // refs file's HEAD line.
    let env = TestEnv::new();
    let repo = env.fixture("custom-hooks");
    let main = env.git(&repo.path(), ["rev-parse", "refs/heads/main~1"]);
    env.git(
        &repo.path(),
        ["update-ref", "--no-deref", "HEAD", main.trim_end()],
    );
    assert_round_trip(&env, &repo);
    assert_eq!(
        RepoState::capture(&env, &repo.path()).head,
        format!("detached {}", main.trim_end())
    );
}

#[test]
fn hooks_are_kept_when_the_backup_has_none() {
    // Spec §4.3: without an archive in the backup, the repository keeps
    // whatever hooks it has.
    let env = TestEnv::new();
    let repo = env.fixture("unborn-head");
    let at_backup = RepoState::capture(&env, &repo.path());
    env.create(ID, &[&repo]).assert_success();
    assert!(!env
        .backup_file(&repo.step_key(ID, "001.custom_hooks.tar"))
        .exists());
    let hooks = repo.path().join("custom_hooks");
    std::fs::create_dir(&hooks).unwrap();
    std::fs::write(hooks.join("pre-receive"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(
        hooks.join("pre-receive"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    env.diverge(&repo.path());
    let added = snapshot(&hooks);

    env.restore(&[&repo], &[]).assert_success();
    let restored = RepoState::capture(&env, &repo.path());
    assert_eq!(restored.custom_hooks, added);
    at_backup.assert_same(
        &RepoState {
            custom_hooks: at_backup.custom_hooks.clone(),
            ..restored
        },
        "refs",
    );
}

#[test]
fn restore_takes_the_given_id_or_else_the_latest() {
    let env = TestEnv::new();
    let repo = env.fixture("custom-hooks");
    let first = RepoState::capture(&env, &repo.path());
    env.create("1000", &[&repo]).assert_success();
    env.diverge(&repo.path());
    let second = RepoState::capture(&env, &repo.path());
    env.create("2000", &[&repo]).assert_success();

    let older = repo.on_root(env.storage_root("older"));
    env.restore(&[&older], &["--id", "1000"]).assert_success();
    first.assert_same(&RepoState::capture(&env, &older.path()), "--id 1000");

    let latest = repo.on_root(env.storage_root("latest"));
    env.restore(&[&latest], &[]).assert_success();
    second.assert_same(&RepoState::capture(&env, &latest.path()), "no --id");

    let run = env.restore(
        &[&repo.on_root(env.storage_root("none"))],
        &["--id", "3000"],
    );
    // An id nothing has is caught at start: one error, no job.
    run.assert_code(2);
    assert!(
        run.stderr.contains("backup id 3000 not found in "),
        "{}",
        run.stderr
    );
    assert!(
        run.paths_with_msg("started restore").is_empty(),
        "{}",
        run.stdout
    );
}

#[test]
fn missing_backup_fails_and_leaves_the_repository_untouched() {
    let env = TestEnv::new();
    let backed_up = env.fixture("unborn-head");
    env.create(ID, &[&backed_up]).assert_success();
    let never_backed_up = env.fixture("custom-hooks");
    let before = snapshot(&never_backed_up.path());

    let run = env.restore(&[&never_backed_up, &backed_up], &[]);
    run.assert_code(1);
    let error = run.job_error("restore", &never_backed_up.relative_path);
    assert!(error.contains("no backup of this repository"), "{error}");
    run.job_line("completed restore", &backed_up.relative_path);
    let summary = run.failure_summary();
    assert!(
        summary.starts_with("restore: pipeline: 1 failures encountered:\n"),
        "{summary}"
    );
    assert!(
        summary.contains("\n - fixtures/custom-hooks.git (group/custom-hooks): "),
        "{summary}"
    );
    assert_eq!(
        snapshot(&never_backed_up.path()),
        before,
        "the repository changed"
    );
}

/// Backs up branches-and-tags, changes the original, damages one backup
/// file, then restores over the original and into a fresh storage: both
/// must fail naming the file, leave the original byte-for-byte as it was,
/// create nothing in the fresh storage, and leave no temporary directory.
fn assert_damage_is_refused(file: &str, damage: impl Fn(&[u8]) -> Vec<u8>) {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    env.create(ID, &[&repo]).assert_success();
    env.diverge(&repo.path());
    let key = repo.step_key(ID, file);
    let path = env.backup_file(&key);
    let bytes = std::fs::read(&path).unwrap();
    let damaged = damage(&bytes);
    assert_ne!(damaged, bytes);
    std::fs::write(&path, damaged).unwrap();

    let before = snapshot(&repo.path());
    let run = env.restore(&[&repo], &[]);
    run.assert_code(1);
    let error = run.job_error("restore", &repo.relative_path);
    assert!(error.contains(&key), "error does not name {key}: {error}");
    assert_eq!(
        snapshot(&repo.path()),
        before,
        "the existing repository changed"
    );
    assert_no_temp_dirs(&repo.storage_root);

    let fresh = repo.on_root(env.storage_root("fresh"));
    env.restore(&[&fresh], &[]).assert_code(1);
    assert!(
        !fresh.path().exists(),
        "a failed restore left a repository behind"
    );
    assert!(
        !fresh.storage_root.join("fixtures").exists(),
        "a failed restore left the parent directory it created"
    );
    assert_no_temp_dirs(&fresh.storage_root);
}

fn flip_middle_byte(bytes: &[u8]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    bytes
}

#[test]
fn corrupt_bundle_is_refused() {
    assert_damage_is_refused("001.bundle", flip_middle_byte);
}

#[test]
fn truncated_bundle_is_refused() {
    assert_damage_is_refused("001.bundle", |bytes| bytes[..bytes.len() / 2].to_vec());
}

#[test]
fn corrupt_refs_file_is_refused() {
    assert_damage_is_refused("001.refs", flip_middle_byte);
}

#[test]
fn backup_of_a_non_existent_repository_leaves_an_existing_one_alone() {
    // Spec §4.5 step 3: nothing existed at backup time, so nothing is done.
    let env = TestEnv::new();
    let ghost = Repo::new("default", env.storage_root("default"), "group/ghost.git");
    env.create(ID, &[&ghost]).assert_success();
    let repo = env.fixture_at("default", "custom-hooks", "group/ghost.git", &[]);
    let before = snapshot(&repo.path());
    env.restore(&[&repo], &[])
        .assert_success()
        .job_line("completed restore", "group/ghost.git");
    assert_eq!(snapshot(&repo.path()), before);
}

#[test]
fn restore_refuses_paths_outside_the_storage() {
    let env = TestEnv::new();
    // A genuine backup of evil/x.git, taken where evil/ is a directory…
    let source = env.fixture_at("source", "custom-hooks", "evil/x.git", &[]);
    let source = Repo {
        storage_name: "default".into(),
        ..source
    };
    env.create(ID, &[&source]).assert_success();
    // …restored where evil/ is a symlink out of the storage.
    let outside = env.root().join("outside");
    std::fs::create_dir_all(outside.join("x.git")).unwrap();
    std::fs::write(outside.join("x.git/keep"), "precious").unwrap();
    let trap = source.on_root(env.storage_root("trap"));
    std::os::unix::fs::symlink(&outside, trap.storage_root.join("evil")).unwrap();
    let before = snapshot(&outside);

    let dotdot = Repo {
        relative_path: "../x.git".into(),
        ..trap.clone()
    };
    let absolute = Repo {
        relative_path: outside.join("x.git").to_str().unwrap().into(),
        ..trap.clone()
    };
    let run = env.restore(&[&trap, &dotdot, &absolute], &[]);
    run.assert_code(1);
    for repo in [&trap, &dotdot, &absolute] {
        let error = run.job_error("restore", &repo.relative_path);
        assert!(
            error.contains(&repo.relative_path),
            "error does not name the path: {error}"
        );
    }
    assert_eq!(
        snapshot(&outside),
        before,
        "restore wrote outside the storage"
    );
}

/// Issue 8: gitaly-backup writes hooks archives (ustar) with the modes it
/// found, 0666 and 0777 included; a restore never makes a hook group- or
/// world-writable, nor setuid or setgid.
#[test]
fn restored_hooks_are_never_writable_by_others_nor_setuid() {
    let env = TestEnv::new();
    let repo = env.fixture("custom-hooks");
    env.create(ID, &[&repo]).assert_success();
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mode, data) in [
        ("custom_hooks/", 0o777, None),
        (
            "custom_hooks/pre-receive",
            0o777,
            Some("#!/bin/sh\nexit 0\n"),
        ),
        ("custom_hooks/post-receive", 0o666, Some("#!/bin/sh\n")),
        ("custom_hooks/update", 0o4755, Some("#!/bin/sh\n")),
        ("custom_hooks/post-update", 0o2775, Some("#!/bin/sh\n")),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(match data {
            None => tar::EntryType::Directory,
            Some(_) => tar::EntryType::Regular,
        });
        header.set_size(data.map_or(0, |data| data.len() as u64));
        header.set_mode(mode);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder
            .append_data(&mut header, path, data.unwrap_or("").as_bytes())
            .unwrap();
    }
    let archive = builder.into_inner().unwrap();
    let key = repo.step_key(ID, "001.custom_hooks.tar");
    std::fs::write(env.backup_file(&key), &archive).unwrap();
    record_digest(&env, &repo.manifest_key(ID), &key, &archive);

    let fresh = repo.on_root(env.storage_root("fresh"));
    env.restore(&[&fresh], &["--id", ID]).assert_success();
    let modes: Vec<(String, u32)> = snapshot(&fresh.path().join("custom_hooks"))
        .into_iter()
        .map(|(path, entry)| match entry {
            crate::support::Entry::File { mode, .. } | crate::support::Entry::Dir { mode } => {
                (path, mode)
            }
            other => panic!("{path}: {other:?}"),
        })
        .collect();
    let expected = [
        ("post-receive", 0o644),
        ("post-update", 0o755),
        ("pre-receive", 0o755),
        ("update", 0o755),
    ];
    let expected: Vec<(String, u32)> = expected
        .into_iter()
        .map(|(path, mode)| (path.to_owned(), mode))
        .collect();
    assert_eq!(modes, expected);
    let dir_mode = std::fs::metadata(fresh.path().join("custom_hooks"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o7777, 0o755);
}

/// Rewrites the size and SHA-256 a gitbak manifest records for `key`.
fn record_digest(env: &TestEnv, manifest_key: &str, key: &str, bytes: &[u8]) {
    let path = env.backup_file(manifest_key);
    let mut manifest: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let files = manifest["gitbak"]["files"].as_array().unwrap().clone();
    let files: Vec<toml::Value> = files
        .into_iter()
        .map(|mut file| {
            if file["path"].as_str() == Some(key) {
                let table = file.as_table_mut().unwrap();
                table.insert("size".into(), (bytes.len() as i64).into());
                table.insert("sha256".into(), crate::support::sha256_hex(bytes).into());
            }
            file
        })
        .collect();
    manifest["gitbak"]
        .as_table_mut()
        .unwrap()
        .insert("files".into(), files.into());
    std::fs::write(&path, toml::to_string(&manifest).unwrap()).unwrap();
}

/// Issue 8, defect 4: without `RENAME_EXCHANGE` the old repository went
/// to a fixed aside name, and a leftover there failed every later restore
/// with "Directory not empty". Asides are now unique to a run.
#[test]
fn fallback_swap_is_not_blocked_by_a_leftover() {
    let env = TestEnv::new();
    let repo = env.fixture("custom-hooks");
    let at_backup = RepoState::capture(&env, &repo.path());
    env.create(ID, &[&repo]).assert_success();
    let stale = repo.path().with_file_name("+gitbak-tmp-custom-hooks.old");
    std::fs::create_dir_all(stale.join("objects")).unwrap();
    for round in 0..2 {
        env.diverge(&repo.path());
        env.gitbak(["restore"])
            .backup_path()
            .storages_of(&[&repo])
            .jobs(&[&repo])
            .env("GITBAK_FAILPOINTS", "no-rename-exchange=on")
            .run()
            .assert_success();
        at_backup.assert_same(
            &RepoState::capture(&env, &repo.path()),
            &format!("fallback swap, round {round}"),
        );
    }
    std::fs::remove_dir_all(&stale).unwrap();
    assert_no_temp_dirs(&repo.storage_root);
}
