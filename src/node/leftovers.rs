//! Names of the temporary directories a restore makes beside a repository,
//! sweeping the ones a dead gitbak left behind, and removing a repository
//! through one of them.
//!
//! A restore builds the new repository in `+gitbak-tmp-new+NAME~HOST~PID-N`
//! and, where the kernel cannot exchange two directories, moves the old
//! one aside to `+gitbak-tmp-old+NAME~HOST~PID-N` for the moment between
//! two renames. A repository a restore removes (`-remove-all-repositories`,
//! gitaly's rule for a missing backup) is first renamed to
//! `+gitbak-tmp-gone+NAME~HOST~PID-N`, then deleted. The kind word keeps
//! them apart whatever NAME is, and the `+gitbak-tmp-` prefix keeps
//! `--discover` out of all three.
//!
//! Blocking filesystem work; callers run it on the blocking pool.

use std::path::{Path, PathBuf};

use super::{NodeError, TEMP_PREFIX};
use crate::tempname;

/// What a temporary directory beside a repository holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A repository being built; after an exchange, the replaced old one.
    Build,
    /// The old repository, moved aside between the two fallback renames.
    Aside,
    /// A repository being removed: never put back.
    Removed,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Build => "new+",
            Kind::Aside => "old+",
            Kind::Removed => "gone+",
        }
    }
}

/// A fresh temporary path in `parent` for repository `name`.
pub fn temp_path(parent: &Path, kind: Kind, name: &str) -> PathBuf {
    parent.join(format!(
        "{TEMP_PREFIX}{}",
        tempname::unique(&format!("{}{name}", kind.word()))
    ))
}

/// A temporary directory's kind and tag, `None` for any other name
/// (including the untagged names of earlier gitbak versions: whether
/// their process still runs cannot be told, so they are left alone).
pub fn parse(file_name: &str) -> Option<(Kind, tempname::Tag<'_>)> {
    let rest = file_name.strip_prefix(TEMP_PREFIX)?;
    let kind = [Kind::Build, Kind::Aside, Kind::Removed]
        .into_iter()
        .find(|kind| rest.starts_with(kind.word()))?;
    let tag = tempname::parse(&rest[kind.word().len()..])?;
    Some((kind, tag))
}

/// What a sweep did, for the job's log.
#[derive(Debug, Default)]
pub struct Swept {
    /// A stranded aside was moved back to the repository path.
    pub put_back: Option<PathBuf>,
    pub removed: Vec<PathBuf>,
    /// Leftovers that could not be handled, with why.
    pub failed: Vec<String>,
}

/// Cleans `parent` of what dead gitbak runs of this host left there,
/// before a restore of repository `name` starts: a stranded aside of
/// `name` goes back to `parent/name` when that is missing (a crash between
/// the two fallback renames), and is removed otherwise; build directories
/// and half-deleted removed repositories are removed, whatever repository
/// they were for. An aside of another
/// repository is removed only when that repository exists, else left for
/// its own restore to put back. Other hosts' leftovers, and those of runs
/// still alive, are never touched.
pub fn sweep(parent: &Path, name: &str) -> Result<Swept, NodeError> {
    let mut swept = Swept::default();
    let entries = match std::fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(swept),
        Err(source) => return Err(NodeError::io(parent, source)),
    };
    let mut stale = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| NodeError::io(parent, source))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if let Some((kind, tag)) = parse(file_name).filter(|(_, tag)| tag.is_stale_here()) {
            stale.push((kind, tag.name.to_owned(), entry.path()));
        }
    }
    // Asides first, so a repository is back in place before anything is removed.
    stale.sort_by_key(|(kind, _, path)| (*kind != Kind::Aside, path.clone()));
    for (kind, repository, path) in stale {
        let target = parent.join(&repository);
        let missing = std::fs::symlink_metadata(&target).is_err();
        match kind {
            Kind::Aside if missing && repository == name => match put_back(&path, &target) {
                Ok(()) => swept.put_back = Some(target),
                Err(error) => swept.failed.push(error.to_string()),
            },
            Kind::Aside if missing => {}
            Kind::Aside | Kind::Build | Kind::Removed => match remove_tree(&path) {
                Ok(()) => swept.removed.push(path),
                Err(error) => swept.failed.push(error.to_string()),
            },
        }
    }
    Ok(swept)
}

