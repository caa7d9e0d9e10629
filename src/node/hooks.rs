//! Gitaly custom hooks: the `custom_hooks/` directory of a repository, as
//! a tar whose entries are prefixed `custom_hooks/` (gitaly's format).
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
    match std::fs::symlink_metadata(&dir) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => return Ok(None),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(NodeError::io(&dir, source)),
    }
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder
        .append_dir_all(HOOKS_DIR, &dir)
        .map_err(|source| NodeError::io(&dir, source))?;
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

/// Unpacks a hooks archive into `repository`; every entry must lie under
/// `custom_hooks/`.
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
        if path.components().next().map(|c| c.as_os_str()) != Some(HOOKS_DIR.as_ref()) {
            return Err(bad(format!(
                "entry {} is outside custom_hooks/",
                path.display()
            )));
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

/// Copies `from/custom_hooks` to `to/custom_hooks`, symlinks kept as symlinks.
pub fn copy_existing(from: &Path, to: &Path) -> Result<(), NodeError> {
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

    #[test]
    fn entries_outside_custom_hooks_are_refused() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "config", &b"x"[..])
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert!(extract(&bytes, dir.path()).is_err());
        assert!(!dir.path().join("config").exists());
    }
}
