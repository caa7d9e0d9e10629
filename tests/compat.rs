//! Both directions of gitaly-backup compatibility beyond the 19.0 manifest
//! layout (`regression` has that): backups of the pointer and legacy
//! layouts and manifests without `head_reference` restore with gitbak;
//! gitaly's hooks archives restore as gitaly reads them; and gitbak's
//! backups restore with gitaly-backup's own algorithm (spec §4.5), done
//! here with plain git.

use std::path::{Path, PathBuf};

use crate::regression::{
    assert_restores_to, golden_manifest, path_text, write_gitaly_files, write_gitaly_manifest,
    StepFiles, FULL_ID, INCREMENT_ID, REPOSITORY,
};
use crate::support::{snapshot, Repo, RepoState, TestEnv};

/// Where the pointer and legacy layouts keep `REPOSITORY`: no `.git`, no
/// storage name (spec §3.2, §3.3).
fn old_prefix() -> &'static str {
    REPOSITORY.strip_suffix(".git").unwrap()
}

fn pointer_step(env: &TestEnv, id: &str, step: u32) -> StepFiles {
    let dir = env.backup_file(&format!("{}/{id}", old_prefix()));
    let file = |extension: &str| dir.join(format!("{step:03}.{extension}"));
    StepFiles {
        bundle: file("bundle"),
        refs: file("refs"),
        custom_hooks: file("custom_hooks.tar"),
    }
}

/// Commits a pointer-layout step as gitaly-backup did: the backup's
/// `LATEST`, then the repository's, no trailing newline.
fn write_pointers(env: &TestEnv, id: &str, step: u32) {
    let prefix = old_prefix();
    std::fs::write(
        env.backup_file(&format!("{prefix}/{id}/LATEST")),
        format!("{step:03}"),
    )
    .unwrap();
    std::fs::write(env.backup_file(&format!("{prefix}/LATEST")), id).unwrap();
}

/// Changes between two backups: new commits, a new branch, a deleted one.
fn change(env: &TestEnv, path: &Path) {
    env.add_commit(path, "refs/heads/main", "increment-1.txt");
    let tip = env.add_commit(path, "refs/heads/main", "increment-2.txt");
    env.git(path, ["update-ref", "refs/heads/after", &tip]);
    std::fs::write(path.join("custom_hooks/pre-receive"), "#!/bin/sh\nexit 3\n").unwrap();
}

#[test]
fn restores_the_pointer_layout_gitaly_wrote() {
    let env = TestEnv::new();
    let repo = env.fixture_at("default", "custom-hooks", REPOSITORY, &[]);
    let path = repo.path();
    let first_refs = write_gitaly_files(&env, &path, &pointer_step(&env, FULL_ID, 1), None);
    write_pointers(&env, FULL_ID, 1);
    change(&env, &path);
    let second = RepoState::capture(&env, &path);
    // An increment goes into the full backup's directory, whatever its id.
    let files = pointer_step(&env, FULL_ID, 2);
    write_gitaly_files(&env, &path, &files, Some(&first_refs));
    write_pointers(&env, FULL_ID, 2);

    let latest = repo.on_root(env.storage_root("latest"));
    assert_restores_to(&env, &latest, &[], &second, "pointer layout, latest");
    let by_id = repo.on_root(env.storage_root("by-id"));
    assert_restores_to(&env, &by_id, &["--id", FULL_ID], &second, "pointer, --id");
    env.diverge(&path);
    assert_restores_to(&env, &repo, &[], &second, "pointer, over the original");
}

#[test]
fn restores_the_legacy_layout_gitaly_wrote() {
    let env = TestEnv::new();
    let repo = env.fixture_at("default", "custom-hooks", REPOSITORY, &[]);
    let at_backup = RepoState::capture(&env, &repo.path());
    let prefix = old_prefix();
    let files = StepFiles {
        bundle: env.backup_file(&format!("{prefix}.bundle")),
        refs: env.backup_file(&format!("{prefix}.refs")),
        custom_hooks: env.backup_file(&format!("{prefix}/custom_hooks.tar")),
    };
    write_gitaly_files(&env, &repo.path(), &files, None);

    let fresh = repo.on_root(env.storage_root("fresh"));
    assert_restores_to(&env, &fresh, &[], &at_backup, "legacy layout");
    // Before GitLab 14.2 there was no refs file: the bundle's refs do.
    std::fs::remove_file(&files.refs).unwrap();
    let no_refs = repo.on_root(env.storage_root("no-refs"));
    assert_restores_to(&env, &no_refs, &[], &at_backup, "legacy without .refs");
    env.diverge(&repo.path());
    assert_restores_to(&env, &repo, &[], &at_backup, "legacy, over the original");
}

