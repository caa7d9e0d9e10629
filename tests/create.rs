//! `gitbak create`: the files it leaves on storage, byte for byte where
//! gitaly-backup's format fixes them (spec §3.4, §4.1), and resuming a run.
//! `jobs` covers which repositories a run works on and how bad jobs are
//! reported.

#[cfg(feature = "failpoints")]
mod crash;
mod incremental;
mod jobs;
mod reliability;
pub(crate) mod sources;
#[cfg(feature = "failpoints")]
mod writers;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{
    files_under, modified_times, sha256_hex, snapshot, Entry, Repo, RepoState, TestEnv,
};

const ID: &str = "20240101000000";

/// Every fixture but the slow `linear` one (many-refs at 5 000 refs: the
/// count does not matter here), in storage `default`.
pub(crate) fn fixtures(env: &TestEnv) -> Vec<Repo> {
    let mut repos: Vec<Repo> = [
        "branches-and-tags",
        "empty",
        "unborn-head",
        "sha256",
        "reftable",
        "custom-hooks",
        "fork-alternates",
    ]
    .iter()
    .map(|name| env.fixture(name))
    .collect();
    repos.push(env.fixture_at(
        "default",
        "many-refs",
        "fixtures/many-refs.git",
        &[("REFS", "5000")],
    ));
    repos
}

fn back_up(env: &TestEnv, repos: &[Repo]) {
    let refs: Vec<&Repo> = repos.iter().collect();
    env.create(ID, &refs).assert_success();
}

fn manifest_text(env: &TestEnv, repo: &Repo, id: &str) -> String {
    std::fs::read_to_string(env.backup_file(&repo.manifest_key(id))).unwrap()
}

fn manifest(env: &TestEnv, repo: &Repo, id: &str) -> toml::Table {
    manifest_text(env, repo, id).parse().unwrap()
}

fn object_format_of(env: &TestEnv, repo: &Repo) -> String {
    env.git(&repo.path(), ["rev-parse", "--show-object-format"])
        .trim_end()
        .to_owned()
}

#[test]
fn step_files_match_the_repository() {
    // Spec §4.1: the refs file is byte-for-byte `git show-ref --head`.
    // §4.2: the bundle stands alone (no prerequisites, even for the fork
    // whose objects live in its pool) and lists exactly those refs.
    let env = TestEnv::new();
    let repos = fixtures(&env);
    back_up(&env, &repos);
    for (index, repo) in repos.iter().enumerate() {
        let name = &repo.relative_path;
        let show_ref = env.git_run(&repo.path(), ["show-ref", "--head"], b"");
        let refs_file =
            std::fs::read_to_string(env.backup_file(&repo.step_key(ID, "001.refs"))).unwrap();
        assert_eq!(refs_file, show_ref.stdout, "{name}");
        let bundle = env.backup_file(&repo.step_key(ID, "001.bundle"));
        if refs_file.is_empty() {
            assert!(!bundle.exists(), "{name}: bundle of an empty repository");
            continue;
        }
        let bundle = bundle.to_str().unwrap();
        // git checks a bundle against a repository of the same hash.
        let scratch = env.scratch_repository(
            &format!("verify-{index}.git"),
            &object_format_of(&env, repo),
        );
        let verify = env.git_run(&scratch, ["bundle", "verify", bundle], b"");
        verify.assert_success();
        let said = format!("{}{}", verify.stdout, verify.stderr);
        assert!(
            said.contains("records a complete history"),
            "{name}: prerequisites:\n{said}"
        );
        let heads = env.git(&scratch, ["bundle", "list-heads", bundle]);
        assert_eq!(heads, refs_file, "{name}");
    }
}

