//! Compatibility: backups laid out exactly as gitaly-backup 19.0 writes
//! them (spec §3.4, §4.1, §4.2), made here with git itself and the golden
//! manifests in fixtures/manifests/, restored by gitbak. Such backups have
//! no `[gitbak]` table, so no digests: git alone must catch damage.

use std::path::{Path, PathBuf};

use crate::support::{assert_no_temp_dirs, snapshot, Repo, RepoState, TestEnv};

/// The repository of the spec's examples (its `4ec9…14a` spelled out).
pub(crate) const REPOSITORY: &str =
    "@hashed/4e/c9/4ec9599fc203d176a301536c2e091a19bc852759b255bd6818810a42c5fed14a.git";
pub(crate) const FULL_ID: &str = "20210930065413";
pub(crate) const INCREMENT_ID: &str = "20211001065419";

pub(crate) fn golden_manifest(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/manifests")
            .join(name),
    )
    .unwrap()
}

/// Where one step's three files go.
pub(crate) struct StepFiles {
    pub bundle: PathBuf,
    pub refs: PathBuf,
    pub custom_hooks: PathBuf,
}

/// Writes step `step` of backup `id` in the manifest layout; see
/// `write_gitaly_files`. Returns the refs file's text.
fn write_gitaly_step(
    env: &TestEnv,
    repo: &Repo,
    id: &str,
    step: u32,
    previous_refs: Option<&str>,
) -> String {
    let dir = env.backup_file(&format!("default/{REPOSITORY}/{id}"));
    let file = |extension: &str| dir.join(format!("{step:03}.{extension}"));
    let files = StepFiles {
        bundle: file("bundle"),
        refs: file("refs"),
        custom_hooks: file("custom_hooks.tar"),
    };
    write_gitaly_files(env, &repo.path(), &files, previous_refs)
}

/// Writes one step as gitaly-backup does: the bundle streamed from `git
/// bundle create - --all` (minus `previous_refs`' objects for an
/// increment, as CreateBundleFromRefList does), written only if git
/// printed something; `git show-ref --head` as the refs file; a ustar
/// archive of custom_hooks/ (as Go's archive/tar writes) if there is one.
/// Returns the refs file's text.
pub(crate) fn write_gitaly_files(
    env: &TestEnv,
    repository: &Path,
    files: &StepFiles,
    previous_refs: Option<&str>,
) -> String {
    for file in [&files.bundle, &files.refs, &files.custom_hooks] {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    }
    let mut args = vec!["bundle", "create", "-q", "-", "--all"];
    if let Some(previous) = previous_refs {
        args.push("--not");
        args.extend(previous.lines().map(|line| line.split(' ').next().unwrap()));
    }
    let bundle = env.git_run(repository, &args, b"");
    // With nothing new, git refuses after printing the header; gitaly
    // ignores the error and keeps the header-only file (spec §4.2).
    let nothing_new =
        bundle.code == 128 && bundle.stderr.contains("Refusing to create empty bundle");
    if !nothing_new {
        bundle.assert_success();
    }
    if !bundle.stdout_bytes.is_empty() {
        std::fs::write(&files.bundle, &bundle.stdout_bytes).unwrap();
    }
    let refs = env.git_run(repository, ["show-ref", "--head"], b"").stdout;
    std::fs::write(&files.refs, &refs).unwrap();
    if std::fs::symlink_metadata(repository.join("custom_hooks")).is_ok() {
        env.program(
            "tar",
            [
                "--format=ustar",
                "-cf",
                &path_text(&files.custom_hooks),
                "-C",
                &path_text(repository),
                "custom_hooks",
            ],
        )
        .assert_success();
    }
    refs
}