/// A manifest of gitaly-backup 16.5: no `head_reference`.
fn manifest_without_head() -> Vec<u8> {
    let text = String::from_utf8(golden_manifest("gitaly-19.0-full.toml")).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("head_reference"))
        .collect();
    (kept.join("\n") + "\n").into_bytes()
}

/// Backs `repo` up as gitaly-backup 16.5 did and restores it into a fresh
/// storage root; returns the run's stdout and the restored HEAD state.
fn restore_headless(env: &TestEnv, repo: &Repo, root: &str) -> (String, RepoState) {
    let dir = env.backup_file(&format!("default/{REPOSITORY}/{FULL_ID}"));
    let files = StepFiles {
        bundle: dir.join("001.bundle"),
        refs: dir.join("001.refs"),
        custom_hooks: dir.join("001.custom_hooks.tar"),
    };
    write_gitaly_files(env, &repo.path(), &files, None);
    write_gitaly_manifest(env, FULL_ID, &manifest_without_head());
    let fresh = repo.on_root(env.storage_root(root));
    let run = env.restore(&[&fresh], &[]);
    run.assert_success();
    (run.stdout.clone(), RepoState::capture(env, &fresh.path()))
}

#[test]
fn a_manifest_without_head_reference_never_leaves_head_detached() {
    // HEAD on main: restored exactly.
    let env = TestEnv::new();
    let repo = env.fixture_at("default", "branches-and-tags", REPOSITORY, &[]);
    let at_backup = RepoState::capture(&env, &repo.path());
    let (_, restored) = restore_headless(&env, &repo, "main");
    at_backup.assert_same(&restored, "HEAD on main");

    // HEAD on trunk, which shares its commit with alpha: neither main nor
    // master is there, so the first branch by name.
    let path = repo.path();
    let commit = env.git(&path, ["rev-parse", "refs/heads/main~2"]);
    for branch in ["refs/heads/trunk", "refs/heads/alpha"] {
        env.git(&path, ["update-ref", branch, commit.trim_end()]);
    }
    env.git(&path, ["symbolic-ref", "HEAD", "refs/heads/trunk"]);
    let mut expected = RepoState::capture(&env, &path);
    expected.head = "refs/heads/alpha".into();
    let (_, restored) = restore_headless(&env, &repo, "first-by-name");
    expected.assert_same(&restored, "HEAD on trunk");

    // Detached where no branch points: git init's HEAD, and a warning.
    let commit = env.add_commit(&path, "refs/heads/loose", "loose.txt");
    env.git(&path, ["update-ref", "-d", "refs/heads/loose"]);
    env.git(&path, ["update-ref", "--no-deref", "HEAD", &commit]);
    env.git(&path, ["update-ref", "refs/keep-around/loose", &commit]);
    let (stdout, restored) = restore_headless(&env, &repo, "no-branch");
    assert!(!restored.head.starts_with("detached"), "{}", restored.head);
    assert!(stdout.contains("does not record HEAD"), "{stdout}");
}

