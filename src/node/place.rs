//! Putting a restored repository in place: a temporary directory beside
//! the target, ownership, free space, and the final swap.
//!
//! The old repository is removed only after the new one took its place,
//! and a temporary directory that never made it is removed on drop.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{NodeError, TEMP_PREFIX};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory that is removed on drop unless `keep` was called.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// A fresh, not yet existing path in `parent` for a repository named `name`.
    pub fn beside(parent: &Path, name: &str) -> Self {
        let counter = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!(
            "{TEMP_PREFIX}{name}-{}-{counter}",
            std::process::id()
        ));
        Self { path, keep: false }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Creates `dir` and missing parents, giving new directories `owner`.
pub fn create_dirs_owned(dir: &Path, owner: Option<(u32, u32)>) -> Result<(), NodeError> {
    let mut missing = Vec::new();
    let mut current = dir;
    while !current.exists() {
        missing.push(current.to_path_buf());
        match current.parent() {
            Some(parent) => current = parent,
            None => break,
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| NodeError::io(dir, source))?;
    if let Some(owner) = owner {
        for created in missing {
            chown(&created, owner)?;
        }
    }
    Ok(())
}

/// Owner to give restored files: the storage root's, when gitbak runs as
/// another user (typically root) and so could leave files Gitaly cannot write.
pub fn owner_for(storage_root: &Path) -> Result<Option<(u32, u32)>, NodeError> {
    let metadata =
        std::fs::metadata(storage_root).map_err(|source| NodeError::io(storage_root, source))?;
    let me = rustix::process::geteuid().as_raw();
    Ok((me == 0 && metadata.uid() != 0).then_some((metadata.uid(), metadata.gid())))
}

fn chown(path: &Path, (uid, gid): (u32, u32)) -> Result<(), NodeError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|source| NodeError::io(path, source))
}

/// Gives every file under `root` (and `root`) the owner.
pub fn chown_tree(root: &Path, owner: (u32, u32)) -> Result<(), NodeError> {
    chown(root, owner)?;
    let metadata = std::fs::symlink_metadata(root).map_err(|source| NodeError::io(root, source))?;
    if metadata.is_dir() {
        for entry in std::fs::read_dir(root).map_err(|source| NodeError::io(root, source))? {
            let entry = entry.map_err(|source| NodeError::io(root, source))?;
            chown_tree(&entry.path(), owner)?;
        }
    }
    Ok(())
}

/// Bytes free for an unprivileged user on the filesystem holding `dir`.
pub fn available_bytes(dir: &Path) -> Result<u64, NodeError> {
    let stat = rustix::fs::statvfs(dir).map_err(|errno| NodeError::io(dir, errno.into()))?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Moves `new` to `target`. An existing target is exchanged atomically
/// where the kernel offers it (the old repository ends up at `new`'s path
/// for the caller to remove); otherwise it is first moved aside, and moved
/// back if the second rename fails.
pub fn swap_into_place(new: &Path, target: &Path) -> Result<(), NodeError> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let io = |source: std::io::Error| NodeError::io(target, source);
    if std::fs::symlink_metadata(target).is_err() {
        return match renameat_with(CWD, new, CWD, target, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                std::fs::rename(new, target).map_err(io)
            }
            Err(errno) => Err(io(errno.into())),
        };
    }
    match renameat_with(CWD, new, CWD, target, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            let aside = new.with_extension("old");
            std::fs::rename(target, &aside).map_err(io)?;
            if let Err(error) = std::fs::rename(new, target) {
                let _ = std::fs::rename(&aside, target);
                return Err(io(error));
            }
            std::fs::rename(&aside, new).map_err(io)
        }
        Err(errno) => Err(io(errno.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_exchanges_and_temp_dirs_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("repo.git");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("old"), "").unwrap();
        let temp = TempDir::beside(dir.path(), "repo.git");
        std::fs::create_dir(temp.path()).unwrap();
        std::fs::write(temp.path().join("new"), "").unwrap();
        swap_into_place(temp.path(), &target).unwrap();
        assert!(target.join("new").exists());
        assert!(
            temp.path().join("old").exists(),
            "old repository is kept for the caller"
        );
        let leftover = temp.path().to_path_buf();
        drop(temp);
        assert!(!leftover.exists());
        let fresh = TempDir::beside(dir.path(), "b.git");
        std::fs::create_dir(fresh.path()).unwrap();
        swap_into_place(fresh.path(), &dir.path().join("b.git")).unwrap();
        assert!(dir.path().join("b.git").is_dir());
        assert!(available_bytes(dir.path()).unwrap() > 0);
    }
}
