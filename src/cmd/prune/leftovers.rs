//! gitbak's temporary files on a local backup location
//! (`.NAME~HOST~PID-N.gitbak.tmp`), which killed runs leave and the
//! storage listing hides, found by walking the location's directory; and
//! who left each (`tempname`). Object storage keeps no temporaries: an
//! interrupted upload is invisible and expired by the bucket's lifecycle.
//!
//! This reads the filesystem beside the storage layer: it belongs in
//! `storage::LocalFiles` once that can list temporaries.

use std::path::{Path, PathBuf};

use super::plan::TemporaryOwner;
use crate::layout::catalog::TEMPORARY_SUFFIX;
use crate::storage::{Key, Location, ObjectMeta};

/// The directory of a local location given as `--path`; `None` for
/// object storage.
pub fn local_root(location: &str) -> Option<PathBuf> {
    match Location::parse(location).ok()? {
        Location::Filesystem(root) => Some(root),
        _ => None,
    }
}

/// Every temporary file under `root`, with who left it.
pub async fn find(root: PathBuf) -> std::io::Result<Vec<(ObjectMeta, TemporaryOwner)>> {
    tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        walk(&root, "", &mut found)?;
        Ok(found)
    })
    .await
    .map_err(std::io::Error::other)?
}

fn walk(
    root: &Path,
    dir_key: &str,
    found: &mut Vec<(ObjectMeta, TemporaryOwner)>,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(root.join(dir_key)) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let key = if dir_key.is_empty() {
            name.clone()
        } else {
            format!("{dir_key}/{name}")
        };
        // Symbolic links are neither followed nor taken.
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            walk(root, &key, found)?;
            continue;
        }
        let Some(inner) = name
            .strip_prefix('.')
            .and_then(|name| name.strip_suffix(TEMPORARY_SUFFIX))
        else {
            continue;
        };
        if !file_type.is_file() {
            continue;
        }
        let Ok(key) = Key::new(key) else { continue };
        let metadata = entry.metadata()?;
        let meta = ObjectMeta {
            key,
            size: metadata.len(),
            modified: metadata.modified().unwrap_or(std::time::UNIX_EPOCH),
        };
        found.push((meta, owner(inner)));
    }
    Ok(())
}

/// Who left the temporary file `key` (its name carries the tag).
pub fn owner_of(key: &str) -> TemporaryOwner {
    let name = key.rsplit('/').next().unwrap_or(key);
    let inner = name.strip_prefix('.').unwrap_or(name);
    owner(inner.strip_suffix(TEMPORARY_SUFFIX).unwrap_or(inner))
}

fn owner(inner: &str) -> TemporaryOwner {
    match crate::tempname::parse(inner) {
        Some(tag) if tag.is_stale_here() => TemporaryOwner::DeadHere,
        Some(tag) if tag.host == crate::tempname::host() => TemporaryOwner::RunningHere,
        _ => TemporaryOwner::Elsewhere,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn temporaries_are_found_with_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let step = dir.path().join("default/a.git/1");
        std::fs::create_dir_all(&step).unwrap();
        let host = crate::tempname::host();
        let names = [
            format!(".001.bundle~{host}~4194304999-0.gitbak.tmp"),
            format!(".001.refs~{host}~{}-1.gitbak.tmp", std::process::id()),
            ".001.bundle~elsewhere~12-0.gitbak.tmp".to_owned(),
            "001.bundle".to_owned(),
            ".hidden".to_owned(),
        ];
        for name in &names {
            std::fs::write(step.join(name), b"x").unwrap();
        }
        let found: std::collections::BTreeMap<String, TemporaryOwner> = find(dir.path().to_owned())
            .await
            .unwrap()
            .into_iter()
            .map(|(meta, owner)| (meta.key.as_str()[16..].to_owned(), owner))
            .collect();
        let want = std::collections::BTreeMap::from([
            (names[0].clone(), TemporaryOwner::DeadHere),
            (names[1].clone(), TemporaryOwner::RunningHere),
            (names[2].clone(), TemporaryOwner::Elsewhere),
        ]);
        assert_eq!(found, want);
        assert_eq!(local_root("/backups"), Some(PathBuf::from("/backups")));
        assert_eq!(local_root("s3://bucket?region=x"), None);
        assert!(find(dir.path().join("missing")).await.unwrap().is_empty());
    }
}
