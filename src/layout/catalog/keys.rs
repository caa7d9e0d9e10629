//! What one listed key is: a manifest, a backup-id marker, a step's file,
//! a pointer file, gitbak's own bookkeeping or temporary file, or anything
//! else. Only the key's text decides; nothing is read.

use super::Repository;
use crate::layout::{self, legacy, BackupId, RelativePath, StorageName};

/// Top-level names starting with this are gitbak's own objects (prune's
/// grace records, run locks), never backups and never garbage.
pub const GITBAK_PREFIX: &str = "gitbak-";

/// The suffix of gitbak's temporary files (`.NAME~HOST~PID-N.gitbak.tmp`).
pub const TEMPORARY_SUFFIX: &str = ".gitbak.tmp";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// `manifests/<storage>/<path>/<id>.toml`, or `+latest.toml` (no id).
    Manifest {
        repository: Repository,
        backup_id: Option<BackupId>,
    },
    /// `backup_ids/<id>`.
    Marker(BackupId),
    /// Under a top-level `gitbak-*` name.
    Gitbak,
    /// A file gitbak was writing when its run died.
    Temporary,
    /// A pointer layout `LATEST` file.
    Pointer,
    /// Anything else: step files, legacy files, foreign objects.
    Data,
}

pub fn classify(key: &str) -> KeyKind {
    let name = key.rsplit('/').next().unwrap_or(key);
    if key.starts_with(GITBAK_PREFIX) {
        return KeyKind::Gitbak;
    }
    if name.starts_with('.') && name.ends_with(TEMPORARY_SUFFIX) {
        return KeyKind::Temporary;
    }
    if let Some(id) = key.strip_prefix(layout::BACKUP_IDS_PREFIX) {
        if let Ok(id) = BackupId::parse(id) {
            return KeyKind::Marker(id);
        }
    }
    if let Some(kind) = manifest_kind(key) {
        return kind;
    }
    if name == legacy::POINTER_NAME {
        return KeyKind::Pointer;
    }
    KeyKind::Data
}

/// `manifests/<storage>/<path…>/<name>.toml`, where `name` is a backup id
/// or `+latest`. Anything else under `manifests/` (go-cloud's `.attrs`
/// sidecars, its `.tmp` files) is data, and never removed.
fn manifest_kind(key: &str) -> Option<KeyKind> {
    let rest = key.strip_prefix("manifests/")?;
    let (storage, rest) = rest.split_once('/')?;
    let (path, name) = rest.rsplit_once('/')?;
    let storage = StorageName::parse(storage).ok()?;
    let path = RelativePath::parse(path).ok()?;
    let backup_id = if name == layout::LATEST_MANIFEST_NAME {
        None
    } else {
        Some(BackupId::parse(layout::backup_id_of_manifest(key)?).ok()?)
    };
    Some(KeyKind::Manifest {
        repository: Repository { storage, path },
        backup_id,
    })
}

/// A key shaped like a step's file: `<repository>/<id>/<NNN>.<kind>` with
/// `kind` one of `bundle`, `refs`, `custom_hooks.tar`. The manifest layout
/// names its files so (`<storage>/<path>/<id>/001.bundle`), and so does the
/// pointer layout (`<path without .git>/<id>/001.bundle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepFile<'a> {
    /// `<storage>/<path>` in the manifest layout.
    pub repository: &'a str,
    pub backup_id: &'a str,
    /// The directory holding the file: `<repository>/<id>`.
    pub directory: &'a str,
}

pub fn step_file(key: &str) -> Option<StepFile<'_>> {
    let (directory, name) = key.rsplit_once('/')?;
    let (repository, backup_id) = directory.rsplit_once('/')?;
    let (number, kind) = name.split_once('.')?;
    let numbered = number.len() >= 3 && number.bytes().all(|b| b.is_ascii_digit());
    let known = matches!(kind, "bundle" | "refs" | "custom_hooks.tar");
    // The repository part has a storage name and at least one path segment.
    (numbered && known && repository.contains('/') && BackupId::parse(backup_id).is_ok()).then_some(
        StepFile {
            repository,
            backup_id,
            directory,
        },
    )
}

/// The legacy layout's bundle `<path without .git>.bundle`: its prefix.
pub fn legacy_bundle_prefix(key: &str) -> Option<&str> {
    let prefix = key.strip_suffix(".bundle")?;
    let name = prefix.rsplit('/').next().unwrap_or(prefix);
    let numbered = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
    (!numbered && !key.starts_with("manifests/")).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_by_their_text() {
        let manifest = |storage: &str, path: &str, id: Option<&str>| KeyKind::Manifest {
            repository: Repository {
                storage: StorageName::parse(storage).unwrap(),
                path: RelativePath::parse(path).unwrap(),
            },
            backup_id: id.map(|id| BackupId::parse(id).unwrap()),
        };
        for (key, want) in [
            (
                "manifests/default/@hashed/ab/cd/x.git/20240101000000.toml",
                manifest("default", "@hashed/ab/cd/x.git", Some("20240101000000")),
            ),
            (
                "manifests/nfs-2/g/p.git/+latest.toml",
                manifest("nfs-2", "g/p.git", None),
            ),
            (
                "manifests/default/g/p.git/1700000000_2023_11_14_16.6.0.toml",
                manifest("default", "g/p.git", Some("1700000000_2023_11_14_16.6.0")),
            ),
            ("manifests/default/g/p.git/1.toml.attrs", KeyKind::Data),
            ("manifests/default/g/p.git/1.toml.1a2b.tmp", KeyKind::Data),
            ("manifests/default/1.toml", KeyKind::Data),
            (
                "backup_ids/20240101000000",
                KeyKind::Marker(BackupId::parse("20240101000000").unwrap()),
            ),
            ("backup_ids/a/b", KeyKind::Data),
            ("gitbak-locks/prune", KeyKind::Gitbak),
            ("gitbak-prune/unreferenced.json", KeyKind::Gitbak),
            (
                "default/g/p.git/1/.001.bundle~host~12-0.gitbak.tmp",
                KeyKind::Temporary,
            ),
            ("g/p/LATEST", KeyKind::Pointer),
            ("g/p/20210930065413/LATEST", KeyKind::Pointer),
            ("default/g/p.git/1/001.bundle", KeyKind::Data),
        ] {
            assert_eq!(classify(key), want, "{key}");
        }
    }

    #[test]
    fn step_files_and_legacy_bundles() {
        let step =
            step_file("default/@hashed/ab/x.git/20240101000000/002.custom_hooks.tar").unwrap();
        assert_eq!(step.repository, "default/@hashed/ab/x.git");
        assert_eq!(step.backup_id, "20240101000000");
        assert_eq!(step.directory, "default/@hashed/ab/x.git/20240101000000");
        for not_a_step in [
            "default/x.git/1/01.bundle",
            "default/x.git/1/001.pack",
            "x/1/001.bundle",
            "default/x.git/+1/001.bundle",
            "default/x.git/1/custom_hooks.tar",
            "001.bundle",
        ] {
            assert_eq!(step_file(not_a_step), None, "{not_a_step}");
        }
        assert_eq!(
            legacy_bundle_prefix("@hashed/ab/x.bundle"),
            Some("@hashed/ab/x")
        );
        assert_eq!(legacy_bundle_prefix("default/x.git/1/001.bundle"), None);
        assert_eq!(legacy_bundle_prefix("x.refs"), None);
    }
}
