//! Gitaly custom hooks: the `custom_hooks/` directory of a repository, as
//! a tar whose entries are prefixed `custom_hooks/` (gitaly's format).
//!
//! A `custom_hooks` that is itself a symlink (an administrator sharing one
//! hooks directory between repositories) is archived as one symlink entry,
//! not followed, as gitaly's archiver does; on restore such an entry may
//! only point inside the repository.
//!
//! Blocking filesystem work; callers run it on the blocking pool.

use std::path::Path;

use super::NodeError;

pub const HOOKS_DIR: &str = "custom_hooks";

/// Mode bits a restored hook never has: setuid, setgid, sticky, and
/// write for group and others.
const HOOK_MODE_MASK: u32 = 0o7022;

/// Hook archives are held in memory; anything larger is not a hooks directory.
pub const MAX_HOOKS_ARCHIVE: u64 = 64 << 20;

/// The archive of `repository/custom_hooks`, or `None` when there is none.
pub fn archive(repository: &Path) -> Result<Option<Vec<u8>>, NodeError> {
    let dir = repository.join(HOOKS_DIR);
    let is_symlink = match std::fs::symlink_metadata(&dir) {
        Ok(metadata) if metadata.is_dir() => false,
        Ok(metadata) if metadata.file_type().is_symlink() => true,
        Ok(_) => return Ok(None),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(NodeError::io(&dir, source)),
    };
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    if is_symlink {
        // Following it would back up (and on restore, write) whatever
        // directory it names, possibly shared with other repositories.
        builder
            .append_path_with_name(&dir, HOOKS_DIR)
            .map_err(|source| NodeError::io(&dir, source))?;
    } else {
        builder
            .append_dir_all(HOOKS_DIR, &dir)
            .map_err(|source| NodeError::io(&dir, source))?;
    }
    let bytes = builder
        .into_inner()
        .map_err(|source| NodeError::io(&dir, source))?;
    if bytes.len() as u64 > MAX_HOOKS_ARCHIVE {
        return Err(NodeError::Invalid(format!(
            "{} is larger than 64 MiB",
            dir.display()
        )));
    }
    Ok(Some(bytes))
}

