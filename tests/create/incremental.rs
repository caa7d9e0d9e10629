//! `create --incremental` (spec §5, issue #10): each backup id restores,
//! with gitbak and with gitaly-backup's algorithm, to the repository as it
//! was when that backup read it; unchanged repositories cost no step; new
//! full chains start where an increment would be wrong or too long.

mod bases;

use std::path::{Path, PathBuf};

use crate::compat::restore_like_gitaly;
use crate::regression::path_text;
use crate::support::{files_under, snapshot, Repo, RepoState, Run, TestEnv};

const IDS: [&str; 8] = [
    "20240101000000",
    "20240102000000",
    "20240103000000",
    "20240104000000",
    "20240105000000",
    "20240106000000",
    "20240107000000",
    "20240108000000",
];

fn incremental(env: &TestEnv, id: &str, repos: &[&Repo], extra: &[&str]) -> Run {
    let run = env
        .gitbak(["create", "--incremental", "--id", id])
        .args(extra)
        .backup_path()
        .storages_of(repos)
        .jobs(repos)
        .run();
    run.assert_success();
    run
}

fn manifest(env: &TestEnv, repo: &Repo, id: &str) -> toml::Table {
    std::fs::read_to_string(env.backup_file(&repo.manifest_key(id)))
        .unwrap()
        .parse()
        .unwrap()
}

/// The `bundle_path` of every step the manifest lists.
fn bundles(env: &TestEnv, repo: &Repo, id: &str) -> Vec<String> {
    manifest(env, repo, id)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["bundle_path"].as_str().unwrap().to_owned())
        .collect()
}

/// The files this id's run wrote for the repository (its step directory).
fn step_files(env: &TestEnv, repo: &Repo, id: &str) -> Vec<String> {
    let dir = env.backup_file(&format!(
        "{}/{}/{id}",
        repo.storage_name, repo.relative_path
    ));
    if dir.exists() {
        files_under(&dir)
    } else {
        Vec::new()
    }
}

fn size(env: &TestEnv, key: &str) -> u64 {
    std::fs::metadata(env.backup_file(key)).unwrap().len()
}

/// Restores every id with gitbak (into the repository's own place, so
/// after the history is done) and with gitaly-backup's algorithm (into a
/// scratch root), and compares each with the state captured at its backup.
fn assert_each_id_restores(env: &TestEnv, repo: &Repo, history: &[(&str, RepoState)]) {
    for (id, want) in history {
        let elsewhere = env.storage_root(&format!("gitaly-{id}"));
        let target = elsewhere.join(&repo.relative_path);
        restore_like_gitaly(env, &repo.manifest_key(id), &target);
        // Plain `git init` takes the default ref format; Gitaly its own.
        let got = RepoState {
            ref_format: want.ref_format.clone(),
            ..RepoState::capture(env, &target)
        };
        want.assert_same(&got, &format!("{id} by gitaly's algorithm"));
    }
    for (id, want) in history {
        env.restore(&[repo], &["--id", id]).assert_success();
        want.assert_same(
            &RepoState::capture(env, &repo.path()),
            &format!("{id} by gitbak"),
        );
        env.git(&repo.path(), ["fsck", "--no-progress"]);
    }
}

/// `git bundle verify` of `bundle` in a repository holding the steps of
/// `id` (restored by gitaly's algorithm).
fn verify_over(env: &TestEnv, repo: &Repo, id: &str, bundle: &str) -> String {
    let base = env
        .storage_root(&format!("verify-{id}"))
        .join(&repo.relative_path);
    restore_like_gitaly(env, &repo.manifest_key(id), &base);
    let bundle = path_text(&env.backup_file(bundle));
    let run = env.git_run(&base, ["bundle", "verify", &bundle], b"");
    run.assert_success();
    run.stdout.clone() + &run.stderr
}

