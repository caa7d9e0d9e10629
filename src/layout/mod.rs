//! Object keys of gitaly-backup's manifest layout.
//!
//! Pure: no I/O and no clock. Keys must stay byte-compatible with gitaly-backup
//! (gitaly-backup-spec.md §3.4), so any change here needs a golden test.

pub mod catalog;
pub mod chain;
pub mod legacy;
pub mod manifest;
pub mod sidecar;
pub mod time;
pub mod unreferenced;

use std::fmt;

use crate::storage::Key;

/// Validation failures of the names that end up in keys and on disk.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("relative_path {path:?} is not allowed: {reason}")]
    RelativePath { path: String, reason: &'static str },
    #[error("storage name {name:?} is not allowed: {reason}")]
    StorageName { name: String, reason: &'static str },
    #[error("backup id {id:?} is not allowed: {reason}")]
    BackupId { id: String, reason: &'static str },
}

/// A repository path relative to its storage root, as Rails sends it
/// (`@hashed/ab/cd/<hash>.git`). Checked lexically: never absolute, no `.` or
/// `..` segments, no empty segments. Symlinks are checked where the
/// filesystem is (see `node`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelativePath(String);

impl RelativePath {
    pub fn parse(path: &str) -> Result<Self, LayoutError> {
        let refuse = |reason| {
            Err(LayoutError::RelativePath {
                path: path.to_owned(),
                reason,
            })
        };
        if path.is_empty() {
            return refuse("it is empty");
        }
        if path.starts_with('/') {
            return refuse("it is absolute; give the path relative to the storage root");
        }
        if path.contains('\0') || path.contains('\\') {
            return refuse("it contains a NUL byte or a backslash");
        }
        for segment in path.split('/') {
            match segment {
                "" => return refuse("it has an empty path segment"),
                "." | ".." => return refuse("it contains '.' or '..' segments"),
                _ => {}
            }
        }
        Ok(Self(path.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Gitaly storage name, one key segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageName(String);

impl StorageName {
    pub fn parse(name: &str) -> Result<Self, LayoutError> {
        let refuse = |reason| {
            Err(LayoutError::StorageName {
                name: name.to_owned(),
                reason,
            })
        };
        if name.is_empty() {
            return refuse("it is empty");
        }
        if name.contains('/') || name == "." || name == ".." || name.contains('\0') {
            return refuse("it must be a single path segment");
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StorageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of one backup run (`-id`); one key segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackupId(String);

impl BackupId {
    pub fn parse(id: &str) -> Result<Self, LayoutError> {
        let refuse = |reason| {
            Err(LayoutError::BackupId {
                id: id.to_owned(),
                reason,
            })
        };
        if id.is_empty() {
            return refuse("it is empty");
        }
        if id.contains('/') || id.starts_with('.') || id.starts_with('+') || id.contains('\0') {
            return refuse("it must be one path segment not starting with '.' or '+'");
        }
        Ok(Self(id.to_owned()))
    }

    /// gitaly-backup's default: the UTC time as `YYYYMMDDhhmmss`.
    pub fn from_unix_seconds(seconds: i64) -> Self {
        let (year, month, day, hour, minute, second) = civil_from_unix(seconds);
        Self(format!(
            "{year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}"
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// UTC calendar fields of a Unix time (Howard Hinnant's days-from-civil,
/// inverted), so no date crate is needed for two timestamp formats.
pub fn civil_from_unix(seconds: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (secs_of_day / 3600) as u32,
        (secs_of_day % 3600 / 60) as u32,
        (secs_of_day % 60) as u32,
    )
}

/// RFC 3339 UTC time with second precision, for gitbak's manifest keys.
pub fn rfc3339(seconds: i64) -> String {
    let (y, mo, d, h, mi, s) = civil_from_unix(seconds);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// The files of one step of a backup chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepKeys {
    pub bundle: Key,
    pub refs: Key,
    pub custom_hooks: Key,
}

fn key(text: String) -> Key {
    Key::new(text).expect("layout keys are built from validated segments")
}

/// `<storage>/<relative_path>/<id>/<nnn>.{bundle,refs,custom_hooks.tar}`.
pub fn step_keys(storage: &StorageName, path: &RelativePath, id: &BackupId, step: u32) -> StepKeys {
    let base = format!("{storage}/{path}/{id}/{step:03}");
    StepKeys {
        bundle: key(format!("{base}.bundle")),
        refs: key(format!("{base}.refs")),
        custom_hooks: key(format!("{base}.custom_hooks.tar")),
    }
}

/// Prefix under which every manifest of one repository lives (trailing
/// slash, unlike gitaly's listing, so `x.git` never matches `x.git2`).
pub fn manifest_prefix(storage: &StorageName, path: &RelativePath) -> String {
    format!("manifests/{storage}/{path}/")
}

pub fn manifest_key(storage: &StorageName, path: &RelativePath, id: &BackupId) -> Key {
    key(format!("{}{id}.toml", manifest_prefix(storage, path)))
}

/// The rewritten copy of the newest manifest, kept for gitaly's readers.
pub fn latest_manifest_key(storage: &StorageName, path: &RelativePath) -> Key {
    key(format!("{}+latest.toml", manifest_prefix(storage, path)))
}

pub const LATEST_MANIFEST_NAME: &str = "+latest.toml";

pub const BACKUP_IDS_PREFIX: &str = "backup_ids/";

/// The empty marker gitaly-backup 19.0 writes once per run.
pub fn backup_id_marker_key(id: &BackupId) -> Key {
    key(format!("{BACKUP_IDS_PREFIX}{id}"))
}

/// Where a run holds backup `id` of `storage` (`crate::lock`): beside
/// the backups, under gitbak's own top-level name, which the catalogue
/// and prune leave alone.
pub fn lock_key(id: &BackupId, storage: &StorageName) -> Key {
    key(format!("gitbak-locks/{id}/{storage}"))
}

/// The backup id a manifest key names, if it is a per-id manifest.
pub fn backup_id_of_manifest(manifest: &str) -> Option<&str> {
    let name = manifest.rsplit('/').next()?;
    let id = name.strip_suffix(".toml")?;
    (name != LATEST_MANIFEST_NAME && !id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_gitbak_s_own() {
        let id = BackupId::parse("20240101000000").unwrap();
        let key = lock_key(&id, &StorageName::parse("nfs-2").unwrap());
        assert_eq!(key.as_str(), "gitbak-locks/20240101000000/nfs-2");
        assert_eq!(catalog::classify(key.as_str()), catalog::KeyKind::Gitbak);
    }

    #[test]
    fn manifest_and_step_keys() {
        for (storage, path, id, want) in [
            (
                "default",
                "@hashed/ab/cd/abcd.git",
                "20240101000000",
                "manifests/default/@hashed/ab/cd/abcd.git/20240101000000.toml",
            ),
            (
                "nfs-2",
                "g/site.wiki.git",
                "nightly",
                "manifests/nfs-2/g/site.wiki.git/nightly.toml",
            ),
        ] {
            let storage = StorageName::parse(storage).unwrap();
            let path = RelativePath::parse(path).unwrap();
            let id = BackupId::parse(id).unwrap();
            assert_eq!(manifest_key(&storage, &path, &id).as_str(), want);
        }
        let steps = step_keys(
            &StorageName::parse("default").unwrap(),
            &RelativePath::parse("a/b.git").unwrap(),
            &BackupId::parse("7").unwrap(),
            1,
        );
        assert_eq!(steps.bundle.as_str(), "default/a/b.git/7/001.bundle");
        assert_eq!(steps.refs.as_str(), "default/a/b.git/7/001.refs");
        assert_eq!(
            steps.custom_hooks.as_str(),
            "default/a/b.git/7/001.custom_hooks.tar"
        );
    }

    #[test]
    fn relative_paths_that_escape_are_refused() {
        for bad in [
            "",
            "/abs/x.git",
            "../x.git",
            "a/../../x.git",
            "a//b.git",
            "./x.git",
            "a/.",
            "a\\..\\b",
        ] {
            assert!(RelativePath::parse(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "x.git",
            "@hashed/ab/cd/x.git",
            "group/sub/p.wiki.git",
            "a..b.git",
        ] {
            assert!(RelativePath::parse(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn default_backup_id_is_utc_timestamp() {
        assert_eq!(BackupId::from_unix_seconds(0).as_str(), "19700101000000");
        assert_eq!(
            BackupId::from_unix_seconds(1_632_984_853).as_str(),
            "20210930065413"
        );
        assert_eq!(
            BackupId::from_unix_seconds(951_782_400).as_str(),
            "20000229000000"
        );
        assert_eq!(rfc3339(1_632_984_853), "2021-09-30T06:54:13Z");
    }

    #[test]
    fn manifest_names_give_backup_ids() {
        assert_eq!(
            backup_id_of_manifest("manifests/d/x.git/2024.toml"),
            Some("2024")
        );
        assert_eq!(
            backup_id_of_manifest("manifests/d/x.git/+latest.toml"),
            None
        );
        assert_eq!(backup_id_of_manifest("manifests/d/x.git/a.attrs"), None);
    }
}