/// Unpacks a hooks archive into `repository`. Entries outside
/// `custom_hooks/` are skipped, as gitaly-backup skips them: an archive
/// made by hand (or by `tar` run from the wrong directory) still restores
/// its hooks.
pub fn extract(archive: &[u8], repository: &Path) -> Result<(), NodeError> {
    let mut tar = tar::Archive::new(archive);
    // Modes come from the archive, but a hook is never group- or
    // world-writable nor setuid, setgid or sticky, whatever it says:
    // gitaly-backup's archives carry 0666 and 0777 modes, and anyone who
    // can write the backup location must not gain a writable or setuid
    // hook on the Gitaly node.
    tar.set_preserve_permissions(true);
    tar.set_mask(HOOK_MODE_MASK);
    let bad = |detail: String| NodeError::Invalid(format!("custom hooks archive: {detail}"));
    for entry in tar.entries().map_err(|error| bad(error.to_string()))? {
        let mut entry = entry.map_err(|error| bad(error.to_string()))?;
        let path = entry
            .path()
            .map_err(|error| bad(error.to_string()))?
            .into_owned();
        let mut components = path.components().filter(|c| c.as_os_str() != ".");
        if components.next().map(|c| c.as_os_str()) != Some(HOOKS_DIR.as_ref()) {
            tracing::debug!(entry = %path.display(), "skipped a hooks archive entry outside custom_hooks/");
            continue;
        }
        if components.next().is_none() && entry.header().entry_type().is_symlink() {
            let target = entry
                .link_name()
                .map_err(|error| bad(error.to_string()))?
                .unwrap_or_default();
            if !stays_inside(&target) {
                return Err(bad(format!(
                    "custom_hooks is a symlink to {}, which leaves the repository",
                    target.display()
                )));
            }
        }
        let unpacked = entry
            .unpack_in(repository)
            .map_err(|error| bad(format!("{}: {error}", path.display())))?;
        if !unpacked {
            return Err(bad(format!(
                "entry {} escapes the repository",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Whether a symlink target, read relative to the repository directory
/// that holds `custom_hooks`, names something inside the repository.
/// Lexical: the repository is built elsewhere and moved into place, so its
/// final path cannot be resolved yet, and an absolute target is refused.
fn stays_inside(target: &Path) -> bool {
    use std::path::Component;
    let mut depth: usize = 0;
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    depth > 0
}

/// Copies `from/custom_hooks` to `to/custom_hooks`, symlinks kept as
/// symlinks. A symlinked `custom_hooks` is copied as it is, wherever it
/// points: it is this node's own setting, not something read from a backup.
pub fn copy_existing(from: &Path, to: &Path) -> Result<(), NodeError> {
    let dir = from.join(HOOKS_DIR);
    if let Ok(target) = std::fs::read_link(&dir) {
        let link = to.join(HOOKS_DIR);
        return std::os::unix::fs::symlink(&target, &link)
            .map_err(|source| NodeError::io(&link, source));
    }
    match archive(from)? {
        Some(bytes) => extract(&bytes, to),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn archive_and_extract_keep_modes_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a.git");
        std::fs::create_dir_all(from.join("custom_hooks/post-receive.d")).unwrap();
        std::fs::write(from.join("custom_hooks/pre-receive"), "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(
            from.join("custom_hooks/pre-receive"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(from.join("custom_hooks/post-receive.d/01"), "x").unwrap();
        std::os::unix::fs::symlink("pre-receive", from.join("custom_hooks/update")).unwrap();
        let bytes = archive(&from).unwrap().unwrap();
        let to = dir.path().join("b.git");
        std::fs::create_dir_all(&to).unwrap();
        extract(&bytes, &to).unwrap();
        let mode = std::fs::metadata(to.join("custom_hooks/pre-receive"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            std::fs::read_link(to.join("custom_hooks/update")).unwrap(),
            Path::new("pre-receive")
        );
        assert_eq!(
            std::fs::read(to.join("custom_hooks/post-receive.d/01")).unwrap(),
            b"x"
        );
        assert!(archive(&to.join("nothing")).unwrap().is_none());
    }

    #[test]
    fn modes_are_never_group_or_world_writable_nor_setuid() {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, mode, kind) in [
            ("custom_hooks/", 0o777, tar::EntryType::Directory),
            ("custom_hooks/pre-receive", 0o777, tar::EntryType::Regular),
            ("custom_hooks/post-receive", 0o666, tar::EntryType::Regular),
            ("custom_hooks/update", 0o4755, tar::EntryType::Regular),
            ("custom_hooks/sticky.d/", 0o3777, tar::EntryType::Directory),
        ] {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(kind);
            header.set_size(if kind.is_dir() { 0 } else { 1 });
            header.set_mode(mode);
            header.set_cksum();
            let data: &[u8] = if kind.is_dir() { b"" } else { b"x" };
            builder.append_data(&mut header, path, data).unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        extract(&bytes, dir.path()).unwrap();
        let mode = |path: &str| {
            std::fs::metadata(dir.path().join(path))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("custom_hooks"), 0o755);
        assert_eq!(mode("custom_hooks/pre-receive"), 0o755);
        assert_eq!(mode("custom_hooks/post-receive"), 0o644);
        assert_eq!(mode("custom_hooks/update"), 0o755);
        assert_eq!(mode("custom_hooks/sticky.d"), 0o755);
    }

    fn archive_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(*kind);
            header.set_mode(0o755);
            if kind.is_symlink() {
                header.set_size(0);
                builder.append_link(&mut header, path, data).unwrap();
            } else {
                header.set_size(data.len() as u64);
                header.set_cksum();
                builder
                    .append_data(&mut header, path, data.as_bytes())
                    .unwrap();
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn entries_outside_custom_hooks_are_skipped() {
        let bytes = archive_of(&[
            ("config", tar::EntryType::Regular, "x"),
            ("custom_hooks/pre-receive", tar::EntryType::Regular, "y"),
            ("hooks/update", tar::EntryType::Regular, "z"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        extract(&bytes, dir.path()).unwrap();
        assert!(!dir.path().join("config").exists());
        assert!(!dir.path().join("hooks").exists());
        assert_eq!(
            std::fs::read(dir.path().join("custom_hooks/pre-receive")).unwrap(),
            b"y"
        );
    }

    #[test]
    fn a_symlinked_custom_hooks_round_trips_as_one_entry() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a.git");
        std::fs::create_dir_all(from.join("hooks.d")).unwrap();
        std::fs::write(from.join("hooks.d/pre-receive"), "x").unwrap();
        std::os::unix::fs::symlink("hooks.d", from.join("custom_hooks")).unwrap();
        let bytes = archive(&from).unwrap().unwrap();
        let mut tar = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = tar
            .entries()
            .unwrap()
            .map(|entry| entry.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["custom_hooks"], "the link is not followed");
        let to = dir.path().join("b.git");
        std::fs::create_dir_all(&to).unwrap();
        extract(&bytes, &to).unwrap();
        assert_eq!(
            std::fs::read_link(to.join("custom_hooks")).unwrap(),
            Path::new("hooks.d")
        );
    }

    #[test]
    fn a_custom_hooks_symlink_leaving_the_repository_is_refused() {
        for target in ["../shared-hooks", "/etc", "hooks.d/../..", "."] {
            let bytes = archive_of(&[("custom_hooks", tar::EntryType::Symlink, target)]);
            let dir = tempfile::tempdir().unwrap();
            let error = extract(&bytes, dir.path()).unwrap_err().to_string();
            assert!(error.contains("leaves the repository"), "{target}: {error}");
            assert!(std::fs::symlink_metadata(dir.path().join("custom_hooks")).is_err());
        }
        for target in ["hooks.d", "./a/../b"] {
            let bytes = archive_of(&[("custom_hooks", tar::EntryType::Symlink, target)]);
            let dir = tempfile::tempdir().unwrap();
            extract(&bytes, dir.path()).unwrap();
        }
    }

    #[test]
    fn copying_keeps_a_symlinked_custom_hooks_wherever_it_points() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a.git"), dir.path().join("b.git"));
        std::fs::create_dir_all(&from).unwrap();
        std::fs::create_dir_all(&to).unwrap();
        std::os::unix::fs::symlink("/srv/shared-hooks", from.join("custom_hooks")).unwrap();
        copy_existing(&from, &to).unwrap();
        assert_eq!(
            std::fs::read_link(to.join("custom_hooks")).unwrap(),
            Path::new("/srv/shared-hooks")
        );
    }
}