#[test]
fn a_history_of_increments_restores_at_every_id() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    let path = repo.path();
    let mut history = Vec::new();

    // No backup yet: a full one.
    incremental(&env, IDS[0], &[&repo], &[]);
    assert_eq!(bundles(&env, &repo, IDS[0]).len(), 1);
    history.push((IDS[0], RepoState::capture(&env, &path)));

    // New commits, a branch and an annotated tag: a small increment over
    // prerequisites the full backup provides.
    let doomed = env.add_commit(&path, "refs/heads/topic", "topic.txt");
    env.add_commit(&path, "refs/heads/main", "main-next.txt");
    env.git(&path, ["tag", "-a", "-m", "v2", "v2.0", "refs/heads/main"]);
    incremental(&env, IDS[1], &[&repo], &[]);
    let chain = bundles(&env, &repo, IDS[1]);
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], repo.step_key(IDS[1], "002.bundle"));
    assert!(size(&env, &chain[1]) < size(&env, &chain[0]) / 2);
    let increment = std::fs::read(env.backup_file(&chain[1])).unwrap();
    assert!(
        increment.windows(2).any(|pair| pair == b"\n-"),
        "the increment lists prerequisites"
    );
    let verified = verify_over(&env, &repo, IDS[0], &chain[1]);
    assert!(verified.contains("is okay"), "{verified}");
    let step = manifest(&env, &repo, IDS[1])["steps"][1].clone();
    assert_eq!(
        step["previous_ref_path"].as_str(),
        Some(repo.step_key(IDS[0], "001.refs").as_str())
    );
    history.push((IDS[1], RepoState::capture(&env, &path)));

    // A force push and gc: a previous tip is gone from the repository.
    env.git(&path, ["update-ref", "-d", "refs/heads/topic"]);
    env.add_commit(&path, "refs/heads/topic", "rewritten.txt");
    env.git(&path, ["reflog", "expire", "--expire=now", "--all"]);
    env.git(&path, ["gc", "--prune=now", "--quiet"]);
    let gone = env.git_run(&path, ["cat-file", "-e", &doomed], b"");
    assert_ne!(gone.code, 0, "the old tip was pruned");
    incremental(&env, IDS[2], &[&repo], &[]);
    let chain = bundles(&env, &repo, IDS[2]);
    assert_eq!(chain.len(), 3);
    let verified = verify_over(&env, &repo, IDS[1], &chain[2]);
    assert!(verified.contains("is okay"), "{verified}");
    history.push((IDS[2], RepoState::capture(&env, &path)));

    // Only HEAD moves: no new step, the new HEAD in the manifest.
    env.git(&path, ["symbolic-ref", "HEAD", "refs/heads/release"]);
    incremental(&env, IDS[3], &[&repo], &[]);
    assert_eq!(step_files(&env, &repo, IDS[3]), Vec::<String>::new());
    assert_eq!(bundles(&env, &repo, IDS[3]).len(), 3);
    assert_eq!(
        manifest(&env, &repo, IDS[3])["head_reference"].as_str(),
        Some("refs/heads/release")
    );
    history.push((IDS[3], RepoState::capture(&env, &path)));

    // Nothing changes: no new step, the same chain, digests carried over.
    incremental(&env, IDS[4], &[&repo], &[]);
    assert_eq!(step_files(&env, &repo, IDS[4]), Vec::<String>::new());
    let reused = manifest(&env, &repo, IDS[4]);
    assert_eq!(reused["steps"], manifest(&env, &repo, IDS[3])["steps"]);
    let files = reused["gitbak"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 6, "bundle and refs of each of the 3 steps");
    history.push((IDS[4], RepoState::capture(&env, &path)));

    // A deleted branch and a tag moved to an old commit: no new object.
    env.git(&path, ["update-ref", "-d", "refs/heads/stale"]);
    env.git(&path, ["tag", "old", "refs/heads/main~3"]);
    incremental(&env, IDS[5], &[&repo], &[]);
    let chain = bundles(&env, &repo, IDS[5]);
    assert_eq!(chain.len(), 4);
    let verified = verify_over(&env, &repo, IDS[4], &chain[3]);
    assert!(verified.contains("is okay"), "{verified}");
    history.push((IDS[5], RepoState::capture(&env, &path)));

    // Emptied: a backup of an empty repository; refilled: a new chain.
    let refs = env.git(&path, ["for-each-ref", "--format=delete %(refname)"]);
    env.git_with_input(&path, ["update-ref", "--stdin"], refs.as_bytes());
    incremental(&env, IDS[6], &[&repo], &[]);
    assert_eq!(manifest(&env, &repo, IDS[6])["empty"].as_bool(), Some(true));
    history.push((IDS[6], RepoState::capture(&env, &path)));
    env.add_commit(&path, "refs/heads/main", "refilled.txt");
    incremental(&env, IDS[7], &[&repo], &[]);
    assert_eq!(
        bundles(&env, &repo, IDS[7]),
        [repo.step_key(IDS[7], "001.bundle")]
    );
    history.push((IDS[7], RepoState::capture(&env, &path)));

    assert_each_id_restores(&env, &repo, &history);
}

#[test]
fn hooks_alone_make_a_header_only_step() {
    let env = TestEnv::new();
    let repo = env.fixture("custom-hooks");
    let path = repo.path();
    let mut history = Vec::new();
    incremental(&env, IDS[0], &[&repo], &[]);
    history.push((IDS[0], RepoState::capture(&env, &path)));

    std::fs::write(path.join("custom_hooks/pre-receive"), "#!/bin/sh\nexit 1\n").unwrap();
    incremental(&env, IDS[1], &[&repo], &[]);
    let chain = bundles(&env, &repo, IDS[1]);
    assert_eq!(chain.len(), 2);
    assert_eq!(
        std::fs::read(env.backup_file(&chain[1])).unwrap(),
        b"# v2 git bundle\n\n"
    );
    assert!(env
        .backup_file(&repo.step_key(IDS[1], "002.custom_hooks.tar"))
        .is_file());
    history.push((IDS[1], RepoState::capture(&env, &path)));

    // The same hooks again: nothing to write.
    incremental(&env, IDS[2], &[&repo], &[]);
    assert_eq!(step_files(&env, &repo, IDS[2]), Vec::<String>::new());
    history.push((IDS[2], RepoState::capture(&env, &path)));

    assert_each_id_restores(&env, &repo, &history);
}