#[test]
fn manifests_describe_each_repository_and_its_files() {
    let env = TestEnv::new();
    let repos = fixtures(&env);
    back_up(&env, &repos);
    for repo in &repos {
        let name = &repo.relative_path;
        let manifest = manifest(&env, repo, ID);
        let is = |fixture: &str| name == &format!("fixtures/{fixture}.git");
        assert_eq!(manifest["empty"].as_bool(), Some(is("empty")), "{name}");
        assert_eq!(manifest["non_existent"].as_bool(), Some(false), "{name}");
        assert_eq!(
            manifest["object_format"].as_str(),
            Some(if is("sha256") { "sha256" } else { "sha1" }),
            "{name}"
        );
        let head = if is("unborn-head") {
            "refs/heads/does-not-exist"
        } else {
            "refs/heads/main"
        };
        assert_eq!(manifest["head_reference"].as_str(), Some(head), "{name}");
        let steps = manifest["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 1, "{name}");
        let step = steps[0].as_table().unwrap();
        for (key, file) in [
            ("bundle_path", "001.bundle"),
            ("ref_path", "001.refs"),
            ("custom_hooks_path", "001.custom_hooks.tar"),
        ] {
            assert_eq!(
                step[key].as_str(),
                Some(repo.step_key(ID, file).as_str()),
                "{name} {key}"
            );
        }
        assert!(!step.contains_key("previous_ref_path"), "{name}");
        let gitbak = manifest["gitbak"].as_table().unwrap();
        assert_eq!(
            gitbak["ref_format"].as_str(),
            Some(if is("reftable") { "reftable" } else { "files" }),
            "{name}"
        );
        // Every file of the step is listed with its true size and SHA-256, and nothing else is.
        let mut listed = BTreeSet::new();
        for file in gitbak["files"].as_array().unwrap() {
            let path = file["path"].as_str().unwrap();
            let bytes = std::fs::read(env.backup_file(path)).unwrap();
            assert_eq!(
                file["size"].as_integer(),
                Some(bytes.len() as i64),
                "{path}"
            );
            assert_eq!(
                file["sha256"].as_str(),
                Some(sha256_hex(&bytes).as_str()),
                "{path}"
            );
            listed.insert(path.to_owned());
        }
        let step_dir = format!("default/{name}/{ID}");
        let on_storage: BTreeSet<String> = files_under(&env.backup_file(&step_dir))
            .into_iter()
            .map(|file| format!("{step_dir}/{file}"))
            .collect();
        assert_eq!(listed, on_storage, "{name}");
    }
}

#[test]
fn empty_repository_has_empty_refs_file_and_no_bundle() {
    let env = TestEnv::new();
    let repo = env.fixture("empty");
    env.create(ID, &[&repo]).assert_success();
    let refs = env.backup_file(&repo.step_key(ID, "001.refs"));
    assert_eq!(std::fs::metadata(&refs).unwrap().len(), 0);
    assert_eq!(
        files_under(&env.backup_file(&format!("default/{}/{ID}", repo.relative_path))),
        ["001.refs"]
    );
    let manifest = manifest(&env, &repo, ID);
    assert_eq!(manifest["empty"].as_bool(), Some(true));
    assert_eq!(manifest["non_existent"].as_bool(), Some(false));
    assert_eq!(manifest["object_format"].as_str(), Some("sha1"));
    assert_eq!(manifest["head_reference"].as_str(), Some("refs/heads/main"));
}

#[test]
fn non_existent_repository_gets_a_manifest_and_no_files() {
    // Spec §3.4: empty = true, non_existent = true, object_format = '', no
    // head_reference, one step naming three files none of which exists.
    let env = TestEnv::new();
    let ghost = Repo::new("default", env.storage_root("default"), "group/ghost.git");
    env.create(ID, &[&ghost])
        .assert_success()
        .job_line("completed create", "group/ghost.git");
    let text = manifest_text(&env, &ghost, ID);
    let key = |file: &str| ghost.step_key(ID, file);
    let gitaly_part = format!(
        "empty = true\nnon_existent = true\nobject_format = ''\n\n[[steps]]\nbundle_path = '{}'\nref_path = '{}'\ncustom_hooks_path = '{}'\n",
        key("001.bundle"),
        key("001.refs"),
        key("001.custom_hooks.tar")
    );
    assert!(text.starts_with(&gitaly_part), "manifest:\n{text}");
    assert!(
        !env.backup_file("default").exists(),
        "files written for a missing repository"
    );
    assert!(!ghost.path().exists(), "create made the missing repository");
}

#[test]
fn custom_hooks_archive_holds_custom_hooks_dir() {
    // Spec §4.3: gitaly's archive format, entries prefixed custom_hooks/,
    // symlinks kept.
    let env = TestEnv::new();
    let repo = env.fixture("custom-hooks");
    env.create(ID, &[&repo]).assert_success();
    let archive =
        std::fs::read(env.backup_file(&repo.step_key(ID, "001.custom_hooks.tar"))).unwrap();
    let mut entries = Vec::new();
    for entry in tar::Archive::new(&archive[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let raw_name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        assert!(
            raw_name.starts_with("custom_hooks"),
            "entry {raw_name:?} outside custom_hooks/"
        );
        let name = raw_name.trim_end_matches('/').to_owned();
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().unwrap() & 0o7777;
        let link = entry.link_name().unwrap().map(|link| link.into_owned());
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        entries.push((name, kind, mode, link, content));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = entries.iter().map(|entry| entry.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "custom_hooks",
            "custom_hooks/post-receive.d",
            "custom_hooks/post-receive.d/01-notify",
            "custom_hooks/pre-receive",
            "custom_hooks/update"
        ]
    );
    for (name, kind, mode, link, content) in &entries {
        let source = repo.path().join(name);
        if name == "custom_hooks/update" {
            assert!(kind.is_symlink(), "{name} is {kind:?}");
            assert_eq!(link.as_deref(), Some(Path::new("pre-receive")));
        } else if kind.is_dir() {
            assert_eq!(*mode, 0o755, "{name}");
        } else {
            assert!(kind.is_file(), "{name} is {kind:?}");
            assert_eq!(*mode, 0o755, "{name}");
            assert_eq!(content, &std::fs::read(&source).unwrap(), "{name}");
        }
    }
}

#[test]
fn backup_files_are_private() {
    // Spec §3.1: directories 0700, files 0600.
    let env = TestEnv::new();
    let repos = [
        env.fixture("custom-hooks"),
        env.fixture("empty"),
        env.fixture("sha256"),
    ];
    back_up(&env, &repos);
    let root_mode = std::fs::metadata(env.backups())
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(root_mode, 0o700, "backup root");
    let tree = snapshot(&env.backups());
    assert!(tree.len() > 10, "{tree:?}");
    for (path, entry) in tree {
        match entry {
            Entry::Dir { mode } => assert_eq!(mode, 0o700, "{path}"),
            Entry::File { mode, .. } => assert_eq!(mode, 0o600, "{path}"),
            Entry::Symlink { .. } => panic!("symlink {path} on backup storage"),
        }
    }
}

#[test]
fn latest_manifest_copies_the_newest_and_backup_id_marker_is_empty() {
    let env = TestEnv::new();
    let repo = env.fixture("custom-hooks");
    let latest = env.backup_file(&repo.manifest_key("+latest"));
    env.create("1000", &[&repo]).assert_success();
    let first = manifest_text(&env, &repo, "1000");
    assert_eq!(std::fs::read_to_string(&latest).unwrap(), first);
    let marker = std::fs::metadata(env.backup_file("backup_ids/1000")).unwrap();
    assert!(marker.is_file() && marker.len() == 0, "{marker:?}");

    env.diverge(&repo.path());
    env.create("2000", &[&repo]).assert_success();
    let second = manifest_text(&env, &repo, "2000");
    assert_ne!(second, first);
    assert_eq!(std::fs::read_to_string(&latest).unwrap(), second);
    assert_eq!(
        manifest_text(&env, &repo, "1000"),
        first,
        "an older manifest changed"
    );
    assert_eq!(
        std::fs::metadata(env.backup_file("backup_ids/2000"))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn manifest_matches_golden_file() {
    // fixtures/manifests/gitbak-linear.toml holds every byte of the
    // manifest but four values that cannot be fixed:
    // - <VERSION> and <CREATED_AT>: gitbak's version and the clock;
    // - <BUNDLE_SIZE> and <BUNDLE_SHA256>: pack-objects' delta choices
    //   depend on git's version and pack.threads, so the bundle's bytes
    //   may differ between machines. They are filled in from the bundle
    //   actually written, so the manifest must still describe it exactly.
    // The refs file is deterministic (fixed fixture), so its size and
    // SHA-256 are golden.
    let env = TestEnv::new();
    let repo = env.fixture_at(
        "default",
        "linear",
        "@hashed/6b/86/6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b.git",
        &[],
    );
    let started = gitbak::layout::rfc3339(unix_now());
    env.create(ID, &[&repo]).assert_success();
    let finished = gitbak::layout::rfc3339(unix_now());
    let actual = manifest_text(&env, &repo, ID);

    let created_at = actual
        .lines()
        .find_map(|line| line.strip_prefix("created_at = '")?.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no created_at line:\n{actual}"));
    assert_eq!(
        created_at.len(),
        "2024-01-01T00:00:00Z".len(),
        "{created_at}"
    );
    // Same-format UTC timestamps order as strings.
    assert!(
        started.as_str() <= created_at && created_at <= finished.as_str(),
        "{started} {created_at} {finished}"
    );
    let bundle = std::fs::read(env.backup_file(&repo.step_key(ID, "001.bundle"))).unwrap();
    let golden_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/manifests/gitbak-linear.toml");
    let expected = std::fs::read_to_string(golden_path)
        .unwrap()
        .replace("<VERSION>", env!("CARGO_PKG_VERSION"))
        .replace("<CREATED_AT>", created_at)
        .replace("<BUNDLE_SIZE>", &bundle.len().to_string())
        .replace("<BUNDLE_SHA256>", &sha256_hex(&bundle));
    assert_eq!(actual, expected);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn rerun_with_the_same_id_skips_and_changes_nothing() {
    let env = TestEnv::new();
    let ghost = Repo::new("default", env.storage_root("default"), "group/ghost.git");
    let repos = [env.fixture("custom-hooks"), env.fixture("empty"), ghost];
    back_up(&env, &repos);
    let files = snapshot(&env.backups());
    let times = modified_times(&env.backups());
    // Changes after the first run must not be picked up: the id is done.
    env.diverge(&repos[0].path());

    let refs: Vec<&Repo> = repos.iter().collect();
    let run = env.create(ID, &refs);
    run.assert_success();
    for repo in &repos {
        let line = run.job_line("skipped create", &repo.relative_path);
        assert_eq!(line["level"], "warning");
    }
    assert!(
        run.lines_with_msg("completed create").is_empty(),
        "{}",
        run.stdout
    );
    assert_eq!(snapshot(&env.backups()), files);
    assert_eq!(modified_times(&env.backups()), times);
}

#[test]
fn rerun_keeps_a_complete_bundle_left_without_manifest() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    back_up(&env, std::slice::from_ref(&repo));
    // An interruption after the bundle landed, before the refs file and manifests.
    let bundle_bytes = std::fs::read(env.backup_file(&repo.step_key(ID, "001.bundle"))).unwrap();
    for key in [repo.manifest_key(ID), repo.step_key(ID, "001.refs")] {
        std::fs::remove_file(env.backup_file(&key)).unwrap();
    }
    let latest = env
        .backup_file(&repo.manifest_key(ID))
        .with_file_name("+latest.toml");
    std::fs::remove_file(latest).unwrap();

    env.create(ID, &[&repo]).assert_success();
    assert_eq!(
        std::fs::read(env.backup_file(&repo.step_key(ID, "001.bundle"))).unwrap(),
        bundle_bytes
    );
    let manifest = manifest_text(&env, &repo, ID);
    assert!(
        manifest.contains(&format!("sha256 = '{}'", sha256_hex(&bundle_bytes))),
        "{manifest}"
    );
    let restored = repo.on_root(env.storage_root("restored"));
    env.restore(&[&restored], &["--id", ID]).assert_success();
    RepoState::capture(&env, &repo.path())
        .assert_same(&RepoState::capture(&env, &restored.path()), "restored");
}

#[test]
fn rerun_refuses_a_leftover_bundle_of_another_repository_state() {
    let env = TestEnv::new();
    let repo = env.fixture("linear");
    back_up(&env, std::slice::from_ref(&repo));
    std::fs::remove_file(env.backup_file(&repo.manifest_key(ID))).unwrap();
    env.diverge(&repo.path());

    let run = env.create(ID, &[&repo]);
    run.assert_code(1);
    let error = run.job_error("create", &repo.relative_path);
    // The bundle and the refs file are written at once; either may be found first.
    assert!(
        ["001.bundle", "001.refs"]
            .iter()
            .any(|file| error.contains(&format!("{file} exists but no manifest names it"))),
        "{error}"
    );
    assert!(error.contains("use another --id"), "{error}");
    assert!(!env.backup_file(&repo.manifest_key(ID)).exists());
}

#[test]
fn a_failed_bundle_leaves_nothing_so_the_same_id_completes_after_a_change() {
    let env = TestEnv::new();
    let repo = env.fixture("linear");
    // A git whose pack-objects dies, as one killed half way would.
    let wrapper = env.root().join("failing-git");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nfor argument; do\n  if [ \"$argument\" = pack-objects ]; then\n    \
         echo 'fatal: simulated pack failure' >&2; exit 128\n  fi\ndone\nexec git \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = env
        .gitbak(["create", "--id", ID, "--git"])
        .args([wrapper.to_str().unwrap()])
        .backup_path()
        .storages_of(&[&repo])
        .jobs(&[&repo])
        .run();
    run.assert_code(1);
    let error = run.job_error("create", &repo.relative_path);
    assert!(error.contains("simulated pack failure"), "{error}");
    // The refs file landed while git packed; the failure took it back.
    let step_dir = env
        .backup_file(&repo.step_key(ID, "001.refs"))
        .parent()
        .unwrap()
        .to_path_buf();
    let left = std::fs::read_dir(&step_dir).map_or(0, |entries| entries.count());
    assert_eq!(left, 0, "files left in {}", step_dir.display());
    assert!(!env.backup_file(&repo.manifest_key(ID)).exists());

    env.diverge(&repo.path());
    env.create(ID, &[&repo]).assert_success();
    let restored = repo.on_root(env.storage_root("restored"));
    env.restore(&[&restored], &["--id", ID]).assert_success();
    RepoState::capture(&env, &repo.path())
        .assert_same(&RepoState::capture(&env, &restored.path()), "restored");
}

#[test]
fn immutable_runs_write_nothing_twice_and_restore_by_listing() {
    let env = TestEnv::new();
    let repo = env.fixture("linear");
    for id in ["20240101000000", "20240102000000"] {
        env.gitbak(["create", "--immutable", "--id", id])
            .backup_path()
            .storages_of(&[&repo])
            .jobs(&[&repo])
            .run()
            .assert_success();
        let latest = env
            .backup_file(&repo.manifest_key(id))
            .with_file_name("+latest.toml");
        assert!(
            !latest.exists(),
            "--immutable must not write the rewritten +latest.toml"
        );
        assert!(env.backup_file(&repo.manifest_key(id)).is_file());
        // The second backup differs from the first.
        env.diverge(&repo.path());
    }
    // Without markers the latest backup is found by listing the manifests.
    std::fs::remove_dir_all(env.backup_file("backup_ids")).unwrap();
    let restored = repo.on_root(env.storage_root("restored"));
    env.restore(&[&restored], &[]).assert_success();
    let refs = |id: &str| {
        std::fs::read_to_string(env.backup_file(&repo.step_key(id, "001.refs"))).unwrap()
    };
    assert_ne!(refs("20240101000000"), refs("20240102000000"));
    assert_eq!(
        env.git(&restored.path(), ["show-ref", "--head"]),
        refs("20240102000000")
    );
}