#[test]
fn a_hooks_archive_with_gitaly_modes_and_foreign_members_restores() {
    let env = TestEnv::new();
    let repo = env.fixture_at("default", "custom-hooks", REPOSITORY, &[]);
    let at_backup = RepoState::capture(&env, &repo.path());
    write_gitaly_files(
        &env,
        &repo.path(),
        &StepFiles {
            bundle: env.backup_file(&repo.step_key(FULL_ID, "001.bundle")),
            refs: env.backup_file(&repo.step_key(FULL_ID, "001.refs")),
            custom_hooks: env.root().join("unused.tar"),
        },
        None,
    );
    // Go's archive/tar as gitaly used it: ustar, 0666 and 0777 modes; and
    // a member beside custom_hooks/, which gitaly-backup skips.
    let staging = env.root().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    env.program(
        "cp",
        [
            "-a",
            &path_text(&repo.path().join("custom_hooks")),
            &path_text(&staging),
        ],
    )
    .assert_success();
    std::fs::write(staging.join("outside.txt"), "not a hook").unwrap();
    let archive = env.backup_file(&repo.step_key(FULL_ID, "001.custom_hooks.tar"));
    let staged = path_text(&staging);
    env.program(
        "tar",
        [
            "--format=ustar",
            "--mode=a+w",
            "-cf",
            &path_text(&archive),
            "-C",
            &staged,
        ]
        .into_iter()
        .chain(["custom_hooks", "outside.txt"]),
    )
    .assert_success();
    write_gitaly_manifest(&env, FULL_ID, &golden_manifest("gitaly-19.0-full.toml"));

    let fresh = repo.on_root(env.storage_root("fresh"));
    assert_restores_to(&env, &fresh, &[], &at_backup, "gitaly's archive");
    assert!(!fresh.path().join("outside.txt").exists());
}

#[test]
fn a_symlinked_custom_hooks_round_trips_and_one_leaving_the_repository_is_refused() {
    let env = TestEnv::new();
    let repo = env.fixture("linear");
    let path = repo.path();
    std::os::unix::fs::symlink("hooks.d", path.join("custom_hooks")).unwrap();
    env.create("1", &[&repo]).assert_success();
    let fresh = repo.on_root(env.storage_root("fresh"));
    env.restore(&[&fresh], &["--id", "1"]).assert_success();
    let link = std::fs::read_link(fresh.path().join("custom_hooks")).unwrap();
    assert_eq!(link, Path::new("hooks.d"));

    std::fs::remove_file(path.join("custom_hooks")).unwrap();
    std::os::unix::fs::symlink("../../shared-hooks", path.join("custom_hooks")).unwrap();
    env.create("2", &[&repo]).assert_success();
    let before = snapshot(&fresh.path());
    let run = env.restore(&[&fresh], &["--id", "2"]);
    run.assert_code(1);
    let error = run.job_error("restore", &repo.relative_path);
    assert!(error.contains(&repo.relative_path), "{error}");
    assert!(error.contains("leaves the repository"), "{error}");
    assert_eq!(snapshot(&fresh.path()), before, "the repository changed");
}

#[test]
fn an_empty_backup_brings_back_its_own_hooks_only() {
    let env = TestEnv::new();
    let repo = env.fixture("empty");
    let hooks = repo.path().join("custom_hooks");
    env.create("1", &[&repo]).assert_success();
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(hooks.join("pre-receive"), "#!/bin/sh\nexit 0\n").unwrap();
    env.create("2", &[&repo]).assert_success();
    std::fs::write(hooks.join("pre-receive"), "#!/bin/sh\nexit 1\n").unwrap();

    env.restore(&[&repo], &["--id", "2"]).assert_success();
    assert_eq!(
        std::fs::read_to_string(hooks.join("pre-receive")).unwrap(),
        "#!/bin/sh\nexit 0\n",
        "the backup's hooks"
    );
    env.restore(&[&repo], &["--id", "1"]).assert_success();
    assert!(
        std::fs::symlink_metadata(&hooks).is_err(),
        "the old repository's hooks are gone with it"
    );
}

