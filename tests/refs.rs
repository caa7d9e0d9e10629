//! Reading refs without git (#10): `gitbak::git::refs_files::read_refs`
//! must print what `git show-ref --head` prints, byte for byte, or step
//! aside (`Unsupported`) so that `Git::snapshot` asks git. Differential
//! over every fixture and over ref shapes built here with git; `concurrent`
//! races it against `git pack-refs`, `spawns` counts the git processes a
//! backup starts.

mod concurrent;
mod spawns;

use std::path::{Path, PathBuf};

use gitbak::git::refs_files::{read_refs, read_repository};
use gitbak::git::Git;
use tokio_util::sync::CancellationToken;

use crate::support::TestEnv;

/// `git show-ref --head`'s stdout, or `None` when git fails (exit 1 only
/// means that there was nothing to show).
fn show_ref(env: &TestEnv, repository: &Path) -> Option<String> {
    let run = env.git_run(repository, ["show-ref", "--head"], b"");
    matches!(run.code, 0 | 1).then(|| run.stdout.clone())
}

/// The file reader agrees with git; `context` names the case.
fn assert_read_as_git(env: &TestEnv, repository: &Path, context: &str) {
    let ours = read_refs(repository).unwrap_or_else(|reason| panic!("{context}: {reason}"));
    let theirs = show_ref(env, repository).unwrap_or_else(|| panic!("{context}: git failed"));
    assert_eq!(String::from_utf8(ours.bytes).unwrap(), theirs, "{context}");
    // The identity read with them (formats from config, HEAD's target or
    // a detached HEAD), as git tells it; HEAD to a symbolic ref is git's.
    let git = Git::new(PathBuf::from("git"), 1, CancellationToken::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let theirs = runtime.block_on(git.identity(repository)).unwrap();
    match read_repository(repository) {
        Ok((_, identity)) => assert_eq!(identity, theirs, "{context}: identity"),
        Err(_) => assert!(context.contains("HEAD to a symbolic ref"), "{context}"),
    }
    let (_, snapshot_identity) = runtime.block_on(git.snapshot(repository)).unwrap();
    assert_eq!(snapshot_identity, theirs, "{context}: snapshot identity");
}

/// The file reader steps aside, and `snapshot` (asking git) still
/// gives git's answer, or fails where git fails.
fn assert_left_to_git(env: &TestEnv, repository: &Path, context: &str) {
    assert!(
        read_refs(repository).is_err(),
        "{context}: read without git"
    );
    let git = Git::new(PathBuf::from("git"), 1, CancellationToken::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let snapshot = runtime
        .block_on(git.snapshot(repository))
        .map(|(refs, _)| refs);
    match show_ref(env, repository) {
        Some(theirs) => {
            let ours = snapshot.unwrap_or_else(|error| panic!("{context}: {error}"));
            assert_eq!(String::from_utf8(ours.bytes).unwrap(), theirs, "{context}");
        }
        None => assert!(snapshot.is_err(), "{context}: git failed, gitbak did not"),
    }
}

#[test]
fn refs_of_every_fixture_read_as_show_ref_prints_them() {
    let env = TestEnv::new();
    let mut repos = crate::create::fixtures(&env);
    repos.push(env.fixture("linear"));
    let git = Git::new(PathBuf::from("git"), 1, CancellationToken::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for repo in &repos {
        let (context, repository) = (&repo.relative_path, repo.path());
        if context.contains("reftable") {
            assert_left_to_git(&env, &repository, context);
        } else {
            assert_read_as_git(&env, &repository, context);
        }
        // The identity from config and HEAD, as git tells it.
        let (_, ours) = runtime.block_on(git.snapshot(&repository)).unwrap();
        let theirs = runtime.block_on(git.identity(&repository));
        assert_eq!(ours, theirs.unwrap(), "{context}");
    }
}

/// A sha1 repository with `count` commits on `refs/heads/main` (HEAD's
/// branch), each also under `refs/heads/c<N>`; their ids.
pub(crate) fn scratch(
    env: &TestEnv,
    name: &str,
    format: &str,
    count: usize,
) -> (PathBuf, Vec<String>) {
    let repository = env.scratch_repository(name, format);
    env.git(&repository, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    let tree = env.git_with_input(&repository, ["mktree"], b"");
    let mut commits: Vec<String> = Vec::new();
    for index in 0..count {
        let message = format!("commit {index}");
        let mut args = vec!["commit-tree", tree.trim(), "-m", &message];
        let parent = commits.last().cloned();
        if let Some(parent) = &parent {
            args.extend(["-p", parent]);
        }
        let commit = env.git(&repository, &args).trim().to_owned();
        env.git(
            &repository,
            ["update-ref", &format!("refs/heads/c{index}"), &commit],
        );
        commits.push(commit);
    }
    env.git(
        &repository,
        ["update-ref", "refs/heads/main", &commits[count - 1]],
    );
    (repository, commits)
}

#[test]
fn refs_loose_and_packed_read_as_show_ref_prints_them() {
    let env = TestEnv::new();
    for format in ["sha1", "sha256"] {
        let (repository, commits) = scratch(&env, &format!("mixed-{format}"), format, 3);
        let case = |what: &str| format!("{format}: {what}");
        assert_read_as_git(&env, &repository, &case("all loose"));
        env.git(
            &repository,
            ["tag", "-a", "-m", "annotated", "v1", &commits[0]],
        );
        env.git(&repository, ["tag", "light", &commits[1]]);
        // Names whose order tells byte order from a per-directory walk.
        for name in ["a/b/c", "a-b", "a.b", "a0", "z/y", "é"] {
            env.git(
                &repository,
                ["update-ref", &format!("refs/heads/{name}"), &commits[0]],
            );
        }
        env.git(&repository, ["pack-refs", "--all"]);
        assert!(std::fs::read_to_string(repository.join("packed-refs"))
            .unwrap()
            .contains('^'));
        assert_read_as_git(&env, &repository, &case("packed, peeled tags"));
        // An old-style packed-refs: no header, in no order.
        let packed_refs = std::fs::read_to_string(repository.join("packed-refs")).unwrap();
        let mut records: Vec<String> = Vec::new();
        for line in packed_refs.lines().skip(1) {
            match line.starts_with('^') {
                true => records.last_mut().unwrap().push_str(&format!("{line}\n")),
                false => records.push(format!("{line}\n")),
            }
        }
        records.reverse();
        std::fs::write(repository.join("packed-refs"), records.concat()).unwrap();
        assert_read_as_git(&env, &repository, &case("packed-refs unsorted"));
        std::fs::write(repository.join("packed-refs"), &packed_refs).unwrap();
        // Loose wins over packed.
        env.git(&repository, ["update-ref", "refs/heads/a-b", &commits[2]]);
        env.git(&repository, ["update-ref", "refs/heads/new/x", &commits[2]]);
        assert_read_as_git(&env, &repository, &case("loose over packed"));
        let ours = read_refs(&repository).unwrap();
        let a_b = ours
            .lines
            .iter()
            .find(|l| l.name == "refs/heads/a-b")
            .unwrap();
        assert_eq!(a_b.object_id, commits[2]);
        // git deletes a ref from packed-refs and its loose file alike.
        env.git(&repository, ["update-ref", "-d", "refs/heads/a-b"]);
        assert!(!std::fs::read_to_string(repository.join("packed-refs"))
            .unwrap()
            .contains("refs/heads/a-b"));
        assert_read_as_git(&env, &repository, &case("deleted"));
        // A loose file removed by hand: the packed value shows again.
        env.git(&repository, ["update-ref", "refs/heads/a0", &commits[2]]);
        std::fs::remove_file(repository.join("refs/heads/a0")).unwrap();
        assert_read_as_git(&env, &repository, &case("stale packed value"));
        // Symbolic refs under refs/, to a loose and to a packed ref.
        env.git(
            &repository,
            ["symbolic-ref", "refs/heads/alias", "refs/heads/new/x"],
        );
        env.git(
            &repository,
            ["symbolic-ref", "refs/remotes/o/HEAD", "refs/heads/z/y"],
        );
        assert_read_as_git(&env, &repository, &case("symbolic refs"));
        // A ref being written: git skips its lock file.
        std::fs::write(repository.join("refs/heads/main.lock"), "junk").unwrap();
        assert_read_as_git(&env, &repository, &case("lock file"));
        env.git(
            &repository,
            ["update-ref", "--no-deref", "HEAD", &commits[1]],
        );
        assert_read_as_git(&env, &repository, &case("detached HEAD"));
        env.git(&repository, ["symbolic-ref", "HEAD", "refs/heads/unborn"]);
        assert_read_as_git(&env, &repository, &case("unborn HEAD"));
        env.git(&repository, ["symbolic-ref", "HEAD", "refs/heads/alias"]);
        assert_read_as_git(&env, &repository, &case("HEAD to a symbolic ref"));
        env.git(&repository, ["symbolic-ref", "HEAD", "refs/heads/z/y"]);
        env.git(&repository, ["pack-refs", "--all"]);
        assert_read_as_git(&env, &repository, &case("HEAD to a packed ref"));
    }
}

#[test]
fn refs_of_unusual_shapes_are_left_to_git() {
    let env = TestEnv::new();
    let (repository, commits) = scratch(&env, "odd", "sha1", 2);
    env.git(&repository, ["pack-refs", "--all"]);
    let refs = repository.join("refs/heads");
    let packed_refs = std::fs::read_to_string(repository.join("packed-refs")).unwrap();
    let null = "0".repeat(40);
    type Setup<'a> = (&'a str, Box<dyn Fn() + 'a>, Box<dyn Fn() + 'a>);
    let cases: Vec<Setup> = vec![
        (
            "dangling symbolic ref",
            Box::new(|| std::fs::write(refs.join("d"), "ref: refs/heads/none\n").unwrap()),
            Box::new(|| std::fs::remove_file(refs.join("d")).unwrap()),
        ),
        (
            "symbolic ref chain",
            Box::new(|| {
                std::fs::write(refs.join("s1"), "ref: refs/heads/s2\n").unwrap();
                std::fs::write(refs.join("s2"), "ref: refs/heads/main\n").unwrap();
            }),
            Box::new(|| {
                std::fs::remove_file(refs.join("s1")).unwrap();
                std::fs::remove_file(refs.join("s2")).unwrap();
            }),
        ),
        (
            "null object id",
            Box::new(|| std::fs::write(refs.join("n"), format!("{null}\n")).unwrap()),
            Box::new(|| std::fs::remove_file(refs.join("n")).unwrap()),
        ),
        (
            "garbage loose file",
            Box::new(|| std::fs::write(refs.join("g"), "garbage\n").unwrap()),
            Box::new(|| std::fs::remove_file(refs.join("g")).unwrap()),
        ),
        (
            "uppercase object id",
            Box::new(|| std::fs::write(refs.join("u"), commits[0].to_uppercase() + "\n").unwrap()),
            Box::new(|| std::fs::remove_file(refs.join("u")).unwrap()),
        ),
        (
            "invalid name",
            Box::new(|| std::fs::write(refs.join("a..b"), format!("{}\n", commits[0])).unwrap()),
            Box::new(|| std::fs::remove_file(refs.join("a..b")).unwrap()),
        ),
        (
            "dot file",
            Box::new(|| {
                std::fs::write(refs.join(".invalid"), format!("{}\n", commits[0])).unwrap()
            }),
            Box::new(|| std::fs::remove_file(refs.join(".invalid")).unwrap()),
        ),
        (
            "symlink",
            Box::new(|| std::os::unix::fs::symlink("c0", refs.join("link")).unwrap()),
            Box::new(|| std::fs::remove_file(refs.join("link")).unwrap()),
        ),
        (
            "unknown packed-refs trait",
            Box::new(|| {
                let changed = packed_refs.replacen("sorted", "sorted future", 1);
                std::fs::write(repository.join("packed-refs"), changed).unwrap();
            }),
            Box::new(|| std::fs::write(repository.join("packed-refs"), &packed_refs).unwrap()),
        ),
        (
            "packed-refs not sorted as it claims",
            Box::new(|| {
                let mut lines: Vec<&str> = packed_refs.lines().collect();
                lines[1..].reverse();
                let changed = lines.join("\n") + "\n";
                std::fs::write(repository.join("packed-refs"), changed).unwrap();
            }),
            Box::new(|| std::fs::write(repository.join("packed-refs"), &packed_refs).unwrap()),
        ),
        (
            "packed-refs without its last newline",
            Box::new(|| {
                let cut = packed_refs.trim_end();
                std::fs::write(repository.join("packed-refs"), cut).unwrap();
            }),
            Box::new(|| std::fs::write(repository.join("packed-refs"), &packed_refs).unwrap()),
        ),
        (
            "HEAD with garbage",
            Box::new(|| std::fs::write(repository.join("HEAD"), "ref:refs/heads/main\n").unwrap()),
            Box::new(|| std::fs::write(repository.join("HEAD"), "ref: refs/heads/main\n").unwrap()),
        ),
    ];
    assert_read_as_git(&env, &repository, "before");
    for (context, setup, undo) in &cases {
        setup();
        assert_left_to_git(&env, &repository, context);
        undo();
        assert_read_as_git(&env, &repository, &format!("after {context}"));
    }
}