/// Commits backup `id` as gitaly-backup 19.0 does: `<id>.toml`, the same
/// bytes in `+latest.toml`, then the empty `backup_ids/<id>` marker.
pub(crate) fn write_gitaly_manifest(env: &TestEnv, id: &str, manifest: &[u8]) {
    let dir = env.backup_file(&format!("manifests/default/{REPOSITORY}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{id}.toml")), manifest).unwrap();
    std::fs::write(dir.join("+latest.toml"), manifest).unwrap();
    std::fs::create_dir_all(env.backup_file("backup_ids")).unwrap();
    std::fs::write(env.backup_file(&format!("backup_ids/{id}")), b"").unwrap();
}

pub(crate) fn path_text(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

pub(crate) fn assert_restores_to(
    env: &TestEnv,
    repo: &Repo,
    extra: &[&str],
    expected: &RepoState,
    context: &str,
) {
    env.restore(&[repo], extra)
        .assert_success()
        .job_line("completed restore", REPOSITORY);
    expected.assert_same(&RepoState::capture(env, &repo.path()), context);
    env.git_run(&repo.path(), ["fsck", "--strict", "--no-progress"], b"")
        .assert_success();
}

#[test]
fn restores_a_full_backup_gitaly_wrote() {
    let env = TestEnv::new();
    let repo = env.fixture_at("default", "custom-hooks", REPOSITORY, &[]);
    let at_backup = RepoState::capture(&env, &repo.path());
    write_gitaly_step(&env, &repo, FULL_ID, 1, None);
    write_gitaly_manifest(&env, FULL_ID, &golden_manifest("gitaly-19.0-full.toml"));
    assert!(env
        .backup_file(&repo.step_key(FULL_ID, "001.custom_hooks.tar"))
        .is_file());

    let by_id = repo.on_root(env.storage_root("by-id"));
    assert_restores_to(&env, &by_id, &["--id", FULL_ID], &at_backup, "--id");
    let latest = repo.on_root(env.storage_root("latest"));
    assert_restores_to(
        &env,
        &latest,
        &[],
        &at_backup,
        "latest by backup_ids marker",
    );
    // Before 19.0 gitaly wrote no markers: the manifests alone must do.
    std::fs::remove_dir_all(env.backup_file("backup_ids")).unwrap();
    let no_markers = repo.on_root(env.storage_root("no-markers"));
    assert_restores_to(&env, &no_markers, &[], &at_backup, "latest without markers");
}

#[test]
fn restores_an_incremental_chain_gitaly_wrote() {
    let env = TestEnv::new();
    let repo = env.fixture_at("default", "branches-and-tags", REPOSITORY, &[]);
    let path = repo.path();
    let first = RepoState::capture(&env, &path);
    let first_refs = write_gitaly_step(&env, &repo, FULL_ID, 1, None);
    write_gitaly_manifest(&env, FULL_ID, &golden_manifest("gitaly-19.0-full.toml"));

    // What happens between two backups (spec §4.2): new commits and a new
    // branch, a deleted branch, a branch reset backwards, and a lightweight
    // tag on an old commit. The last two are not in the increment's bundle;
    // only its refs file records them.
    let old_commit = env
        .git(&path, ["rev-parse", "refs/heads/main~9"])
        .trim_end()
        .to_owned();
    env.add_commit(&path, "refs/heads/main", "increment-1.txt");
    let tip = env.add_commit(&path, "refs/heads/main", "increment-2.txt");
    env.git(&path, ["update-ref", "refs/heads/after", &tip]);
    env.git(&path, ["update-ref", "-d", "refs/heads/stale"]);
    env.git(&path, ["update-ref", "refs/heads/feature", &old_commit]);
    env.git(&path, ["update-ref", "refs/tags/old-light", &old_commit]);
    let second = RepoState::capture(&env, &path);
    write_gitaly_step(&env, &repo, INCREMENT_ID, 2, Some(&first_refs));
    write_gitaly_manifest(
        &env,
        INCREMENT_ID,
        &golden_manifest("gitaly-19.0-incremental.toml"),
    );
    let increment = env.backup_file(&repo.step_key(INCREMENT_ID, "002.bundle"));
    let increment_heads = env.git(&path, ["bundle", "list-heads", &path_text(&increment)]);
    assert!(
        !increment_heads.contains("refs/tags/old-light"),
        "{increment_heads}"
    );
    assert!(!env
        .backup_file(&repo.step_key(INCREMENT_ID, "002.custom_hooks.tar"))
        .exists());

    let latest = repo.on_root(env.storage_root("latest"));
    assert_restores_to(&env, &latest, &[], &second, "latest: both steps");
    let full_only = repo.on_root(env.storage_root("full-only"));
    assert_restores_to(
        &env,
        &full_only,
        &["--id", FULL_ID],
        &first,
        "--id of the full backup",
    );
    env.diverge(&path);
    assert_restores_to(
        &env,
        &repo,
        &["--id", INCREMENT_ID],
        &second,
        "--id of the increment, over the original",
    );
    assert_no_temp_dirs(&repo.storage_root);
}

#[test]
fn restores_a_chain_whose_increment_found_nothing_new() {
    // Since 17.3 an increment without new objects is stored as the bundle
    // header git printed before refusing: 17 bytes, no refs, no pack.
    let env = TestEnv::new();
    let repo = env.fixture_at("default", "custom-hooks", REPOSITORY, &[]);
    let at_backup = RepoState::capture(&env, &repo.path());
    let first_refs = write_gitaly_step(&env, &repo, FULL_ID, 1, None);
    write_gitaly_manifest(&env, FULL_ID, &golden_manifest("gitaly-19.0-full.toml"));
    write_gitaly_step(&env, &repo, INCREMENT_ID, 2, Some(&first_refs));
    write_gitaly_manifest(
        &env,
        INCREMENT_ID,
        &golden_manifest("gitaly-19.0-incremental.toml"),
    );
    let increment = env.backup_file(&repo.step_key(INCREMENT_ID, "002.bundle"));
    assert_eq!(std::fs::read(increment).unwrap(), b"# v2 git bundle\n\n");

    let fresh = repo.on_root(env.storage_root("fresh"));
    assert_restores_to(&env, &fresh, &[], &at_backup, "into a fresh storage");
    env.diverge(&repo.path());
    assert_restores_to(&env, &repo, &[], &at_backup, "over the changed original");
}

#[test]
fn damaged_bundle_without_digests_is_refused() {
    // No [gitbak] digests: index-pack must notice, and the existing
    // repository must stay as it was.
    type Damage = fn(&[u8]) -> Vec<u8>;
    let damages: [(&str, Damage); 2] = [
        ("flipped byte", |bytes| {
            let mut bytes = bytes.to_vec();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            bytes
        }),
        ("truncated", |bytes| bytes[..bytes.len() / 2].to_vec()),
    ];
    for (name, damage) in damages {
        let env = TestEnv::new();
        let repo = env.fixture_at("default", "custom-hooks", REPOSITORY, &[]);
        write_gitaly_step(&env, &repo, FULL_ID, 1, None);
        write_gitaly_manifest(&env, FULL_ID, &golden_manifest("gitaly-19.0-full.toml"));
        let bundle = env.backup_file(&repo.step_key(FULL_ID, "001.bundle"));
        std::fs::write(&bundle, damage(&std::fs::read(&bundle).unwrap())).unwrap();
        env.diverge(&repo.path());
        let before = snapshot(&repo.path());

        let run = env.restore(&[&repo], &[]);
        run.assert_code(1);
        let error = run.job_error("restore", REPOSITORY);
        assert!(
            run.failure_summary()
                .contains(&format!("\n - {REPOSITORY} (group/")),
            "{name}: {}",
            run.stdout
        );
        assert_eq!(
            snapshot(&repo.path()),
            before,
            "{name}: the repository changed ({error})"
        );
        assert_no_temp_dirs(&repo.storage_root);
    }
}
