//! Counting the git processes a backup starts (#10): gitbak runs git
//! through a wrapper that logs each invocation. Reading refs and the
//! repository's identity must start none for a files-backend repository,
//! and an empty one needs no git at all; a full backup still runs
//! pack-objects for the bundle.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::support::{Repo, TestEnv};

/// The git subcommands that read refs or identity.
const REF_READERS: &[&str] = &["show-ref", "rev-parse", "for-each-ref", "symbolic-ref"];

/// The real git, found in PATH as gitbak would find it.
fn real_git() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap();
    std::env::split_paths(&path)
        .map(|dir| dir.join("git"))
        .find(|candidate| candidate.is_file())
        .unwrap()
}

/// Subcommands run per repository path, from the wrapper's log (`$*` of
/// each run: `-c` options, `--git-dir <path>`, more `-c`, the subcommand).
fn subcommands(log: &str, repos: &[Repo]) -> BTreeMap<String, Vec<String>> {
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // The version check when a run starts names no repository.
    for line in log.lines().filter(|line| *line != "--version") {
        let words: Vec<&str> = line.split(' ').collect();
        let position = words.iter().position(|word| *word == "--git-dir");
        let position = position.unwrap_or_else(|| panic!("git without a repository: {line}"));
        let directory = words[position + 1];
        let mut rest = &words[position + 2..];
        while let ["-c", _, tail @ ..] = rest {
            rest = tail;
        }
        let subcommand = rest[0];
        let repo = repos
            .iter()
            .find(|repo| directory.ends_with(&repo.relative_path))
            .unwrap_or_else(|| panic!("git in an unknown directory: {line}"));
        runs.entry(repo.relative_path.clone())
            .or_default()
            .push(subcommand.to_owned());
    }
    runs
}

#[test]
fn refs_of_files_repositories_are_read_without_git() {
    let env = TestEnv::new();
    let repos = crate::create::fixtures(&env);
    let log = env.root().join("git.log");
    let wrapper = env.root().join("git-wrapper");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >>'{}'\nexec '{}' \"$@\"\n",
        log.display(),
        real_git().display()
    );
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let refs: Vec<&Repo> = repos.iter().collect();
    env.gitbak(["create", "--id", "20240101000000"])
        .backup_path()
        .storages_of(&refs)
        .jobs(&refs)
        .env("GITBAK_GIT", wrapper.to_str().unwrap())
        .run()
        .assert_success();
    let runs = subcommands(&std::fs::read_to_string(&log).unwrap_or_default(), &repos);
    for repo in &repos {
        let name = &repo.relative_path;
        let ran = runs.get(name).cloned().unwrap_or_default();
        let readers: Vec<&String> = ran
            .iter()
            .filter(|subcommand| REF_READERS.contains(&subcommand.as_str()))
            .collect();
        if name.contains("reftable") {
            // Proves the wrapper sees what gitbak runs.
            assert!(!readers.is_empty(), "{name}: {ran:?}");
        } else if name.contains("empty") {
            assert!(ran.is_empty(), "{name}: git ran: {ran:?}");
        } else {
            assert!(readers.is_empty(), "{name}: git read refs: {ran:?}");
            assert!(ran.iter().any(|s| s == "pack-objects"), "{name}: {ran:?}");
        }
    }
}
