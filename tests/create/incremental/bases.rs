//! Increments of other repository formats, over bases gitaly-backup
//! wrote or that lost a file, and resumed after a crash.

use super::{
    assert_each_id_restores, bundles, incremental, manifest, step_files, verify_over, IDS,
};
use crate::compat::restore_like_gitaly;
use crate::support::{Repo, RepoState, TestEnv};

#[test]
fn sha256_and_reftable_repositories_take_increments() {
    let env = TestEnv::new();
    for name in ["sha256", "reftable"] {
        let repo = env.fixture(name);
        let path = repo.path();
        incremental(&env, IDS[0], &[&repo], &[]);
        let first = RepoState::capture(&env, &path);
        env.add_commit(&path, "refs/heads/main", "next.txt");
        env.add_commit(&path, "refs/heads/other", "other.txt");
        incremental(&env, IDS[1], &[&repo], &[]);
        let chain = bundles(&env, &repo, IDS[1]);
        assert_eq!(chain.len(), 2, "{name}");
        let verified = verify_over(&env, &repo, IDS[0], &chain[1]);
        assert!(verified.contains("is okay"), "{name}: {verified}");
        let second = RepoState::capture(&env, &path);
        assert_each_id_restores(&env, &repo, &[(IDS[0], first), (IDS[1], second)]);
    }
}

/// The manifest as gitaly-backup writes it: without the `[gitbak]` table.
fn strip_gitbak_table(env: &TestEnv, repo: &Repo, id: &str) {
    for key in [repo.manifest_key(id), repo.manifest_key("+latest")] {
        let file = env.backup_file(&key);
        let text = std::fs::read_to_string(&file).unwrap();
        let gitaly = text.split("\n[gitbak]").next().unwrap().to_owned();
        std::fs::write(&file, gitaly).unwrap();
    }
}

#[test]
fn bases_gitaly_wrote_are_read_and_a_lost_refs_file_starts_over() {
    let env = TestEnv::new();
    let repo = env.fixture("custom-hooks");
    let path = repo.path();
    incremental(&env, IDS[0], &[&repo], &[]);
    strip_gitbak_table(&env, &repo, IDS[0]);

    // No digests to compare: the refs file and hooks archive are read.
    incremental(&env, IDS[1], &[&repo], &[]);
    assert_eq!(step_files(&env, &repo, IDS[1]), Vec::<String>::new());
    let reused = manifest(&env, &repo, IDS[1]);
    let files = reused["gitbak"]
        .get("files")
        .and_then(|files| files.as_array());
    assert!(files.is_none_or(Vec::is_empty), "no digests to carry over");

    env.add_commit(&path, "refs/heads/main", "next.txt");
    incremental(&env, IDS[2], &[&repo], &[]);
    assert_eq!(bundles(&env, &repo, IDS[2]).len(), 2);
    let second = RepoState::capture(&env, &path);

    // Hooks removed: a step without an archive.
    std::fs::remove_dir_all(path.join("custom_hooks")).unwrap();
    incremental(&env, IDS[3], &[&repo], &[]);
    assert_eq!(bundles(&env, &repo, IDS[3]).len(), 3);
    assert!(!env
        .backup_file(&repo.step_key(IDS[3], "003.custom_hooks.tar"))
        .exists());
    let third = RepoState::capture(&env, &path);
    restore_like_gitaly(
        &env,
        &repo.manifest_key(IDS[3]),
        &env.storage_root("gitaly").join(&repo.relative_path),
    );
    third.assert_same(
        &RepoState::capture(&env, &env.storage_root("gitaly").join(&repo.relative_path)),
        "without hooks, by gitaly's algorithm",
    );

    // The base's refs file is gone: a new full chain, not a broken one.
    std::fs::remove_file(env.backup_file(&repo.step_key(IDS[3], "003.refs"))).unwrap();
    env.add_commit(&path, "refs/heads/main", "after-loss.txt");
    incremental(&env, IDS[4], &[&repo], &[]);
    assert_eq!(
        bundles(&env, &repo, IDS[4]),
        [repo.step_key(IDS[4], "001.bundle")]
    );
    let fifth = RepoState::capture(&env, &path);
    // The backup without hooks first: a restore keeps the hooks a
    // repository has when the backup holds none (spec §4.3).
    assert_each_id_restores(&env, &repo, &[(IDS[4], fifth), (IDS[2], second)]);
}

#[cfg(feature = "failpoints")]
#[test]
fn an_increment_killed_before_its_manifest_resumes() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    incremental(&env, IDS[0], &[&repo], &[]);
    env.add_commit(&repo.path(), "refs/heads/main", "next.txt");
    let killed = env
        .gitbak(["create", "--incremental", "--id", IDS[1]])
        .backup_path()
        .storages_of(&[&repo])
        .jobs(&[&repo])
        .env("GITBAK_FAILPOINTS", "create-before-manifest=kill")
        .run();
    assert_ne!(killed.code, 0);
    assert!(env
        .backup_file(&repo.step_key(IDS[1], "002.bundle"))
        .is_file());
    assert!(!env.backup_file(&repo.manifest_key(IDS[1])).exists());
    // The rerun keeps the complete increment the killed run left.
    let bundle = std::fs::read(env.backup_file(&repo.step_key(IDS[1], "002.bundle"))).unwrap();
    incremental(&env, IDS[1], &[&repo], &[]);
    assert_eq!(
        std::fs::read(env.backup_file(&repo.step_key(IDS[1], "002.bundle"))).unwrap(),
        bundle
    );
    let want = RepoState::capture(&env, &repo.path());
    assert_each_id_restores(&env, &repo, &[(IDS[1], want)]);
}