#[test]
fn empty_and_missing_bases_start_new_chains() {
    let env = TestEnv::new();
    let empty = env.fixture("empty");
    let later = Repo::new("default", env.storage_root("default"), "later.git");
    let repos = [&empty, &later];
    incremental(&env, IDS[0], &repos, &[]);
    assert_eq!(
        manifest(&env, &later, IDS[0])["non_existent"].as_bool(),
        Some(true)
    );
    assert_eq!(
        manifest(&env, &empty, IDS[0])["empty"].as_bool(),
        Some(true)
    );

    // Still empty, still missing: the empty base is reused as it is.
    incremental(&env, IDS[1], &[&empty], &[]);
    assert_eq!(step_files(&env, &empty, IDS[1]), Vec::<String>::new());

    env.add_commit(&empty.path(), "refs/heads/main", "first.txt");
    env.program("git", ["init", "--bare", "-q", &path_text(&later.path())])
        .assert_success();
    env.add_commit(&later.path(), "refs/heads/main", "first.txt");
    let states: Vec<RepoState> = repos
        .iter()
        .map(|repo| RepoState::capture(&env, &repo.path()))
        .collect();
    incremental(&env, IDS[2], &repos, &[]);
    for (repo, want) in repos.iter().zip(&states) {
        let chain = bundles(&env, repo, IDS[2]);
        assert_eq!(chain, [repo.step_key(IDS[2], "001.bundle")], "a new full");
        assert_eq!(manifest(&env, repo, IDS[2])["empty"].as_bool(), Some(false));
        assert_each_id_restores(&env, repo, &[(IDS[2], want.clone())]);
    }
}

/// A commit adding `bytes` of incompressible data to `main`.
fn commit_noise(env: &TestEnv, path: &Path, seed: u64, bytes: usize) {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let noise: Vec<u8> = (0..bytes)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect();
    let blob = env.git_with_input(path, ["hash-object", "-w", "--stdin"], &noise);
    let parent = env.git(path, ["rev-parse", "refs/heads/main"]);
    let mut entries = env.git(path, ["ls-tree", parent.trim_end()]);
    entries.push_str(&format!("100644 blob {}\tnoise-{seed}\n", blob.trim_end()));
    let tree = env.git_with_input(path, ["mktree"], entries.as_bytes());
    let commit = env.git(
        path,
        [
            "commit-tree",
            tree.trim_end(),
            "-p",
            parent.trim_end(),
            "-m",
            "noise",
        ],
    );
    env.git(path, ["update-ref", "refs/heads/main", commit.trim_end()]);
}

fn scratch_in_storage(env: &TestEnv, name: &str) -> Repo {
    let repo = Repo::new("default", env.storage_root("default"), name);
    let path: PathBuf = repo.path();
    env.program("git", ["init", "--bare", "-q", &path_text(&path)])
        .assert_success();
    env.add_commit(&path, "refs/heads/main", "first.txt");
    repo
}

#[test]
fn chains_end_at_max_chain_and_when_increments_outgrow_the_full() {
    let env = TestEnv::new();
    // Increments far smaller than the full: only the length bounds it.
    let bounded = scratch_in_storage(&env, "bounded.git");
    commit_noise(&env, &bounded.path(), 9, 20_000);
    for (index, id) in IDS[..4].iter().enumerate() {
        if index > 0 {
            env.add_commit(&bounded.path(), "refs/heads/main", &format!("f{index}.txt"));
        }
        incremental(&env, id, &[&bounded], &["--max-chain", "3"]);
    }
    let lengths: Vec<usize> = IDS[..4]
        .iter()
        .map(|id| bundles(&env, &bounded, id).len())
        .collect();
    assert_eq!(lengths, [1, 2, 3, 1]);
    assert_each_id_restores(
        &env,
        &bounded,
        &[(IDS[3], RepoState::capture(&env, &bounded.path()))],
    );

    // A full backup of a few hundred bytes, then a 20 KB increment: the
    // next change starts a new chain.
    let growing = scratch_in_storage(&env, "growing.git");
    incremental(&env, IDS[4], &[&growing], &[]);
    commit_noise(&env, &growing.path(), 1, 20_000);
    incremental(&env, IDS[5], &[&growing], &[]);
    assert_eq!(bundles(&env, &growing, IDS[5]).len(), 2);
    commit_noise(&env, &growing.path(), 2, 100);
    incremental(&env, IDS[6], &[&growing], &[]);
    assert_eq!(
        bundles(&env, &growing, IDS[6]),
        [growing.step_key(IDS[6], "001.bundle")]
    );
}

#[test]
fn an_incremental_rerun_of_its_base_id_changes_nothing() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    incremental(&env, IDS[0], &[&repo], &[]);
    env.add_commit(&repo.path(), "refs/heads/main", "later.txt");
    let before = snapshot(&env.backups());
    let run = incremental(&env, IDS[0], &[&repo], &[]);
    assert!(run.stdout.contains("already backed up"), "{}", run.stdout);
    assert_eq!(snapshot(&env.backups()), before);
}