/// Moves a stranded old repository back, never over anything.
fn put_back(aside: &Path, target: &Path) -> Result<(), NodeError> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, aside, CWD, target, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // No RENAME_NOREPLACE here: the path was missing a moment ago, and
        // only a restore of this same repository would create it.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            std::fs::rename(aside, target).map_err(|source| NodeError::io(target, source))
        }
        Err(errno) => Err(NodeError::io(target, errno.into())),
    }
}

/// Removes the repository at `path` the safe way: renamed away first, so
/// nothing ever sees (or backs up, or serves) a half-deleted repository,
/// then deleted. A crash in between leaves a `Kind::Removed` directory the
/// next restore beside it sweeps. Returns whether there was one to remove.
pub fn remove_repository(path: &Path) -> Result<bool, NodeError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let gone = temp_path(parent, Kind::Removed, &name);
    match std::fs::rename(path, &gone) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(NodeError::io(path, source)),
    }
    super::place::sync_dir(parent)?;
    crate::failpoint::hit("remove-after-rename");
    remove_tree(&gone)?;
    Ok(true)
}

/// Removes a directory tree; one already gone (a concurrent sweep) is fine.
pub fn remove_tree(path: &Path) -> Result<(), NodeError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NodeError::io(path, source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(path: &Path, marker: &str) {
        std::fs::create_dir_all(path.join("objects")).unwrap();
        std::fs::write(path.join(marker), "").unwrap();
    }

    /// A name as a dead gitbak of `host` would have left it (pid above pid_max).
    fn dead(kind: Kind, name: &str, host: &str) -> String {
        format!("{TEMP_PREFIX}{}{name}~{host}~4194304999-3", kind.word())
    }

    #[test]
    fn removal_renames_away_then_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("repo.git");
        make(&target, "old");
        assert!(remove_repository(&target).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(!remove_repository(&target).unwrap(), "gone already: fine");
    }

    #[test]
    fn names_round_trip_and_kinds_stay_apart() {
        let dir = Path::new("/x");
        let build = temp_path(dir, Kind::Build, "old+a.git");
        let name = build.file_name().unwrap().to_str().unwrap();
        let (kind, tag) = parse(name).unwrap();
        assert_eq!((kind, tag.name), (Kind::Build, "old+a.git"));
        assert_eq!(tag.pid, std::process::id());
        let aside = temp_path(dir, Kind::Aside, "new+b.git");
        let name = aside.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse(name).unwrap().0, Kind::Aside);
        assert!(
            parse("+gitbak-tmp-a.git-123-0").is_none(),
            "untagged: not ours to judge"
        );
        assert!(parse("a.git").is_none());
    }

    #[test]
    fn sweep_puts_back_removes_and_leaves_alone() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path();
        let host = tempname::host();
        // Crash between the renames: a.git is missing, its old copy aside.
        make(&parent.join(dead(Kind::Aside, "a.git", host)), "old-a");
        make(&parent.join(dead(Kind::Build, "a.git", host)), "new-a");
        // Crash after the swap: b.git is in place, its old copy aside.
        make(&parent.join("b.git"), "new-b");
        make(&parent.join(dead(Kind::Aside, "b.git", host)), "old-b");
        // A removal that crashed after its rename: deleted, never put back.
        make(&parent.join(dead(Kind::Removed, "a.git", host)), "gone-a");
        // Another repository, missing, with an aside: left for its own restore.
        make(&parent.join(dead(Kind::Aside, "c.git", host)), "old-c");
        // Another host's, and a live run's (ours): never touched.
        make(&parent.join(dead(Kind::Build, "a.git", "elsewhere")), "x");
        let live = temp_path(parent, Kind::Build, "a.git");
        make(&live, "live");

        let swept = sweep(parent, "a.git").unwrap();
        assert!(swept.failed.is_empty(), "{:?}", swept.failed);
        assert_eq!(swept.put_back, Some(parent.join("a.git")));
        assert!(parent.join("a.git/old-a").exists());
        assert!(parent.join("b.git/new-b").exists());
        assert_eq!(swept.removed.len(), 3, "{:?}", swept.removed);
        let mut left: Vec<String> = std::fs::read_dir(parent)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = vec![
            "a.git".to_owned(),
            "b.git".to_owned(),
            dead(Kind::Aside, "c.git", host),
            dead(Kind::Build, "a.git", "elsewhere"),
            live.file_name().unwrap().to_str().unwrap().to_owned(),
        ];
        expected.sort();
        assert_eq!(left, expected);
        assert!(sweep(&parent.join("missing"), "a.git")
            .unwrap()
            .removed
            .is_empty());
    }
}