/// gitaly-backup's bundle restore (spec §4.5 step 6, §5.3) with plain git:
/// a new repository, every step's bundle fetched in order, refs reset to
/// the last refs file, HEAD from the manifest, the last step's hooks.
pub(crate) fn restore_like_gitaly(env: &TestEnv, manifest_key: &str, target: &Path) {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(env.backup_file(manifest_key)).unwrap()).unwrap();
    let format = manifest["object_format"].as_str().unwrap();
    let head = manifest
        .get("head_reference")
        .and_then(|head| head.as_str());
    let mut init = vec![
        "init".to_owned(),
        "--bare".into(),
        "--quiet".into(),
        format!("--object-format={format}"),
    ];
    if let Some(branch) = head.and_then(|head| head.strip_prefix("refs/heads/")) {
        init.push(format!("--initial-branch={branch}"));
    }
    init.push(path_text(target));
    env.program("git", &init).assert_success();
    let steps = manifest["steps"].as_array().unwrap();
    let mut last_refs = String::new();
    for step in steps {
        let file = |name: &str| step.get(name).and_then(|value| value.as_str());
        last_refs = std::fs::read_to_string(env.backup_file(file("ref_path").unwrap())).unwrap();
        if last_refs.is_empty() {
            continue;
        }
        let bundle = path_text(&env.backup_file(file("bundle_path").unwrap()));
        let fetch = [
            "-c",
            "transfer.fsckObjects=false",
            "fetch",
            "--no-write-fetch-head",
            "--quiet",
            "--atomic",
            &bundle,
            "+refs/*:refs/*",
        ];
        env.git(target, fetch);
    }
    let wanted: Vec<(&str, &str)> = last_refs
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, name)| *name != "HEAD")
        .collect();
    let mut commands = String::new();
    for current in env
        .git(target, ["for-each-ref", "--format=%(refname)"])
        .lines()
    {
        if !wanted.iter().any(|(_, name)| *name == current) {
            commands.push_str(&format!("delete {current}\n"));
        }
    }
    for (object_id, name) in &wanted {
        commands.push_str(&format!("update {name} {object_id}\n"));
    }
    env.git_with_input(target, ["update-ref", "--stdin"], commands.as_bytes());
    if let Some(head) = head {
        env.git(target, ["symbolic-ref", "HEAD", head]);
    }
    let hooks = steps
        .last()
        .and_then(|step| step.get("custom_hooks_path"))
        .and_then(|value| value.as_str())
        .map(|key| env.backup_file(key))
        .filter(|archive| archive.is_file());
    if let Some(archive) = hooks {
        env.program(
            "tar",
            ["-xf", &path_text(&archive), "-C", &path_text(target)],
        )
        .assert_success();
    }
}

#[test]
fn gitbak_backups_restore_with_gitalys_algorithm() {
    let env = TestEnv::new();
    let repos = [
        env.fixture("branches-and-tags"),
        env.fixture("custom-hooks"),
        env.fixture("unborn-head"),
    ];
    env.create(INCREMENT_ID, &repos.iter().collect::<Vec<_>>())
        .assert_success();
    let elsewhere: PathBuf = env.storage_root("gitaly");
    for repo in &repos {
        let target = elsewhere.join(&repo.relative_path);
        restore_like_gitaly(&env, &repo.manifest_key(INCREMENT_ID), &target);
        RepoState::capture(&env, &repo.path()).assert_same(
            &RepoState::capture(&env, &target),
            &format!("{} restored by gitaly's algorithm", repo.relative_path),
        );
        env.git_run(&target, ["fsck", "--strict", "--no-progress"], b"")
            .assert_success();
    }
}

#[test]
fn always_create_is_accepted_and_ignored() {
    // gitaly-backup 19.0 ignores it: a repository without a backup fails
    // and is not created empty, one with a backup restores as usual.
    let env = TestEnv::new();
    let repo = env.fixture("linear");
    let at_backup = RepoState::capture(&env, &repo.path());
    env.create("1", &[&repo]).assert_success();
    env.diverge(&repo.path());
    let missing = Repo::new("default", repo.storage_root.clone(), "group/missing.git");
    let line = |repo: &Repo| {
        serde_json::json!({
            "storage_name": repo.storage_name,
            "relative_path": repo.relative_path,
            "gl_project_path": repo.gl_project_path(),
            "always_create": true,
        })
        .to_string()
    };
    let run = env
        .gitbak(["restore"])
        .backup_path()
        .storages_of(&[&repo])
        .stdin(format!("{}\n{}\n", line(&repo), line(&missing)))
        .run();
    run.assert_code(1);
    run.job_line("completed restore", &repo.relative_path);
    run.job_error("restore", &missing.relative_path);
    at_backup.assert_same(&RepoState::capture(&env, &repo.path()), "restored");
    assert!(!missing.path().exists(), "not created");
}
